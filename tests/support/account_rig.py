"""Unit-level rig for account profiles: a signed-in source session on the virtual clock (the unit fakes for the
IdP and the chain), a portal that counts its calls, and account sessions over it."""
from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from tests.support.fakes import FakeAws, FakeIdp, VirtualClock
from tests.support.profiles import PROFILE
from tests.support.session_rig import MemStore
from tipd.accounts import AccountSchedule, AccountSession
from tipd.config import Config, RefreshConfig, parse_config
from tipd.errors import TipdError
from tipd.exchange import AwsCredentials
from tipd.secret import Secret
from tipd.session import ProfileSession

#: the IdP profile the account profiles sign in through
SOURCE = PROFILE


def account_id(i: int) -> str:
    return f"{100000000000 + i:012d}"


def config_with_accounts(n: int, refresh: dict[str, Any] | None = None) -> Config:
    profiles: dict[str, Any] = {"work": SOURCE}
    for i in range(n):
        profiles[f"acct{i}"] = {"source": "work", "account_id": account_id(i), "role_name": "Admin"}
    return parse_config({"profiles": profiles, **({"refresh": refresh} if refresh else {})}, "test")


class FakePortal:
    """GetRoleCredentials with lifetimes on the given clock; counts calls per account."""

    def __init__(self, clock: Any, duration: float = 3600) -> None:
        self.clock = clock
        self.duration = duration
        self.calls: Counter[str] = Counter()
        self.tokens_seen: list[str] = []
        self.fail: Exception | None = None
        #: when set, every call waits for it (a portal that does not answer)
        self.hold: asyncio.Event | None = None
        self.n = 0

    async def get_role_credentials(self, *, region: str, access_token: Secret, account_id: str, role_name: str,
                                   scopes: tuple[str, ...] = (), application_arn: str = "") -> AwsCredentials:
        self.calls[account_id] += 1
        self.tokens_seen.append(access_token.reveal())
        if self.hold is not None:
            await self.hold.wait()
        if self.fail is not None:
            raise self.fail
        self.n += 1
        return AwsCredentials(f"ASIAPORTAL{self.n:010d}", Secret(f"secret-{self.n}"), Secret(f"token-{self.n}"),
                              self.clock.time() + self.duration, account_id)


class AccountRig:
    def __init__(self, n: int = 3, *, duration: float = 3600, refresh: dict[str, Any] | None = None) -> None:
        self.clock = VirtualClock()
        self.idp = FakeIdp(self.clock)
        self.aws = FakeAws(self.clock)
        self.portal = FakePortal(self.clock, duration)
        self.config = config_with_accounts(n, refresh)
        self.refresh = self.config.refresh or RefreshConfig()
        self.source = ProfileSession("work", self.config.idp_profile("work"), self.refresh, store=MemStore(),
                                     aws=self.aws, idp=self.idp, clock=self.clock)
        self.accounts = {name: AccountSession(name, a, self.source, self.portal, clock=self.clock,
                                              refresh=self.refresh)
                         for name, a in self.config.accounts.items()}
        self.tasks: list[asyncio.Task[Any]] = []
        self.failures: list[tuple[float, str]] = []
        self.handed: list[tuple[float, str, float]] = []  # (time, profile, remaining) of every hand-out
        self.waited: list[tuple[float, str]] = []  # hand-outs that had to wait for a fetch

    async def start(self) -> None:
        await self.source.login(self.idp.tokens())
        self.tasks = [asyncio.create_task(self.source.run()),
                      asyncio.create_task(AccountSchedule(self.accounts, self.clock).run())]

    def use(self, name: str, every: float = 60.0, stop_after: float | None = None) -> None:
        """A client that asks for credentials as botocore does: whenever it has none with >= 15 min left."""
        self.tasks.append(asyncio.create_task(self._client(name, every, stop_after)))

    async def _client(self, name: str, every: float, stop_after: float | None) -> None:
        acct = self.accounts[name]
        held_until = 0.0
        end = None if stop_after is None else self.clock.time() + stop_after
        while end is None or self.clock.time() < end:
            if held_until - self.clock.time() < 900:
                try:
                    if acct.cached_body() is not None and acct.served is not None:
                        expires = acct.served.creds.expires_at
                    else:
                        self.waited.append((self.clock.time(), name))
                        expires = (await acct.credentials()).creds.expires_at
                    held_until = expires
                    self.handed.append((self.clock.time(), name, expires - self.clock.time()))
                except TipdError as e:
                    self.failures.append((self.clock.time(), e.code))
            await self.clock.sleep(every)

    async def run(self, seconds: float) -> None:
        await self.clock.run_until(self.clock.time() + seconds)

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
