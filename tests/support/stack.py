"""The real tipd and tipctl as processes, in an isolated home, pointed at the real IdP, moto and the fake."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from .net import free_port

_T = TypeVar("_T")

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BROWSER = ROOT / "tests" / "support" / "browser.py"
ACCOUNT = "123456789012"
APP_ARN = f"arn:aws:sso::{ACCOUNT}:application/ssoins-1111222233334444/apl-aaaabbbbccccdddd"
OIDC_ROLE = f"arn:aws:iam::{ACCOUNT}:role/tip-oidc"
ENHANCED_ROLE = f"arn:aws:iam::{ACCOUNT}:role/tip-enhanced"
REGION = "us-east-1"


def aws_cli() -> str:
    """The aws CLI v1, installed in its own venv by .ci/run (it pins its own botocore)."""
    exe = os.environ.get("TIPD_TEST_AWS_CLI") or str(ROOT / ".venv-awscli" / "bin" / "aws")
    if not os.path.exists(exe):
        raise RuntimeError(f"the aws CLI is missing at {exe}: "
                           "run `bash .ci/run` (it installs it) or set TIPD_TEST_AWS_CLI")
    return exe


class Home:
    """A private HOME / XDG tree, with the environment a user's shell would have."""

    def __init__(self, idp_issuer: str, client_id: str, aws_url: str, *, extra_config: str = "",
                 profile_extra: str = "", app_arn: str = APP_ARN) -> None:
        self.app_arn = app_arn
        #: every daemon started for this home: cleanup() stops any a test left running
        self.daemons: list[Tipd] = []
        # a short base: a unix socket path must fit in 108 bytes
        self.dir = Path(tempfile.mkdtemp(prefix="tipd-"))
        for d in ("home", "config", "state", "run", "data", "cache"):
            (self.dir / d).mkdir(mode=0o700)
        self.port = free_port()
        self.config_file = self.dir / "config" / "tipd" / "config.toml"
        self.config_file.parent.mkdir(mode=0o700)
        self.browser_log = self.dir / "browser.log"
        self.write_config(idp_issuer, client_id, extra_config, profile_extra)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TIPD_", "XDG_"))}
        self.env.update({
            "HOME": str(self.dir / "home"),
            # `tipctl env` speaks the shell that runs it, else $SHELL's: tests read its POSIX output whatever
            # the developer's own login shell is
            "SHELL": "/bin/sh",
            "XDG_CONFIG_HOME": str(self.dir / "config"),
            "XDG_STATE_HOME": str(self.dir / "state"),
            "XDG_RUNTIME_DIR": str(self.dir / "run"),
            "XDG_DATA_HOME": str(self.dir / "data"),
            "XDG_CACHE_HOME": str(self.dir / "cache"),
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "AWS_ENDPOINT_URL": aws_url,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
            "BROWSER": str(BROWSER),
            "TIPD_TEST_BROWSER_LOG": str(self.browser_log),
            "AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED": "true",
            "PYTHONPATH": str(ROOT),  # so test keyring backends (tests.support.keyrings) can be named
        })

    def write_config(self, issuer: str, client_id: str, extra: str = "", profile_extra: str = "") -> None:
        self.config_file.write_text(f"""{extra}
[server]
port = {self.port}

[profiles.work]
issuer = "{issuer}"
client_id = "{client_id}"
application_arn = "{self.app_arn}"
oidc_role_arn = "{OIDC_ROLE}"
identity_enhanced_role_arn = "{ENHANCED_ROLE}"
region = "{REGION}"
{profile_extra}
""")

    @property
    def state_dir(self) -> Path:
        return self.dir / "state" / "tipd"

    @property
    def token_file(self) -> Path:
        return self.state_dir / "endpoint-token"

    @property
    def socket(self) -> Path:
        return self.dir / "run" / "tipd" / "control.sock"

    def token(self) -> str:
        return self.token_file.read_text()

    def cleanup(self) -> None:
        for d in self.daemons:
            d.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Tipd:
    """The daemon as a subprocess: started, waited for (its control socket answers), stopped with SIGTERM."""

    def __init__(self, home: Home, env: dict[str, str] | None = None) -> None:
        self.home = home
        self.env = dict(home.env, **(env or {}))
        self._proc: subprocess.Popen[bytes] | None = None
        self.log_path = home.dir / f"tipd-{int(time.time() * 1000)}.log"

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        """The tipd process (`start` starts it)."""
        if self._proc is None:
            raise RuntimeError("tipd was not started")
        return self._proc

    @proc.setter
    def proc(self, proc: subprocess.Popen[bytes]) -> None:  # subclasses start tipd their own way
        self._proc = proc

    def start(self, timeout: float = 20) -> Tipd:
        self.log = open(self.log_path, "wb")
        self._proc = subprocess.Popen([str(BIN / "tipd"), "--config", str(self.home.config_file),
                                       "--log-level", "DEBUG"], env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        self.home.daemons.append(self)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tipd exited with {self.proc.returncode}:\n{self.output()}")
            r = tipctl(self.home, "status", "--json", check=False)
            if r.returncode != 3:
                return self
            if time.monotonic() > deadline:
                raise TimeoutError(f"tipd did not become ready:\n{self.output()}")
            time.sleep(0.05)  # polling the socket for readiness, not a synchronisation sleep

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 10) -> int:
        if self._proc is None or self._proc.poll() is not None:
            return self._proc.returncode if self._proc else 0
        self._proc.send_signal(signal.SIGTERM)
        try:
            return self._proc.wait(timeout)
        finally:
            if self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait()
            self.log.close()

    def kill9(self) -> None:
        assert self._proc is not None
        self._proc.kill()
        self._proc.wait()
        self.log.close()


def tipctl(home: Home, *args: str, check: bool = True, env: dict[str, str] | None = None,
           timeout: float = 120) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([str(BIN / "tipctl"), *args], env=dict(home.env, **(env or {})), capture_output=True,
                       text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"tipctl {' '.join(args)} exited {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}")
    return r


def status(home: Home) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads(tipctl(home, "status", "--json", check=False).stdout)
    return answer


def in_tipd_env(home: Home, command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a shell command the way a user would after `eval "$(tipctl env)"`."""
    return subprocess.run(["bash", "-c", f'set -e; eval "$(tipctl env)"; {command}'], env=home.env,
                          capture_output=True, text=True, timeout=timeout)


def wait_for(predicate: Callable[[], _T | None], timeout: float = 60.0, what: str = "condition",
             proc: subprocess.Popen[Any] | None = None, interval: float = 0.05) -> _T:
    """Poll a condition with a deadline (never a blind sleep); returns its first truthy value. With `proc`,
    fail at once if that process exits meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what} after {timeout} s")
        time.sleep(interval)
