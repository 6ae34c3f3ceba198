"""The tray's logic without a display: the colour of each worst state, the menu, what its actions run.
(The real icon on a real X server: tests/acceptance/test_tray.py.)"""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest

from tipd.changes import SEVERITY
from tipd.errors import TipdError
from tipd.tray.actions import Runner, command, open_status_command

if TYPE_CHECKING:
    from PIL import Image
from tipd.tray.model import COLOURS, NOT_RUNNING, SEPARATOR, UNKNOWN_COLOUR, Action, View

EXP = "2026-11-22T17:05:09Z"


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def summary(*profiles, state=None):
    from tipd.changes import worst_state

    ps = [dict(profile=name, state=st, user=user, credentials_expire=exp, next_refresh=None, last_error=err)
          for name, st, user, exp, err in profiles]
    return {"version": "0.1.0", "pid": 1, "state": state or worst_state(p["state"] for p in ps), "profiles": ps}


def labels(view):
    return [("-" if e is SEPARATOR else e.label) for e in view.menu()]


def default(view):
    (d,) = [e for e in view.menu() if e.default]
    return d


def pixel(img: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    """A pixel of an RGBA image (Pillow's getpixel is typed for every mode)."""
    p = img.getpixel(xy)
    assert isinstance(p, tuple), p
    return p


# -- colour ----------------------------------------------------------------------------------
@pytest.mark.parametrize("state,rgb", [
    ("fresh", (40, 167, 69)), ("refreshing", (40, 167, 69)), ("signing-in", (33, 118, 232)),
    ("degraded", (230, 145, 0)), ("login-required", (214, 40, 57)), ("signed-out", (140, 150, 160)),
])
def test_the_icon_takes_the_colour_of_the_worst_state(state, rgb):
    from tipd.tray.icon import draw

    view = View.from_summary(summary(("work", "fresh", "a", EXP, None), ("other", state, "b", EXP, None),
                                     state=state))
    assert view.colour == rgb
    img = draw(view)
    assert img.getpixel((32, 32)) == (*rgb, 255)  # a filled disc
    assert pixel(img, (0, 0))[3] == 0  # on a transparent background


def test_every_daemon_state_has_its_own_meaning_and_an_unknown_one_asks_for_a_look():
    assert set(SEVERITY) <= set(COLOURS)
    danger = {COLOURS["login-required"], COLOURS["degraded"]}
    assert COLOURS["fresh"] not in danger and COLOURS["signed-out"] not in danger
    assert View("some-future-state").colour == UNKNOWN_COLOUR == COLOURS["degraded"]


def test_not_running_is_a_dark_ring():
    from tipd.tray.icon import draw

    view = View.not_running("tipd is not running")
    assert not view.running and view.colour == COLOURS[NOT_RUNNING]
    img = draw(view)
    assert pixel(img, (32, 32))[3] == 0  # hollow
    assert img.getpixel((32, 8)) == COLOURS[NOT_RUNNING] + (255,)  # the ring
    assert view.title == "tipd: tipd is not running"


# -- menu ------------------------------------------------------------------------------------
def test_one_fresh_profile_shows_user_and_expiry_and_a_click_opens_the_status():
    view = View.from_summary(summary(("work", "fresh", "alice@example.com", EXP, None)))
    assert labels(view) == ["work: alice@example.com, fresh, until 17:05", "Sign in", "Sign out", "-",
                            "Open status", "Quit"]
    info, sign_in, sign_out = view.menu()[:3]
    assert info.action is None and not info.enabled
    assert sign_in.action == Action("sign-in", "work") and sign_in.enabled
    assert sign_out.action == Action("sign-out", "work") and sign_out.enabled
    assert default(view).action == Action("open-status")
    assert view.title == "tipd: fresh\nwork: alice@example.com, fresh, until 17:05"


def test_signed_out_offers_sign_in_as_the_click_and_no_sign_out():
    view = View.from_summary(summary(("work", "signed-out", None, None, None)))
    assert labels(view)[0] == "work: not signed in, signed-out"
    entries = {e.label: e for e in view.menu()}
    assert not entries["Sign out"].enabled and entries["Sign in"].enabled
    assert default(view).action == Action("sign-in", "work")


def test_while_signing_in_sign_in_is_greyed():
    view = View.from_summary(summary(("work", "signing-in", None, None, None)))
    assert not {e.label: e for e in view.menu()}["Sign in"].enabled


def test_several_profiles_name_them_and_the_click_signs_in_where_it_is_needed():
    long_error = "Identity Center refused: " + "the user is not assigned to the application " * 3
    view = View.from_summary(summary(("work", "fresh", "alice@example.com", EXP, None),
                                     ("lab", "login-required", "bob@example.com", EXP, long_error)))
    assert view.state == "login-required" and view.colour == COLOURS["login-required"]
    got = labels(view)
    assert got[:4] == ["work: alice@example.com, fresh, until 17:05", "Sign in to work", "Sign out of work", "-"]
    assert got[4].startswith("lab: bob@example.com, login-required, until 17:05 (Identity Center refused: ")
    assert got[4].endswith("…)") and len(got[4]) < 160  # the whole error is in `tipctl status`
    assert got[5:] == ["Sign in to lab", "Sign out of lab", "-", "Open status", "Quit"]
    assert default(view).action == Action("sign-in", "lab")


def test_not_running_and_no_profiles():
    assert labels(View.not_running("tipd is not running")) == ["tipd: tipd is not running", "-", "Open status",
                                                               "Quit"]
    empty = View.from_summary(summary())
    assert labels(empty) == ["No profiles configured (tipctl configure)", "-", "Open status", "Quit"]
    assert empty.colour == COLOURS["signed-out"]


# -- actions ---------------------------------------------------------------------------------
def test_sign_in_and_out_run_tipctl_with_this_python():
    assert command(Action("sign-in", "work")) == [sys.executable, "-m", "tipd.cli.main", "login", "work"]
    assert command(Action("sign-out", "lab")) == [sys.executable, "-m", "tipd.cli.main", "logout", "lab"]
    with pytest.raises(ValueError):
        command(Action("quit"))
    # and that command line really is tipctl
    r = subprocess.run([*command(Action("sign-in", "work"))[:3], "login", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "usage: tipctl login" in r.stdout


def test_open_status_finds_a_terminal():
    watch = [sys.executable, "-m", "tipd.cli.main", "status", "--watch"]
    have = {"kitty", "x-terminal-emulator"}.__contains__
    which = lambda name: f"/usr/bin/{name}" if have(name) else None  # noqa: E731
    assert open_status_command("linux", {"TERMINAL": "kitty --single-instance"}, which) == [
        "kitty", "--single-instance", "-e", *watch]
    assert open_status_command("linux", {"TERMINAL": "not-installed"}, which) == ["x-terminal-emulator", "-e", *watch]
    assert open_status_command("linux", {}, which) == ["x-terminal-emulator", "-e", *watch]
    assert open_status_command("linux", {}, lambda name: None) is None
    mac = open_status_command("darwin", {}, lambda name: None)
    assert mac is not None
    assert mac[:2] == ["osascript", "-e"] and mac[2].startswith('tell application "Terminal" to do script "')
    assert mac[2].endswith(' status --watch"') and "tipd.cli.main" in mac[2]


class Notes:
    def __init__(self):
        self.got = []

    def __call__(self, title, body):
        self.got.append((title, body))


def test_open_status_without_a_terminal_notifies_the_status_instead():
    notes = Notes()
    started = []
    runner = Runner(notes, popen=lambda *a, **kw: started.append(a),  # type: ignore[arg-type]  # must not be called
                    open_status=lambda: None)
    view = View.from_summary(summary(("work", "fresh", "alice@example.com", EXP, None)))
    assert runner.run(Action("open-status"), view) is None
    assert not started and notes.got == [("tipd status", "tipd: fresh\nwork: alice@example.com, fresh, until 17:05")]


def test_open_status_starts_the_terminal_detached():
    calls = []
    runner = Runner(Notes(), popen=lambda cmd, **kw: calls.append((cmd, kw)),  # type: ignore[arg-type]  # no process
                    open_status=lambda: ["term", "-e", "x"])
    runner.run(Action("open-status"), View("fresh"))
    assert calls[0][0] == ["term", "-e", "x"] and calls[0][1]["start_new_session"] is True


def test_a_failed_sign_in_becomes_a_notification_with_tipctls_message():
    notes = Notes()
    ran = []

    def popen(cmd, **kw):  # the real subprocess machinery, with a stand-in for tipctl that fails as it would
        ran.append(cmd)
        return subprocess.Popen([sys.executable, "-c", "import sys; sys.stderr.write('Opening the browser\\n"
                                 "tipctl: The IdP refused the sign-in: access_denied\\n'); sys.exit(1)"], **kw)

    t = Runner(notes, popen=popen).run(Action("sign-in", "work"), View("signed-out"))
    assert t is not None
    t.join(30)
    assert ran == [command(Action("sign-in", "work"))]
    assert notes.got == [("tipd: sign-in of work failed", "The IdP refused the sign-in: access_denied")]


def test_a_successful_sign_out_says_nothing_and_a_missing_program_says_so():
    notes = Notes()
    def ok(cmd: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-c", "pass"], text=False, **kw)

    t = Runner(notes, popen=ok).run(Action("sign-out", "work"), View("fresh"))
    assert t is not None
    t.join(30)
    assert notes.got == []

    def missing(cmd, **kw):
        raise FileNotFoundError(2, "No such file or directory")

    assert Runner(notes, popen=missing).run(Action("sign-in", "work"), View("fresh")) is None
    assert notes.got[0][0] == "tipd: could not start a command" and "No such file" in notes.got[0][1]


# -- the app's wiring, with a stand-in for pystray --------------------------------------------
class FakeIcon:
    def __init__(self, name, icon, title, menu):
        self.icon, self.title, self.menu = icon, title, menu
        self.menu_updates = 0
        self.stopped = False

    def update_menu(self):
        self.menu_updates += 1

    def stop(self):
        self.stopped = True


class FakeMenu:
    SEPARATOR = object()

    def __init__(self, items):
        self.items = items


def fake_pystray():
    return SimpleNamespace(Icon=FakeIcon, Menu=FakeMenu,
                           MenuItem=lambda text, action, enabled, default: SimpleNamespace(
                               text=text, action=action, enabled=enabled, default=default))


def test_the_tray_redraws_only_on_a_change_and_its_menu_runs_the_actions(tmp_path):
    from tipd.tray.app import Tray

    ran = []
    runner = SimpleNamespace(run=lambda action, view: ran.append(action))
    tray = Tray(fake_pystray(), tmp_path / "none.sock", runner)
    assert tray.icon.icon.getpixel((32, 32))[3] == 0  # connecting: the ring
    fresh = View.from_summary(summary(("work", "fresh", "alice@example.com", EXP, None)))
    tray.show(fresh)
    assert tray.icon.icon.getpixel((32, 32)) == COLOURS["fresh"] + (255,)
    assert tray.icon.title.startswith("tipd: fresh") and tray.icon.menu_updates == 1
    tray.show(View.from_summary(summary(("work", "fresh", "alice@example.com", EXP, None))))
    assert tray.icon.menu_updates == 1  # the same view: nothing redrawn

    items = tray.icon.menu.items()
    texts = [i.text if i is not FakeMenu.SEPARATOR else "-" for i in items]
    assert texts == labels(fresh)
    by_text = {i.text: i for i in items if i is not FakeMenu.SEPARATOR}
    by_text["Sign out"].action(tray.icon, by_text["Sign out"])
    by_text["Open status"].action(tray.icon, by_text["Open status"])
    assert ran == [Action("sign-out", "work"), Action("open-status")]
    assert by_text["Open status"].default and not by_text["Sign in"].default
    by_text["Quit"].action(tray.icon, by_text["Quit"])
    assert tray.icon.stopped and tray.stopping.is_set()


def test_following_a_daemon_that_is_not_there_shows_not_running_and_stops_on_quit(tmp_path):
    from tipd.tray.app import Tray

    tray = Tray(fake_pystray(), tmp_path / "none.sock", SimpleNamespace(run=None))
    t = threading.Thread(target=tray.follow, daemon=True)
    t.start()
    deadline = time.monotonic() + 10
    while tray.view.message != "tipd is not running" and time.monotonic() < deadline:
        time.sleep(0.01)  # polling the thread's progress with a deadline
    assert tray.view == View.not_running("tipd is not running")
    tray.stop()
    t.join(5)
    assert not t.is_alive()  # Quit ends the retry wait at once


def test_without_the_extra_the_tray_says_how_to_install_it(monkeypatch):
    from tipd.tray.app import load_pystray

    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setitem(sys.modules, "pystray", None)  # as if not installed
    with pytest.raises(TipdError) as e:
        load_pystray()
    assert e.value.message == "the tray needs the optional extra: pip install 'tipd[tray]'"
