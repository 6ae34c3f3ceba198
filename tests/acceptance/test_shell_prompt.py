"""The prompt files end to end: the real tipd keeps them current across sign-in, renewal and sign-out (the real
IdP, moto and the fake behind it), and real bash, zsh, fish and starship's `sh` show it; a tipd that stops
removes them, one killed with SIGKILL leaves them and the segment shows nothing."""
from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.shells import PROMPT_SHELLS, run_segment
from tests.support.stack import Home, Tipd, tipctl, wait_for

pytestmark = pytest.mark.acceptance

LIFETIME = 30  # the credentials' lifetime: a renewal comes within the test's patience
REFRESH = f"[refresh]\nmin_remaining = 8\nrotate_remaining = 14\nsession_duration = {LIFETIME}\n"


def prompt_dir(home: Home) -> Path:
    return home.dir / "run" / "tipd" / "prompt"


def record(home: Home, name: str) -> list[str] | None:
    """One prompt file's fields (None while it is not there)."""
    try:
        return (prompt_dir(home) / name).read_text().split()
    except FileNotFoundError:
        return None


def work(home: Home) -> list[str] | None:
    return record(home, "work")


def segments(home: Home, tmp_path: Path) -> dict[str, str]:
    shown = {}
    for shell in PROMPT_SHELLS:
        code = tipctl(home, "prompt", "--shell", shell).stdout
        r = run_segment(shell, code, home.env, tmp_path)
        assert r.returncode == 0 and not r.stderr, (shell, r)
        shown[shell] = r.stdout
    return shown


@pytest.fixture
def short_home(idp: Any, fake: Any) -> Iterator[Home]:
    h = Home(idp.issuer, idp.client_id, fake.url, extra_config=REFRESH)
    yield h
    h.cleanup()


def test_the_prompt_files_follow_sign_in_renewal_and_sign_out_and_every_shell_shows_it(
        short_home: Home, tmp_path: Path,
) -> None:
    home = short_home
    tipd = Tipd(home).start()
    try:
        wait_for(lambda: record(home, "_tipd") is not None, what="the prompt files")
        d = prompt_dir(home)
        assert tipd.proc is not None
        assert record(home, "_tipd") == ["tipd-prompt", "1", str(tipd.proc.pid), "work"]
        assert work(home) == ["signed-out", "0"]
        assert set(segments(home, tmp_path).values()) == {"work signed-out"}

        tipctl(home, "login")
        first = wait_for(lambda: w if (w := work(home)) and w[0] == "fresh" and int(w[1]) > 0 else None, what="fresh")
        expires = int(first[1])
        assert abs(expires - (time.time() + LIFETIME)) < LIFETIME  # the credentials' expiry, in unix seconds
        assert "alice" not in "".join(p.read_text() for p in d.iterdir())  # names, states and times only
        shown = segments(home, tmp_path)
        # "0m" while under a minute is left (30 s credentials); a renewal may land between two shells
        assert all(v in ("work fresh 0m", "work refreshing 0m") for v in shown.values()), shown

        renewed = wait_for(lambda: w if (w := work(home)) and w[0] == "fresh" and int(w[1]) > expires else None,
                           timeout=90, what="the expiry of the renewed credentials")
        assert int(renewed[1]) > expires

        tipctl(home, "logout")
        wait_for(lambda: work(home) == ["signed-out", "0"], what="signed-out in the file")
        assert set(segments(home, tmp_path).values()) == {"work signed-out"}
        assert tipd.stop() == 0
        assert not d.exists()  # a stopped tipd leaves no file to misread
        assert set(segments(home, tmp_path).values()) == {""}
    finally:
        tipd.stop()


def test_after_kill_9_the_left_file_shows_nothing_and_the_next_tipd_takes_it_over(home: Home, tmp_path: Path) -> None:
    tipd = Tipd(home).start()
    wait_for(lambda: record(home, "_tipd") is not None, what="the prompt files")
    tipd.kill9()
    assert (prompt_dir(home) / "_tipd").exists()  # SIGKILL leaves them; the pid in them is dead
    assert set(segments(home, tmp_path).values()) == {""}
    again = Tipd(home).start()
    assert again.proc is not None
    pid = again.proc.pid
    try:
        wait_for(lambda: record(home, "_tipd") == ["tipd-prompt", "1", str(pid), "work"],
                 what="the new tipd's files")
        assert set(segments(home, tmp_path).values()) == {"work signed-out"}
    finally:
        again.stop()


def test_a_profile_added_by_reload_appears_in_the_file(home: Home, tmp_path: Path) -> None:
    tipd = Tipd(home).start()
    try:
        wait_for(lambda: record(home, "_tipd") is not None, what="the prompt files")
        text = home.config_file.read_text()
        home.config_file.write_text(text + "\n" + text[text.index("[profiles.work]"):].replace(
            "[profiles.work]", "[profiles.second]"))
        tipctl(home, "reload")
        wait_for(lambda: record(home, "second") == ["signed-out", "0"], what="the added profile")
        env = dict(home.env, AWS_CONTAINER_CREDENTIALS_FULL_URI=f"http://127.0.0.1:{home.port}/v1/credentials/second")
        code = tipctl(home, "prompt", "--shell", "bash").stdout
        assert run_segment("bash", code, env, tmp_path).stdout == "second signed-out"
    finally:
        tipd.stop()


def test_the_prompt_files_are_private_and_their_directory_too(home: Home) -> None:
    tipd = Tipd(home).start()
    try:
        wait_for(lambda: record(home, "_tipd") is not None and work(home) is not None, what="the prompt files")
        d = prompt_dir(home)
        assert stat.S_IMODE(d.stat().st_mode) == 0o700 and stat.S_IMODE(d.parent.stat().st_mode) == 0o700
        names = sorted(os.listdir(d))
        assert names == ["_tipd", "work"]  # no temp file left behind
        for n in names:
            st = (d / n).stat()
            assert st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) == 0o600
    finally:
        tipd.stop()


def test_an_account_profile_shows_in_the_prompt_once_it_is_used(home: Home, fake: Any, tmp_path: Path) -> None:
    from tests.support.aws import ACCOUNT_ACCESS
    from tests.support.stack import APP_ARN, in_tipd_env

    app = fake.config.applications[APP_ARN]
    app.scopes.append(ACCOUNT_ACCESS)
    fake.portal.account("111111111111", "prod")
    fake.portal.assign("9067e4a2-alice", "111111111111", "AdministratorAccess")
    home.config_file.write_text(home.config_file.read_text() + '\n[profiles.prod-admin]\nsource = "work"\n'
                                'account_id = "111111111111"\nrole_name = "AdministratorAccess"\n')
    tipd = Tipd(home).start()
    try:
        tipctl(home, "login", "work")
        wait_for(lambda: (record(home, "prod-admin") or [""])[0] == "cold", what="the account profile's file")
        env = dict(home.env, AWS_CONTAINER_CREDENTIALS_FULL_URI=f"http://127.0.0.1:{home.port}/v1/credentials/"
                   "prod-admin")
        code = tipctl(home, "prompt", "--shell", "bash").stdout
        assert run_segment("bash", code, env, tmp_path).stdout == "prod-admin cold"
        r = in_tipd_env(home, "eval \"$(tipctl env prod-admin)\"; python -c "
                        "'import boto3; boto3.client(\"sts\").get_caller_identity()'")
        assert r.returncode == 0, r.stderr
        # "in use" (fresh) or "idle" depends on time as well as on changes (tipd/accounts.py): the file says
        # whichever held at the last change; both are credentials being served, with their expiry
        state, _expiry = wait_for(lambda: w if (w := record(home, "prod-admin")) and w[0] in ("fresh", "idle")
                                  and int(w[1]) > 0 else None, what="the account profile served")
        shown = run_segment("bash", code, env, tmp_path).stdout
        assert shown.startswith(f"prod-admin {state} ") and shown.endswith("m"), shown
    finally:
        tipd.stop()
        app.scopes.remove(ACCOUNT_ACCESS)
        fake.portal.clear()
