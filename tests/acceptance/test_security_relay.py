"""Attacks on the new paths of issue 14 (consumer tokens, the relay socket, tipd-relay), each test named for its
attack, against the real daemon and the real relay process (on the host's loopback here: the network namespace
adds nothing to these; tests/acceptance/test_relay.py runs the relay in one)."""
from __future__ import annotations

import http.client
import json
import os
import resource
import socket
import stat
import subprocess
import sys

import pytest

from tests.support.consumer import add_profile, make_grant
from tests.support.net import free_port
from tests.support.stack import Tipd, tipctl, wait_for

pytestmark = pytest.mark.acceptance


@pytest.fixture
def rig(home):
    add_profile(home, "other")
    d = Tipd(home).start()
    tipctl(home, "login", "work")
    grant = make_grant(home, "box", "work")
    port, relay = start_relay(home)
    yield home, port, grant
    relay.terminate()
    relay.wait(10)
    d.stop()


def start_relay(home):
    """tipd-relay on a free loopback port, forwarding to the home's relay socket; returns (port, process) once it
    is listening."""
    port = free_port()
    ready = home.dir / "relay.ready"
    relay = subprocess.Popen([sys.executable, "-m", "tipd.relay", "--listen", f"127.0.0.1:{port}", "--socket",
                              str(relay_socket(home)), "--ready-file", str(ready)], env=home.env,
                             stderr=subprocess.DEVNULL)
    wait_for(ready.exists, timeout=30, what="the relay", proc=relay)
    return port, relay


def relay_socket(home):
    return home.dir / "run" / "tipd" / "relay" / "credentials.sock"


def get(port: int, path: str, headers: dict[str, str] | None = None, method: str = "GET", body: bytes | None = None,
        host: str | None = None, timeout: float = 10) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    conn.putheader("Host", host or f"127.0.0.1:{port}")
    for k, v in (headers or {}).items():
        conn.putheader(k, v)
    conn.endheaders(body)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data


def over_socket(path: str, raw_request: bytes) -> tuple[int, bytes]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(path))
        s.sendall(raw_request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def no_credentials(data: bytes) -> bool:
    return b"SecretAccessKey" not in data


def test_relay_request_with_no_token_is_refused(rig):
    _, port, _ = rig
    code, data = get(port, "/v1/credentials/work")
    assert code == 401 and no_credentials(data)


def test_relay_request_with_a_wrong_or_almost_right_token_is_refused(rig):
    _, port, grant = rig
    t = grant["token"]
    for bad in ("wrong", t[:-1], t + "x", t[:-1] + ("A" if t[-1] != "A" else "B"), "Bearer " + t, "x" * 300):
        code, data = get(port, "/v1/credentials/work", {"Authorization": bad})
        assert code == 401 and no_credentials(data), bad[:10]


def test_the_users_own_token_is_refused_on_the_relay_socket(rig):
    home, port, _ = rig
    code, data = get(port, "/v1/credentials/work", {"Authorization": home.token()})
    assert code == 401 and no_credentials(data)
    assert "consumer tokens only" in json.loads(data)["message"]


def test_grant_management_over_tcp_is_refused(rig):
    home, _, grant = rig
    for token in (home.token(), grant["token"]):
        for method, path in (("GET", "/v1/grants"), ("POST", "/v1/grants"), ("DELETE", "/v1/grants/box"),
                             ("POST", "/v1/grants/box/rotate")):
            code, data = get(home.port, path, {"Authorization": token}, method=method, body=b"{}")
            assert code in (400, 401, 404, 405) and b'"token"' not in data and b"grants" not in data, \
                (method, path, code)
    assert "box" in tipctl(home, "grant", "list").stdout  # nothing was revoked or rotated


def test_grant_management_on_the_relay_socket_is_refused(rig):
    home, _, grant = rig
    for raw in (b"GET /v1/grants HTTP/1.0\r\n\r\n",
                f"DELETE /v1/grants/box HTTP/1.0\r\nAuthorization: {grant['token']}\r\n\r\n".encode(),
                f"POST /v1/rotate-token HTTP/1.0\r\nAuthorization: {grant['token']}\r\n\r\n".encode()):
        code, _ = over_socket(relay_socket(home), raw)
        assert code in (404, 405), raw
    assert "box" in tipctl(home, "grant", "list").stdout


def test_path_traversal_in_the_profile_is_refused(rig):
    home, port, grant = rig
    auth = {"Authorization": grant["token"]}
    for path in ("/v1/credentials/../grants", "/v1/credentials/..%2fother", "/v1/credentials/%2e%2e/other",
                 "/v1/credentials/work/../other", "/v1/credentials/work%00", "/v1/credentials/", "/v1/credentials",
                 "/v1/s3ag/work", "/latest/meta-data/iam/security-credentials/work", "//v1/credentials/work"):
        code, data = get(port, path, auth)
        assert code in (403, 404) and no_credentials(data), path
        code, data = over_socket(relay_socket(home), f"GET {path} HTTP/1.0\r\nAuthorization: {grant['token']}\r\n"
                                 "\r\n".encode())
        assert code in (403, 404) and no_credentials(data), path


def test_grant_token_opens_neither_s3ag_nor_the_default_profile_route_on_tcp(rig):
    home, _, grant = rig
    auth = {"Authorization": grant["token"]}
    assert get(home.port, "/v1/s3ag/work?target=s3://b/&permission=READ", auth)[0] == 401
    code, data = get(home.port, "/v1/credentials", auth)
    assert code == 403 and no_credentials(data)


def test_oversize_requests_to_the_relay_are_refused(rig):
    _, port, grant = rig
    huge = {"X-Pad": "a" * 4000, "X-Pad2": "b" * 4000, "X-Pad3": "c" * 4000}
    try:
        code, data = get(port, "/v1/credentials/work", {"Authorization": grant["token"], **huge})
        assert code == 413 and no_credentials(data)
    except (ConnectionError, http.client.RemoteDisconnected):
        pass  # closed without an answer is a refusal too
    code, data = get(port, "/v1/credentials/work", {"Authorization": grant["token"], "Content-Length": "5"},
                     body=b"xxxxx")
    assert code == 413 and no_credentials(data)
    code, data = get(port, "/v1/credentials/work", {"Authorization": grant["token"]}, method="POST")
    assert code == 405


def test_relay_refuses_foreign_host_and_browser_requests(rig):
    _, port, grant = rig
    auth = {"Authorization": grant["token"]}
    assert get(port, "/v1/credentials/work", auth, host="evil.example")[0] == 403
    assert get(port, "/v1/credentials/work", {**auth, "Origin": "https://evil.example"})[0] == 403
    assert get(port, "/v1/credentials/work", auth)[0] == 200


def test_relay_socket_is_0600_in_a_0700_directory_of_its_own(rig):
    home, _, _ = rig
    sock = relay_socket(home)
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600 and stat.S_ISSOCK(sock.stat().st_mode)
    assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700
    assert sorted(p.name for p in sock.parent.iterdir()) == ["credentials.sock"]  # never the control socket


def test_grant_token_file_is_0600_in_a_0700_directory_and_grants_file_has_no_token(rig):
    home, _, grant = rig
    f = home.state_dir / "grants" / "box" / "token"
    assert str(f) == grant["token_file"]
    assert stat.S_IMODE(f.stat().st_mode) == 0o600 and stat.S_IMODE(f.parent.stat().st_mode) == 0o700
    assert grant["token"] not in (home.state_dir / "grants.json").read_text()


def test_relay_with_tipd_gone_answers_a_sentence_not_a_credential(home, tmp_path):
    port = free_port()
    ready = tmp_path / "ready"
    relay = subprocess.Popen([sys.executable, "-m", "tipd.relay", "--listen", f"127.0.0.1:{port}", "--socket",
                              str(tmp_path / "nothing.sock"), "--ready-file", str(ready)], stderr=subprocess.DEVNULL)
    try:
        wait_for(ready.exists, timeout=30, what="the relay", proc=relay)
        code, data = get(port, "/v1/credentials/work", {"Authorization": "x" * 43})
        assert code == 503 and "is tipd running" in json.loads(data)["message"]
    finally:
        relay.terminate()
        relay.wait(10)


def test_relay_upstream_tcp_mode_keeps_the_grants_limits(rig):
    """--upstream-tcp (Docker Desktop) forwards to tipd's TCP endpoint: the grant's limits hold there too."""
    home, _, grant = rig
    other = make_grant(home, "elsewhere", "other")
    port = free_port()
    ready = home.dir / "relay-tcp.ready"
    relay = subprocess.Popen([sys.executable, "-m", "tipd.relay", "--listen", f"127.0.0.1:{port}", "--upstream-tcp",
                              f"127.0.0.1:{home.port}", "--ready-file", str(ready)], env=home.env,
                             stderr=subprocess.DEVNULL)
    try:
        wait_for(ready.exists, timeout=30, what="the relay", proc=relay)
        code, data = get(port, "/v1/credentials/work", {"Authorization": grant["token"]})
        assert code == 200 and b"SecretAccessKey" in data
        code, data = get(port, "/v1/credentials/work", {"Authorization": other["token"]})
        assert code == 403 and no_credentials(data)
        assert get(port, "/v1/credentials/work")[0] == 401
    finally:
        relay.terminate()
        relay.wait(10)


def test_relay_keeps_serving_across_a_tipd_restart(home):
    """The relay reuses its upstream connection; tipd's restart closes it: the next request goes out on a new one
    (to the new socket in the same mounted directory), no error reaches the SDK."""
    d = Tipd(home).start()
    tipctl(home, "login", "work")
    grant = make_grant(home, "box", "work")
    port, relay = start_relay(home)
    try:
        assert get(port, "/v1/credentials/work", {"Authorization": grant["token"]})[0] == 200
        d.stop()
        d = Tipd(home).start()
        tipctl(home, "login", "work")
        code, data = get(port, "/v1/credentials/work", {"Authorization": grant["token"]})
        assert code == 200 and b"SecretAccessKey" in data
    finally:
        relay.terminate()
        relay.wait(10)
        d.stop()


SOCKET_HOLDER = """
import resource, socket, sys, time
n, path = int(sys.argv[1]), sys.argv[2]
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
held = []
deadline = time.monotonic() + 20
while len(held) < n and time.monotonic() < deadline:  # a full backlog (EAGAIN): try again, as an attacker would
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        s.connect(path)
        held.append(s)
    except OSError:
        s.close()
        time.sleep(0.001)
print(len(held), flush=True)
sys.stdin.readline()  # hold them until told
"""


def _owner_served(home, timeout: float) -> bool:
    """A credential request by the owner on tipd's TCP endpoint, answered with credentials within `timeout`."""
    try:
        code, data = get(home.port, "/v1/credentials/work", {"Authorization": home.token(), "Connection": "close"},
                         timeout=timeout)
    except OSError:
        return False
    return code == 200 and b"SecretAccessKey" in data


def test_attack_idle_connections_on_the_relay_socket_starve_no_one(home):
    """A consumer (a container with the relay directory mounted, or any user of an ssh HOST through the forwarded
    port, no token needed) opens 1,100 idle connections to the relay socket. Unfixed, each took one of tipd's file
    descriptors (a login session's 1,024): tipd could accept nothing more, not its owner's SDKs, not the control
    socket. The relay socket's connections are capped (the oldest idle ones closed) like another user's on TCP."""
    d = Tipd(home).start()
    resource.prlimit(d.proc.pid, resource.RLIMIT_NOFILE, (1024, 1024))  # as in a login session with a hard 1,024
    holder = None
    try:
        tipctl(home, "login", "work")
        holder = subprocess.Popen([sys.executable, "-c", SOCKET_HOLDER, "1100", str(relay_socket(home))],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert holder.stdout is not None
        assert int(holder.stdout.readline()) > 100  # (unfixed, about 1,000 of them: then tipd accepts nothing)
        for _ in range(5):
            assert _owner_served(home, timeout=8)
        assert json.loads(tipctl(home, "status", "--json", timeout=8).stdout)["state"] == "fresh"
        assert len(os.listdir(f"/proc/{d.proc.pid}/fd")) < 300
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
        d.stop()


def test_attack_grant_reaches_a_profile_that_later_took_its_name(rig):
    """A grant made for profile `other`; later `other` is removed, and a different profile is given the name
    (`tipctl accounts sync` names profiles by a template over account and role names, so a new account or role can
    take a name that was freed). Unfixed, the grant's token fetched the new profile's credentials: grants were
    bound to names only. A grant is bound to its profiles' definitions as they were when it was made."""
    home, _, _ = rig
    tipctl(home, "login", "other")
    grant = make_grant(home, "agent", "other")
    auth = {"Authorization": grant["token"]}
    assert get(home.port, "/v1/credentials/other", auth)[0] == 200
    text = home.config_file.read_text()
    other = text[text.index("[profiles.other]"):]
    home.config_file.write_text(text.replace(other, ""))
    tipctl(home, "reload")
    code, data = get(home.port, "/v1/credentials/other", auth)
    assert code in (403, 404) and no_credentials(data)
    home.config_file.write_text(text.replace(other, other.rstrip() + '\naccount_id = "123456789012"\n'))
    tipctl(home, "reload")
    tipctl(home, "login", "other")
    assert get(home.port, "/v1/credentials/other", {"Authorization": home.token()})[0] == 200  # it serves
    code, data = get(home.port, "/v1/credentials/other", auth)
    assert code == 403 and no_credentials(data) and "make the grant again" in json.loads(data)["message"]
    # a grant made now is for the profile as it is now; a restart keeps both bindings
    again = make_grant(home, "agent2", "other")
    tipctl(home, "reload")
    assert get(home.port, "/v1/credentials/other", {"Authorization": again["token"]})[0] == 200


CONTAINER_VIEW = """
import errno, os, socket, sys
path, token = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(os.path.join(path, "credentials.sock"))
s.sendall(f"GET /v1/credentials/work HTTP/1.0\\r\\nHost: tipd-relay\\r\\nAuthorization: {token}\\r\\n\\r\\n".encode())
print(s.recv(64).split(b" ")[1].decode())
for attempt in (lambda: os.unlink(os.path.join(path, "credentials.sock")),
                lambda: socket.socket(socket.AF_UNIX).bind(os.path.join(path, "evil.sock"))):
    try:
        attempt()
        print("done")
    except OSError as e:
        print(errno.errorcode[e.errno])
"""


def test_attack_a_container_replaces_the_relay_socket_to_take_other_consumers_tokens(rig, tmp_path):
    """Every container given the relay directory shares it. Mounted read-write (unfixed), root in one container (or
    the user's own uid under rootless Docker or Podman) could unlink tipd's socket and listen in its place: the next
    container's relay would send it that container's grant token, for profiles the first was never granted. The
    flags mount it read-only: connecting to a unix socket on a read-only bind mount still works (connect needs no
    write to the file system); replacing the socket does not."""
    home, _, grant = rig
    flags = tipctl(home, "grant", "docker-flags", "box", "--profile", "work").stdout
    relay_mount = next(line for line in flags.splitlines() if ":/run/tipd-relay" in line)
    assert relay_mount.rstrip(" \\").rstrip("'").endswith(":/run/tipd-relay:ro"), relay_mount
    # the container's view: the directory bind-mounted read-only, as `docker run -v DIR:/run/tipd-relay:ro` does
    view = tmp_path / "container-view"
    view.mkdir()
    script = (f"mount --bind {relay_socket(home).parent} {view} && mount -o remount,bind,ro {view} && "
              f"exec {sys.executable} -c \"$0\" {view} {grant['token']}")
    r = subprocess.run(["unshare", "-m", "sh", "-c", script, CONTAINER_VIEW], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["200", "EROFS", "EROFS"]  # served; neither removed nor replaced
    assert relay_socket(home).exists()
