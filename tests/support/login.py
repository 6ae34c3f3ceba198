"""`tipctl login` in the background, for tests that act while it waits (approve a device code, reload, ^C)."""
from __future__ import annotations

import re
import subprocess

from .stack import BIN, Home, wait_for

USER_CODE = re.compile(r"enter the code:\s+(\S+)")


class Login:
    """`tipctl login ...` running in the background, its output going to files we can read while it waits."""

    def __init__(self, home: Home, *args: str, env: dict[str, str] | None = None) -> None:
        self.out = home.dir / "login.out"
        self.err = home.dir / "login.err"
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen([str(BIN / "tipctl"), "login", *args], env=dict(home.env, **(env or {})),
                                         stdout=out, stderr=err)

    def stderr(self) -> str:
        return self.err.read_text()

    def stdout(self) -> str:
        return self.out.read_text()

    def user_code(self) -> str:
        return wait_for(lambda: (m := USER_CODE.search(self.stderr())) and str(m.group(1)), timeout=30,
                        what="the user code on tipctl's stderr", proc=self.proc)

    def wait(self, timeout: float = 60) -> int:
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
