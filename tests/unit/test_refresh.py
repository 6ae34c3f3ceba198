import asyncio
import random

import pytest

from tests.support.fakes import FakeClock
from tipd.errors import UpstreamError
from tipd.refresh import Stage


async def test_concurrent_callers_share_one_fetch():
    clock = FakeClock()
    gate = asyncio.Event()
    calls = 0

    async def fetch():
        nonlocal calls
        calls += 1
        await gate.wait()
        return "v", clock.t + 3600

    st = Stage("s", fetch, clock, 1800)
    waiters = [asyncio.create_task(st.get(1200)) for _ in range(200)]
    await asyncio.sleep(0)
    gate.set()
    assert set(await asyncio.gather(*waiters)) == {"v"}
    assert calls == 1
    assert await st.get(1200) == "v" and calls == 1  # held value served without fetching


async def test_cancelled_caller_does_not_cancel_the_shared_refresh():
    clock = FakeClock()
    gate = asyncio.Event()

    async def fetch():
        await gate.wait()
        return "v", clock.t + 3600

    st = Stage("s", fetch, clock, 1800)
    a = asyncio.create_task(st.refresh())
    b = asyncio.create_task(st.refresh())
    await asyncio.sleep(0)
    a.cancel()
    gate.set()
    assert (await b).value == "v"
    with pytest.raises(asyncio.CancelledError):
        await a


async def test_transient_failure_backs_off_with_jitter_and_permanent_does_not_schedule():
    clock = FakeClock()
    err = UpstreamError("down", permanent=False)

    async def fetch():
        raise err

    st = Stage("s", fetch, clock, 1800, rng=random.Random(1))
    delays = []
    for _ in range(12):
        with pytest.raises(UpstreamError):
            await st.refresh()
        assert st.next_attempt is not None
        delays.append(st.next_attempt - clock.t)
    assert all(0 < d <= 300 for d in delays)
    assert max(delays[-4:]) > 10  # grows: the cap is reached after ~9 failures
    assert st.last_error is err and st.failures == 12

    async def fatal():
        raise UpstreamError("gone", permanent=True)

    st2 = Stage("s2", fatal, clock, 1800)
    with pytest.raises(UpstreamError):
        await st2.refresh()
    assert st2.next_attempt is None and st2.due_at() is None


async def test_due_at_is_ahead_of_expiry_or_half_a_short_lifetime():
    clock = FakeClock()
    life = 3600

    async def fetch():
        return "v", clock.t + life

    st = Stage("s", fetch, clock, 1800, jitter=0)
    await st.refresh()
    assert st.due_at() == clock.t + 1800
    life = 600
    await st.refresh()
    assert st.due_at() == clock.t + 300  # a 10-minute token is renewed half-way, not at once
    assert st.valid_for(299) == "v" and st.valid_for(601) is None


async def test_renewal_starts_a_random_bounded_head_start_early_drawn_once_per_value() -> None:
    clock = FakeClock()

    async def fetch():
        return "v", clock.t + 3600

    st = Stage("s", fetch, clock, 1800, rng=random.Random(7))
    early = []
    for _ in range(200):
        await st.refresh()
        due = st.due_at()
        assert due is not None and due == st.due_at()  # drawn when the value came, not at every look
        early.append(clock.t + 1800 - due)
        clock.t += 60  # (under the 20-a-minute bound)
    # never later than the rule, at most 10 % of the 30-minute holding time early, and really spread
    assert all(0 <= e <= 180 for e in early) and max(early) > 150 and min(early) < 30
    seeded = Stage("t", fetch, clock, 1800, rng=random.Random(7))
    await seeded.refresh()
    seeded_due = seeded.due_at()
    assert seeded_due is not None and clock.t + 1800 - seeded_due == early[0]  # the injected rng makes it reproducible


def test_jitter_spares_short_holding_times_and_the_rule_is_one_function() -> None:
    from tipd.refresh import renewal_due, renewal_head_start

    rng = random.Random(1)
    assert renewal_due(0, 3600, 1800) == 1800 and renewal_due(0, 600, 1800) == 300
    assert renewal_head_start(0, 24, 12, rng) == 0.0  # test-sized lifetimes renew exactly on time
    assert 0 <= renewal_head_start(0, 300, 1800, rng) <= 15  # a 5-minute id_token: at most 15 s early
    assert renewal_head_start(0, 3600, 1800, rng, jitter=0) == 0.0
