"""The refresh schedule over long stretches of virtual time (a day runs in well under a second)."""
from __future__ import annotations

from tests.support.session_rig import HOUR, Rig
from tipd.config import RefreshConfig
from tipd.errors import UpstreamError
from tipd.session import State


async def test_a_simulated_day_serves_only_fresh_credentials_with_bounded_upstream_calls():
    rig = Rig()
    await rig.start()
    hourly = []
    before = dict(rig.aws.calls, idp=rig.idp.calls)
    for _ in range(24):
        await rig.run(HOUR)
        now = dict(rig.aws.calls, idp=rig.idp.calls)
        hourly.append({k: now[k] - before[k] for k in now})
        before = now
    await rig.stop()

    assert len(rig.served) > 24 * HOUR / 7 * 0.99 and not rig.failures
    assert min(r for _, r in rig.served) >= 1200  # never below min_remaining, so never expired
    # The bound: each AWS stage lives 1 h and is renewed with 30 min left, i.e. every 30 min, less a random head
    # start of at most 3 min (tipd.refresh.RENEW_JITTER: 10 % of the 30-minute holding time): every 27 to 30 min,
    # so 2 or 3 calls per hour per stage and 48 to 54 in the day (login's first chain comes before the first
    # hour); the IdP stage too (kept alive ahead of its expiry, so idle-lifetime refresh tokens never lapse).
    for h in hourly:
        assert set(h) == {"AssumeRoleWithWebIdentity", "CreateTokenWithIAM", "AssumeRole", "idp"}, hourly
        assert all(2 <= n <= 3 for n in h.values()), hourly
    assert all(48 <= sum(h[k] for h in hourly) <= 54 for k in hourly[0]), hourly
    # the Identity Center refresh_token grant carried the day: jwt-bearer only at login
    assert len(rig.aws.assertions) == 1
    # every rotated IdP refresh token was stored before use
    assert rig.store.saves[-1] == rig.idp.live and len(rig.store.saves) == 1 + sum(h["idp"] for h in hourly)


async def test_wall_clock_jump_is_noticed_within_seconds_and_stale_credentials_are_never_served():
    rig = Rig()
    await rig.start(fetch_every=1000)
    await rig.run(600)
    rig.clock.jump(3 * HOUR)  # the laptop slept: every credential is now expired, no timer fired
    await rig.run(5.5)  # one scheduler tick
    s = rig.session.served
    assert s is not None and s.creds.expires_at - rig.clock.t >= 1200 and rig.session.state == State.FRESH
    # and a request that races the scheduler right after a jump never gets stale credentials either
    rig.clock.jump(3 * HOUR)
    got = await rig.session.credentials()
    assert got.creds.expires_at - rig.clock.t >= 1200
    await rig.stop()
    assert not rig.failures and min(r for _, r in rig.served) >= 1200


async def test_transient_failures_degrade_back_off_and_recover_without_failing_a_request():
    rig = Rig()
    await rig.start(fetch_every=5)
    await rig.run(HOUR)
    rig.aws.fail["AssumeRole"] = UpstreamError("Throttling", code="Throttling", permanent=False)
    before = rig.aws.calls["AssumeRole"]
    await rig.run(45 * 60)  # 45 minutes of throttling: the rotation due after 30 minutes fails
    attempts = rig.aws.calls["AssumeRole"] - before
    assert rig.session.state == State.DEGRADED
    assert rig.session.status()["last_error"] == "Throttling"
    assert 3 <= attempts <= 20  # backoff (1 s doubling to the 5 min cap, full jitter): no storm
    del rig.aws.fail["AssumeRole"]
    await rig.run(6 * 60)
    # (mypy kept the DEGRADED of the assertion above across the run that changed it)
    assert rig.session.state == State.FRESH  # type: ignore[comparison-overlap]
    await rig.stop()
    assert not rig.failures  # credentials stayed valid throughout, so no request failed
    assert min(r for _, r in rig.served) > 0


async def test_revoked_sign_in_becomes_login_required_once_without_a_retry_storm():
    rig = Rig()
    await rig.start(fetch_every=5)
    await rig.run(10 * 60)
    rig.idp.revoked = True
    await rig.run(HOUR)
    calls = rig.idp.calls
    assert rig.session.state == State.LOGIN_REQUIRED
    assert "sign in again" in rig.session.status()["last_error"]
    await rig.run(3 * HOUR)
    assert rig.idp.calls == calls  # nothing more asked of the IdP after the refusal
    assert len(rig.notes) == 1 and "sign in to work again" in rig.notes[0][0]
    await rig.stop()
    # still-valid credentials were served until they ran out; then a clear LoginRequired, never a 5xx
    served_until = max(t for t, _ in rig.served)
    assert all(code == "LoginRequired" for _, code, _ in rig.failures)
    assert all(not had_valid for t, _, had_valid in rig.failures)
    assert served_until > rig.t0 + 10 * 60 + 30 * 60


async def test_identity_center_refresh_refused_falls_back_to_a_fresh_idp_token():
    rig = Rig()
    await rig.start(fetch_every=5)
    await rig.run(10 * 60)
    rig.aws.fail["CreateTokenWithIAM"] = UpstreamError("x", code="InvalidGrantException", permanent=True)
    orig = rig.aws.create_token_with_iam

    async def refuse_refresh_grant(**kw):
        if kw.get("refresh_token") is not None:
            return await orig(**kw)  # raises: the injected failure
        rig.aws.fail.pop("CreateTokenWithIAM", None)
        return await orig(**kw)

    rig.aws.create_token_with_iam = refuse_refresh_grant  # type: ignore[method-assign]  # wrapped for this test
    await rig.run(HOUR)
    await rig.stop()
    assert len(rig.aws.assertions) == 2 and len(set(rig.aws.assertions)) == 2  # fresh, never replayed
    assert rig.session.state == State.FRESH and not rig.failures


async def test_short_lifetimes_scale_the_margins():
    rig = Rig(RefreshConfig(min_remaining=8, rotate_remaining=12, session_duration=24), idp_ttl=24, idc_ttl=24)
    await rig.start(fetch_every=1)
    await rig.run(600)
    await rig.stop()
    assert not rig.failures and min(r for _, r in rig.served) >= 8
    assert rig.aws.calls["AssumeRole"] <= 600 / 12 + 2
