"""Account profiles: a role in an AWS account, served from memory like any profile, its credentials got with
the portal API's GetRoleCredentials and the Identity Center token of its source sign-in (docs/accounts.md).

Lazy by design: a configured account profile costs nothing upstream until a client asks for it; the first
request fetches (waiting at most FETCH_TIMEOUT), and the credentials are then renewed ahead of their expiry
only while the profile is *in use*: while a client holds credentials it was handed that have not expired yet.
An SDK re-fetches when its credentials near their end (botocore with 15 min left, the others later), and tipd
serves only credentials with `min_remaining` (20 min) left, so a process that keeps using a profile keeps it
in use; one that stopped lets it go idle after at most one more renewal. All the account profiles of a source
share its one Identity Center token (its `idc` stage, single-flight): one renewal serves them all."""
from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from .clock import ClockLike, iso_utc
from .config import AccountProfile, RefreshConfig
from .errors import LoginRequired, TipdError, UpstreamError
from .exchange import AwsCredentials, IdcToken
from .refresh import TICK, Stage, Verdict, WakeOrTick
from .secret import Secret
from .session import ProfileSession, Served, ServesFromMemory

log = logging.getLogger(__name__)

#: a request for a profile with nothing fetched yet waits at most this long for GetRoleCredentials
FETCH_TIMEOUT = 30.0
#: the portal refuses an Identity Center token that expired or was revoked with this code: one renewal of the
#: source's token, then one more try
UNAUTHORIZED = "UnauthorizedException"


class RoleCredentials(Protocol):
    """The portal API's GetRoleCredentials (tipd.portal.Portal)."""

    async def get_role_credentials(self, *, region: str, access_token: Secret, account_id: str, role_name: str,
                                   scopes: tuple[str, ...] = (), application_arn: str = "") -> AwsCredentials: ...


class AccountSession(ServesFromMemory):
    """One account profile's credentials: fetched on first use, renewed ahead while in use, dropped when the
    source signs out."""

    def __init__(self, name: str, profile: AccountProfile, source: ProfileSession, portal: RoleCredentials, *,
                 clock: ClockLike, refresh: RefreshConfig, on_change: Callable[[], None] | None = None,
                 rng: random.Random | None = None) -> None:
        self.name = name
        self.profile = profile
        self.source = source
        self.portal = portal
        self.settings = refresh
        self.on_change = on_change or (lambda: None)
        self.start_serving(clock, refresh)
        #: the expiry of the latest credentials handed to a client: the profile is in use until then
        self.handed_out_until = 0.0
        self.stage: Stage[AwsCredentials] = Stage(f"{name}: role credentials", self._fetch, clock,
                                                  refresh.rotate_remaining, rng=rng, on_change=self.on_change)
        source.sign_in_listeners.append(self.drop)

    # -- serving ---------------------------------------------------------------------------
    def cached_body(self) -> bytes | None:
        """The hot path: credentials with at least `min_remaining` left, from memory, or None. Handing them
        out keeps the profile in use."""
        s = self.fresh()
        if s is None:
            return None
        self.handed_out_until = s.creds.expires_at
        return s.body

    async def credentials(self) -> Served:
        """Credentials to hand out: the ones in memory, else fetched now (at most FETCH_TIMEOUT)."""
        s, now, verdict = self.serving_verdict()
        # short but valid credentials go out while a renewal is under way; otherwise this request fetches (an
        # account profile not in use has no renewal ahead of it)
        if s is None or verdict is Verdict.RENEW or (verdict is Verdict.SERVE_AND_RENEW and not self.stage.refreshing):
            failing = self.stage.backing_off(now)
            if failing is not None:
                raise failing
            await self._fetch_now()
            s = self.served
            assert s is not None
        self.handed_out_until = max(self.handed_out_until, s.creds.expires_at)
        return s

    async def _fetch_now(self) -> None:
        try:
            await asyncio.wait_for(self.stage.refresh(), FETCH_TIMEOUT)  # the refresh itself is shielded
        except TimeoutError:
            raise UpstreamError(f"account profile {self.name}: Identity Center did not hand out the role "
                                f"credentials within {FETCH_TIMEOUT:.0f} s; try again in a moment",
                                code="PortalTimeout", status=504) from None
        except UpstreamError:
            if self.source.refresh_token is None:  # the source signed out meanwhile (its drop cancelled the fetch)
                raise LoginRequired(f"account profile {self.name} signs in through profile {self.source.name}, "
                                    f"which signed out: run `tipctl login {self.source.name}`") from None
            raise

    # -- fetching --------------------------------------------------------------------------
    async def _fetch(self) -> tuple[AwsCredentials, float]:
        src = self.source
        if src.loading is not None and not src.loading.done():
            await asyncio.wait([src.loading])  # the source's stored sign-in is being read (start-up)
        if src.login_required is not None:
            raise LoginRequired(f"account profile {self.name} signs in through profile {src.name}, which needs "
                                f"a new sign-in: {src.login_required.message}")
        if src.refresh_token is None:
            raise LoginRequired(f"account profile {self.name} signs in through profile {src.name}, which is not "
                                f"signed in: run `tipctl login {src.name}`")
        epoch = src.sign_in_epoch
        token = await src.identity_center_token()  # the one token all of the source's account profiles share
        try:
            creds = await self._role_credentials(token)
        except UpstreamError as e:
            if e.code != UNAUTHORIZED:
                raise
            # the token may have been revoked or expired early: one renewal of the source's token, one more try
            log.info("account profile %s: the portal refused the Identity Center token; renewing it", self.name)
            creds = await self._role_credentials((await src.idc.refresh()).value)
        if src.sign_in_epoch != epoch:  # signed out (or in as someone else) meanwhile: never keep these
            raise LoginRequired(f"account profile {self.name}: profile {src.name} signed out meanwhile")
        now = self.clock.time()
        if creds.expires_at - now <= self.floor:
            raise UpstreamError(f"account profile {self.name}: Identity Center issued credentials valid for only "
                                f"{creds.expires_at - now:.0f} s; retrying", code="ExpiredCredentials")
        self.served = Served.render(creds, now)
        log.info("account profile %s: role credentials for %s in account %s ready, valid until %s", self.name,
                 self.profile.role_name, self.profile.account_id, iso_utc(creds.expires_at))
        return creds, creds.expires_at

    async def _role_credentials(self, token: IdcToken) -> AwsCredentials:
        src = self.source.profile
        return await self.portal.get_role_credentials(
            region=src.region, access_token=token.access_token, account_id=self.profile.account_id,
            role_name=self.profile.role_name, scopes=token.scopes, application_arn=src.application_arn)

    def close(self) -> None:
        """Out of service (removed or restarted by a reload): no longer told about the source's sign-ins."""
        if self.drop in self.source.sign_in_listeners:
            self.source.sign_in_listeners.remove(self.drop)
        self.stage.clear()
        self.served = None

    def drop(self) -> None:
        """The source signed out (or in as another person): its credentials leave memory at once."""
        self.stage.clear()
        self.served = None
        self.handed_out_until = 0.0
        self.on_change()

    # -- the schedule ----------------------------------------------------------------------
    def in_use(self, now: float) -> bool:
        return now < self.handed_out_until

    def due(self, now: float) -> bool:
        """Renew now: in use, something held, its renewal time reached, none under way."""
        if not self.in_use(now) or self.stage.held is None or self.stage.refreshing:
            return False
        if self.source.refresh_token is None or self.source.login_required is not None:
            return False
        if self.stage.last_error is not None and self.stage.last_error.permanent:
            return False  # refused (no longer assigned...): the next request tries again, the schedule does not
        at = self.stage.due_at()
        return at is not None and at <= now

    def next_due(self, now: float) -> float | None:
        if not self.in_use(now) or self.stage.held is None:
            return None
        return self.stage.due_at()

    # -- status ----------------------------------------------------------------------------
    @property
    def state(self) -> str:
        """cold (nothing fetched), fresh (in use, servable), idle (servable, not in use), refreshing,
        degraded (a renewal failed, or nothing servable), login-required / signed-out (the source's)."""
        src = self.source
        if src.login_required is not None:
            return "login-required"
        if src.refresh_token is None and self.served is None:
            return "signed-out"
        if self.stage.refreshing:
            return "refreshing"
        if self.stage.last_error is not None:
            return "degraded"
        s = self.served
        if s is None:
            return "cold"
        now = self.clock.time()
        if s.creds.expires_at - now < self.settings.min_remaining:
            return "cold" if not self.in_use(now) else "degraded"
        return "fresh" if self.in_use(now) else "idle"

    def status(self) -> dict[str, Any]:
        s = self.served
        err = self.stage.last_error
        due = self.next_due(self.clock.time())
        return {
            "profile": self.name,
            "source": self.source.name,
            "account_id": self.profile.account_id,
            "role_name": self.profile.role_name,
            "state": self.state,
            "in_use": self.in_use(self.clock.time()),
            "role_arn": s.creds.arn if s else None,
            "credentials_expire": iso_utc(s.creds.expires_at) if s else None,
            "next_refresh": iso_utc(due) if due is not None else None,
            "refreshes": self.stage.calls,
            "last_error": err.message if err else None,
        }


class AccountSchedule:
    """One task renews every account profile in use ahead of its expiry (not one task each: 300 configured
    account profiles cost 300 small objects, no tasks, no timers). It wakes at least every TICK seconds and
    re-reads the wall clock, as the sign-in profiles' schedule does."""

    def __init__(self, accounts: Mapping[str, AccountSession], clock: ClockLike) -> None:
        self.accounts = accounts
        self.clock = clock
        self._renewals: set[asyncio.Task[None]] = set()
        #: the loop (tipd/refresh.py's, as for sessions and grants)
        self.schedule = WakeOrTick(clock)

    async def run(self) -> None:
        try:
            await self.schedule.run(self._step)
        finally:
            for task in list(self._renewals):
                task.cancel()

    async def _step(self) -> float:
        """Start the renewals that are due; the seconds until the next one."""
        now = self.clock.time()
        for a in list(self.accounts.values()):
            if a.due(now):
                task = asyncio.create_task(self._renew(a), name=f"renew-{a.name}")
                self._renewals.add(task)
                task.add_done_callback(self._renewals.discard)
        await asyncio.sleep(0)  # let the renewals just started mark themselves under way
        nxt = min((d for a in self.accounts.values() if (d := a.next_due(now)) is not None and
                   not a.stage.refreshing), default=now + TICK)
        return max(0.05, nxt - now)

    async def _renew(self, a: AccountSession) -> None:
        try:
            await a.stage.refresh()
        except TipdError as e:  # the stage keeps the error (shown in the status) and backs off
            log.warning("account profile %s: renewal failed: %s", a.name, e.message)
