"""What the daemon's listeners share: the config, the live sessions and S3 Access Grants caches, the audit
trail, the change hub, the background tasks, and the daemon's actions the control API offers. The daemon
(tipd/daemon.py) fills it; the servers (tipd/server/*) find it in their aiohttp app under `BROKER` and
never import the daemon."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypedDict

from aiohttp import web

from .accounts import AccountSession
from .audit import Audit
from .changes import Changes
from .clock import Clock
from .config import Config
from .consumers import Consumers
from .errors import TipdError
from .portal import Portal
from .s3ag import GrantCache
from .session import ProfileSession
from .tasks import Tasks


class ReloadResult(TypedDict):
    """What a reload did (the control API's /v1/reload answer)."""

    config: str
    added: list[str]
    removed: list[str]
    restarted: list[str]
    unchanged: list[str]
    needs_restart: list[str]
    #: unchanged profiles that took a client secret stored since they were loaded (`tipctl configure`)
    new_client_secret: list[str]


def _not_offered() -> None:
    raise TipdError("this tipd does not offer that", status=501)


async def _no_reload() -> ReloadResult:
    raise TipdError("this tipd cannot reload its config", status=501)


@dataclass
class Broker:
    config: Config
    #: per profile, its live session (the endpoints serve what is here)
    sessions: dict[str, ProfileSession] = field(default_factory=dict)
    #: per profile, its S3 Access Grants
    grants: dict[str, GrantCache] = field(default_factory=dict)
    #: the account profiles, served beside the sessions (tipd/accounts.py)
    accounts: dict[str, AccountSession] = field(default_factory=dict)
    #: the portal API client (its 60 s account listings cache), shared by the account profiles and the control API
    portal: Portal | None = None
    #: the consumer tokens (`tipctl grant`); None in a broker made without a state directory
    consumers: Consumers | None = None
    audit: Audit = field(default_factory=Audit)
    changes: Changes = field(default_factory=Changes)
    tasks: Tasks = field(default_factory=lambda: Tasks(Clock().time))
    #: replace the endpoint token (`tipctl rotate-token`)
    rotate_token: Callable[[], None] = _not_offered
    #: re-read the config (SIGHUP, `tipctl reload`); says what changed
    reload: Callable[[], Awaitable[ReloadResult]] = _no_reload

    @property
    def default_profile(self) -> str | None:
        try:
            return self.config.profile_name(None)
        except TipdError:
            return None


#: where an aiohttp app of tipd's keeps the broker
BROKER = web.AppKey("broker", Broker)
