"""The store against a real Secret Service: gnome-keyring-daemon on a private D-Bus session bus the test starts
(tests/support/secret_service.py), unlocked as after a desktop login, then locked. keyring's SecretService
backend talks to it exactly as on a Linux desktop; nothing here is a fake keyring."""
from __future__ import annotations

import json
import os

import pytest

from tests.support.secret_service import SecretService, missing_tools
from tests.support.stack import Home, Tipd, status, tipctl, wait_for
from tipd.cli.control import ControlClient

pytestmark = pytest.mark.acceptance


@pytest.fixture
def secret_service(tmp_path):
    """Outside CI a machine without gnome-keyring or dbus-daemon skips; in CI that is a failure (tests/run.sh
    installs them)."""
    missing = missing_tools()
    if missing:
        message = f"needs {', '.join(missing)} (apt-get install gnome-keyring dbus-daemon)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    with SecretService(tmp_path) as ss:
        yield ss


@pytest.fixture
def ring_home(idp, fake, secret_service):
    h = Home(idp.issuer, idp.client_id, fake.url)
    h.env.update(secret_service.env)
    yield h
    h.cleanup()


def state(home: Home) -> str:
    return str(status(home)["profiles"][0]["state"])


def stored_in_keyring(ss: SecretService) -> str | None:
    value = ss.get("tipd", "work")
    return json.loads(value)["refresh_token"] if value else None


def token_file(home: Home):
    return home.state_dir / "tokens" / "work.json"


def test_an_unlocked_secret_service_holds_the_sign_in_and_no_file_does(ring_home, secret_service):
    home, ss = ring_home, secret_service
    d = Tipd(home).start()
    try:
        assert "refresh tokens are kept in the OS keyring (Keyring)" in d.output()
        tipctl(home, "login")
        first = stored_in_keyring(ss)
        assert first and not token_file(home).exists()
        ControlClient(home.socket).request("POST", "/v1/diag/work/id-token")  # a rotation
        assert stored_in_keyring(ss) not in (None, first) and not token_file(home).exists()
    finally:
        d.stop()
    d = Tipd(home).start()  # the keyring's token is the live one
    try:
        wait_for(lambda: state(home) == "fresh", timeout=60, what="fresh after restart", proc=d.proc)
    finally:
        d.stop()


def test_a_keyring_locked_at_start_is_not_used_and_the_file_store_takes_over(ring_home, secret_service):
    home, ss = ring_home, secret_service
    ss.lock()
    d = Tipd(home).start()
    try:
        tipctl(home, "login")
        assert "no usable OS keyring; refresh tokens are kept in 0600 files" in d.output()
        assert token_file(home).exists() and stored_in_keyring_unlocked(ss) is None
    finally:
        d.stop()


def stored_in_keyring_unlocked(ss: SecretService) -> str | None:
    ss.unlock()
    try:
        return stored_in_keyring(ss)
    finally:
        ss.lock()


def test_a_keyring_locked_while_running_never_loses_a_rotated_token(ring_home, secret_service):
    home, ss = ring_home, secret_service
    d = Tipd(home).start()
    try:
        tipctl(home, "login")
        before = stored_in_keyring(ss)
        ss.lock()  # the screen locker locks the login keyring
        ControlClient(home.socket).request("POST", "/v1/diag/work/id-token")  # the IdP rotates the token
        assert "cannot write the OS keyring (KeyringLocked)" in d.output()
        assert token_file(home).exists()
        assert json.loads(token_file(home).read_text())["refresh_token"] != before
        assert state(home) in ("fresh", "refreshing")  # nothing lost, nothing to report
    finally:
        d.stop()
    ss.unlock()
    d = Tipd(home).start()  # the file's token is the live one, the keyring's stale: the file wins
    try:
        wait_for(lambda: state(home) == "fresh", timeout=60, what="fresh after restart", proc=d.proc)
        ControlClient(home.socket).request("POST", "/v1/diag/work/id-token")
        assert not token_file(home).exists()  # back in the keyring: one place holds the live token
        assert stored_in_keyring(ss) not in (None, before)
    finally:
        d.stop()


def test_a_sign_out_with_the_keyring_locked_says_the_record_stays(ring_home, secret_service):
    """The keyring refused the deletion, tipd logged a warning and answered "signed out": the record stayed in the
    keyring and the next start read it back. Now the refresh token is revoked and the sign-out says what stays."""
    home, ss = ring_home, secret_service
    d = Tipd(home).start()
    try:
        tipctl(home, "login")
        assert stored_in_keyring(ss)
        ss.lock()
        r = tipctl(home, "logout", check=False)
        assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
        assert "could not be removed" in r.stderr and "unlock the keyring" in r.stderr, r.stderr
        assert "revoked at the IdP" in r.stderr and state(home) == "signed-out"
    finally:
        d.stop()
    assert stored_in_keyring_unlocked(ss)  # what the sentence said: still there
