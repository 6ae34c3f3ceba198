"""A seeded fuzz run of more than 10,000 requests against the real tipd: its credential endpoint, IMDSv2 on the
same port, and the control socket. Requests are well-formed, half-formed and malformed (the header syntax
itself mutated: `Authorization : <token>`, control characters, bare LF, no colon), with the right token, a
wrong one or none; a share are a client's requests with one part fuzzed. Checked: no 5xx and no hang; no
credential without the token; no secret (endpoint token,
AWS secret key or session token, refresh token) in the daemon's log, which stays small; the daemon healthy
afterwards. Bounded time: the requests go out from 8 threads, about 10-40 s on a loaded 2-core machine."""
from __future__ import annotations

import json
import os
import socket
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.stack import status, tipctl

pytestmark = pytest.mark.acceptance

EXAMPLES = 105  # x BATCH requests: 10,500
BATCH = 100
THREADS = 8
RIGHT = "\0RIGHT\0"  # placeholder: the endpoint token, substituted when the request is sent

CREDENTIAL_PATHS = ["/v1/credentials/work", "/v1/credentials", "/v1/credentials/nope", "/v1/credentials/work/",
                    "/v1/credentials/..%2Fwork", "/v1/s3ag/work?target=junk&permission=READ", "/v1/s3ag/work",
                    "/v1/s3ag/work?permission=WRITE", "/", "/v1/", "/latest/api/token",
                    "/latest/meta-data/iam/security-credentials/", "/latest/meta-data/iam/security-credentials",
                    "/latest/meta-data/iam/security-credentials/work",
                    "/latest/meta-data/iam/security-credentials-extended/work",
                    "/latest/meta-data/iam/security-credentials/other"]
# the control socket's own user is trusted: no logout, rotate-token, reload or event stream (they would
# change the daemon's state or never end), and login only with bodies that are not a sign-in
CONTROL_PATHS = ["/v1/status", "/v1/summary", "/v1/profiles", "/v1/login/work", "/v1/login/nope", "/v1/login/",
                 "/v1/s3ag/work", "/v1/s3ag/work/credentials?target=junk", "/v1/s3ag/work/credentials",
                 "/v1/credentials/nope", "/v1/diag/nope/id-token", "/", "/v1/", "/v1/status/x"]
METHODS = ["GET", "GET", "GET", "PUT", "POST", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE", "FOO", "get", "G ET"]
AUTH = [RIGHT, RIGHT, RIGHT, "", "wrong", RIGHT + "x", "Bearer " + RIGHT, RIGHT[:-1], RIGHT.upper()]
TTLS = ["60", "21600", "0", "21601", "⁵", "٣٠", "６０", "-1", "1e3", "", "9" * 30, "60 ", "0x10"]  # noqa: RUF001
NAMES = ["Authorization", "Host", "X-aws-ec2-metadata-token", "X-aws-ec2-metadata-token-ttl-seconds", "Origin",
         "X-Forwarded-For", "Referer", "Sec-Fetch-Site", "Accept", "Content-Type", "Cookie", "X-Random",
         "Transfer-Encoding", "Expect"]
# how a header line is written: the usual way, or broken in the ways aiohttp logs the raw line for
SEPARATORS = [": ", ": ", ": ", ":", " : ", "\t: ", " :", ": \x01", "\x00: ", ""]
EOLS = ["\r\n", "\r\n", "\r\n", "\n"]

text = st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=0x2FFF, exclude_categories=["Cs"]),
               max_size=30)
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
                           lambda kids: st.lists(kids, max_size=4) | st.dictionaries(text, kids, max_size=4),
                           max_leaves=12)
login_bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({}, optional={"access_token": json_values, "id_token": json_values | st.just("a.b.c"),
                                        "refresh_token": json_values, "expires_in": json_values,
                                        "scope": json_values}).map(lambda v: json.dumps(v).encode()),
    st.sampled_from([b"[]", b"null", b'"str"', b"1e400", b'{"exp": 1e400}', b"{", b"\xff\xfe", b""]),
    st.binary(max_size=64))


@st.composite
def one_request(draw) -> tuple[str, bytes, bool, str]:
    """(where: "tcp" or "control", the raw request with RIGHT in place of the token, whether it presents
    the exact token in a well-formed Authorization header, the path)."""
    where = draw(st.sampled_from(["tcp", "tcp", "tcp", "control"]))
    # Some requests are what a client sends, give or take a header, so the paths behind the first checks are
    # fuzzed too: an SDK's credential fetch, an IMDSv2 token PUT (the TTL fuzzed), a tipctl login hand-off
    # (the body fuzzed); the rest are anything.
    kind = draw(st.sampled_from(["sdk", "sdk", "imds", "any", "any", "any"] if where == "tcp" else ["login", "any"]))
    sdk_like = kind in ("sdk", "imds", "login")
    method = {"sdk": "GET", "imds": "PUT", "login": "POST"}.get(kind) or draw(st.sampled_from(METHODS))
    paths = CREDENTIAL_PATHS if where == "tcp" else CONTROL_PATHS
    anything = st.one_of(
        st.sampled_from(paths), st.sampled_from(paths).map(lambda p: p + "%00"),
        st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=40).map(lambda s: "/" + s))
    path = draw({"sdk": st.sampled_from(["/v1/credentials/work", "/v1/credentials"]),
                 "imds": st.just("/latest/api/token"), "login": st.just("/v1/login/work"), "any": anything}[kind])
    version = "HTTP/1.1" if sdk_like else draw(st.sampled_from(["HTTP/1.1"] * 8 + ["HTTP/1.0", "HTTP/2.0",
                                                                                 "HTTP/1.1 x", ""]))
    eol = "\r\n" if sdk_like else draw(st.sampled_from(EOLS))
    host = "OK" if sdk_like else draw(st.sampled_from(["OK", "OK", "OK", "evil.example", "localhost:1", None]))
    lines = [f"{method} {path} {version}".rstrip()]
    if host is not None:
        lines.append("Host: " + ("127.0.0.1:{port}" if host == "OK" else host))
    presents = kind == "sdk"
    if kind == "sdk":
        lines.append(f"Authorization: {RIGHT}")
    elif kind == "imds":
        lines.append(f"X-aws-ec2-metadata-token-ttl-seconds: {draw(st.sampled_from(TTLS))}")
    for name in draw(st.lists(st.sampled_from(NAMES), max_size=2 if sdk_like else 4, unique=True)):
        if name == "Host" or (kind == "sdk" and name == "Authorization") or (
                kind == "imds" and name == "X-aws-ec2-metadata-token-ttl-seconds"):
            continue
        sep = draw(st.sampled_from(SEPARATORS))
        if name == "Authorization":
            value = draw(st.sampled_from(AUTH))
            presents = presents or (value == RIGHT and sep == ": ")
        elif name == "X-aws-ec2-metadata-token-ttl-seconds":
            value = draw(st.sampled_from(TTLS))
        elif name == "Transfer-Encoding":
            value = draw(st.sampled_from(["chunked, gzip", "identity", "x" + RIGHT]))
        else:
            value = draw(st.sampled_from(["", "x", RIGHT, "https://evil.example", "a" * 200]))
        lines.append(f"{name}{sep}{value}")
    if kind == "login" or (where == "control" and method == "POST"):
        body = draw(login_bodies)
    else:
        body = draw(st.sampled_from([b"", b"", b"x", RIGHT.encode()]))
    lines += [f"Content-Length: {len(body)}", "Connection: close"]
    return where, (eol.join(lines) + eol + eol).encode() + body, presents, path


def send(target: tuple[str, int] | str, data: bytes, timeout: float = 20.0) -> bytes:
    family = socket.AF_INET if isinstance(target, tuple) else socket.AF_UNIX
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(target)
        out = b""
        try:
            s.sendall(data)
            while chunk := s.recv(65536):
                out += chunk
        except (ConnectionResetError, BrokenPipeError):
            pass  # refused mid-way: the server closed on a bad request
        return out


def test_fuzz_more_than_ten_thousand_requests_on_every_endpoint(home, tipd):
    tipctl(home, "login")
    token = home.token()
    tcp, ctl = ("127.0.0.1", home.port), str(home.socket)
    log_before = tipd.log_path.stat().st_size
    tally: Counter[str] = Counter()
    failures: list[str] = []

    def run(req: tuple[str, bytes, bool, str]) -> None:
        where, raw, presents, _path = req
        data = raw.replace(RIGHT.encode(), token.encode()).replace(b"{port}", str(home.port).encode())
        try:
            answer = send(tcp if where == "tcp" else ctl, data)
        except TimeoutError:
            tally["hung"] += 1
            failures.append(f"no answer within 20 s: {data[:120]!r}")
            return
        tally["requests"] += 1
        if not answer:
            tally["closed without an answer"] += 1
            return
        try:
            code = int(answer.split(b" ", 2)[1])
        except (IndexError, ValueError):
            failures.append(f"not HTTP: {answer[:120]!r}")
            return
        tally[f"{code // 100}xx"] += 1
        if code >= 500:
            failures.append(f"{code} for {data[:160]!r}: {answer[-200:]!r}")
        if where == "tcp" and b"SecretAccessKey" in answer and not presents:
            failures.append(f"credentials without the token: {data[:160]!r}")

    t0 = time.monotonic()
    with ThreadPoolExecutor(THREADS) as pool:

        @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                  suppress_health_check=list(HealthCheck))
        @given(st.lists(one_request(), min_size=BATCH, max_size=BATCH))
        def batch(reqs):
            list(pool.map(run, reqs))
            assert not failures, failures[:5]

        batch()
    took = time.monotonic() - t0
    print(f"fuzz: {tally['requests']} requests in {took:.1f} s; {dict(tally)}")
    assert tally["requests"] >= 10_000 and tally["5xx"] == 0 and tally["hung"] == 0
    assert tally["2xx"] > 100  # the right token was presented well-formed often enough to be served

    # the daemon is healthy and its log holds no secret and stayed small
    ok = send(tcp, f"GET /v1/credentials/work HTTP/1.1\r\nHost: 127.0.0.1:{home.port}\r\nAuthorization: {token}"
                   "\r\nConnection: close\r\n\r\n".encode())
    assert ok.startswith(b"HTTP/1.1 200")
    creds = json.loads(ok.split(b"\r\n\r\n", 1)[1])
    assert status(home)["profiles"][0]["state"] == "fresh"
    assert len(os.listdir(f"/proc/{tipd.proc.pid}/fd")) < 100
    refresh_token = json.loads((home.state_dir / "tokens" / "work.json").read_text())["refresh_token"]
    log = tipd.output()
    for secret in (token, creds["SecretAccessKey"], creds["Token"], refresh_token):
        assert secret not in log
    grown = tipd.log_path.stat().st_size - log_before
    # 10,500 requests on as many connections, from this one process: one audit line a second, not one a connection
    # (4 KB here; 265 KB when each connection had its line)
    assert grown < 64 * 1024, f"the log grew by {grown} bytes"
