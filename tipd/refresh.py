"""A refreshing value (one link of the chain, or one S3 Access Grant) with an expiry, single-flight refresh and
backoff; the serving policy every served value follows (`Windows`, `Stage.backing_off`); and the scheduler
loop that renews them (`WakeOrTick`). Sessions (tipd/session.py) and the S3 Access Grants cache (tipd/s3ag.py)
both use these, so credentials of either kind are served, renewed and backed off the same way."""
from __future__ import annotations

import asyncio
import enum
import logging
import math
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .clock import ClockLike
from .errors import TipdError, UpstreamError

log = logging.getLogger(__name__)
T = TypeVar("T")

BACKOFF_BASE = 1.0
BACKOFF_CAP = 300.0
#: at most this many upstream calls per stage in any minute, whatever the expiries say: a value that looks
#: expired on arrival (a local clock far ahead, a server's bad expiry) must not become a refresh loop
MAX_PER_MINUTE = 20
#: how often a scheduler re-reads the wall clock while it waits: a laptop that resumes from sleep, or a clock
#: that jumps, is noticed within this long
TICK = 5.0


class Verdict(enum.Enum):
    SERVE = "serve"
    #: valid but short: serve it now, and renew it behind the request
    SERVE_AND_RENEW = "serve-and-renew"
    #: nothing held, or too short to serve: renew before answering
    RENEW = "renew"


@dataclass(frozen=True)
class Windows:
    """When served credentials are renewed, and when they may no longer be served (botocore's advisory and
    mandatory refresh windows): with less than `advisory` seconds left they are renewed behind the request,
    which still gets them; with `mandatory` or less, a request waits for the renewal (clock skew would make them
    expired on arrival)."""

    advisory: float
    mandatory: float

    def verdict(self, expires_at: float | None, now: float) -> Verdict:
        if expires_at is None:
            return Verdict.RENEW
        left = expires_at - now
        if left >= self.advisory:
            return Verdict.SERVE
        return Verdict.SERVE_AND_RENEW if left > self.mandatory else Verdict.RENEW


class WakeOrTick:
    """The scheduler loop of a session and of a grant cache: `step` does what is due and says how long until it
    is next needed; the loop waits that long but at most TICK (so a wall-clock jump is noticed), or until
    `wake()` (a request served something short, a new grant is waiting)."""

    def __init__(self, clock: ClockLike) -> None:
        self.clock = clock
        self._event = asyncio.Event()

    def wake(self) -> None:
        self._event.set()

    @property
    def woken(self) -> bool:
        """A wake is pending (the loop has not run since)."""
        return self._event.is_set()

    async def run(self, step: Callable[[], Awaitable[float | None]]) -> None:
        """Run `step` until cancelled. It returns None when it did something (it is called again at once), else
        the seconds until it is next needed (math.inf: only a wake makes it needed)."""
        while True:
            delay = await step()
            if delay is None:
                continue
            self._event.clear()
            waits: set[asyncio.Future[object]] = {asyncio.ensure_future(self._event.wait())}
            if not math.isinf(delay):
                waits.add(asyncio.ensure_future(self.clock.sleep(min(TICK, max(0.0, delay)))))
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()
#: a renewal starts up to this fraction of a value's holding time (from obtaining it to its renewal time) early,
#: at random: daemons that obtained their values in the same minute (a fleet waking at 09:00, back after a
#: network outage) drift apart instead of renewing in lock-step all day (bench/fleet.py, docs/performance.md).
#: Only ever earlier: a later renewal would eat into the margin above `min_remaining`
RENEW_JITTER = 0.1
#: holding times shorter than this get no jitter (test-sized lifetimes; nothing to spread at fleet scale)
JITTER_MIN_HOLD = 60.0


def renewal_due(obtained_at: float, expires_at: float, refresh_ahead: float) -> float:
    """When a value is renewed: `refresh_ahead` before its expiry, or half-way through a lifetime shorter than
    twice that (a 10-minute token is renewed after 5 minutes, not at once)."""
    return expires_at - min(refresh_ahead, (expires_at - obtained_at) / 2)


def renewal_head_start(obtained_at: float, expires_at: float, refresh_ahead: float, rng: random.Random,
                       jitter: float = RENEW_JITTER) -> float:
    """How much earlier than `renewal_due` this value's renewal starts: uniform in [0, jitter x holding time]."""
    hold = renewal_due(obtained_at, expires_at, refresh_ahead) - obtained_at
    return rng.uniform(0, jitter * hold) if hold >= JITTER_MIN_HOLD and jitter > 0 else 0.0


def backoff_delay(failures: int, rng: random.Random) -> float:
    """The wait before the next attempt after `failures` failures in a row: exponential, full jitter, capped."""
    return max(rng.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (failures - 1))), 0.05)


@dataclass(frozen=True)
class Held(Generic[T]):
    value: T
    expires_at: float
    obtained_at: float


class Stage(Generic[T]):
    """Holds the latest value of one stage and refreshes it at most once at a time.

    `refresh_ahead` is how long before expiry the background scheduler renews it, less a random head start of
    up to `jitter` of the holding time (RENEW_JITTER; 0 renews exactly on time). Failures are
    remembered with a next-attempt time (exponential backoff, full jitter) so the scheduler never
    storms a failing upstream, while requests can still be served from a value that is valid."""

    def __init__(self, name: str, fetch: Callable[[], Awaitable[tuple[T, float]]], clock: ClockLike,
                 refresh_ahead: float, rng: random.Random | None = None,
                 on_change: Callable[[], None] | None = None, jitter: float = RENEW_JITTER) -> None:
        self.name = name
        #: called when a refresh starts and when it has ended (status readers see `refreshing` flip)
        self.on_change = on_change
        self._fetch = fetch
        self.clock = clock
        self.refresh_ahead = refresh_ahead
        self.held: Held[T] | None = None
        self.last_error: TipdError | None = None
        self.failures = 0
        self.next_attempt: float | None = None
        self.calls = 0
        self._inflight: asyncio.Task[Held[T]] | None = None
        #: start times of the upstream calls of the last minute (the rate bound)
        self._recent: deque[float] = deque()
        self._rng = rng or random.Random()
        self.jitter = jitter
        #: how much earlier than due the held value is renewed (drawn once per value)
        self._head_start = 0.0

    # -- reading ---------------------------------------------------------------------------
    def remaining(self) -> float:
        return self.held.expires_at - self.clock.time() if self.held else float("-inf")

    def valid_for(self, seconds: float) -> T | None:
        """The held value if it stays valid for at least `seconds`, else None (never awaits)."""
        h = self.held
        if h is not None and h.expires_at - self.clock.time() >= seconds:
            return h.value
        return None

    @property
    def refreshing(self) -> bool:
        return self._inflight is not None and not self._inflight.done()

    def backing_off(self, now: float) -> TipdError | None:
        """The last failure while the next attempt is not due yet: a request gets it at once rather than pile
        onto a failing upstream."""
        if self.last_error is not None and self.next_attempt is not None and self.next_attempt > now:
            return self.last_error
        return None

    def due_at(self) -> float | None:
        """When the scheduler should next refresh this stage (None: nothing held, nothing to do)."""
        if self.held is None:
            return self.next_attempt
        due = renewal_due(self.held.obtained_at, self.held.expires_at, self.refresh_ahead) - self._head_start
        if self.next_attempt is not None:
            due = max(due, self.next_attempt)
        return due

    # -- refreshing ------------------------------------------------------------------------
    async def get(self, min_remaining: float) -> T:
        value = self.valid_for(min_remaining)
        if value is not None:
            return value
        return (await self.refresh()).value

    async def refresh(self) -> Held[T]:
        """Refresh now, joining a refresh already under way (single-flight). A caller that is
        cancelled does not cancel the refresh others are waiting on."""
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.get_running_loop().create_task(self._run(), name=f"refresh-{self.name}")
            changed = self.on_change
            if changed is not None:
                changed()
                # a done callback, not the end of _run: only then does `refreshing` read False
                self._inflight.add_done_callback(lambda _task: changed())
        task = self._inflight
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not task.cancelled() or (current is not None and current.cancelling()):
                raise  # our caller was cancelled: pass it on
            # the refresh itself was cancelled because a new sign-in replaced this stage's value
            if self.held is not None:
                return self.held
            raise UpstreamError(f"{self.name}: the refresh was cancelled (signed out or replaced)") from None

    async def _run(self) -> Held[T]:
        now = self.clock.time()
        recent = self._recent = deque(t for t in self._recent if now - 60 < t <= now)  # a clock set back resets it
        if len(recent) >= MAX_PER_MINUTE:
            err = UpstreamError(f"{self.name}: renewed {MAX_PER_MINUTE} times within a minute, each result "
                                "expiring at once; pausing (check that this computer's clock is right)",
                                code="RefreshLoop", status=503)
            if self.last_error is None or self.last_error.code != "RefreshLoop":
                log.warning("%s", err.message)
            self.last_error = err
            self.next_attempt = min(recent) + 60
            raise err
        recent.append(now)
        self.calls += 1
        log.debug("refreshing %s (attempt %d)", self.name, self.failures + 1)
        try:
            value, expires_at = await self._fetch()
        except TipdError as e:
            self._failed(e)
            raise
        except Exception as e:  # a bug or an unexpected library error: keep the daemon alive
            log.exception("unexpected error refreshing %s", self.name)
            err = UpstreamError(f"{self.name}: unexpected error ({type(e).__name__})")
            self._failed(err)
            raise err from None
        now = self.clock.time()
        self.held = Held(value, expires_at, now)
        self._head_start = renewal_head_start(now, expires_at, self.refresh_ahead, self._rng, self.jitter)
        log.debug("%s refreshed: valid for %d s", self.name, expires_at - now)
        self.last_error = None
        self.failures = 0
        self.next_attempt = None
        return self.held

    def _failed(self, e: TipdError) -> None:
        self.last_error = e
        self.failures += 1
        log.debug("%s failed (%s): %s", self.name, "permanent" if e.permanent else "transient", e.message)
        if e.permanent:
            self.next_attempt = None
        else:
            self.next_attempt = self.clock.time() + backoff_delay(self.failures, self._rng)

    def adopt(self, other: Stage[T]) -> None:
        """Take `other`'s value (a sign-in that ran beside this one), dropping a refresh under way."""
        if self._inflight is not None and not self._inflight.done():
            self._inflight.cancel()
        self._inflight = None
        self.held = other.held
        self._head_start = other._head_start
        self.last_error = None
        self.failures = 0
        self.next_attempt = None
        self.calls += other.calls
        self._recent.extend(other._recent)

    def clear(self) -> None:
        if self._inflight is not None and not self._inflight.done():
            self._inflight.cancel()
        self._inflight = None
        self.held = None
        self.last_error = None
        self.failures = 0
        self.next_attempt = None
