"""Attacks on the endpoints, each test named for its attack, against the real daemon; IMDSv2 proven with
boto3, the aws CLI and the Node SDK; a fuzz test; a secret-leak test over logs, outputs and files."""
from __future__ import annotations

import http.client
import json
import os
import pwd
import re
import socket
import stat
import subprocess
import sys
import time
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.stack import ENHANCED_ROLE, ROOT, Tipd, aws_cli, status, tipctl, wait_for

pytestmark = pytest.mark.acceptance
ALICE_ID = "9067e4a2-alice"
NOBODY = pwd.getpwnam("nobody")


@pytest.fixture
def live(home, tipd):
    tipctl(home, "login")
    return home


def request(home, method="GET", path="/v1/credentials/work", headers=None, body=None, token=True, host=None):
    conn = http.client.HTTPConnection("127.0.0.1", home.port, timeout=10)
    h = {"Host": host or f"127.0.0.1:{home.port}"}
    if token:
        h["Authorization"] = home.token()
    h.update(headers or {})
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    for k, v in h.items():
        conn.putheader(k, v)
    conn.endheaders(body)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, dict(r.getheaders()), data


def has_credentials(data: bytes) -> bool:
    return b"SecretAccessKey" in data


# -- container endpoint --------------------------------------------------------------------------

def test_dns_rebinding_host_header_is_refused(live):
    for host in ("evil.example", f"evil.example:{live.port}", f"127.0.0.1:{live.port + 1}", "127.0.0.1"):
        code, _headers, data = request(live, host=host)
        assert code == 403 and not has_credentials(data), host
    assert request(live, host=f"localhost:{live.port}")[0] == 200


def test_cross_site_browser_request_is_refused(live):
    for h in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Mode": "no-cors"},
              {"Referer": "https://evil.example/"}):
        code, headers, data = request(live, headers=h)
        assert code == 403 and not has_credentials(data)
        assert not any(k.lower().startswith("access-control-") for k in headers)


def test_missing_wrong_and_almost_right_tokens_are_refused_without_a_hint(live):
    right = live.token()
    for bad in (None, "", "wrong", right[:-1], right[:-1] + ("A" if right[-1] != "A" else "B"), right + "x",
                "Bearer " + right, right.upper() if right.upper() != right else right.lower()):
        h = {} if bad is None else {"Authorization": bad}
        code, _, data = request(live, headers=h, token=False)
        assert code == 401 and not has_credentials(data) and right.encode() not in data
        assert json.loads(data) == {"code": "Unauthorized", "message": "missing or wrong authorization token"}


def test_token_compare_is_constant_time_by_construction(monkeypatch):
    """The guard's only comparison of the presented token is hmac.compare_digest."""
    import hmac

    from tipd.server import guards

    calls = []
    real = hmac.compare_digest

    def compare_digest(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("tipd.server.guards.hmac.compare_digest", compare_digest)
    g = guards.Guard(b"secret-token", 1, allow_other_users=True)

    class Req:
        headers: ClassVar[dict[str, str]] = {"Host": "127.0.0.1:1", "Authorization": "secret-tokeX"}
        transport = None

    refused = g.refuse(Req())  # type: ignore[arg-type]  # refuse reads a request's headers and transport only
    assert refused is not None and refused.status == 401 and calls == [(b"secret-tokeX", b"secret-token")]
    src = open(guards.__file__).read()
    assert "==" not in src.split("def refuse(")[1].split("return self.refuse_user")[0].replace("is None", "")


def test_leaked_token_is_useless_to_another_uid(live):
    """A process of another user (nobody) holding the right token is refused: the peer uid is checked."""
    code = f"""
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", {live.port}, timeout=10)
c.request("GET", "/v1/credentials/work", headers={{"Authorization": sys.argv[1]}})
r = c.getresponse(); body = r.read()
print(r.status, b"SecretAccessKey" in body)
"""
    r = subprocess.run(["python3", "-c", code, live.token()], capture_output=True, text=True, timeout=30,
                       user=NOBODY.pw_uid, group=NOBODY.pw_gid, env={"PATH": os.environ["PATH"]})
    assert r.stdout.split() == ["403", "False"], r.stderr
    assert request(live)[0] == 200  # while the same user is served


def test_control_socket_refuses_another_uid(live):
    sock = live.socket
    # open the directories and the socket so the other user can connect at all: only SO_PEERCRED stands
    opened = [live.dir, live.dir / "run", sock.parent]
    for d in opened:
        os.chmod(d, 0o755)
    os.chmod(sock, 0o666)
    try:
        code = f"""
import socket
s = socket.socket(socket.AF_UNIX); s.connect({str(sock)!r})
s.sendall(b"GET /v1/credentials/work HTTP/1.1\\r\\nHost: tipd\\r\\nConnection: close\\r\\n\\r\\n")
data = b""
while chunk := s.recv(65536): data += chunk
print(data.split(b"\\r\\n")[0].decode(), b"SecretAccessKey" in data)
"""
        r = subprocess.run(["python3", "-c", code], capture_output=True, text=True, timeout=30,
                           user=NOBODY.pw_uid, group=NOBODY.pw_gid, env={"PATH": os.environ["PATH"]})
    finally:
        for d in opened:
            os.chmod(d, 0o700)
        os.chmod(sock, 0o600)
    assert r.stdout.split() == ["HTTP/1.1", "403", "Forbidden", "False"], r.stdout + r.stderr


def test_path_traversal_in_profile_names_finds_nothing(live):
    for path in ("/v1/credentials/..%2F..%2Fetc%2Fpasswd", "/v1/credentials/../../etc/passwd",
                 "/v1/credentials/work%00", "/v1/credentials/%2e%2e", "/v1/credentials/work/../work2"):
        code, _, data = request(live, path=path)
        assert code in (404, 400) and not has_credentials(data), path


def test_oversized_requests_are_refused(live):
    assert request(live, headers={"X-Big": "a" * 10000})[0] in (400, 431)
    assert request(live, path="/v1/credentials/" + "a" * 10000)[0] in (400, 414)
    assert request(live, headers={f"X-{i}": "1" for i in range(100)})[0] in (400, 431)
    code, _, data = request(live, method="POST", body=b"x" * 100000, headers={"Content-Length": "100000"})
    assert code in (405, 413) and not has_credentials(data)
    assert request(live)[0] == 200


def test_slowloris_connection_is_dropped_while_others_are_served(live):
    s = socket.create_connection(("127.0.0.1", live.port))
    s.settimeout(1)
    s.sendall(b"GET /v1/credentials/work HTTP/1.1\r\n")
    start, closed = time.monotonic(), False
    while time.monotonic() - start < 25:
        try:
            s.sendall(b"X-a: b\r\n")  # one header line a second, never finishing
            if s.recv(1) == b"":
                closed = True
                break
        except TimeoutError:
            assert request(live)[0] == 200  # everyone else is served meanwhile
        except OSError:
            closed = True
            break
    s.close()
    assert closed and time.monotonic() - start < 20


def test_rotate_token_replaces_the_file_atomically_and_old_token_stops_working(live):
    old = live.token()
    before = live.token_file.stat().st_ino
    tipctl(live, "rotate-token")
    new = live.token()
    assert new != old and len(new) >= 43 and not new.endswith("\n")
    assert live.token_file.stat().st_ino != before  # replaced by rename, never rewritten in place
    assert stat.S_IMODE(live.token_file.stat().st_mode) == 0o600
    assert request(live, headers={"Authorization": old}, token=False)[0] == 401
    boto = subprocess.run(["bash", "-c", 'eval "$(tipctl env)"; python -c "import boto3; '
                           'print(boto3.client(\'sts\').get_caller_identity()[\'Arn\'])"'],
                          env=live.env, capture_output=True, text=True)
    assert boto.returncode == 0 and f"tip-{ALICE_ID}" in boto.stdout, boto.stderr


def test_audit_names_the_client_process_without_secrets(live, tipd):
    _code, _, data = request(live)
    creds = json.loads(data)
    boto = subprocess.run(["bash", "-c", 'eval "$(tipctl env)"; python -c "import boto3; '
                           'boto3.client(\'sts\').get_caller_identity()"'], env=live.env, capture_output=True,
                          text=True)
    assert boto.returncode == 0, boto.stderr
    wait_for(lambda: "python" in tipd.output().split("handed out", 1)[-1], timeout=10, what="an audit line")
    line = next(ln for ln in tipd.output().splitlines() if "handed out" in ln and "python" in ln)
    assert "profile=work endpoint=container" in line and f"uid={os.getuid()}" in line
    assert "client_pid=" in line and "python" in line
    assert creds["SecretAccessKey"] not in tipd.output() and creds["Token"] not in tipd.output()
    clients = status(live)["recent_clients"]
    assert clients and clients[0]["profile"] == "work" and "python" in clients[0]["exe"]


# -- IMDSv2 --------------------------------------------------------------------------------------

def imds_token(home, ttl="60", headers=None):
    return request(home, "PUT", "/latest/api/token", token=False,
                   headers={"X-aws-ec2-metadata-token-ttl-seconds": ttl, **(headers or {})})


def test_imds_v2_flow(live):
    code, headers, tok = imds_token(live, "21600")
    assert code == 200 and headers["X-aws-ec2-metadata-token-ttl-seconds"] == "21600"
    h = {"X-aws-ec2-metadata-token": tok.decode()}
    code, _, names = request(live, path="/latest/meta-data/iam/security-credentials/", headers=h, token=False)
    assert code == 200 and names == b"work"
    code, _, body = request(live, path="/latest/meta-data/iam/security-credentials/work", headers=h, token=False)
    c = json.loads(body)
    assert c["Code"] == "Success" and c["Type"] == "AWS-HMAC" and c["LastUpdated"].endswith("Z")
    assert set(c) >= {"AccessKeyId", "SecretAccessKey", "Token", "Expiration"}
    code, _, body = request(live, path="/latest/meta-data/iam/security-credentials-extended/work", headers=h,
                            token=False)
    assert json.loads(body)["AccountId"] == "123456789012"
    for bad in ("0", "21601", "abc", ""):
        assert imds_token(live, bad)[0] == 400


def test_imds_without_token_is_refused(live):
    for path in ("/latest/meta-data/iam/security-credentials/", "/latest/meta-data/iam/security-credentials/work"):
        code, _, data = request(live, path=path, token=False)
        assert code == 401 and not has_credentials(data)
        code, _, data = request(live, path=path, token=False, headers={"X-aws-ec2-metadata-token": "forged"})
        assert code == 401


def test_imds_put_through_a_proxy_is_refused(live):
    code, _, data = imds_token(live, headers={"X-Forwarded-For": "203.0.113.9"})
    assert code == 403 and len(data) < 20


def test_imds_dns_rebinding_and_browser_are_refused(live):
    assert request(live, "PUT", "/latest/api/token", token=False, host="evil.example",
                   headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})[0] == 403
    assert request(live, "PUT", "/latest/api/token", token=False, headers={
        "X-aws-ec2-metadata-token-ttl-seconds": "60", "Origin": "https://evil.example"})[0] == 403


@pytest.mark.parametrize("client", ["boto3", "aws", "node"])
def test_imds_serves_real_sdks(live, client):
    cmd = {"boto3": "python -c 'import boto3; print(boto3.client(\"sts\").get_caller_identity()[\"Arn\"])'",
           "aws": f"{aws_cli()} sts get-caller-identity --query Arn --output text",
           "node": f"node {ROOT / 'tests' / 'node' / 'whoami.mjs'}"}[client]
    r = subprocess.run(["bash", "-c", f'set -e; eval "$(tipctl env --imds)"; {cmd}'], env=live.env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"assumed-role/{ENHANCED_ROLE.split('/')[-1]}/tip-{ALICE_ID}" in r.stdout


# -- fuzz -----------------------------------------------------------------------------------------

METHODS = st.sampled_from(["GET", "PUT", "POST", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE", "FOO"])
PATHS = st.one_of(
    st.sampled_from(["/v1/credentials/work", "/v1/credentials", "/latest/api/token",
                     "/latest/meta-data/iam/security-credentials/", "/latest/meta-data/iam/security-credentials/work",
                     "/latest/meta-data/iam/security-credentials-extended/work", "/", "/v1/"]),
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=60).map(lambda s: "/" + s))
HEADER_NAMES = st.sampled_from(["Authorization", "Host", "X-aws-ec2-metadata-token",
                                "X-aws-ec2-metadata-token-ttl-seconds", "Origin", "Content-Length",
                                "Transfer-Encoding", "X-Forwarded-For", "X-Random"])
HEADER_VALUES = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40)


def test_fuzz_every_endpoint(live):
    right = live.token()

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(METHODS, PATHS, st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=5), st.binary(max_size=200))
    def one(method, path, headers, body):
        s = socket.create_connection(("127.0.0.1", live.port), timeout=10)
        try:
            lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{live.port}"]
            lines += [f"{k}: {v}" for k, v in headers.items() if k != "Host"]
            s.sendall(("\r\n".join(lines) + f"\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
                      + body)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        except (TimeoutError, ConnectionResetError):
            return
        finally:
            s.close()
        if not data:
            return
        status_code = int(data.split(b" ", 2)[1])
        assert status_code < 500, data[:200]
        if has_credentials(data):  # only with the right token (container) or an IMDS session token
            imds = path.startswith("/latest/") and "X-aws-ec2-metadata-token" in headers
            assert headers.get("Authorization") == right or imds

    one()
    assert request(live)[0] == 200  # still healthy
    assert status(live)["profiles"][0]["state"] == "fresh"


# -- secrets ----------------------------------------------------------------------------------------

JWT = re.compile(rb"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")


def test_no_secret_in_logs_outputs_or_files(home, idp, fake):
    """Login, refresh, errors and logout at DEBUG: no secret value in any log line, tipctl output (other
    than the explicit credential commands), or file the daemon wrote (other than the two secret stores)."""
    d = Tipd(home).start()
    outputs = []
    secrets = set()
    try:
        outputs.append(tipctl(home, "login"))
        stored = home.state_dir / "tokens" / "work.json"
        secrets.add(json.loads(stored.read_text())["refresh_token"])
        secrets.add(home.token())
        _code, _, data = request(home)
        c = json.loads(data)
        secrets |= {c["SecretAccessKey"], c["Token"]}
        outputs.append(tipctl(home, "status"))
        outputs.append(tipctl(home, "status", "--json"))
        outputs.append(tipctl(home, "env"))
        # errors: a refused exchange and a bad sign-in
        fake.inject("AssumeRole", "AccessDenied", count=1)
        outputs.append(tipctl(home, "login", "--force", check=False))
        outputs.append(tipctl(home, "login", "--force", check=False, env={"TIPD_TEST_BROWSER_MODE": "bad-state"}))
        outputs.append(tipctl(home, "login", "--force"))
        secrets.add(json.loads(stored.read_text())["refresh_token"])
        outputs.append(tipctl(home, "rotate-token"))
        secrets.add(home.token())
        outputs.append(tipctl(home, "logout"))
    finally:
        fake.clear_faults()
        d.stop()
    log = d.output().encode()
    assert b"DEBUG" in log  # the test really looked at a debug log
    texts = {"daemon log": log}
    for i, r in enumerate(outputs):
        texts[f"tipctl output {i}"] = (r.stdout + r.stderr).encode()
    for path in home.dir.rglob("*"):
        if path.is_file() and not path.is_symlink() and path not in (home.token_file, stored) and \
                "tokens" not in path.parts and path.suffix != ".log" and "tipd-" not in path.name:
            texts[str(path)] = path.read_bytes()
    for name, text in texts.items():
        for s in secrets:
            assert s.encode() not in text, f"a secret appears in {name}"
        assert not JWT.search(text), f"a JWT appears in {name}"


def test_refuses_to_start_with_a_writable_state_directory(home):
    home.state_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(home.state_dir, 0o777)
    r = subprocess.run([str(ROOT / ".venv" / "bin" / "tipd"), "--config", str(home.config_file)], env=home.env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "writable by group or others" in r.stderr and "Traceback" not in r.stderr


# -- bad input gets a 4xx with a sentence, never a 5xx (issue 11, item 11) ----------------------------

def control(home, method: str, path: str, body: bytes = b"") -> tuple[int, dict[str, Any]]:
    """One request on the control socket, raw (so any body can be sent); the status and the JSON answer."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(str(home.socket))
    s.sendall(f"{method} {path} HTTP/1.1\r\nHost: tipd\r\nContent-Type: application/json\r\n"
              f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    head, _, payload = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(payload) if payload.startswith(b"{") else {}


def unsigned_jwt(payload: str) -> str:
    import base64

    def b64(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    return b64(b'{"alg":"none","typ":"JWT"}') + "." + b64(payload.encode()) + "."


def test_imds_ttl_in_non_ascii_digits_is_a_400(live):
    for ttl in ("⁵", "٣٠", "６０", "1" * 40, "-5", "+5"):  # noqa: RUF001 - non-ASCII digits on purpose
        answer = raw_request(live.port, f"PUT /latest/api/token HTTP/1.1\r\nHost: 127.0.0.1:{live.port}\r\n"
                                        f"X-aws-ec2-metadata-token-ttl-seconds: {ttl}\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400"), (ttl, answer[:100])


def test_malformed_login_hand_offs_are_400_with_a_sentence(live):
    bad_exp = {"access_token": "a", "refresh_token": "r", "id_token": unsigned_jwt('{"sub":"x","exp":"soon"}')}
    for body in (b"[]", b"null", b'"str"', b"5", b"{", b"\xff", b"{}", b'{"access_token": 5}',
                 b'{"access_token": "a", "id_token": ["x"], "refresh_token": "r"}',
                 b'{"access_token": "a", "id_token": "not-a-jwt", "refresh_token": "r"}',
                 b'{"access_token": "a", "refresh_token": "r"}', json.dumps(bad_exp).encode()):
        code, answer = control(live, "POST", "/v1/login/work", body)
        assert code == 400 and answer["code"] == "BadRequest", body
        assert len(answer["message"].splitlines()) == 1 and "Traceback" not in answer["message"]
    assert request(live)[0] == 200  # the working sign-in was never touched
    assert status(live)["profiles"][0]["state"] == "fresh"


def test_a_login_hand_off_nested_thousands_deep_is_a_400(live):
    """JSON nested 100,000 deep (200 KB, under the body cap) made json raise RecursionError: a 500."""
    for body in (b"[" * 100_000 + b"]" * 100_000, b'{"access_token": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"):
        code, answer = control(live, "POST", "/v1/login/work", body)
        assert code == 400 and answer["code"] == "BadRequest", (code, answer)
    assert request(live)[0] == 200  # the working sign-in was never touched


def test_an_id_token_exp_of_1e400_never_breaks_status(live):
    """`1e400` parses as infinity: it was taken as the IdP token's expiry and made /v1/status a 500 for good."""
    for exp in ("1e400", "-1e400", "1e300", "true", "-5"):
        hand_off = ('{"access_token": "a", "refresh_token": "r", "id_token": "'
                    + unsigned_jwt('{"sub":"x","exp":' + exp + '}') + '"}')
        code, answer = control(live, "POST", "/v1/login/work", hand_off.encode())
        assert code == 400 and "exp" in answer["message"], (exp, answer)
        code, answer = control(live, "GET", "/v1/status")
        assert code == 200 and answer["profiles"][0]["state"] == "fresh"


def raw_request(port: int, text: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(text.encode("utf-8"))
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        return data


def test_no_client_secret_or_identity_center_refresh_token_in_logs_outputs_or_files(fake):
    """The records of issue 10 (the client secret of a confidential IdP app, the Identity Center refresh token kept
    for restarts) at DEBUG through configure, sign-in, a restart that resumes from them, a reload, a sign-in
    refused by AWS, a second sign-in and logout: no value in the daemon's log, a tipctl output, or any file but
    the store's own."""
    from tests.support.idp_rig import Rig

    rig = Rig(fake, {"client_auth": "client_secret_post"}, profile_extra='client_auth = "client_secret_post"')
    assert rig.idp.client_secret is not None
    home, outputs, secrets, logs = rig.home, [], {rig.idp.client_secret}, []
    stored = home.state_dir / "tokens" / "work.json"

    def remember() -> None:
        record = json.loads(stored.read_text())
        secrets.update(v for k, v in record.items() if k in ("refresh_token", "idc_refresh_token") and v)

    try:
        r = subprocess.run([str(ROOT / ".venv" / "bin" / "tipctl"), "configure", "--profile", "work",
                            "--no-check", "--client-secret-stdin"], input=rig.idp.client_secret + "\n",
                           env=home.env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        outputs.append(r)
        rig.start()
        outputs.append(tipctl(home, "login"))
        remember()
        assert "idc_refresh_token" in json.loads(stored.read_text())  # the test sees the record it is about
        rig.whoami()
        assert rig.tipd is not None
        logs.append(rig.tipd.output())
        rig.restart()  # resumes from the stored grant: the IdP refresh with the secret, the Identity Center token
        rig.whoami()
        remember()
        outputs.append(tipctl(home, "reload"))
        outputs.append(tipctl(home, "status", "--json"))
        outputs.append(tipctl(home, "profiles", "--json"))
        outputs.append(tipctl(home, "diag", "work", check=False))
        fake.inject("AssumeRole", "AccessDenied", count=1)
        outputs.append(tipctl(home, "login", "--force", check=False))
        fake.clear_faults()
        outputs.append(tipctl(home, "login", "--force"))
        remember()
        outputs.append(tipctl(home, "logout"))
    finally:
        fake.clear_faults()
        if rig.tipd is not None:
            rig.tipd.stop()
            logs.append(rig.tipd.output())
    assert "DEBUG" in logs[-1] and len(secrets) >= 4
    texts = {f"daemon log {i}": text.encode() for i, text in enumerate(logs)}
    for i, r in enumerate(outputs):
        texts[f"tipctl output {i} ({' '.join(r.args[1:3])})"] = (r.stdout + r.stderr).encode()
    for path in home.dir.rglob("*"):
        if path.is_file() and not path.is_symlink() and "tokens" not in path.parts:
            texts[str(path)] = path.read_bytes()
    for name, text in texts.items():
        for s in secrets:
            assert s.encode() not in text, f"a secret appears in {name}"


SANDBOXED_IMDS = """
import http.client, sys
port = int(sys.argv[1])
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
conn.request("PUT", "/latest/api/token", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
r = conn.getresponse()
token = r.read().decode()
print(r.status)
if r.status == 200:
    conn.request("GET", "/latest/meta-data/iam/security-credentials/work", headers={"X-aws-ec2-metadata-token": token})
    print(conn.getresponse().read().decode())
"""


def test_attack_a_sandbox_of_the_same_uid_takes_the_default_profile_through_imds(live):
    """IMDS has no shared secret; its peer-uid check was its only barrier. A rootless container (Podman, rootless
    Docker) or another user-namespace sandbox with the host's network runs as the user's own uid, so unfixed any
    process in one, holding no token and no grant (or a grant for another profile), got the default profile's
    credentials with a PUT and a GET. A session token is now handed only to a process in tipd's own user
    namespace. (The test runs the client under `unshare -U -r`, as such sandboxes do.)"""
    assert imds_token(live)[0] == 200  # a process of tipd's own namespace still gets one
    r = subprocess.run(["unshare", "-U", "-r", sys.executable, "-c", SANDBOXED_IMDS, str(live.port)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == "403" and not has_credentials(r.stdout.encode())
