"""Caps on the credential port's open connections, so no local user can take the descriptors the owner's
SDKs need: at most `per_uid` connections per other user, at most `total` in all with `owner_reserve` of them
kept for the user tipd runs as. At a cap, the oldest idle connection (no request in progress) of the
biggest other holder goes first, then the oldest idle one of the newcomer's own user; a newcomer nothing
can make room for is closed at once. The peer's uid comes from the guard's per-connection lookup (one
netlink query, cached for the connection's life), so a served request pays nothing extra.

Hooked in as aiohttp's Server (its `connection_made`/`connection_lost` see every connection); the control
socket is unix, reachable only by its owner, and needs none of this."""
from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from ..limits import RateLimit, nofile_limit

log = logging.getLogger(__name__)
log.addFilter(RateLimit())  # a flood of refusals is one line per interval, with a count

#: connections one other user may hold (SDK clients need one or two each)
PER_UID = 64
#: all connections, at most; never more than half the descriptor limit (the rest: files, upstream calls)
MAX_TOTAL = 1024
#: slots only the owner's connections may take
OWNER_RESERVE = 32


def default_total() -> int:
    return max(2 * OWNER_RESERVE, min(MAX_TOTAL, nofile_limit() // 2))


class Caps:
    def __init__(self, uid_of: Callable[[asyncio.BaseTransport], int | None], *, owner: int | None = None,
                 total: int | None = None, per_uid: int = PER_UID, owner_reserve: int = OWNER_RESERVE,
                 know_uids: bool = True) -> None:
        self.uid_of = uid_of
        self.owner = os.getuid() if owner is None else owner
        self.total = total or default_total()
        self.per_uid = per_uid
        self.owner_reserve = min(owner_reserve, self.total - 1)
        #: where the platform cannot tell users apart, every connection counts as the owner's
        self.know_uids = know_uids
        self.by_uid: dict[int | None, dict[RequestHandler, asyncio.BaseTransport]] = {}
        self.uid: dict[RequestHandler, int | None] = {}  # (RequestHandler has __slots__: no attribute of ours)
        self.refused = 0
        self.evicted = 0

    def admit(self, handler: RequestHandler, transport: asyncio.BaseTransport) -> bool:
        """Count a new connection, closing others to make room; False when it must be closed instead."""
        uid = self.uid_of(transport) if self.know_uids else self.owner
        mine = self.by_uid.get(uid, {})
        if uid != self.owner:
            if len(mine) >= self.per_uid and not self._evict_from(uid):
                return self._refuse()
            if self.count - len(self.by_uid.get(self.owner, ())) >= self.total - self.owner_reserve \
                    and not (self._evict_from(uid) or self._evict_biggest_other()):
                return self._refuse()
        elif self.count >= self.total and not (self._evict_biggest_other() or self._evict_from(uid)):
            return self._refuse()
        self.by_uid.setdefault(uid, {})[handler] = transport
        self.uid[handler] = uid
        return True

    @property
    def count(self) -> int:
        return len(self.uid)

    def release(self, handler: RequestHandler) -> None:
        if handler not in self.uid:
            return  # refused, or already evicted
        uid = self.uid.pop(handler)
        conns = self.by_uid[uid]
        del conns[handler]
        if not conns:
            del self.by_uid[uid]

    def _refuse(self) -> bool:
        self.refused += 1
        log.warning("connection refused: the connection cap is reached (%d open)", self.count)
        return False

    def _evict_from(self, uid: int | None) -> bool:
        for handler, transport in self.by_uid.get(uid, {}).items():  # oldest first
            if _idle(handler):
                self.release(handler)
                transport.close()
                self.evicted += 1
                return True
        return False

    def _evict_biggest_other(self) -> bool:
        others = sorted((u for u in self.by_uid if u != self.owner), key=lambda u: -len(self.by_uid[u]))
        return any(self._evict_from(u) for u in others)


def _idle(handler: RequestHandler) -> bool:
    """No request in progress (waiting for one, or for the rest of one's headers)."""
    return getattr(handler, "_current_request", None) is None


class CappedServer(web.Server):
    """aiohttp's Server with the caps applied as each connection opens and closes."""

    caps: Caps

    def connection_made(self, handler: RequestHandler, transport: Any) -> None:
        super().connection_made(handler, transport)
        if not self.caps.admit(handler, transport):
            transport.close()

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        self.caps.release(handler)
        super().connection_lost(handler, exc)


class CappedRunner(web.AppRunner):
    """An AppRunner whose server applies `caps` (tipd/daemon.py uses it for the credential port)."""

    def __init__(self, app: web.Application, caps: Caps, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.caps = caps

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = CappedServer  # same layout, two methods more: aiohttp offers no other hook
        assert isinstance(server, CappedServer)
        server.caps = self.caps
        return server
