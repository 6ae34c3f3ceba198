"""The prompt file end to end: the real tipd keeps it current across sign-in, renewal and sign-out (the real
IdP, moto and the fake behind it), and real bash, zsh, fish and starship's `sh` show it; a tipd that stops
removes it, one killed with SIGKILL leaves it and the segment shows nothing."""
from __future__ import annotations

import os
import stat
import subprocess
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


def prompt_file(home: Home) -> Path:
    return home.dir / "run" / "tipd" / "prompt"


def records(home: Home) -> dict[str, list[str]]:
    """The file's lines by their first word ({} while there is no file)."""
    try:
        text = prompt_file(home).read_text()
    except FileNotFoundError:
        return {}
    return {ln.split(" ", 1)[0] + (" " + ln.split()[1] if ln.startswith("profile ") else ""): ln.split()
            for ln in text.splitlines()}


def work(home: Home) -> list[str] | None:
    return records(home).get("profile work")


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


def test_the_prompt_file_follows_sign_in_renewal_and_sign_out_and_every_shell_shows_it(
        short_home: Home, tmp_path: Path,
) -> None:
    home = short_home
    tipd = Tipd(home).start()
    try:
        wait_for(lambda: work(home) is not None, what="the prompt file")
        path = prompt_file(home)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert tipd.proc is not None
        assert records(home)["tipd-prompt"] == ["tipd-prompt", "1", str(tipd.proc.pid)]
        assert records(home)["default"] == ["default", "work"]
        assert work(home) == ["profile", "work", "signed-out", "0"]
        assert set(segments(home, tmp_path).values()) == {"work signed-out"}

        tipctl(home, "login")
        first = wait_for(lambda: (w := work(home)) and w[2] == "fresh" and int(w[3]) > 0 and w, what="fresh")
        expires = int(first[3])
        assert abs(expires - (time.time() + LIFETIME)) < LIFETIME  # the credentials' expiry, in unix seconds
        assert "alice" not in path.read_text()  # names, states and times only
        shown = segments(home, tmp_path)
        # "0m" while under a minute is left (30 s credentials); a renewal may land between two shells
        assert all(v in ("work fresh 0m", "work refreshing 0m") for v in shown.values()), shown

        renewed = wait_for(lambda: (w := work(home)) and w[2] == "fresh" and int(w[3]) > expires and w,
                           timeout=90, what="the expiry of the renewed credentials")
        assert int(renewed[3]) > expires

        tipctl(home, "logout")
        wait_for(lambda: work(home) == ["profile", "work", "signed-out", "0"], what="signed-out in the file")
        assert set(segments(home, tmp_path).values()) == {"work signed-out"}
        assert tipd.stop() == 0
        assert not path.exists()  # a stopped tipd leaves no file to misread
        assert set(segments(home, tmp_path).values()) == {""}
    finally:
        tipd.stop()


def test_after_kill_9_the_left_file_shows_nothing_and_the_next_tipd_takes_it_over(home: Home, tmp_path: Path) -> None:
    tipd = Tipd(home).start()
    wait_for(lambda: work(home) is not None, what="the prompt file")
    tipd.kill9()
    assert prompt_file(home).exists()  # SIGKILL leaves it; the pid in it is dead
    assert set(segments(home, tmp_path).values()) == {""}
    again = Tipd(home).start()
    assert again.proc is not None
    pid = again.proc.pid
    try:
        wait_for(lambda: records(home).get("tipd-prompt") == ["tipd-prompt", "1", str(pid)],
                 what="the new tipd's file")
        assert set(segments(home, tmp_path).values()) == {"work signed-out"}
    finally:
        again.stop()


def test_a_profile_added_by_reload_appears_in_the_file(home: Home, tmp_path: Path) -> None:
    tipd = Tipd(home).start()
    try:
        wait_for(lambda: work(home) is not None, what="the prompt file")
        text = home.config_file.read_text()
        home.config_file.write_text(text + "\n" + text[text.index("[profiles.work]"):].replace(
            "[profiles.work]", "[profiles.second]"))
        tipctl(home, "reload")
        wait_for(lambda: records(home).get("profile second") == ["profile", "second", "signed-out", "0"],
                 what="the added profile")
        env = dict(home.env, AWS_CONTAINER_CREDENTIALS_FULL_URI=f"http://127.0.0.1:{home.port}/v1/credentials/second")
        code = tipctl(home, "prompt", "--shell", "bash").stdout
        assert run_segment("bash", code, env, tmp_path).stdout == "second signed-out"
    finally:
        tipd.stop()


def test_the_prompt_file_is_private_and_its_directory_too(home: Home) -> None:
    tipd = Tipd(home).start()
    try:
        wait_for(lambda: work(home) is not None, what="the prompt file")
        st = os.stat(prompt_file(home))
        assert st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) == 0o600
        assert stat.S_IMODE(os.stat(prompt_file(home).parent).st_mode) == 0o700
        listing = subprocess.run(["ls", "-a", str(prompt_file(home).parent)], capture_output=True, text=True).stdout
        assert not [n for n in listing.split() if n.endswith(".tmp")]  # no temp file left behind
    finally:
        tipd.stop()
