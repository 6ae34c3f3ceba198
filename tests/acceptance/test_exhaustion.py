"""Hostile and unlucky local users against the real tipd: request content aimed at the log, log floods,
descriptor exhaustion with idle connections, and oversized bodies from every source (issue 11, items 6, 9
and 10). Each test is named for its attack and fails without the defence it proves."""
from __future__ import annotations

import json
import os
import pwd
import resource
import socket
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.support.stack import Tipd, status, tipctl

pytestmark = pytest.mark.acceptance
NOBODY = pwd.getpwnam("nobody")


def raw(port: int, data: bytes, timeout: float = 10) -> bytes:
    """Send bytes, read until the server closes (or the timeout), return what came back."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return out


def served(home, timeout: float = 5) -> bool:
    """A real credential request by the owner, answered within `timeout`."""
    got = raw(home.port, (f"GET /v1/credentials/work HTTP/1.1\r\nHost: 127.0.0.1:{home.port}\r\n"
                          f"Authorization: {home.token()}\r\nConnection: close\r\n\r\n").encode(), timeout)
    return got.startswith(b"HTTP/1.1 200") and b"SecretAccessKey" in got


@pytest.fixture
def live(home, tipd):
    tipctl(home, "login")
    return home


# -- 6: the endpoint token in the log -----------------------------------------------------------

def malformed_with_token(port: int, token: str) -> list[bytes]:
    host = f"Host: 127.0.0.1:{port}\r\n"
    return [
        f"GET /v1/credentials/work HTTP/1.1\r\n{host}Authorization : {token}\r\n\r\n".encode(),  # the reported one
        f"GET /v1/credentials/work HTTP/1.1\r\n{host}Authorization\t: {token}\r\n\r\n".encode(),
        f"GET /v1/credentials/work HTTP/1.1\r\n{host}Authorization: {token}\x01\r\n\r\n".encode(),
        f"GET /v1/credentials/work HTTP/1.1\r\n{host} Authorization: {token}\r\n\r\n".encode(),
        f"GET /v1/credentials/{token} HTTP/1.1 junk\r\n{host}\r\n".encode(),
        f"GET /{token}\x00 HTTP/1.1\r\n{host}\r\n".encode(),
        f"{token} /v1/credentials/work HTTP/1.1\r\n{host}\r\n".encode(),
        (f"GET /v1/credentials/work HTTP/1.1\r\n{host}Authorization: {token}\r\n"
         f"Content-Length: x{token}\r\n\r\n").encode(),
        (f"GET /v1/credentials/work HTTP/1.1\r\n{host}Authorization: {token}\r\n"
         f"Transfer-Encoding: {token}\r\n\r\n").encode(),
        f"POST /v1/credentials/work HTTP/1.1\r\n{host}Transfer-Encoding: chunked\r\n\r\n{token}\r\n".encode(),
    ]


def test_a_malformed_request_carrying_the_token_never_puts_it_in_the_log(live, tipd):
    token = live.token()
    for data in malformed_with_token(live.port, token):
        answer = raw(live.port, data)
        assert not answer.startswith(b"HTTP/1.1 5"), answer[:200]
        assert b"SecretAccessKey" not in answer
    assert served(live)
    log = tipd.output()
    assert token not in log
    assert "Error handling request" in log  # the bad requests were noticed, without their content


def test_a_flood_of_bad_requests_cannot_flood_the_log(live, tipd):
    """The reported flood wrote 11.5 MiB in 6 s: one line per bad request, each with a traceback."""
    bad = f"GET /v1/credentials/work HTTP/1.1\r\nHost: 127.0.0.1:{live.port}\r\nAuthorization : x\r\n\r\n".encode()
    raw(live.port, bad)  # the first one is logged
    before = tipd.log_path.stat().st_size
    t0 = time.monotonic()
    for _ in range(2000):
        raw(live.port, bad)
    took = time.monotonic() - t0
    assert served(live)
    grown = tipd.log_path.stat().st_size - before
    # at most one line per logger and message each 10 s: a few lines for the whole flood
    assert grown < 2048 * (1 + took / 10), f"the log grew by {grown} bytes during {took:.1f} s of bad requests"


# -- 9: file descriptors -------------------------------------------------------------------------

HOLDER = textwrap.dedent("""
    import resource, socket, sys
    n, port = int(sys.argv[1]), int(sys.argv[2])
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    held = []
    for _ in range(n):
        try:
            held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        except OSError:
            pass
    print(len(held), flush=True)
    sys.stdin.readline()  # hold them until told
    open_ = 0
    for s in held:  # still open: nothing to read and no end of stream
        try:
            open_ += s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
        except BlockingIOError:
            open_ += 1
        except OSError:
            pass
    print(open_, flush=True)
""")


class Holder:
    """A process (of another user, or of the owner) opening `n` connections and keeping them idle."""

    def __init__(self, port: int, n: int, user: pwd.struct_passwd | None = None) -> None:
        kw: dict[str, Any] = dict(user=user.pw_uid, group=user.pw_gid, extra_groups=[]) if user else {}
        self.proc = subprocess.Popen(["python3", "-c", HOLDER, str(n), str(port)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env={"PATH": os.environ["PATH"]}, **kw)
        assert self.proc.stdout is not None  # a pipe
        self.opened = int(self.proc.stdout.readline())

    def still_open(self) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None  # pipes
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def low_nofile_tipd(home) -> Tipd:
    """tipd started the way a login session starts it: soft RLIMIT_NOFILE 1024 (raising is its own job)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    try:
        return Tipd(home).start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_another_user_holding_1100_idle_connections_starves_no_one(home):
    d = low_nofile_tipd(home)
    holder = None
    try:
        tipctl(home, "login")
        size = d.log_path.stat().st_size
        holder = Holder(home.port, 1100, NOBODY)
        assert holder.opened >= 1000  # the kernel accepted them (tipd closed the ones over its cap)
        # the owner's requests and the control socket are answered meanwhile (unfixed, they waited in the
        # backlog until the idle connections timed out, 15 s after they were made)
        for _ in range(5):
            assert served(home, timeout=8)
        r = tipctl(home, "status", "--json", timeout=8)
        assert json.loads(r.stdout)["state"] == "fresh"
        assert fds(d.proc.pid) < 200  # the other user holds at most its cap (64)
        assert holder.still_open() <= 64
        assert d.log_path.stat().st_size - size < 8192, "accept or refusal errors flooded the log"
        limits = open(f"/proc/{d.proc.pid}/limits").read()
        soft = int(next(ln for ln in limits.splitlines() if ln.startswith("Max open files")).split()[3])
        assert soft > 1024  # raised to the hard limit (capped at 8192)
    finally:
        if holder:
            holder.close()
        d.stop()


def test_the_owner_holding_more_idle_connections_than_the_cap_is_still_served(home):
    """The owner's own runaway tool (1,100 idle connections, over the 1,024 total): its oldest idle ones are
    closed to make room, so a real request is still answered."""
    d = low_nofile_tipd(home)
    holder = None
    try:
        tipctl(home, "login")
        holder = Holder(home.port, 1100)
        for _ in range(5):
            assert served(home, timeout=8)
        assert json.loads(tipctl(home, "status", "--json", timeout=8).stdout)["state"] == "fresh"
        assert fds(d.proc.pid) < 1024 + 64
        assert holder.still_open() <= 1024
    finally:
        if holder:
            holder.close()
        d.stop()


# -- 10: unbounded bodies ------------------------------------------------------------------------

BIG = 200 * 1024 * 1024


class HugeAnswer(BaseHTTPRequestHandler):
    """An 'AWS' that answers every call with 200 MB of XML-looking bytes (chunked: no Content-Length to
    refuse it by, so the cap must hold while reading), generated on the fly."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"<a>" + b"x" * (1024 * 1024 - 7) + b"</a>"
        try:
            head = b"<AssumeRoleWithWebIdentityResponse>"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(head), head))
            for _ in range(BIG // len(chunk)):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # tipd stopped reading: the point

    def log_message(self, *args) -> None:
        pass


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MiB."""
    line = next(ln for ln in open(f"/proc/{pid}/status") if ln.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def test_a_200_mb_aws_answer_is_refused_without_reading_it(home):
    server = ThreadingHTTPServer(("127.0.0.1", 0), HugeAnswer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    d = Tipd(home, env={"AWS_ENDPOINT_URL": f"http://127.0.0.1:{server.server_address[1]}"}).start()
    try:
        r = tipctl(home, "login", check=False)
        peak = peak_rss_mib(d.proc.pid)
        print(f"tipd peak RSS after a 200 MB STS answer: {peak:.0f} MiB")
        assert r.returncode != 0 and "more than 1048576 bytes" in r.stdout + r.stderr, r.stdout + r.stderr
        assert "Traceback" not in r.stderr + d.output()
        assert peak < 200, f"tipd's memory peaked at {peak:.0f} MiB"
        assert tipctl(home, "status", check=False).returncode in (0, 1)  # alive and answering
    finally:
        d.stop()
        server.shutdown()


def test_a_200_mb_token_file_is_not_read(home):
    tokens = home.state_dir / "tokens"
    tokens.mkdir(parents=True, mode=0o700)
    with open(tokens / "work.json", "wb") as f:
        f.write(b'{"refresh_token": "')
        f.truncate(BIG)  # sparse: the size is what counts
    os.chmod(tokens / "work.json", 0o600)
    d = Tipd(home).start()
    try:
        peak = peak_rss_mib(d.proc.pid)
        print(f"tipd peak RSS with a 200 MB token file: {peak:.0f} MiB")
        assert peak < 200, f"tipd's memory peaked at {peak:.0f} MiB"
        assert status(home)["profiles"][0]["state"] in ("signed-out", "login-required")
        assert "damaged" in d.output()
    finally:
        d.stop()


def test_a_200_mb_config_file_is_refused_with_a_sentence(home):
    with open(home.config_file, "ab") as f:
        f.truncate(BIG)
    measure = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024, file=sys.stderr)")
    for cmd in (["tipd", "--config", str(home.config_file)], ["tipctl", "env"]):
        r = subprocess.run([sys.executable, "-c", measure, *cmd], env=dict(home.env, TIPD_CONFIG=str(home.config_file)),
                           capture_output=True, text=True, timeout=60)
        *_err, peak = r.stderr.splitlines()
        print(f"{cmd[0]} peak RSS with a 200 MB config file: {peak} MiB")
        assert "larger than 1024 KiB" in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert int(peak) < 150


def test_a_200_mb_body_on_the_control_socket_is_refused(live, tipd):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(str(live.socket))
    s.sendall(f"POST /v1/login/work HTTP/1.1\r\nHost: tipd\r\nContent-Type: application/json\r\n"
              f"Content-Length: {BIG}\r\nConnection: close\r\n\r\n".encode())
    sent = 0
    answer = b""
    try:
        while sent < BIG:  # tipd answers 413 at 256 KiB
            sent += s.send(b" " * 65536)
    except (BrokenPipeError, ConnectionResetError):
        pass
    try:
        while chunk := s.recv(65536):
            answer += chunk
    except ConnectionResetError:
        pass
    s.close()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]  # (aiohttp drains the rest unread, up to 10 s)
    assert peak_rss_mib(tipd.proc.pid) < 200
    assert status(live)["profiles"][0]["state"] == "fresh"
