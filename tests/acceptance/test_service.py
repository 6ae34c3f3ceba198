"""The service end to end: the real tipd tells its notify socket READY=1 only once both listeners take
connections, and STOPPING=1 on SIGTERM; the unit `tipctl service install` writes, run the way systemd runs
it (its ExecStart, Environment=, UnsetEnvironment=, the environment.d variables, a notify socket), serves
an SDK that knows nothing but the environment.d file. (This machine has no user manager: the sandbox
options themselves are checked by `systemd-analyze verify` in tests/unit/test_service.py.)"""
from __future__ import annotations

import http.client
import json
import os
import shlex
import signal
import socket
import subprocess
import time
from typing import Any

import pytest

from tests.support.activation import activated, listen
from tests.support.stack import BIN, ENHANCED_ROLE, tipctl

pytestmark = pytest.mark.acceptance
ALICE_ID = "9067e4a2-alice"
WHOAMI = ["python", "-c", "import boto3, json; print(json.dumps(boto3.client('sts').get_caller_identity()))"]


class NotifySocket:
    """What systemd listens on: a datagram socket whose path goes into NOTIFY_SOCKET."""

    def __init__(self, path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)

    def receive(self, proc: subprocess.Popen[bytes], timeout: float = 30) -> dict[str, str]:
        """The next message as fields; fails at once if the process exits first."""
        deadline = time.monotonic() + timeout
        self.sock.settimeout(0.2)  # a bounded wait for the datagram itself, re-checking the process between
        while True:
            try:
                data = self.sock.recv(4096)
                return dict(line.split("=", 1) for line in data.decode().splitlines())
            except TimeoutError:
                if proc.poll() is not None:
                    raise AssertionError(f"tipd exited with {proc.returncode} before notifying") from None
                if time.monotonic() > deadline:
                    raise TimeoutError("no notify message") from None

    def close(self) -> None:
        self.sock.close()


def listening(home) -> tuple[bool, bool]:
    """Whether the TCP endpoint and the control socket accept connections (the kernel completes a
    connection to a listening socket by itself, even while the process is stopped)."""
    results = []
    for family, address in ((socket.AF_INET, ("127.0.0.1", home.port)), (socket.AF_UNIX, str(home.socket))):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            results.append(s.connect_ex(address) == 0)
    return results[0], results[1]


def stop(proc: subprocess.Popen[bytes], notify: NotifySocket) -> dict[str, str]:
    proc.send_signal(signal.SIGTERM)
    message = notify.receive(proc)
    assert proc.wait(20) == 0
    return message


def reap(proc: subprocess.Popen[bytes], *opened: Any) -> None:
    """After the test, pass or fail: tipd is not left running, and what the test opened is closed."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    for thing in opened:
        thing.close()


def test_ready_only_once_both_listeners_accept_and_stopping_on_sigterm(home):
    notify = NotifySocket(home.dir / "notify")
    log = open(home.dir / "tipd-notify.log", "wb")
    proc = subprocess.Popen([str(BIN / "tipd"), "--config", str(home.config_file)], stdout=log,
                            stderr=subprocess.STDOUT, env=dict(home.env, NOTIFY_SOCKET=notify.path))
    try:
        ready = notify.receive(proc)
        os.kill(proc.pid, signal.SIGSTOP)  # freeze tipd the moment READY=1 arrives, then look
        try:
            assert listening(home) == (True, True)
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        assert ready["READY"] == "1" and f"127.0.0.1:{home.port}" in ready["STATUS"]
        assert str(home.socket) in ready["STATUS"]
        conn = http.client.HTTPConnection("127.0.0.1", home.port, timeout=10)
        conn.request("GET", "/v1/credentials/work", headers={"Authorization": home.token()})
        answer = conn.getresponse()
        assert answer.status == 401 and json.loads(answer.read())["code"] == "LoginRequired"
        assert stop(proc, notify) == {"STOPPING": "1"}
    finally:
        reap(proc, log, notify)


def unit_settings(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key, []).append(value.replace("%%", "%"))  # only %% occurs: no specifiers used
    return out


def environment_d(text: str) -> dict[str, str]:
    pairs = (shlex.split(line)[0] for line in text.splitlines() if line and not line.startswith("#"))
    return dict(p.split("=", 1) for p in pairs)


def test_the_installed_unit_serves_sdks_that_know_only_the_environment_file(home, idp, fake):
    # no systemctl on PATH (as in a container): install writes the files and says what it could not do
    r = tipctl(home, "service", "install", env={"PATH": str(BIN)})
    assert "not done: systemctl is not installed" in r.stdout
    unit_file = home.dir / "config" / "systemd" / "user" / "tipd.service"
    socket_file = unit_file.with_name("tipd.socket")
    env_file = home.dir / "config" / "environment.d" / "60-tipd.conf"
    unit, variables = unit_settings(unit_file.read_text()), environment_d(env_file.read_text())
    host, port = unit_settings(socket_file.read_text())["ListenStream"][0].rsplit(":", 1)
    assert (host, int(port)) == ("127.0.0.1", home.port) and unit["Requires"] == ["tipd.socket"]

    # run it as the user manager would: its environment (with environment.d's variables) and the unit's
    env = {**home.env, **variables, "NOTIFY_SOCKET": str(home.dir / "notify")}
    for assignment in unit["Environment"]:
        for word in shlex.split(assignment):
            key, value = word.split("=", 1)
            env[key] = value
    for name in unit["UnsetEnvironment"][0].split():
        env.pop(name, None)
    assert "AWS_CONTAINER_CREDENTIALS_FULL_URI" not in env  # tipd never reads credentials from itself
    notify = NotifySocket(env["NOTIFY_SOCKET"])
    log = open(home.dir / "tipd-unit.log", "wb")
    held = listen((host, int(port)))  # the socket unit's port, passed to tipd as systemd passes it
    proc = activated(held, shlex.split(unit["ExecStart"][0]), env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        assert notify.receive(proc)["READY"] == "1"
        tipctl(home, "login")  # from the user's shell: it finds the daemon the unit started

        sdk_env = {k: v for k, v in home.env.items() if not k.startswith("AWS_CONTAINER_")}
        sdk_env.update(variables)  # a new login session: nothing but the environment.d file
        who = subprocess.run(WHOAMI, env=sdk_env, capture_output=True, text=True, timeout=60)
        assert who.returncode == 0, who.stderr
        assert json.loads(who.stdout)["Arn"].endswith(f"assumed-role/{ENHANCED_ROLE.split('/')[-1]}/tip-{ALICE_ID}")
        assert stop(proc, notify) == {"STOPPING": "1"}
    finally:
        reap(proc, log, notify, held)
    assert "the service manager holds" in (home.dir / "tipd-unit.log").read_text()

    r = tipctl(home, "service", "uninstall", env={"PATH": str(BIN)})
    assert f"removed: {unit_file}" in r.stdout and not unit_file.exists() and not env_file.exists()
    assert not socket_file.exists()
