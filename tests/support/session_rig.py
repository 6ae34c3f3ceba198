"""A ProfileSession on virtual time with stand-in upstreams, and an SDK-like client fetching from it every few
seconds, recording what it was served and every failure (unit level: a simulated day runs in well under a
second)."""
from __future__ import annotations

import asyncio

from tests.support.fakes import FakeAws, FakeIdp, VirtualClock
from tests.support.profiles import PROFILE
from tipd.config import RefreshConfig, parse_config
from tipd.session import ProfileSession

HOUR = 3600


class MemStore:
    name = "memory"

    def __init__(self):
        self.tokens = {}
        self.saves = []

    async def load(self, p):
        return self.tokens.get(p)

    async def save(self, p, grant):
        self.tokens[p] = grant
        if not self.saves or self.saves[-1] != grant.refresh_token.reveal():
            self.saves.append(grant.refresh_token.reveal())  # each IdP refresh token stored (not each record)

    async def delete(self, p):
        self.tokens.pop(p, None)


class Rig:
    def __init__(self, refresh=None, idp_ttl=HOUR, idc_ttl=HOUR):
        self.clock = VirtualClock()
        self.idp = FakeIdp(self.clock, ttl=idp_ttl)
        self.aws = FakeAws(self.clock, idc_ttl=idc_ttl)
        self.store = MemStore()
        self.notes = []
        cfg = parse_config({"profiles": {"work": PROFILE}}, "test")
        self.session = ProfileSession("work", cfg.profiles["work"], refresh or RefreshConfig(), store=self.store,
                                      aws=self.aws, idp=self.idp, clock=self.clock,
                                      notify=lambda t, b: self.notes.append((t, b)))
        self.served = []  # (time, remaining) of every credential handed out
        self.failures = []  # (time, error code, whether a valid credential existed)
        self.tasks = []

    async def start(self, fetch_every=7.0):
        await self.session.login(self.idp.tokens())
        self.t0 = self.clock.t
        self.tasks = [asyncio.create_task(self.session.run()), asyncio.create_task(self._client(fetch_every))]

    async def _client(self, every):
        while True:
            had_valid = (self.session.served is not None
                         and self.session.served.creds.expires_at > self.clock.t + self.session.floor)
            try:
                s = await self.session.credentials()
                self.served.append((self.clock.t, s.creds.expires_at - self.clock.t))
            except Exception as e:  # noqa: BLE001 - the test records every failure
                self.failures.append((self.clock.t, getattr(e, "code", type(e).__name__), had_valid))
            await self.clock.sleep(every)

    async def run(self, seconds):
        await self.clock.run_until(self.clock.t + seconds)

    async def stop(self):
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
