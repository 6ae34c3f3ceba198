"""Consumer tokens (`tipctl grant`) against the real daemon: boto3 with a grant's token gets the profiles the
grant names and nothing else; revocation and expiry are effective at the next request; handouts are audited
under the grant's name; grants survive a restart with only their hashes at rest."""
from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest

from tests.support.consumer import add_profile, boto3_key, make_grant, sdk_env
from tests.support.stack import Tipd, tipctl, wait_for

pytestmark = pytest.mark.acceptance


@pytest.fixture
def two(home):
    """tipd with profiles work (signed in) and other."""
    add_profile(home, "other")
    d = Tipd(home).start()
    tipctl(home, "login", "work")
    yield home, d
    d.stop()


def url(home, profile: str) -> str:
    return f"http://127.0.0.1:{home.port}/v1/credentials/{profile}"


def test_grant_token_gets_its_profile_and_is_refused_others_with_a_sentence(two):
    home, _d = two
    g = make_grant(home, "ci", "work")
    assert g["profiles"] == ["work"] and len(g["token"]) == 43
    ok = boto3_key(sdk_env(home, url(home, "work"), g["token_file"]))
    assert ok.returncode == 0 and ok.stdout.startswith("ASIA"), ok.stderr
    refused = boto3_key(sdk_env(home, url(home, "other"), g["token_file"]))
    assert refused.returncode != 0 and "ASIA" not in refused.stdout
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", home.port, timeout=10)
    conn.request("GET", "/v1/credentials/other", headers={"Authorization": g["token"]})
    r = conn.getresponse()
    body = r.read()
    assert r.status == 403 and b"SecretAccessKey" not in body
    assert json.loads(body) == {"code": "Forbidden",
                                "message": "grant ci does not allow profile 'other' (it allows: work)"}


def test_revoked_grant_is_refused_on_the_next_request(two):
    home, _d = two
    g = make_grant(home, "agent", "work")
    env = sdk_env(home, url(home, "work"), g["token_file"])
    assert boto3_key(env).returncode == 0
    tipctl(home, "grant", "revoke", "agent")
    r = boto3_key(env)
    assert r.returncode != 0 and "ASIA" not in r.stdout
    assert "agent" not in tipctl(home, "grant", "list").stdout


def test_expired_grant_is_refused(two):
    home, _d = two
    g = make_grant(home, "brief", "work", ttl="60s")
    env = sdk_env(home, url(home, "work"), g["token_file"])
    assert boto3_key(env).returncode == 0
    # the real clock: wait (with a deadline) until the grant's expiry has passed, then the next request fails
    wait_for(lambda: json.loads(tipctl(home, "grant", "list", "--json").stdout)["grants"][0]["expired"],
             timeout=120, interval=1.0, what="the grant to expire")
    assert boto3_key(env).returncode != 0


def test_handouts_are_audited_under_the_grants_name_and_listed_with_last_use(two):
    home, d = two
    g = make_grant(home, "nightly", "work")
    assert boto3_key(sdk_env(home, url(home, "work"), g["token_file"])).returncode == 0
    wait_for(lambda: "grant=nightly" in d.output(), timeout=15, what="the audit line")
    line = next(ln for ln in d.output().splitlines() if "grant=nightly" in ln)
    assert "handed out" in line and "profile=work" in line and g["token"] not in d.output()
    listed = json.loads(tipctl(home, "grant", "list", "--json").stdout)["grants"]
    assert listed[0]["name"] == "nightly" and listed[0]["uses"] >= 1 and listed[0]["last_used"]


def test_grants_survive_a_restart_with_only_hashes_at_rest(two):
    home, d = two
    g = make_grant(home, "keep", "work")
    stored = home.state_dir / "grants.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    text = stored.read_text()
    assert g["token"] not in text and hashlib.sha256(g["token"].encode()).hexdigest() in text
    d.stop()
    d2 = Tipd(home).start()
    try:
        tipctl(home, "login", "work")
        assert boto3_key(sdk_env(home, url(home, "work"), g["token_file"])).returncode == 0
    finally:
        d2.stop()


def test_rotated_grant_token_replaces_the_file_and_the_old_one_dies(two):
    home, _d = two
    g = make_grant(home, "box", "work")
    old = g["token"]
    r = json.loads(tipctl(home, "grant", "rotate", "box", "--json").stdout)
    assert r["token"] != old and Path(r["token_file"]).read_text() == r["token"]
    assert boto3_key(sdk_env(home, url(home, "work"), r["token_file"])).returncode == 0
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", home.port, timeout=10)
    conn.request("GET", "/v1/credentials/work", headers={"Authorization": old})
    assert conn.getresponse().status == 401


def test_a_grant_made_with_dir_is_rotated_into_that_dir_and_its_docker_flags_mount_it(two, tmp_path):
    """`grant rotate` used to write the new token to the default directory whatever --dir the grant was made with:
    the container, mounting that --dir, kept the dead token. tipd now records the directory."""
    home, _d = two
    box = tmp_path / "box-token"
    made = json.loads(tipctl(home, "grant", "box", "--profile", "work", "--dir", str(box), "--json").stdout)
    assert made["token_dir"] == str(box) and (box / "token").read_text() == made["token"]
    r = json.loads(tipctl(home, "grant", "rotate", "box", "--json").stdout)
    assert r["token_file"] == str(box / "token") and (box / "token").read_text() == r["token"] != made["token"]
    assert boto3_key(sdk_env(home, url(home, "work"), r["token_file"])).returncode == 0
    assert not (home.state_dir / "grants" / "box").exists()
    flags = tipctl(home, "grant", "docker-flags", "box", "--profile", "work").stdout
    assert f"{box}:" in flags
    assert f"token in {box}" in tipctl(home, "grant", "list").stdout


def test_grant_cli_errors_are_sentences(two):
    home, _d = two
    for args, words in ((["grant", "Bad Name!", "--profile", "work"], "lowercase"),
                        (["grant", "x", "--profile", "nope"], "no profile named"),
                        (["grant", "x", "--profile", "work", "--ttl", "forever"], "not a duration"),
                        (["grant", "x"], "--profile"),
                        (["grant", "revoke", "ghost"], "no grant named")):
        r = tipctl(home, *args, check=False)
        assert r.returncode == 1 and words in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
