"""`tipctl login` end to end: the device flow approved and denied headlessly at the real IdP, Ctrl-C (a real
SIGINT) during the browser wait and during device polling, a daemon that is not running, and a fixed
redirect port, free or busy. Real tipd and tipctl processes, the real IdP, moto and the fake."""
from __future__ import annotations

import json
import os
import signal
import socket
import urllib.parse
from typing import Any

import pytest

from tests.support.device import approve_device_code, deny_device_code
from tests.support.login import Login
from tests.support.net import free_port
from tests.support.stack import ENHANCED_ROLE, Tipd, in_tipd_env, status, tipctl, wait_for

pytestmark = pytest.mark.acceptance
BOB_ID = "9067e4a2-bob"


@pytest.fixture
def background(home):
    started: list[Login] = []

    def start(*args, env=None):
        started.append(Login(home, *args, env=env))
        return started[-1]

    yield start
    for login in started:
        login.kill()


@pytest.fixture
def fixed_port(home, idp):
    """A running tipd whose profile has a fixed redirect_port; yields the port."""
    port = free_port()
    home.write_config(idp.issuer, idp.client_id, profile_extra=f"redirect_port = {port}")
    d = Tipd(home).start()
    yield port
    d.stop()


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def browser_visits(home) -> list[dict[str, Any]]:
    return [json.loads(line) for line in home.browser_log.read_text().splitlines()] if home.browser_log.exists() else []


def assert_cancelled(login) -> None:
    assert login.wait(30) == 130
    err = login.stderr()
    assert err.endswith("tipctl: cancelled\n") and err.count("cancelled") == 1, err
    assert "Traceback" not in err and "Task was destroyed" not in err and "Unclosed" not in err, err
    assert login.stdout() == ""


def test_device_login_gives_identity_enhanced_credentials(home, tipd, idp, moto, fake, background):
    moto.start_recording()
    login = background("--device", "--json")
    code = login.user_code()
    err = login.stderr()
    assert f"{idp.issuer}/device\n" in err and f"{idp.issuer}/device?user_code={code}" in err
    approve_device_code(idp.issuer, code, login="bob")
    assert login.wait() == 0, login.stderr()
    out = json.loads(login.stdout())  # stdout holds only the JSON: the code and URLs went to stderr
    assert out["user"] == "bob@example.com" and out["identity_center_user_id"] == BOB_ID
    assert "Traceback" not in login.stderr() and browser_visits(home) == []  # no browser was opened

    boto = in_tipd_env(home, "python -c 'import boto3, json; print(json.dumps(boto3.client(\"sts\")"
                             ".get_caller_identity()))'")
    assert boto.returncode == 0, boto.stderr
    assert json.loads(boto.stdout)["Arn"].endswith(f"assumed-role/{ENHANCED_ROLE.split('/')[-1]}/tip-{BOB_ID}")
    assume = [e["params"] for e in moto.recorded() if e["action"] == "AssumeRole"]
    assert len(assume) == 1 and assume[0]["RoleArn"] == ENHANCED_ROLE
    assert fake.identity_context_user(assume[0]["ProvidedContexts.member.1.ContextAssertion"]) == BOB_ID
    st = status(home)["profiles"][0]
    assert st["state"] == "fresh" and st["user"] == "bob@example.com"
    # the device grant gave a refresh token, so tipd keeps the sign-in
    assert "refresh_token" in json.loads((home.state_dir / "tokens" / "work.json").read_text())


def test_device_denial_is_a_sentence(home, tipd, idp, background):
    login = background("--device")
    deny_device_code(idp.issuer, login.user_code())
    assert login.wait() == 1
    err = login.stderr()
    assert "tipctl: the IdP refused the sign-in: access_denied" in err and "Traceback" not in err, err
    assert status(home)["profiles"][0]["state"] == "signed-out"


def test_ctrl_c_during_device_polling_cancels_cleanly(home, tipd, background):
    login = background("--device")
    login.user_code()  # the code is shown: tipctl is polling
    login.proc.send_signal(signal.SIGINT)
    assert_cancelled(login)
    assert status(home)["profiles"][0]["state"] == "signed-out"  # nothing was handed to the daemon


def test_ctrl_c_during_the_browser_wait_cancels_cleanly(home, fixed_port, background):
    login = background(env={"TIPD_TEST_BROWSER_MODE": "nothing"})
    wait_for(lambda: any(v["outcome"] == "nothing" for v in browser_visits(home)), timeout=30,
             what="the browser to be opened", proc=login.proc)
    assert listening(fixed_port)  # the loopback receiver waits for the redirect
    login.proc.send_signal(signal.SIGINT)
    assert_cancelled(login)
    assert not listening(fixed_port)
    assert status(home)["profiles"][0]["state"] == "signed-out"
    # the port is free again: the next sign-in listens there and completes
    assert tipctl(home, "login").returncode == 0


def test_a_browser_that_stays_open_does_not_hold_up_the_login(home, tipd, background):
    """webbrowser waits for a BROWSER command to exit (firefox: until its window closes); tipctl must not."""
    login = background(env={"TIPD_TEST_BROWSER_MODE": "linger", "TIPD_TEST_BROWSER_LINGER": "300"})
    try:
        assert login.wait(60) == 0, login.stderr()
        visit = browser_visits(home)[-1]
        assert visit["outcome"] == "delivered"
        os.kill(visit["pid"], 0)  # the browser command is still running, and the login is done
        assert status(home)["profiles"][0]["state"] == "fresh"
    finally:
        for visit in browser_visits(home):  # end the lingering browser, if it is still that process
            try:
                if b"browser.py" in open(f"/proc/{visit['pid']}/cmdline", "rb").read():
                    os.kill(visit["pid"], signal.SIGTERM)
            except OSError:
                pass


def test_daemon_not_running_says_how_to_start_it_before_any_sign_in(home, idp):
    before = idp.stats().get("/device/auth", 0)
    for args in ((), ("--device",)):
        r = tipctl(home, "login", *args, check=False)
        assert r.returncode == 3 and "Traceback" not in r.stderr, r.stderr  # 3: tipd is not running
        assert r.stderr.startswith("tipctl: tipd is not running") and "tipctl service install" in r.stderr
    assert browser_visits(home) == []  # no browser opened
    assert idp.stats().get("/device/auth", 0) == before  # no device code requested


def test_fixed_redirect_port_is_used_and_a_busy_one_is_a_sentence(home, fixed_port):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", fixed_port))
        squatter.listen()
        r = tipctl(home, "login", check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"cannot listen on 127.0.0.1:{fixed_port} (the profile's redirect_port)" in r.stderr, r.stderr
    assert "the port is in use" in r.stderr and "set redirect_port = 0" in r.stderr
    assert browser_visits(home) == []  # the failure came before the browser

    r = tipctl(home, "login")
    redirect = f"redirect_uri={urllib.parse.quote(f'http://127.0.0.1:{fixed_port}/callback', safe='')}"
    assert redirect in r.stderr, r.stderr
    visit = browser_visits(home)[-1]
    assert visit["outcome"] == "delivered" and visit["callback_status"] == 200
    assert status(home)["profiles"][0]["state"] == "fresh"
