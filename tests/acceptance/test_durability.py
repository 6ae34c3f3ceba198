"""A sign-in is never lost to a crash, a full or read-only disk, or a refused new sign-in (issue 11, items 3
and 4), against the real daemon, the real test IdP (rotating refresh tokens; reusing a rotated one revokes the
grant) and the AWS fake. Rotations are forced through the control API's diag call (one IdP refresh grant
each). The same faults on virtual time are in tests/unit/test_durability.py."""
from __future__ import annotations

import errno
import json
import os
import random
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.support.fetcher import Fetcher
from tests.support.stack import ACCOUNT, APP_ARN, Home, Tipd, status, tipctl, wait_for
from tipd.cli.control import ControlClient
from tipd.errors import TipdError

pytestmark = pytest.mark.acceptance

#: kill-9 trials at random moments of back-to-back rotations
RANDOM_TRIALS = int(os.environ.get("TIPD_TEST_KILL_TRIALS", "12"))
#: Okta's default grace period for token rotation (the test IdP's refresh_reuse_grace switch)
REUSE_GRACE = 30
GRACE_APP = f"arn:aws:sso::{ACCOUNT}:application/ssoins-1111222233334444/apl-9999888877776666"


@pytest.fixture(scope="module")
def grace_idp():
    """An IdP whose rotated refresh tokens stay valid 30 s after their first use, as Okta's do by default."""
    from tests.support.idp import IdP

    with IdP(switches={"refresh_reuse_grace": REUSE_GRACE}) as idp:
        yield idp


@pytest.fixture(scope="module")
def grace_app(grace_idp, fake):
    from tests.support.aws import AppConfig

    fake.config.applications[GRACE_APP] = AppConfig(issuer_url=grace_idp.issuer, audiences=[grace_idp.client_id],
                                                    claim="email")
    yield GRACE_APP
    del fake.config.applications[GRACE_APP]


def _home(idp, fake, app: str = APP_ARN) -> Home:
    return Home(idp.issuer, idp.client_id, fake.url, app_arn=app)


@pytest.fixture
def strict_home(idp, fake):
    h = _home(idp, fake)
    yield h
    h.cleanup()


def rotate(home: Home, timeout: float = 30) -> dict[str, Any]:
    """One IdP refresh grant (the rotated token is saved as usual)."""
    answer: dict[str, Any] = ControlClient(home.socket, timeout=timeout).request("POST", "/v1/diag/work/id-token")
    return answer


def profile(home: Home) -> dict[str, Any]:
    found: dict[str, Any] = status(home)["profiles"][0]
    return found


def stored(home: Home) -> str:
    return str(json.loads((home.state_dir / "tokens" / "work.json").read_text())["refresh_token"])


def signed_in(home: Home) -> Tipd:
    d = Tipd(home).start()
    tipctl(home, "login")
    return d


def crash_in_a_rotation(home: Home, step: str) -> None:
    """Start tipd on a stored sign-in with a kill -9 armed at `step` and let it rotate: a start renews the chain
    (one IdP refresh grant) at once, and a forced rotation follows should the start's have passed."""
    d = Tipd(home, env={"TIPD_TEST_CRASH_AT": step})
    try:
        d.start()
        rotate(home)
    except (RuntimeError, TipdError):
        pass  # it died on the way: as intended
    assert d.proc.wait(30) == -9, d.output()
    d.log.close()


def alive_after_restart(home: Home) -> bool:
    """Start tipd on what the crashed one left, and see whether the sign-in still works."""
    d = Tipd(home).start()
    try:
        state: str = wait_for(lambda: s if (s := profile(home)["state"]) in ("fresh", "login-required") else None,
                              timeout=60,
                         what="the restarted chain", proc=d.proc)
        return state == "fresh"
    finally:
        d.stop()


# -- 4: kill -9 at each step of saving a rotated token ---------------------------------------------------------

#: every step of tipd's rotation-save path once the new token's bytes are in a file (token:* are the steps of the
#: atomic write: temp file written, fsynced, renamed over the old file; then the chain goes on)
SAVE_STEPS = ["token:written", "token:synced", "token:renamed", "rotation:saved"]
#: the steps before that: the IdP has rotated, the new token is only in tipd's memory
UNSAVED_STEPS = ["rotation:received", "token:opened"]


@pytest.mark.parametrize("step", SAVE_STEPS)
def test_kill_9_at_each_step_of_saving_a_rotated_token_never_loses_the_sign_in(strict_home, step):
    home = strict_home
    signed_in(home).stop()
    crash_in_a_rotation(home, step)  # the IdP has rotated (the old token is dead); tipd dies mid-save
    assert alive_after_restart(home), f"the sign-in was lost by a kill at {step}"
    leftovers = [p.name for p in (home.state_dir / "tokens").iterdir()]
    assert leftovers == ["work.json"], leftovers


@pytest.mark.parametrize("step", UNSAVED_STEPS)
def test_kill_9_after_the_idp_answered_but_before_saving_needs_the_idps_reuse_grace(grace_idp, grace_app, fake, step):
    """The one moment tipd cannot cover alone: the IdP has rotated the token and tipd dies before writing the
    new one. An IdP with a reuse grace (Okta, Auth0, Cognito) still takes the stored one; tipd then renews."""
    home = _home(grace_idp, fake, grace_app)
    try:
        signed_in(home).stop()
        before = stored(home)
        crash_in_a_rotation(home, step)
        assert stored(home) == before  # the new token never reached the disk
        assert alive_after_restart(home)
        assert stored(home) != before  # renewed with the old token inside the grace, and the new one saved
    finally:
        home.cleanup()


def test_kill_9_at_random_moments_of_back_to_back_rotations_never_loses_the_sign_in(grace_idp, grace_app, fake):
    home = _home(grace_idp, fake, grace_app)
    rng = random.Random(int(os.environ.get("TIPD_TEST_SEED", "11")))
    losses, rotations = [], 0
    try:
        signed_in(home).stop()
        for trial in range(RANDOM_TRIALS):
            d = Tipd(home).start()
            wait_for(lambda: profile(home)["state"] == "fresh", timeout=60, what="fresh", proc=d.proc)
            done = threading.Event()
            count = [0]

            def churn(done: threading.Event = done, count: list[int] = count) -> None:
                while not done.is_set():
                    try:
                        rotate(home, timeout=10)
                        count[0] += 1
                    except TipdError:
                        return

            t = threading.Thread(target=churn, daemon=True)
            t.start()
            def rotating(count: list[int] = count) -> bool:
                return count[0] >= 1

            wait_for(rotating, timeout=30, what="rotations under way", proc=d.proc)
            # the fault's timing, not synchronisation: a random moment in the middle of the rotations
            done.wait(rng.uniform(0.0, 0.4))
            d.kill9()
            done.set()
            t.join(15)
            rotations += count[0]
            if not alive_after_restart(home):
                losses.append(trial)
                tipctl(home, "login")  # sign in again for the next trial
    finally:
        home.cleanup()
    print(f"kill -9 at random moments: {RANDOM_TRIALS} trials, {rotations} forced rotations, "
          f"{len(losses)} sign-ins lost")
    assert not losses, f"sign-in lost in trials {losses} of {RANDOM_TRIALS}"


# -- 4: a full or read-only state directory ---------------------------------------------------------------------

def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def fill_up(path: Path) -> None:
    """Write zeros to `path` until its file system is full (ENOSPC); the test frees the space by removing it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
    finally:
        os.close(fd)


@pytest.fixture
def mountable():
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("the full/read-only disk tests need root (mount) in CI")
        pytest.skip("needs root to mount a read-only or full directory")


@pytest.mark.parametrize("fault", ["read-only", "full"])
def test_a_full_or_read_only_state_directory_never_loses_the_rotated_token(strict_home, mountable, fault):
    home = strict_home
    tokens = home.state_dir / "tokens"
    tokens.mkdir(parents=True, mode=0o700)
    filler = tokens / "filler"
    if fault == "full":  # a small file system of its own, filled up once the sign-in is saved
        _mount("-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(tokens))
    d = signed_in(home)
    mounted = fault == "full"
    try:
        if fault == "read-only":
            _mount("--bind", str(tokens), str(tokens))
            mounted = True
            _mount("-o", "remount,ro,bind", str(tokens))
        else:
            fill_up(filler)
        before = stored(home)
        with Fetcher(home.port, home.token_file) as f:
            for _ in range(3):
                rotate(home)  # each one rotates at the IdP (the old token dies) and cannot be written
            st = profile(home)
            assert st["state"] == "degraded" and st["sign_in_saved"] is False
            reason = "Read-only file system" if fault == "read-only" else "No space left on device"
            assert reason in st["last_error"] and "kept in memory" in st["last_error"], st["last_error"]
            assert stored(home) == before
            wait_for(lambda: len(f.ok()) >= 3, timeout=10, what="answers")
        assert all(a.status == 200 for a in f.answers), [a for a in f.answers if a.status != 200][:3]
        # the space comes back: the save is retried (backoff) and lands, without a new rotation
        if fault == "read-only":
            _mount("-o", "remount,rw,bind", str(tokens))
        else:
            filler.unlink()
        wait_for(lambda: profile(home)["sign_in_saved"], timeout=60, what="the retried save")
        assert profile(home)["state"] == "fresh" and stored(home) != before
        d.stop()
        assert alive_after_restart(home)  # the saved token is the live one
    finally:
        d.stop()
        if mounted:
            subprocess.run(["umount", str(tokens)], capture_output=True)


def test_a_read_only_state_directory_at_shutdown_is_reported(strict_home, mountable):
    """Stopped while the newest token cannot be written, tipd says so in its log (the token is lost to it)."""
    home = strict_home
    tokens = home.state_dir / "tokens"
    d = signed_in(home)
    _mount("--bind", str(tokens), str(tokens))
    try:
        _mount("-o", "remount,ro,bind", str(tokens))
        rotate(home)
        d.stop()
        assert "could not be saved" in d.output()
    finally:
        subprocess.run(["umount", str(tokens)], capture_output=True)


# -- 3: a refused sign-in never replaces a working one -----------------------------------------------------------

def test_a_refused_login_hand_off_leaves_the_working_session_serving(strict_home, fake):
    home = strict_home
    d = signed_in(home)
    try:
        f = Fetcher(home.port, home.token_file)
        first = f.fetch()
        assert first.status == 200
        keys = profile(home)["role_arn"]
        before = stored(home)
        fake.inject("CreateTokenWithIAM", "AccessDeniedException", count=1)
        r = tipctl(home, "login", "--force", check=False)  # signed in and fresh: a second sign-in on purpose
        assert r.returncode != 0 and "Identity Center refused" in r.stderr + r.stdout
        after = f.fetch()
        assert after.status == 200 and after.expires == first.expires  # the same credentials, still served
        st = profile(home)
        assert st["state"] == "fresh" and st["role_arn"] == keys and stored(home) == before
    finally:
        d.stop()
    assert alive_after_restart(home)  # the stored refresh token is the working one, untouched


def test_a_reload_while_the_disk_refuses_the_rotated_token_keeps_it(strict_home, mountable):
    """The rotated token lives only in the session's memory while the disk is full; `tipctl reload` restarted the
    changed profile from the store, i.e. from the token the IdP had rotated away (reusing it revokes the grant at
    this IdP): the sign-in was lost. Now the reloaded profile takes over the unsaved sign-in and saves it."""
    home = strict_home
    tokens = home.state_dir / "tokens"
    tokens.mkdir(parents=True, mode=0o700)
    _mount("-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(tokens))
    filler = tokens / "filler"
    d = signed_in(home)
    try:
        fill_up(filler)
        before = stored(home)
        rotate(home)  # the IdP rotates; the new token cannot be written
        assert profile(home)["sign_in_saved"] is False
        with home.config_file.open("a") as f:
            f.write("redirect_port = 8765\n")  # a change to the profile: the reload restarts it
        assert "restarted: work" in tipctl(home, "reload").stdout
        filler.unlink()
        wait_for(lambda: profile(home)["sign_in_saved"] and stored(home) != before, timeout=60,
                 what="the reloaded profile saving the sign-in", proc=d.proc)
        assert profile(home)["state"] in ("fresh", "refreshing"), profile(home)
        d.stop()
        assert alive_after_restart(home)
    finally:
        d.stop()
        subprocess.run(["umount", str(tokens)], capture_output=True)


def test_logout_on_a_read_only_state_directory_still_revokes_and_says_what_stays(strict_home, mountable):
    """tipd forgot the sign-in in memory, then the store's delete raised (read-only disk): a 500 ("tipd sent an
    unreadable answer"), the IdP never asked to revoke, and the next start signed the person in again from the
    record they thought was gone. Now the refresh token is revoked anyway and the sentence names what stays."""
    home = strict_home
    tokens = home.state_dir / "tokens"
    tokens.mkdir(parents=True, mode=0o700)
    d = signed_in(home)
    mounted = False
    try:
        _mount("--bind", str(tokens), str(tokens))
        mounted = True
        _mount("-o", "remount,ro,bind", str(tokens))
        r = tipctl(home, "logout", check=False)
        assert r.returncode != 0 and "Traceback" not in r.stderr and "unreadable" not in r.stderr, r.stderr
        assert "revoked at the IdP" in r.stderr and "could not be removed (Read-only file system)" in r.stderr
        assert profile(home)["state"] == "signed-out"
        _mount("-o", "remount,rw,bind", str(tokens))
        d.stop()
        assert not alive_after_restart(home)  # the record left behind holds a revoked token: no sign-in from it
    finally:
        d.stop()
        if mounted:
            subprocess.run(["umount", str(tokens)], capture_output=True)
