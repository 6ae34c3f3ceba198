"""Containers (docs/containers.md), with a network namespace of the test's own standing in for one: only its own
loopback, tipd's relay socket reachable through the file system (as a bind mount makes it), the relay
(tipd/relay.py) inside, and the real boto3, aws CLI, Node SDK and Java SDK (v2) inside asking it with a grant's token
file. They get identity-enhanced credentials, keep getting them across renewals, `tipctl rotate-token` and a grant
rotation, and are refused after `tipctl grant revoke` and with a token for another profile."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support import java, netns
from tests.support.consumer import add_profile, is_enhanced, make_grant
from tests.support.net import free_port
from tests.support.stack import ROOT, Home, Tipd, aws_cli, tipctl, wait_for

pytestmark = [pytest.mark.acceptance,
              pytest.mark.skipif(not netns.available(), reason="network namespaces need root and iproute2")]

LIFETIME = 30
SHORT = f"""
[refresh]
min_remaining = 8
rotate_remaining = 14
session_duration = {LIFETIME}
"""
WHOAMI = {"boto3": ["python", "-c", "import boto3; print(boto3.client('sts').get_caller_identity()['Arn'])"],
          "aws": [aws_cli(), "sts", "get-caller-identity", "--query", "Arn", "--output", "text"],
          "node": ["node", str(ROOT / "tests" / "node" / "whoami.mjs")]}
SDKS = (*WHOAMI, "java")


def whoami(client: str) -> list[str]:
    return java.whoami() if client == "java" else WHOAMI[client]

#: inside the namespace: one long-lived boto3 client calling STS every 0.2 s until the stop file appears (botocore
#: refreshes 30 s credentials at every call: each is a fetch through the relay), one JSON line per call
POLL = """
import json, os, sys, time, boto3
out, stop = sys.argv[1:3]
session = boto3.session.Session()
sts = session.client("sts")
creds = session.get_credentials()  # the refreshable credentials the client signs with (one object per session)
with open(out, "a") as f:
    while not os.path.exists(stop):
        try:
            arn = sts.get_caller_identity()["Arn"]
            key = creds.get_frozen_credentials().access_key
            f.write(json.dumps({"ok": True, "arn": arn, "key": key}) + "\\n")
        except Exception as e:
            f.write(json.dumps({"ok": False, "error": repr(e)[:300]}) + "\\n")
        f.flush()
        time.sleep(0.2)
"""


class Container:
    """A namespace with the relay running in it, and the environment an SDK inside gets."""

    def __init__(self, home: Home, token_file: str, profile: str = "work", host: str = "127.0.0.1",
                 port: int | None = None) -> None:
        self.ns = netns.Netns()
        self.home = home
        self.host, self.port = host, port or free_port()
        if host != "127.0.0.1":  # the ECS address on the namespace's loopback, as a compose network gives it
            subprocess.run(self.ns.cmd("ip", "addr", "add", f"{host}/32", "dev", "lo"), check=True)
        self.ns.bridge(urlsplit(home.env["AWS_ENDPOINT_URL"]).port or 80)  # STS (the fake) for the SDKs inside
        ready = home.dir / f"relay-{self.port}.ready"
        self.log = open(home.dir / f"relay-{self.port}.log", "wb")
        self.relay = subprocess.Popen(self.ns.cmd(sys.executable, "-m", "tipd.relay", "--listen",
                                                  f"{host}:{self.port}", "--socket",
                                                  str(home.dir / "run" / "tipd" / "relay" / "credentials.sock"),
                                                  "--ready-file", str(ready)),
                                      stdout=self.log, stderr=subprocess.STDOUT, env=home.env)
        wait_for(ready.exists, timeout=30, what="the relay to listen", proc=self.relay)
        self.env = dict(home.env, AWS_CONTAINER_CREDENTIALS_FULL_URI=self.url(profile),
                        AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=token_file)

    def url(self, profile: str) -> str:
        where = self.host if self.port == 80 else f"{self.host}:{self.port}"
        return f"http://{where}/v1/credentials/{profile}"

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return self.ns.run(*args, env=env or self.env)

    def get(self, path: str, token: str | None) -> tuple[int, bytes, float]:
        """One request through the relay from inside: status, body, seconds it took."""
        code = ("import sys, time, urllib.request, urllib.error\n"
                "h = {'Authorization': sys.argv[2]} if sys.argv[2] else {}\n"
                "t = time.monotonic()\n"
                "try:\n r = urllib.request.urlopen(urllib.request.Request(sys.argv[1], headers=h), timeout=10)\n"
                " s, b = r.status, r.read()\n"
                "except urllib.error.HTTPError as e:\n s, b = e.code, e.read()\n"
                "print(s, time.monotonic() - t); sys.stdout.flush(); sys.stdout.buffer.write(b)\n")
        r = subprocess.run(self.ns.cmd(sys.executable, "-c", code, f"http://127.0.0.1:{self.port}{path}", token or ""),
                           capture_output=True, timeout=60)
        first, _, body = r.stdout.partition(b"\n")
        status, took = first.split()
        return int(status), body, float(took)

    def close(self) -> None:
        self.relay.terminate()
        self.relay.wait(10)
        self.log.close()
        self.ns.close()


@pytest.fixture
def rig(idp, fake):
    home = Home(idp.issuer, idp.client_id, fake.url, extra_config=SHORT)
    add_profile(home, "other")
    d = Tipd(home).start()
    tipctl(home, "login", "work")
    grant = make_grant(home, "box", "work")
    box = Container(home, grant["token_file"])
    yield home, box, grant
    box.close()
    d.stop()
    home.cleanup()


@pytest.mark.parametrize("client", SDKS)
def test_sdks_in_a_container_get_identity_enhanced_credentials_through_the_relay(rig, client):
    _home, box, _ = rig
    r = box.run(*whoami(client))
    assert r.returncode == 0, r.stderr
    assert is_enhanced(r.stdout.strip()) and "tip-9067e4a2-alice" in r.stdout


def test_credentials_keep_coming_across_renewals_a_rotate_token_and_a_grant_rotation(rig, fake):
    home, box, _ = rig
    out, stop = home.dir / "poll.jsonl", home.dir / "poll.stop"
    poller = subprocess.Popen(box.ns.cmd("python", "-c", POLL, str(out), str(stop)), env=box.env)
    try:
        wait_for(lambda: out.exists() and out.read_text().count("\n") >= 3, timeout=30, what="first fetches",
                 proc=poller)
        tipctl(home, "rotate-token")  # the user's own token: the container's grant token is untouched
        start = fake.count("AssumeRole")
        wait_for(lambda: fake.count("AssumeRole") >= start + 2, timeout=LIFETIME * 4, what="two renewals")
        seen = out.read_text().count("\n")
        wait_for(lambda: out.read_text().count("\n") >= seen + 3, timeout=30, what="fetches after the renewals")
    finally:
        stop.touch()
        poller.wait(30)
    lines = [json.loads(ln) for ln in out.read_text().splitlines()]
    assert all(x["ok"] for x in lines), [x for x in lines if not x["ok"]][:3]
    assert all(is_enhanced(x["arn"]) for x in lines)
    assert len({x["key"] for x in lines}) >= 2  # the renewed credentials reached the running process
    for client in ("aws", "node"):  # and fresh processes of the other SDKs after the renewals and rotate-token
        r = box.run(*whoami(client))
        assert r.returncode == 0 and is_enhanced(r.stdout.strip()), (client, r.stderr)
    # a grant rotation rewrites the mounted file: the next fetch in the running container uses the new token
    tipctl(home, "grant", "rotate", "box")
    r = box.run(*WHOAMI["boto3"])
    assert r.returncode == 0 and is_enhanced(r.stdout.strip()), r.stderr


def test_a_running_java_client_reads_the_rotated_token_file_and_gets_the_renewed_credentials(rig, fake):
    """The Java SDK v2 reads AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE at every credential fetch: its
    ContainerCredentialsEndpointProvider.headers() calls getTokenValue() -> readToken() (Files.readAllBytes) for each
    request (https://github.com/aws/aws-sdk-java-v2/blob/master/core/auth/src/main/java/software/amazon/awssdk/auth/
    credentials/ContainerCredentialsProvider.java; the same calls are in the 2.55.9 bytecode this test runs). It
    refreshes credentials a minute before they expire, so the rig's 30 s ones are fetched through the relay at every
    call. After `tipctl grant rotate` the old token is dead at once: only a client that re-reads the mounted file keeps
    getting credentials, and the renewed keys (with the token held from the start instead, in
    AWS_CONTAINER_AUTHORIZATION_TOKEN, every call after the rotation fails)."""
    home, box, _ = rig
    out, stop = home.dir / "java-poll.jsonl", home.dir / "java-poll.stop"

    def lines() -> list[dict[str, Any]]:
        return [json.loads(ln) for ln in out.read_text().splitlines()] if out.exists() else []

    poller = subprocess.Popen(box.ns.cmd(*java.whoami("--poll", str(out), str(stop))), env=box.env)
    try:
        wait_for(lambda: len(lines()) >= 3, timeout=60, what="first Java fetches", proc=poller)
        tipctl(home, "rotate-token")  # the user's own token: the container's grant token is untouched
        before = len(lines())
        tipctl(home, "grant", "rotate", "box")  # a new token in the mounted file; the old one refused from now on
        rotated = len(lines())
        start = fake.count("AssumeRole")
        wait_for(lambda: fake.count("AssumeRole") >= start + 1, timeout=LIFETIME * 4, what="a renewal")
        renewed = len(lines())
        wait_for(lambda: len(lines()) >= renewed + 3, timeout=60, what="Java fetches after the renewal", proc=poller)
    finally:
        stop.touch()
        poller.wait(30)
    got = lines()
    # the one call in flight while the token was swapped may have sent the old one; every call after it succeeded
    settled = got[:before] + got[rotated + 1:]
    assert all(x["ok"] for x in settled), [x for x in settled if not x["ok"]][:3]
    assert all(is_enhanced(x["arn"]) for x in settled)
    keys_before = {x["key"] for x in got[:before]}
    assert got[-1]["key"] not in keys_before  # the renewal after the rotation reached the running Java process


def test_revoked_grant_is_refused_in_the_container_within_a_second(rig):
    home, box, grant = rig
    assert box.get("/v1/credentials/work", grant["token"])[0] == 200
    tipctl(home, "grant", "revoke", "box")
    # the very next request is refused, and the refusal itself comes at once (timed inside the namespace)
    status, body, took = box.get("/v1/credentials/work", grant["token"])
    assert status == 401 and b"SecretAccessKey" not in body and took < 1.0
    for client in SDKS:
        r = box.run(*whoami(client))
        assert r.returncode != 0 and "tip-" not in r.stdout, client


def test_a_token_for_another_profile_is_refused_in_the_container(rig):
    home, box, _ = rig
    other = make_grant(home, "elsewhere", "other")
    env = dict(box.env, AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=other["token_file"])
    for client in SDKS:
        r = box.run(*whoami(client), env=env)
        assert r.returncode != 0 and "tip-" not in r.stdout, client
    status, body, _ = box.get("/v1/credentials/work", other["token"])
    assert status == 403 and json.loads(body)["message"] == \
        "grant elsewhere does not allow profile 'work' (it allows: other)"


@pytest.mark.parametrize("client", SDKS)
def test_sdks_reach_the_relay_at_the_ecs_address_169_254_170_2_port_80(idp, fake, client):
    """The compose pattern of AWS's local container endpoints: the relay holds 169.254.170.2 and listens on port 80;
    the SDKs accept plain http there and leave the port out of Host."""
    home = Home(idp.issuer, idp.client_id, fake.url)
    d = Tipd(home).start()
    box = None
    try:
        tipctl(home, "login", "work")
        grant = make_grant(home, "ecs", "work")
        box = Container(home, grant["token_file"], host="169.254.170.2", port=80)
        assert box.env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] == "http://169.254.170.2/v1/credentials/work"
        r = box.run(*whoami(client))
        assert r.returncode == 0 and is_enhanced(r.stdout.strip()), r.stderr
    finally:
        if box is not None:
            box.close()
        d.stop()
        home.cleanup()


def test_the_relay_dir_holds_only_the_relay_socket_0600_in_a_0700_dir(rig):
    home, _, _ = rig
    d = home.dir / "run" / "tipd" / "relay"
    assert oct(d.stat().st_mode & 0o777) == "0o700"
    assert [p.name for p in d.iterdir()] == ["credentials.sock"]
    assert oct((d / "credentials.sock").stat().st_mode & 0o777) == "0o600"
    assert Path(home.socket).parent != d
