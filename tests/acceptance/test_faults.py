"""Faults against the real stack with short upstream lifetimes (30 s sessions), while a client keeps
fetching: no request may fail while a valid credential exists, and no expired credential is served.
The same schedule at production lifetimes, over a simulated day, is in tests/unit/test_schedule.py."""
from __future__ import annotations

import json
import os
import signal
import stat
import time

import pytest

from tests.support.fetcher import Fetcher
from tests.support.stack import ACCOUNT, Home, Tipd, status, tipctl, wait_for

pytestmark = pytest.mark.acceptance

APP2 = f"arn:aws:sso::{ACCOUNT}:application/ssoins-1111222233334444/apl-bbbbbbbbbbbbbbbb"
LIFETIME = 30
SHORT = f"""
[refresh]
min_remaining = 8
rotate_remaining = 14
session_duration = {LIFETIME}
"""
FLOOR = 4  # tipd stops serving below min(10 s, min_remaining / 2)
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@pytest.fixture(scope="module")
def short_idp():
    from tests.support.idp import IdP

    with IdP(id_ttl=LIFETIME, access_ttl=LIFETIME, persistent=True) as idp:
        yield idp


@pytest.fixture(scope="module")
def short_app(short_idp, fake):
    from tests.support.aws import AppConfig

    fake.config.applications[APP2] = AppConfig(issuer_url=short_idp.issuer, audiences=[short_idp.client_id],
                                               claim="email", access_token_ttl=LIFETIME)
    yield APP2
    del fake.config.applications[APP2]


@pytest.fixture
def short_home(short_idp, short_app, fake):
    h = Home(short_idp.issuer, short_idp.client_id, fake.url, app_arn=short_app, extra_config=SHORT)
    bin_dir = h.dir / "bin"
    bin_dir.mkdir()
    notify = bin_dir / "notify-send"  # records desktop notifications
    notify.write_text(f"#!/bin/sh\necho \"$@\" >> {h.dir / 'notifications'}\n")
    notify.chmod(0o755)
    h.env["PATH"] = f"{bin_dir}{os.pathsep}{h.env['PATH']}"
    yield h
    h.cleanup()


@pytest.fixture
def signed_in(short_home, short_idp, fake):
    short_idp.clear_faults()
    fake.clear_faults()
    d = Tipd(short_home).start()
    tipctl(short_home, "login")
    yield d
    d.stop()


def state(home) -> str:
    return str(status(home)["profiles"][0]["state"])


def fetcher(home) -> Fetcher:
    return Fetcher(home.port, home.token_file)


def rotations(fake, n: int) -> None:
    """Wait until tipd has renewed the identity-enhanced session n more times."""
    start = fake.count("AssumeRole")
    wait_for(lambda: fake.count("AssumeRole") >= start + n, timeout=LIFETIME * (n + 2), what=f"{n} rotations")


def verdict(f: Fetcher, ignore_unreachable: bool = False) -> None:
    assert f.ok(), "the client never got credentials"
    assert not f.expired_served()
    bad = f.failures_while_valid(FLOOR, ignore_unreachable)
    assert not bad, f"requests failed while valid credentials existed: {bad[:5]}"


def test_steady_rotation_serves_only_fresh_credentials(signed_in, short_home, fake):
    with fetcher(short_home) as f:
        rotations(fake, 2)
    verdict(f)
    # min_remaining (1 s of Expiration rounding)
    assert all(a.expires is not None and a.expires - a.at >= 8 - 1 for a in f.ok())


# The IdP is asked only when the chain needs a new IdP token (the Identity Center refresh grant needs none),
# at the latest one token lifetime after the last: faults at the IdP show within 2 lifetimes.


def test_idp_returning_500s_degrades_and_recovers(signed_in, short_home, short_idp, fake):
    with fetcher(short_home) as f:
        short_idp.fault("/token", 500, count=-1)
        wait_for(lambda: state(short_home) == "degraded", timeout=LIFETIME * 2, what="degraded")
        assert "the IdP answered HTTP 500 server_error" in status(short_home)["profiles"][0]["last_error"]
        short_idp.clear_faults()
        wait_for(lambda: state(short_home) == "fresh", timeout=LIFETIME * 2, what="fresh again")
        rotations(fake, 1)
    verdict(f)


def test_idp_down_connection_refused_and_back(signed_in, short_home, short_idp, fake):
    with fetcher(short_home) as f:
        short_idp.down()
        try:
            wait_for(lambda: state(short_home) == "degraded", timeout=LIFETIME * 2, what="degraded")
            assert "cannot reach the IdP" in status(short_home)["profiles"][0]["last_error"]
        finally:
            short_idp.up()
        wait_for(lambda: state(short_home) == "fresh", timeout=LIFETIME * 2, what="fresh again")
        rotations(fake, 1)
    verdict(f)


def test_sts_throttling_is_retried_with_backoff(signed_in, short_home, fake):
    with fetcher(short_home) as f:
        fake.inject("AssumeRole", "Throttling", count=3)
        wait_for(lambda: fake.count("AssumeRole", error="Throttling") == 3, timeout=LIFETIME * 2, what="3 throttles")
        rotations(fake, 1)
        assert state(short_home) == "fresh"
    verdict(f)


def test_create_token_with_iam_invalid_grant_falls_back_to_a_fresh_idp_token(signed_in, short_home, fake):
    def jwt_bearer():
        return sum(1 for c in fake.calls if c.operation == "CreateTokenWithIAM"
                   and c.params.get("grantType") == JWT_BEARER and c.status == 200)

    with fetcher(short_home) as f:
        before = jwt_bearer()
        fake.inject("CreateTokenWithIAM", "InvalidGrantException", count=1)
        wait_for(lambda: jwt_bearer() > before, timeout=LIFETIME * 2, what="a jwt-bearer exchange")
        rotations(fake, 1)
        assert state(short_home) == "fresh"
    verdict(f)
    hashes = [c.params["assertion_sha256"] for c in fake.calls if "assertion_sha256" in c.params]
    assert len(hashes) == len(set(hashes))  # no assertion was ever sent twice


def test_revoked_refresh_token_means_login_required_without_a_retry_storm(signed_in, short_home, short_idp):
    with fetcher(short_home) as f:
        short_idp.reset_stats()
        short_idp.revoke_all()
        wait_for(lambda: state(short_home) == "login-required", timeout=LIFETIME * 2, what="login-required")
        attempts = short_idp.stats().get("/token", 0)
        # keep watching for two more lifetimes: the schedule must have stopped asking
        deadline = time.time() + 2 * LIFETIME
        wait_for(lambda: time.time() > deadline, timeout=3 * LIFETIME, what='two lifetimes')
        assert short_idp.stats().get("/token", 0) == attempts <= 2
        st = status(short_home)["profiles"][0]
        assert "sign in again" in st["last_error"]
    verdict(f)
    # served until they ran out, then a clear 401 that says what to do
    assert f.answers[-1].status == 401 and f.answers[-1].code == "LoginRequired"
    notes = (short_home.dir / "notifications").read_text().splitlines()
    assert len(notes) == 1 and "sign in to work again" in notes[0]


def test_kill_9_during_refresh_token_rotation_resumes_without_login(signed_in, short_home, short_idp):
    stored = short_home.state_dir / "tokens" / "work.json"
    d = signed_in
    for point in ("request in flight at the IdP", "just after the new token was stored"):
        before = short_idp.stats().get("/token", 0)
        if point.startswith("request"):
            short_idp.fault("/token", 0, count=1, delay_ms=3000)  # hold the next refresh at the IdP's door
            def refreshing(before: int = before):
                return short_idp.stats().get("/token", 0) > before

            wait_for(refreshing, timeout=LIFETIME * 2, what="a refresh")
        else:
            mtime = stored.stat().st_mtime_ns
            def rotated(mtime: int = mtime):
                return stored.stat().st_mtime_ns != mtime

            wait_for(rotated, timeout=LIFETIME * 2, what="a rotation")
        d.kill9()
        short_idp.clear_faults()
        d = Tipd(short_home).start()
        with fetcher(short_home) as f:
            wait_for(lambda: state(short_home) == "fresh", timeout=LIFETIME, what=f"fresh after kill at: {point}")
            wait_for(lambda: len(f.ok()) >= 3, timeout=10, what="answers")
        verdict(f)
        assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    d.stop()


def test_resume_after_sleeping_past_every_lifetime_refreshes_before_serving(signed_in, short_home):
    """SIGSTOP models a laptop asleep: every credential expires meanwhile (the +3 h wall-clock jump with
    stale timers is in tests/unit/test_schedule.py, on a virtual clock)."""
    f = fetcher(short_home)
    first = f.fetch()
    expires = first.expires
    assert expires is not None, first
    signed_in.proc.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: time.time() > expires + 1, timeout=LIFETIME + 5, what="expiry")
    finally:
        signed_in.proc.send_signal(signal.SIGCONT)
    a = f.fetch()
    assert a.status == 200 and a.expires is not None and a.expires - a.at >= 8 - 1, a


def test_keyring_holds_the_token_and_a_locked_keyring_falls_back_to_a_file(short_idp, short_app, fake, tmp_path):
    home = Home(short_idp.issuer, short_idp.client_id, fake.url, app_arn=short_app, extra_config=SHORT)
    ring, lock = tmp_path / "keyring.json", tmp_path / "locked"
    home.env.update(PYTHON_KEYRING_BACKEND="tests.support.keyrings.LockedKeyring",
                    TIPD_TEST_KEYRING_FILE=str(ring), TIPD_TEST_KEYRING_LOCK=str(lock))
    d = Tipd(home).start()
    try:
        tipctl(home, "login")
        assert "tipd/work" in json.loads(ring.read_text())
        assert not (home.state_dir / "tokens" / "work.json").exists()
        lock.touch()  # the session keyring gets locked: the next rotation must not be lost
        stored = home.state_dir / "tokens" / "work.json"
        wait_for(stored.exists, timeout=LIFETIME * 2, what="file fallback")
        assert "cannot write the OS keyring (KeyringLocked)" in d.output()
        d.stop()
        d = Tipd(home).start()  # the file's token is the live one; the keyring's is stale
        wait_for(lambda: state(home) == "fresh", timeout=LIFETIME, what="fresh after restart")
    finally:
        d.stop()
        home.cleanup()


def test_no_keyring_uses_a_file_and_says_so(signed_in, short_home):
    assert "no usable OS keyring; refresh tokens are kept in 0600 files" in signed_in.output()
    stored = short_home.state_dir / "tokens" / "work.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600


def test_sigterm_exits_promptly_with_0(signed_in):
    t = time.monotonic()
    assert signed_in.stop() == 0 and time.monotonic() - t < 5
