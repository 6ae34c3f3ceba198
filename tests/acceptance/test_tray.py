"""`tipctl tray` on a real X server (Xvfb) with a real system tray (trayer) against the real tipd: the icon's
colour is read from screenshots as the state changes; a click on it signs in, or opens the live status."""
from __future__ import annotations

import importlib.util
import os
import select
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.support.stack import BIN, status, wait_for
from tipd.tray.model import COLOURS, NOT_RUNNING

pytestmark = pytest.mark.acceptance
#: pixels of one exact colour that make "the icon is this colour" (a docked icon is about 24 x 24)
ICON_PIXELS = 40


def require(condition: bool, what: str) -> None:
    """Outside CI a machine without a display stack skips; in CI that is a failure (tests/run.sh installs it)."""
    if not condition:
        message = f"the tray test needs {what} (tests/run.sh installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


class Desktop:
    """Xvfb on a display number it picks itself, and trayer as the system tray icons dock into."""

    def __init__(self, logdir: Path) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.log = open(logdir / "desktop.log", "wb")
        r, w = os.pipe()
        xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", "240x40x24", "-nolisten", "tcp"],
                                pass_fds=(w,), stdout=self.log, stderr=subprocess.STDOUT)
        self.procs.append(xvfb)
        os.close(w)
        number = b""
        while not number.endswith(b"\n"):
            ready, _, _ = select.select([r], [], [], 20)
            chunk = os.read(r, 16) if ready else b""
            if not chunk:
                os.close(r)
                raise RuntimeError(f"Xvfb did not start (exit {xvfb.poll()}); see {self.log.name}")
            number += chunk
        os.close(r)
        self.display = f":{number.decode().strip()}"
        self.env = {"DISPLAY": self.display}
        self.procs.append(subprocess.Popen(
            ["trayer", "--edge", "top", "--align", "left", "--widthtype", "pixel", "--width", "120",
             "--heighttype", "pixel", "--height", "32", "--transparent", "false"],
            env=dict(os.environ, DISPLAY=self.display), stdout=self.log, stderr=subprocess.STDOUT))
        from Xlib import X
        from Xlib.display import Display

        self.x = Display(self.display)
        tray = self.x.intern_atom("_NET_SYSTEM_TRAY_S0")
        wait_for(lambda: self.x.get_selection_owner(tray) != X.NONE, 20, "trayer to own the system tray",
                 proc=self.procs[-1])

    def screenshot(self, path: Path | None = None):
        from PIL import ImageGrab

        img = ImageGrab.grab(xdisplay=self.display)
        if path is not None:
            img.save(path)
        return img

    def pixels(self, colour) -> int:
        img = self.screenshot().convert("RGB")
        return sum(n for n, c in img.getcolors(img.width * img.height) if c == colour)

    def click(self, colour) -> None:
        """A left click in the middle of the pixels of `colour` (the icon), through the XTEST extension."""
        from Xlib import X
        from Xlib.ext import xtest

        img = self.screenshot().convert("RGB")
        at = [(x, y) for y in range(img.height) for x in range(img.width) if img.getpixel((x, y)) == colour]
        assert at, f"nothing of colour {colour} on the screen to click"
        xs, ys = zip(*at, strict=True)
        x, y = sum(xs) // len(xs), sum(ys) // len(ys)
        xtest.fake_input(self.x, X.MotionNotify, x=x, y=y)
        xtest.fake_input(self.x, X.ButtonPress, 1)
        xtest.fake_input(self.x, X.ButtonRelease, 1)
        self.x.sync()

    def close(self) -> None:
        self.x.close()
        for p in reversed(self.procs):
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.log.close()


@pytest.fixture
def desktop(home):
    require(bool(shutil.which("Xvfb")), "Xvfb (Debian package xvfb)")
    require(bool(shutil.which("trayer")), "a system tray for Xvfb (Debian package trayer)")
    require(all(importlib.util.find_spec(m) for m in ("pystray", "PIL", "Xlib")),
            "the tray extra (pip install -e '.[tray]')")
    d = Desktop(home.dir)
    yield d
    d.close()


@pytest.fixture
def shots(tmp_path):
    """Where the screenshots go: $TIPD_TEST_ARTIFACTS when set (to look at them), else the test's tmp dir."""
    out = Path(os.environ.get("TIPD_TEST_ARTIFACTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    return out


def test_the_tray_icon_follows_the_state_and_a_click_signs_in_or_opens_the_status(home, tipd, desktop, shots):
    # a stand-in terminal emulator: runs what follows -e with its output in a file
    terminal = home.dir / "terminal"
    terminal.write_text(f'#!/bin/sh\n[ "$1" = -e ] && shift\necho $$ > {home.dir}/terminal.pid\n'
                        f'exec "$@" > {home.dir}/terminal.out 2>&1\n')
    terminal.chmod(0o700)
    env = dict(home.env, **desktop.env, TERMINAL=str(terminal), PYSTRAY_BACKEND="xorg")
    log = home.dir / "tray.log"
    with open(log, "wb") as out:
        tray = subprocess.Popen([str(BIN / "tipctl"), "tray"], env=env, stdout=out, stderr=subprocess.STDOUT)

    def until(predicate, timeout, what):
        try:
            wait_for(predicate, timeout, what, proc=tray)
        except (TimeoutError, RuntimeError) as e:
            desktop.screenshot(shots / "tray-failed.png")
            raise AssertionError(f"{e}\nscreen: {shots / 'tray-failed.png'}\ntipctl tray said:\n{log.read_text()}"
                                 f"\ntipd said:\n{tipd.output()[-3000:]}") from None

    pidfile = home.dir / "terminal.pid"
    try:
        signed_out, fresh, gone = COLOURS["signed-out"], COLOURS["fresh"], COLOURS[NOT_RUNNING]
        until(lambda: desktop.pixels(signed_out) >= ICON_PIXELS, 30, "the grey (signed-out) icon")
        desktop.screenshot(shots / "tray-signed-out.png")

        # a click on the grey icon signs in (tipctl login, through the test IdP's browser hook): it turns green
        desktop.click(signed_out)
        until(lambda: desktop.pixels(fresh) >= ICON_PIXELS and desktop.pixels(signed_out) == 0, 60,
              "the icon to turn green after the sign-in")
        desktop.screenshot(shots / "tray-fresh.png")
        assert status(home)["profiles"][0]["user"] == "alice@example.com"

        # now nothing needs a sign-in, a click opens a terminal with `tipctl status --watch`
        desktop.click(fresh)
        shown = home.dir / "terminal.out"
        until(lambda: shown.exists() and "alice@example.com" in shown.read_text(), 30,
              "the status in the terminal the click opened")
        assert " fresh " in shown.read_text()

        assert tipd.stop() == 0
        until(lambda: desktop.pixels(gone) >= ICON_PIXELS // 2 and desktop.pixels(fresh) == 0, 30,
              "the not-running ring once tipd stopped")
        desktop.screenshot(shots / "tray-not-running.png")

        tray.send_signal(signal.SIGTERM)
        assert tray.wait(10) == 0
        assert "Traceback" not in log.read_text(), log.read_text()
    finally:
        if pidfile.exists():  # the status watcher the click started (in its own session)
            os.kill(int(pidfile.read_text()), signal.SIGTERM)
        if tray.poll() is None:
            tray.kill()
            tray.wait()


def test_without_a_display_the_tray_says_so(home):
    env = {k: v for k, v in home.env.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    r = subprocess.run([str(BIN / "tipctl"), "tray"], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and r.stderr.strip() == ("tipctl: no graphical session to show a tray icon in "
                                                       "(DISPLAY is not set)")
