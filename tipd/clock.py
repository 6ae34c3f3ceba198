"""One injectable source of time, so refresh schedules can be tested at any speed."""
from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol


class ClockLike(Protocol):
    """What tipd needs of a clock: the wall time and a sleep. `Clock` is the real one; tests pass virtual ones
    (tests/support/fakes.py), which satisfy this structurally."""

    def time(self) -> float: ...
    async def sleep(self, seconds: float, /) -> None: ...


class Clock:
    """Wall-clock time (epoch seconds) and sleeping. AWS and IdP expiries are wall-clock instants,
    so schedules are computed in wall time and re-checked after every (short) sleep: a laptop that
    resumes from sleep, or a clock that jumps, is noticed at the next tick."""

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


def iso_utc(epoch: float) -> str:
    """The timestamp format the SDKs accept for `Expiration`: no fractional seconds, a literal Z."""
    return datetime.fromtimestamp(int(epoch), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


#: the latest time tipd takes from a token (year 5138): anything later is not a time but an attack or a bug
LATEST = 1e11


def numeric_date(value: object) -> float | None:
    """A JWT time claim (RFC 7519 NumericDate: a JSON number of seconds since 1970) as epoch seconds, or None
    when it is no plausible time (a string, a boolean, infinity from `1e400`, negative, beyond LATEST)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < LATEST:
        return None  # NaN fails the range check too
    return float(value)


def parse_time(value: datetime | str) -> float:
    """Epoch seconds from what botocore returns (datetime) or an ISO string."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


#: clocks closer than this are taken to agree (an HTTP Date has 1 s resolution, a JWT `iat` too)
SKEW_TOLERANCE = 60.0


def local_expiry(expires: float, issued: float | None, received: float) -> float:
    """An expiry on our clock. `expires` and `issued` are on the server's clock; when `issued` is far from the
    moment we received the answer (`received`, our clock), the two clocks disagree, and what holds is the
    server's own lifetime (`expires - issued`) counted from receipt. A local clock an hour ahead must not see
    every token expired on arrival, nor one an hour behind serve credentials an hour past their end."""
    if issued is None or abs(received - issued) <= SKEW_TOLERANCE:
        return expires
    return received + (expires - issued)
