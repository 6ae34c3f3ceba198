"""What the tray's menu items run: tipctl commands as subprocesses, and a terminal for the live status.
No GUI import here. Nothing blocks the caller (a GUI thread): a command's outcome is awaited in a thread."""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping

from .model import Action, View


def tipctl(*args: str) -> list[str]:
    """tipctl as this Python runs it: a tray started from a desktop menu may not have the venv on PATH."""
    return [sys.executable, "-m", "tipd.cli.main", *args]


def command(action: Action) -> list[str]:
    """The tipctl command for Sign in / Sign out."""
    if action.kind == "sign-in":
        return tipctl("login", *([action.profile] if action.profile else []))
    if action.kind == "sign-out":
        return tipctl("logout", *([action.profile] if action.profile else []))
    raise ValueError(f"no command for {action.kind!r}")


def open_status_command(platform: str = sys.platform, env: Mapping[str, str] = os.environ,
                        which: Callable[[str], str | None] = shutil.which) -> list[str] | None:
    """A terminal running `tipctl status --watch`: $TERMINAL, else the Debian alternative
    x-terminal-emulator, else Terminal.app on macOS; None when there is none."""
    watch = tipctl("status", "--watch")
    if platform == "darwin":
        script = f'tell application "Terminal" to do script {_applescript(shlex.join(watch))}'
        return ["osascript", "-e", script, "-e", 'tell application "Terminal" to activate']
    for term in (env.get("TERMINAL"), "x-terminal-emulator"):
        if term:
            argv = shlex.split(term)
            if argv and which(argv[0]):
                return [*argv, "-e", *watch]
    return None


def _applescript(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Runner:
    """Runs an action; a failure (or the lack of a terminal) becomes a desktop notification."""

    def __init__(self, notify: Callable[[str, str], None],
                 popen: Callable[..., subprocess.Popen[bytes]] = subprocess.Popen,
                 open_status: Callable[[], list[str] | None] = open_status_command) -> None:
        self.notify = notify
        self.popen = popen
        self.open_status = open_status

    def run(self, action: Action, view: View) -> threading.Thread | None:
        """Start the action; returns the thread that waits for a tipctl command (tests join it)."""
        if action.kind == "open-status":
            cmd = self.open_status()
            if cmd is None:  # no terminal to open: say it in a notification instead
                self.notify("tipd status", view.text())
                return None
            self._start(cmd, stderr=subprocess.DEVNULL)
            return None
        proc = self._start(command(action), stderr=subprocess.PIPE)
        if proc is None:
            return None
        t = threading.Thread(target=self._wait, args=(action, proc), name=f"tray-{action.kind}", daemon=True)
        t.start()
        return t

    def _start(self, cmd: list[str], stderr: int) -> subprocess.Popen[bytes] | None:
        try:
            # its own session: a Ctrl-C meant for the tray's terminal does not reach a sign-in under way
            return self.popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                              start_new_session=True)
        except OSError as e:
            self.notify("tipd: could not start a command", f"{shlex.join(cmd[:3])}...: {e.strerror or e}")
            return None

    def _wait(self, action: Action, proc: subprocess.Popen[bytes]) -> None:
        _, err = proc.communicate()
        if proc.returncode != 0:
            text = err.decode("utf-8", "replace") if isinstance(err, bytes) else (err or "")
            last = next((ln for ln in reversed(text.strip().splitlines()) if ln.strip()), "")
            what = "sign-in" if action.kind == "sign-in" else "sign-out"
            self.notify(f"tipd: {what} of {action.profile} failed", last.removeprefix("tipctl: ") or
                        f"tipctl exited with {proc.returncode}")
