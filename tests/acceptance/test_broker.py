"""The broker end to end: real tipd and tipctl processes, the real IdP, moto and the fake; real SDK clients."""
from __future__ import annotations

import json
import stat
import subprocess

import pytest

from tests.support.stack import ENHANCED_ROLE, ROOT, Tipd, aws_cli, in_tipd_env, status, tipctl

pytestmark = pytest.mark.acceptance
ALICE_ID = "9067e4a2-alice"

BOTO3_WHOAMI = ("python -c 'import boto3, json; "
                "print(json.dumps(boto3.client(\"sts\").get_caller_identity()))'")


def login(home, *args, **kw):
    return tipctl(home, "login", *args, **kw)


def test_login_then_every_sdk_gets_identity_enhanced_credentials(home, tipd, idp, moto, fake):
    moto.start_recording()
    fake.clear_calls()
    r = login(home)
    assert "alice@example.com" in r.stdout and ALICE_ID in r.stdout, r.stdout
    # the sign-in went through the real browser hook, and tipctl's loopback receiver accepted the callback
    visit = json.loads(home.browser_log.read_text().splitlines()[-1])
    assert visit["outcome"] == "delivered" and visit["callback_status"] == 200
    assert visit["callback_path"] == "/callback" and "code" in visit["callback_params"]

    expected_arn = f"assumed-role/{ENHANCED_ROLE.split('/')[-1]}/tip-{ALICE_ID}"
    boto = in_tipd_env(home, BOTO3_WHOAMI)
    assert boto.returncode == 0, boto.stderr
    assert json.loads(boto.stdout)["Arn"].endswith(expected_arn)

    cli = in_tipd_env(home, f"{aws_cli()} sts get-caller-identity --output json")
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["Arn"].endswith(expected_arn)

    node = in_tipd_env(home, f"node {ROOT / 'tests' / 'node' / 'whoami.mjs'}")
    assert node.returncode == 0, node.stderr
    assert json.loads(node.stdout)["Arn"].endswith(expected_arn)

    # moto's recorder: AssumeRole carried the Identity Center context of the signed-in user
    assume = [e for e in moto.recorded() if e["action"] == "AssumeRole"]
    assert len(assume) == 1
    p = assume[0]["params"]
    assert p["RoleArn"] == ENHANCED_ROLE and p["RoleSessionName"] == f"tip-{ALICE_ID}"
    assert p["ProvidedContexts.member.1.ProviderArn"] == "arn:aws:iam::aws:contextProvider/IdentityCenter"
    assert fake.identity_context_user(p["ProvidedContexts.member.1.ContextAssertion"]) == ALICE_ID
    # the chain: one of each, CreateTokenWithIAM signed with the bootstrap session, AssumeRole too
    arwwi = [c for c in fake.calls if c.operation == "AssumeRoleWithWebIdentity"]
    ctwi = [c for c in fake.calls if c.operation == "CreateTokenWithIAM"]
    assert len(arwwi) == 1 and arwwi[0].access_key_id is None  # unsigned: no ambient credentials
    assert len(ctwi) == 1 and ctwi[0].access_key_id in fake.bootstrap_access_keys()
    assert ctwi[0].params["grantType"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"

    st = status(home)["profiles"][0]
    assert st["state"] == "fresh" and st["user"] == "alice@example.com" and st["identity_center_user_id"] == ALICE_ID


def test_credential_process_prints_version_1(home, tipd):
    login(home)
    out = json.loads(tipctl(home, "credential-process").stdout)
    assert out["Version"] == 1 and out["AccessKeyId"].startswith("ASIA") and out["SessionToken"]
    assert out["Expiration"].endswith("Z")
    cfg = home.dir / "aws-config"
    cfg.write_text("[profile tip]\ncredential_process = tipctl credential-process work\n"
                   "region = us-east-1\n")
    r = subprocess.run([aws_cli(), "sts", "get-caller-identity", "--profile", "tip"],
                       env=dict(home.env, AWS_CONFIG_FILE=str(cfg)), capture_output=True, text=True)
    assert r.returncode == 0 and f"tip-{ALICE_ID}" in r.stdout, r.stderr


def test_restart_serves_again_without_login_and_never_replays_a_token(home, tipd, fake, idp):
    login(home)
    assert tipd.stop() == 0
    fake.clear_calls()
    again = Tipd(home).start()
    try:
        boto = in_tipd_env(home, BOTO3_WHOAMI)
        assert boto.returncode == 0, boto.stderr + again.output()
        assert f"tip-{ALICE_ID}" in boto.stdout
        assert fake.count("CreateTokenWithIAM") == 1 and fake.count("AssumeRole") == 1
    finally:
        assert again.stop() == 0
    # Identity Center refuses a replayed assertion; it never had to
    assert not [c for c in fake.calls if c.error == "InvalidGrantException"]


def test_files_and_socket_are_private(home, tipd):
    token = home.token_file.read_bytes()
    assert len(token) >= 43 and not token.endswith(b"\n")  # 256 bits, no newline (it crashes botocore)
    assert stat.S_IMODE(home.token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(home.socket.stat().st_mode) == 0o600
    assert stat.S_IMODE(home.socket.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(home.state_dir.stat().st_mode) == 0o700
    login(home)
    stored = home.state_dir / "tokens" / "work.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600 and "refresh_token" in json.loads(stored.read_text())


def test_not_signed_in_and_unknown_profile_say_what_to_do(home, tipd):
    import urllib.error
    import urllib.request

    def get(path):
        req = urllib.request.Request(f"http://127.0.0.1:{home.port}{path}", headers={"Authorization": home.token()})
        try:
            with urllib.request.urlopen(req) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    assert get("/v1/credentials/work") == (401, {"code": "LoginRequired",
                                                "message": "not signed in: run `tipctl login work`"})
    code, body = get("/v1/credentials/nope")
    assert code == 404 and body["code"] == "UnknownProfile"
    st = status(home)["profiles"][0]
    assert st["state"] == "signed-out"


def test_idp_refusal_wrong_state_and_timeout_are_sentences(home, tipd):
    r = login(home, check=False, env={"TIPD_TEST_BROWSER_MODE": "deny"})
    assert r.returncode == 1 and "The IdP refused the sign-in: access_denied" in r.stderr
    assert "Traceback" not in r.stderr
    r = login(home, check=False, env={"TIPD_TEST_BROWSER_MODE": "bad-state"})
    assert r.returncode == 1 and "wrong state" in r.stderr
    r = login(home, "--timeout", "1", check=False, env={"TIPD_TEST_BROWSER_MODE": "nothing"})
    assert r.returncode == 1 and "no sign-in arrived within 1 s" in r.stderr
    r = login(home, check=False, env={"TIPD_TEST_BROWSER_MODE": "favicon-first"})
    assert r.returncode == 0, r.stderr


def test_unassigned_user_gets_the_likely_fix(home, tipd, fake):
    from tests.support.stack import APP_ARN

    app = fake.config.applications[APP_ARN]
    app.assigned = {"someone-else"}
    try:
        r = login(home, check=False)
    finally:
        app.assigned = None
    assert r.returncode == 1
    assert "AccessDeniedException" in r.stderr and "assigned to the application" in r.stderr
    assert status(home)["profiles"][0]["state"] == "login-required"


def test_logout_forgets_and_revokes(home, tipd, idp):
    login(home)
    stored = home.state_dir / "tokens" / "work.json"
    refresh_token = json.loads(stored.read_text())["refresh_token"]
    r = tipctl(home, "logout")
    assert "revoked" in r.stdout
    assert not stored.exists()
    assert status(home)["profiles"][0]["state"] == "signed-out"
    import urllib.error
    import urllib.parse
    import urllib.request

    form = urllib.parse.urlencode({"grant_type": "refresh_token", "refresh_token": refresh_token,
                                   "client_id": idp.client_id}).encode()
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(idp.discovery()["token_endpoint"], form)
    assert json.loads(e.value.read())["error"] == "invalid_grant"


def test_daemon_never_resolves_ambient_credentials(home, idp, fake):
    """Even with the container variables pointing at a trap (or at itself), the daemon never asks."""
    import http.server
    import threading

    hits = []

    class Trap(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(500)
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trap)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    d = Tipd(home, env={"AWS_CONTAINER_CREDENTIALS_FULL_URI": f"http://127.0.0.1:{srv.server_port}/creds",
                        "AWS_CONTAINER_AUTHORIZATION_TOKEN": "x", "AWS_PROFILE": "nonexistent"}).start()
    try:
        login(home)
        assert status(home)["profiles"][0]["state"] == "fresh"
    finally:
        d.stop()
        srv.shutdown()
    assert hits == []


def test_bad_config_is_a_sentence_not_a_traceback(home):
    home.config_file.write_text("[profiles.work]\nissuer = 'http://idp.example.com'\n")
    r = subprocess.run([str(ROOT / ".venv" / "bin" / "tipd"), "--config", str(home.config_file)], env=home.env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert str(home.config_file) in r.stderr and "profiles.work.issuer" in r.stderr


def test_tipctl_without_daemon_says_how_to_start_it(home):
    r = tipctl(home, "login", check=False)
    # 3, as `tipctl status` says it: a script can tell "start tipd" from any other failure
    assert r.returncode == 3 and "tipd is not running" in r.stderr and "Traceback" not in r.stderr


def test_env_prints_exports(home):
    out = tipctl(home, "env").stdout
    assert f"export AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:{home.port}/v1/credentials/work" in out
    assert f"export AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE={home.token_file}" in out
    env = json.loads(tipctl(home, "env", "--json").stdout)
    assert env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] == str(home.token_file)
