"""A ProfileSession on virtual time with stand-in upstreams, and an SDK-like client fetching from it every few
seconds, recording what it was served and every failure (unit level: a simulated day runs in well under a
second)."""
from __future__ import annotations

import asyncio

from tests.support.fakes import FakeAws, FakeIdp, VirtualClock
from tests.support.profiles import PROFILE
from tipd.config import RefreshConfig, parse_config
from tipd.session import ProfileSession
from tipd.store import ClientSecret, Grant

HOUR = 3600


class MemStore:
    name = "memory"

    def __init__(self) -> None:
        self.tokens: dict[str, Grant] = {}
        self.saves: list[str] = []

    async def load(self, p: str) -> Grant | None:
        return self.tokens.get(p)

    async def save(self, p: str, grant: Grant) -> None:
        self.tokens[p] = grant
        if not self.saves or self.saves[-1] != grant.refresh_token.reveal():
            self.saves.append(grant.refresh_token.reveal())  # each IdP refresh token stored (not each record)

    async def delete(self, p: str) -> None:
        self.tokens.pop(p, None)

    # no client secrets: the rigs' profiles have client_auth "none" (tipd.store.TokenStore asks for these)
    async def load_secret(self, p: str) -> ClientSecret | None:
        return None

    async def save_secret(self, p: str, secret: ClientSecret) -> None:
        raise NotImplementedError("the memory store keeps no client secret")

    async def delete_secret(self, p: str) -> None:
        pass


class Rig:
    def __init__(self, refresh: RefreshConfig | None = None, idp_ttl: int = HOUR, idc_ttl: int = HOUR) -> None:
        self.clock = VirtualClock()
        self.idp = FakeIdp(self.clock, ttl=idp_ttl)
        self.aws = FakeAws(self.clock, idc_ttl=idc_ttl)
        self.store = MemStore()
        self.notes: list[tuple[str, str]] = []
        cfg = parse_config({"profiles": {"work": PROFILE}}, "test")
        self.session = ProfileSession("work", cfg.idp_profile("work"), refresh or RefreshConfig(), store=self.store,
                                      aws=self.aws, idp=self.idp, clock=self.clock,
                                      notify=lambda t, b: self.notes.append((t, b)))
        self.served: list[tuple[float, float]] = []  # (time, remaining) of every credential handed out
        #: (time, error code, whether a valid credential existed)
        self.failures: list[tuple[float, str, bool]] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self, fetch_every: float = 7.0) -> None:
        await self.session.login(self.idp.tokens())
        self.t0 = self.clock.t
        self.tasks = [asyncio.create_task(self.session.run()), asyncio.create_task(self._client(fetch_every))]

    async def _client(self, every: float) -> None:
        while True:
            had_valid = (self.session.served is not None
                         and self.session.served.creds.expires_at > self.clock.t + self.session.floor)
            try:
                s = await self.session.credentials()
                self.served.append((self.clock.t, s.creds.expires_at - self.clock.t))
            except Exception as e:  # noqa: BLE001 - the test records every failure
                self.failures.append((self.clock.t, getattr(e, "code", type(e).__name__), had_valid))
            await self.clock.sleep(every)

    async def run(self, seconds: float) -> None:
        await self.clock.run_until(self.clock.t + seconds)

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
