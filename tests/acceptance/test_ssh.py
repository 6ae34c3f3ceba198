"""`tipctl ssh` against a real sshd (Debian's openssh-server on a free loopback port, its own host key and config,
no AcceptEnv) and the real tipd: boto3 in the session gets the profile's identity-enhanced credentials through the
forwarded port, and when the session ends, however it ends, its token is dead and its directory on the host gone.
Each attack on the path has a test named for it (docs/security.md, "Remote sessions")."""
from __future__ import annotations

import contextlib
import http.client
import json
import os
import pty
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.consumer import add_profile, is_enhanced
from tests.support.sshd import HOST, Sshd
from tests.support.stack import Home, Tipd, aws_cli, tipctl, wait_for

pytestmark = pytest.mark.acceptance

#: what the remote command prints: who boto3 is, and where its credentials came from
PROBE = """import json, os, stat, boto3
uri = os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
f = os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]
arn = boto3.client("sts").get_caller_identity()["Arn"]
print(json.dumps({"arn": arn, "uri": uri, "token_file": f, "token": open(f).read().strip(),
                  "file_mode": stat.S_IMODE(os.stat(f).st_mode),
                  "dir_mode": stat.S_IMODE(os.stat(os.path.dirname(f)).st_mode)}))"""


@pytest.fixture(scope="module")
def sshd() -> Iterator[Sshd]:
    s = Sshd().start()
    yield s
    s.stop()


@pytest.fixture
def stack(home: Home) -> Iterator[Home]:
    """tipd with profiles work (signed in) and other."""
    add_profile(home, "other")
    d = Tipd(home).start()
    tipctl(home, "login", "work")
    yield home
    d.stop()


def remote_env(home: Home) -> list[str]:
    """`env` words for the remote command: the test stack's AWS endpoint, no shared config of the host's user."""
    return ["env", f"AWS_ENDPOINT_URL={home.env['AWS_ENDPOINT_URL']}", "AWS_CONFIG_FILE=/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_EC2_METADATA_DISABLED=true"]


def ssh_run(home: Home, sshd: Sshd, *command: str, tipctl_args: tuple[str, ...] = ("--profile", "work")) -> \
        subprocess.CompletedProcess[str]:
    return subprocess.run(["tipctl", "ssh", *tipctl_args, HOST, "-F", str(sshd.client_config), "--", *command],
                          env=home.env, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)


def ssh_grants(home: Home) -> list[dict[str, Any]]:
    listing = json.loads(tipctl(home, "grant", "list", "--json").stdout)["grants"]
    return [g for g in listing if g["name"].startswith("ssh-")]


def fetch(port: int, token: str | None, profile: str = "work", *, user: str | None = None) -> tuple[int, str]:
    """GET the forwarded port on the host (as `user` when given: another local user of the host)."""
    code = ("import http.client, sys\n"
            f"c = http.client.HTTPConnection('127.0.0.1', {port}, timeout=30)\n"
            f"c.request('GET', '/v1/credentials/{profile}', headers={{}} if sys.argv[1] == '-' "
            "else {'Authorization': sys.argv[1]})\n"
            "r = c.getresponse(); print(r.status); print(r.read().decode())")
    prefix = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"] if user else []
    r = subprocess.run([*prefix, sys.executable, "-c", code, token or "-"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    status, _, body = r.stdout.partition("\n")
    return int(status), body


def relay_fetch(home: Home, token: str) -> int:
    """The same request straight to tipd's relay socket (what the forward reaches)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(str(home.dir / "run" / "tipd" / "relay" / "credentials.sock"))
    conn = http.client.HTTPConnection("localhost")
    conn.sock = s
    conn.request("GET", "/v1/credentials/work", headers={"Authorization": token})
    return conn.getresponse().status


class LongSession:
    """`tipctl ssh` running `sh -c` that reports its port and token file, then waits for its stdin to close."""

    def __init__(self, home: Home, sshd: Sshd, tmp: Path) -> None:
        self.report = tmp / "session.json"
        script = (f'printf \'{{"port": %s, "token_file": "%s"}}\' "$TIPD_SSH_PORT" '
                  f'"$AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE" > {self.report}.tmp && mv {self.report}.tmp '
                  f'{self.report}; read line; echo done')
        self.proc = subprocess.Popen(
            ["tipctl", "ssh", "--profile", "work", HOST, "-F", str(sshd.client_config), "--", "sh", "-c", script],
            env=home.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(self.report.exists, timeout=120, what="the ssh session started", proc=self.proc)
        info = json.loads(self.report.read_text())
        self.port: int = info["port"]
        self.token_file = Path(info["token_file"])
        self.token = self.token_file.read_text().strip()

    def end(self) -> subprocess.CompletedProcess[str]:
        out, err = self.proc.communicate(input="bye\n", timeout=120)
        return subprocess.CompletedProcess(self.proc.args, self.proc.returncode, out, err)

    def children(self) -> list[int]:
        text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        return [int(p) for p in text.split()]

    @staticmethod
    def cmdline(pid: int) -> list[str]:
        return Path(f"/proc/{pid}/cmdline").read_text().split("\0")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def test_boto3_in_an_ssh_session_gets_identity_enhanced_credentials_and_the_token_dies_with_the_session(
        stack: Home, sshd: Sshd):
    r = ssh_run(stack, sshd, *remote_env(stack), sys.executable, "-c", PROBE)
    assert r.returncode == 0, r.stderr
    seen = json.loads(r.stdout)
    assert is_enhanced(seen["arn"]), seen["arn"]
    assert seen["uri"].startswith("http://127.0.0.1:") and seen["uri"].endswith("/v1/credentials/work")
    assert seen["file_mode"] == 0o600 and seen["dir_mode"] == 0o700
    assert seen["token"] != stack.token().strip()  # a token of its own, not the user's
    # afterwards: the grant is gone, the token refused, the directory on the host removed
    assert ssh_grants(stack) == []
    assert relay_fetch(stack, seen["token"]) == 401
    assert not Path(seen["token_file"]).parent.exists()
    assert "until the session ends" in r.stderr
    # the handout is audited under the session's grant (audit lines are written once a second)
    wait_for(lambda: "grant=ssh-testhost-" in tipd_log(stack), timeout=30, what="the audit line")


def tipd_log(home: Home) -> str:
    return "".join(p.read_text(errors="replace") for p in home.dir.glob("tipd-*.log"))


def test_with_no_command_a_terminal_gets_the_login_shell_with_the_variables(stack: Home, sshd: Sshd):
    """The everyday use: `tipctl ssh HOST` from a terminal is an interactive login shell on HOST (ssh -t)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: tipctl on the pty, as from a terminal
        os.execvpe("tipctl", ["tipctl", "ssh", "--profile", "work", HOST, "-F", str(sshd.client_config)], stack.env)
    seen = b""
    try:
        os.write(fd, b'printf "URI=%s TTY=%s\\n" "$AWS_CONTAINER_CREDENTIALS_FULL_URI" "$(tty)"; exit 5\n')

        def read_some() -> bool:
            nonlocal seen
            if select.select([fd], [], [], 1)[0]:
                try:
                    seen += os.read(fd, 4096)
                except OSError:  # the pty closed: the session is over
                    return True
            return b"URI=http://127.0.0.1:" in seen and b"/v1/credentials/work TTY=/dev/pts/" in seen

        wait_for(read_some, timeout=120, what="the remote login shell's answer")
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 5, seen
    finally:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    assert ssh_grants(stack) == []


def test_the_aws_cli_in_an_ssh_session_gets_the_profile_s_identity(stack: Home, sshd: Sshd):
    r = ssh_run(stack, sshd, *remote_env(stack), aws_cli(), "sts", "get-caller-identity", "--output", "json")
    assert r.returncode == 0, r.stderr
    assert is_enhanced(json.loads(r.stdout)["Arn"])
    assert ssh_grants(stack) == []


def test_the_session_runs_the_command_words_as_given_and_returns_its_status(stack: Home, sshd: Sshd):
    r = ssh_run(stack, sshd, "sh", "-c", 'printf "%s|" "$@"; exit 3', "sh", "a b", "$HOME", ";")
    assert (r.returncode, r.stdout) == (3, "a b|$HOME|;|")
    assert ssh_grants(stack) == []


def test_attack_token_reuse_after_the_session_is_refused(stack: Home, sshd: Sshd, tmp_path: Path):
    s = LongSession(stack, sshd, tmp_path)
    try:
        status, body = fetch(s.port, s.token)
        assert status == 200 and "SecretAccessKey" in body  # what the token allows while the session lasts
        [grant] = ssh_grants(stack)
        assert grant["profiles"] == ["work"]  # the session's profile only, for --ttl (default 4 h) at most
        left = datetime.strptime(grant["expires"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) - datetime.now(UTC)
        assert timedelta(hours=3, minutes=50) < left <= timedelta(hours=4)
        done = s.end()
        assert done.returncode == 0 and done.stdout.strip() == "done", done.stderr
    finally:
        s.kill()
    assert relay_fetch(stack, s.token) == 401
    assert ssh_grants(stack) == []
    assert not s.token_file.parent.exists()
    with pytest.raises(ConnectionRefusedError):  # the forward closed with the connection
        socket.create_connection(("127.0.0.1", s.port), timeout=10).close()


def test_attack_another_user_of_the_host_connects_to_the_forwarded_port(stack: Home, sshd: Sshd, tmp_path: Path):
    s = LongSession(stack, sshd, tmp_path)
    try:
        nobody = "65534"
        status, body = fetch(s.port, None, user=nobody)
        assert status == 401 and "SecretAccessKey" not in body
        status, body = fetch(s.port, stack.token().strip(), user=nobody)  # even the laptop user's own token
        assert status == 401 and "SecretAccessKey" not in body
        status, body = fetch(s.port, "x" * 43, user=nobody)
        assert status == 401
        # the token file is out of their reach
        r = subprocess.run(["setpriv", f"--reuid={nobody}", f"--regid={nobody}", "--clear-groups", "cat",
                            str(s.token_file)], capture_output=True, text=True, timeout=30)
        assert r.returncode != 0 and s.token not in r.stdout
    finally:
        s.end()
        s.kill()


def test_attack_session_token_for_another_profile_is_refused(stack: Home, sshd: Sshd, tmp_path: Path):
    s = LongSession(stack, sshd, tmp_path)
    try:
        status, body = fetch(s.port, s.token, "other")
        assert status == 403 and "SecretAccessKey" not in body
    finally:
        s.end()
        s.kill()


@pytest.mark.parametrize("which", ["master", "session"])
def test_attack_ssh_killed_mid_session_still_revokes_the_token(stack: Home, sshd: Sshd, tmp_path: Path, which: str):
    s = LongSession(stack, sshd, tmp_path)
    try:
        assert fetch(s.port, s.token)[0] == 200
        # tipctl's two ssh children: the master (the connection; `-M`) and the session's client
        [pid] = [p for p in s.children() if ("-M" in s.cmdline(p)) == (which == "master")]
        os.kill(pid, signal.SIGKILL)
        assert s.proc.wait(timeout=120) != 0
    finally:
        s.kill()
    assert relay_fetch(stack, s.token) == 401
    assert ssh_grants(stack) == []
    wait_for(lambda: _refused(s.port), timeout=60, what="the forward closed")


def test_attack_tipctl_terminated_mid_session_revokes_the_token_and_closes_the_forward(
        stack: Home, sshd: Sshd, tmp_path: Path):
    s = LongSession(stack, sshd, tmp_path)
    try:
        os.kill(s.proc.pid, signal.SIGTERM)
        assert s.proc.wait(timeout=120) == 128 + signal.SIGTERM
    finally:
        s.kill()
    assert relay_fetch(stack, s.token) == 401
    assert ssh_grants(stack) == []
    assert not s.token_file.parent.exists()
    wait_for(lambda: _refused(s.port), timeout=60, what="the forward closed")


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=10).close()
    except ConnectionRefusedError:
        return True
    return False


def test_ssh_that_cannot_log_in_leaves_no_grant(stack: Home, sshd: Sshd):
    r = subprocess.run(["tipctl", "ssh", "--profile", "work", HOST, "-F", str(sshd.client_config),
                        "-l", "tipd-no-such-user", "--", "true"], env=stack.env, capture_output=True, text=True,
                       timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 1 and "could not connect" in r.stderr
    assert ssh_grants(stack) == []


def test_a_host_that_forbids_forwarding_is_a_sentence_and_leaves_no_grant(stack: Home):
    strict = Sshd(extra="AllowTcpForwarding no").start()
    try:
        r = subprocess.run(["tipctl", "ssh", "--profile", "work", HOST, "-F", str(strict.client_config), "--", "true"],
                           env=stack.env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    finally:
        strict.stop()
    assert r.returncode == 1, r.stderr
    assert "refused to forward a port to tipd" in r.stderr and "AllowTcpForwarding" in r.stderr
    assert "Traceback" not in r.stderr
    assert ssh_grants(stack) == []
