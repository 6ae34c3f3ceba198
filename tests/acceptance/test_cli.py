"""`tipctl` tried as a new user would, end to end: what `login` says (no browser, a browser that fails, an
already fresh profile, how to use it afterwards), `logout --all` and a logout while tipd is down, and the
warning of `tipctl env` for a profile that cannot be served. Real tipd and tipctl processes, the real IdP,
moto and the fake."""
from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.stack import BIN, Tipd, status, tipctl, wait_for

pytestmark = pytest.mark.acceptance


def visits(home) -> list[dict[str, Any]]:
    return [json.loads(line) for line in home.browser_log.read_text().splitlines()] if home.browser_log.exists() else []


def start_login(home, *args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], Path]:
    err = home.dir / "login.err"
    with open(err, "wb") as f:
        proc = subprocess.Popen([str(BIN / "tipctl"), "login", *args], env=dict(home.env, **(env or {})),
                                stdout=subprocess.DEVNULL, stderr=f)
    return proc, err


def cancel(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 130


def test_no_browser_prints_the_url_and_does_not_say_it_opens_one(home, tipd):
    proc, err = start_login(home, "--no-browser")
    try:
        text = wait_for(lambda: t if "Open this URL in a browser" in (t := err.read_text()) else None, timeout=30,
                        what="the sign-in URL", proc=proc)
        assert "Opening your browser" not in text and "/auth?" in text, text
        assert visits(home) == []
    finally:
        cancel(proc)


def test_a_browser_that_fails_is_reported(home, tipd):
    proc, err = start_login(home, env={"BROWSER": "false"})
    try:
        text = wait_for(lambda: t if "Could not open a browser" in (t := err.read_text()) else None, timeout=30,
                        what="the report of the failed browser", proc=proc)
        assert "BROWSER=false" in text and "open the URL above yourself, or use --device" in text, text
    finally:
        cancel(proc)


def test_a_fresh_profile_says_so_force_signs_in_again_and_the_usage_line(home, tipd):
    r = tipctl(home, "login")
    assert 'Use it in this shell: eval "$(tipctl env)"' in r.stdout, r.stdout
    assert len(visits(home)) == 1
    again = tipctl(home, "login")
    assert again.stdout.startswith("Already signed in to work as alice@example.com"), again.stdout
    assert "tipctl login --force" in again.stdout and len(visits(home)) == 1  # no browser this time
    env = json.loads(tipctl(home, "env", "--json").stdout)
    forced = tipctl(home, "login", "--force", env=env)  # a shell where the variables point at tipd already
    assert forced.stdout.startswith("Signed in to work as") and len(visits(home)) == 2, forced.stdout
    assert "eval" not in forced.stdout
    named = tipctl(home, "login", "work", "--force")
    assert 'eval "$(tipctl env work)"' in named.stdout
    one = tipctl(home, "status", "work", "--json")
    assert [p["profile"] for p in json.loads(one.stdout)["profiles"]] == ["work"]
    wrong = tipctl(home, "status", "wrok", check=False)
    assert wrong.returncode == 1 and "did you mean 'work'?" in wrong.stderr, wrong.stderr


def test_logout_all_and_a_second_logout(home, tipd):
    tipctl(home, "login")
    r = tipctl(home, "logout", "--all")
    assert r.stdout.startswith("Signed out of work"), r.stdout
    assert "did not work" not in r.stdout and "did not accept" not in r.stdout
    again = tipctl(home, "logout", "--all")
    assert again.stdout == "No profile is signed in; there was nothing to sign out of.\n"
    one = tipctl(home, "logout")
    assert one.stdout == "work was not signed in; there was nothing to sign out of.\n"  # not the IdP's fault
    assert json.loads(tipctl(home, "logout", "--all", "--json").stdout) == []


def test_logout_while_tipd_is_down_forgets_the_stored_sign_in(home, idp):
    d = Tipd(home).start()
    try:
        tipctl(home, "login")
    finally:
        d.stop()
    stored = home.state_dir / "tokens" / "work.json"
    assert stored.exists()
    r = tipctl(home, "logout")
    assert "tipd is not running" in r.stderr, r.stderr
    assert r.stdout.startswith("Signed out of work"), r.stdout
    assert not stored.exists()
    again = tipctl(home, "logout")
    assert again.stdout == "work was not signed in; there was nothing to sign out of.\n", again.stdout
    # the next start has nothing to sign in with
    d = Tipd(home).start()
    try:
        assert status(home)["profiles"][0]["state"] == "signed-out"
    finally:
        d.stop()


def test_env_warns_when_the_profile_cannot_be_served(home, tipd):
    r = tipctl(home, "env", "work")
    assert r.returncode == 0 and "export AWS_CONTAINER_CREDENTIALS_FULL_URI" in r.stdout
    assert "profile work is signed-out, so AWS SDKs will get no credentials: run `tipctl login work`" in r.stderr
    text = home.config_file.read_text()
    home.config_file.write_text(text + text[text.index("[profiles.work]"):].replace("[profiles.work]",
                                                                                     "[profiles.later]"))
    r = tipctl(home, "env", "later")  # in the file, not (yet) in the running tipd
    assert "tipd does not serve profile later" in r.stderr and "tipctl reload" in r.stderr, r.stderr
    tipctl(home, "login", "work")
    r = tipctl(home, "env", "work")
    assert r.stderr == "", r.stderr


def test_reload_hands_a_client_secret_stored_by_configure_to_the_running_profile(fake):
    """A client secret changed with `tipctl configure --client-secret-stdin` reached the running profile only at
    the next `tipctl login`; `tipctl reload` hands it over. A wrong secret proves it: the next IdP refresh is
    refused, and the right one stored again and reloaded renews again."""
    from tests.support.idp_rig import Rig
    from tipd.cli.control import ControlClient
    from tipd.errors import TipdError

    rig = Rig(fake, {"client_auth": "client_secret_post"}, profile_extra='client_auth = "client_secret_post"')
    home = rig.home

    def store_secret(value: str) -> None:
        r = subprocess.run([str(BIN / "tipctl"), "configure", "--profile", "work", "--no-check",
                            "--client-secret-stdin"], input=value + "\n", env=home.env, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stderr

    def renews() -> bool:
        try:
            ControlClient(home.socket, 60).request("POST", "/v1/diag/work/id-token")  # an IdP refresh now
            return True
        except TipdError:
            return False

    try:
        assert rig.idp.client_secret is not None
        store_secret(rig.idp.client_secret)
        rig.start()
        tipctl(home, "login")
        assert renews()
        store_secret("not-the-secret")
        r = tipctl(home, "reload")
        assert "new client secret: work" in r.stdout, r.stdout
        assert not renews()  # the IdP refuses the new (wrong) secret: the running profile uses it
        store_secret(rig.idp.client_secret)
        assert "new client secret: work" in tipctl(home, "reload").stdout
        wait_for(renews, timeout=90, what="a refresh with the right secret")
        assert "new client secret" not in tipctl(home, "reload").stdout  # nothing new: nothing said
    finally:
        rig.close()
