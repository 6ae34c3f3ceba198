"""S3 Access Grants end to end: the real tipd signed in through the real IdP asks the fake's GetDataAccess with
its identity-enhanced session; the real aws CLI reads an object from moto's S3 with the grant's credentials."""
from __future__ import annotations

import json
import re
import subprocess
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.support.stack import aws_cli, tipctl

pytestmark = pytest.mark.acceptance
ALICE_ID = "9067e4a2-alice"
BUCKET = "tip-data"
SECRET_BYTES = b"rows the grant lets alice read\n"


@pytest.fixture
def grants(fake):
    fake.access_grants.clear()
    yield fake.access_grants
    fake.access_grants.clear()


@pytest.fixture
def data(moto):
    import boto3

    s3 = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="prefix/obj", Body=SECRET_BYTES)
    s3.put_object(Bucket=BUCKET, Key="prefix/sub/obj2", Body=b"deeper\n")
    s3.put_object(Bucket=BUCKET, Key="private/obj", Body=b"not granted\n")
    yield s3
    for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        s3.delete_object(Bucket=BUCKET, Key=o["Key"])
    s3.delete_bucket(Bucket=BUCKET)


@pytest.fixture
def alice(home, tipd, grants, data, moto):
    tipctl(home, "login")
    home.moto_url = moto.url
    grants.grant(ALICE_ID, f"s3://{BUCKET}/prefix/*", "READ")
    return home


def with_grant_env(home, location: str, command: str) -> subprocess.CompletedProcess[bytes]:
    """A shell the way a user runs it: eval the exports for one location, then a command. S3 itself is moto's,
    reached directly (the AWS fake only answers what moto lacks)."""
    env = dict(home.env, AWS_ENDPOINT_URL_S3=home.moto_url)
    return subprocess.run(["bash", "-c", f'set -e; eval "$(tipctl s3ag env {location})"; {command}'], env=env,
                          capture_output=True, timeout=120)


def endpoint(home, query: str, token: bool = True) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(f"http://127.0.0.1:{home.port}/v1/s3ag/work?{query}",
                                 headers={"Authorization": home.token()} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_the_aws_cli_reads_an_object_with_the_grant_and_cached_grants_cost_no_call(alice, fake, grants, moto):
    fake.clear_calls()
    moto.start_recording()
    r = with_grant_env(alice, f"s3://{BUCKET}/prefix/", f"{aws_cli()} s3 cp s3://{BUCKET}/prefix/obj -")
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == SECRET_BYTES
    assert fake.count("GetDataAccess") == 1
    asked = grants.requests[0]
    assert asked["user"] == ALICE_ID and asked["outcome"] == "granted"  # as alice, from her enhanced session
    assert asked["target"] == f"s3://{BUCKET}/prefix/" and asked["permission"] == "READ"

    # the object was read with the grant's credentials, not with the identity-enhanced session
    grant_key = json.loads(tipctl(alice, "s3ag", "credential-process", f"s3://{BUCKET}/prefix/").stdout)["AccessKeyId"]
    enhanced_key = json.loads(tipctl(alice, "credential-process").stdout)["AccessKeyId"]
    reads = [e for e in moto.recorded() if e["method"] == "GET" and e["path"] == f"/{BUCKET}/prefix/obj"]
    assert reads and {e["access_key_id"] for e in reads} == {grant_key} and grant_key != enhanced_key

    # another process, the same location: from memory
    r = with_grant_env(alice, f"s3://{BUCKET}/prefix/", f"{aws_cli()} s3 cp s3://{BUCKET}/prefix/obj -")
    assert r.returncode == 0 and r.stdout == SECRET_BYTES
    # a narrower path: the grant's scope (s3://tip-data/prefix/*) covers it
    r = with_grant_env(alice, f"s3://{BUCKET}/prefix/sub/", f"{aws_cli()} s3 cp s3://{BUCKET}/prefix/sub/obj2 -")
    assert r.returncode == 0 and r.stdout == b"deeper\n", r.stderr.decode()
    assert fake.count("GetDataAccess") == 1

    listing = json.loads(tipctl(alice, "s3ag", "list", "--json").stdout)["grants"]
    assert len(listing) == 1
    g = listing[0]
    assert g["target"] == f"s3://{BUCKET}/prefix/" and g["matched_grant_target"] == f"s3://{BUCKET}/prefix/*"
    assert g["permission"] == "READ" and g["expires"].endswith("Z")
    assert g["also_serves"] == [f"s3://{BUCKET}/prefix/sub/"]
    assert "SecretAccessKey" not in json.dumps(listing) and grant_key not in json.dumps(listing)
    table = tipctl(alice, "s3ag", "list").stdout
    assert f"s3://{BUCKET}/prefix/" in table and f"s3://{BUCKET}/prefix/*" in table
    assert re.search(r"\(in 5\d min\)", table), table  # 1 h credentials, just asked


def test_credential_process_serves_the_grant_to_a_profile_in_aws_config(alice):
    cfg = alice.dir / "aws-config"
    cfg.write_text(f"[profile data]\ncredential_process = tipctl s3ag credential-process s3://{BUCKET}/prefix/ "
                   "--permission READ\nregion = us-east-1\n")
    r = subprocess.run([aws_cli(), "s3", "cp", f"s3://{BUCKET}/prefix/obj", "-", "--profile", "data"],
                       env=dict(alice.env, AWS_CONFIG_FILE=str(cfg), AWS_ENDPOINT_URL_S3=alice.moto_url),
                       capture_output=True, timeout=120)
    assert r.returncode == 0 and r.stdout == SECRET_BYTES, r.stderr.decode()
    out = json.loads(tipctl(alice, "s3ag", "credential-process", f"s3://{BUCKET}/prefix/").stdout)
    assert out["Version"] == 1 and out["SessionToken"] and out["Expiration"].endswith("Z")


def test_no_grant_is_a_clear_refusal_through_the_endpoint_and_the_cli(alice, fake, grants):
    fake.clear_calls()
    status, body = endpoint(alice, f"target=s3%3A%2F%2F{BUCKET}%2Fprivate%2F&permission=READ")
    assert status == 403 and body["code"] == "AccessDenied"
    assert "no S3 Access Grant of yours covers this target" in body["message"]
    assert grants.requests[-1]["outcome"] == "AccessDenied"

    r = tipctl(alice, "s3ag", "credential-process", f"s3://{BUCKET}/private/", "--permission", "READ", check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("tipctl: S3 Access Grants GetDataAccess (READ s3://tip-data/private/) failed: "
                               "AccessDenied - no S3 Access Grant of yours covers this target"), r.stderr
    # a READ grant does not give WRITE
    r = tipctl(alice, "s3ag", "credential-process", f"s3://{BUCKET}/prefix/", "--permission", "WRITE", check=False)
    assert r.returncode == 1 and "AccessDenied" in r.stderr
    # the refusal is remembered briefly: asking again right away costs no call
    assert fake.count("GetDataAccess") == 2
    endpoint(alice, f"target=s3%3A%2F%2F{BUCKET}%2Fprivate%2F&permission=READ")
    assert fake.count("GetDataAccess") == 2

    # and an SDK pointed at a location without a grant fails with the endpoint's answer, not with data
    sdk = with_grant_env(alice, f"s3://{BUCKET}/private/", f"{aws_cli()} s3 cp s3://{BUCKET}/private/obj -")
    assert sdk.returncode != 0 and sdk.stdout == b"" and b"403" in sdk.stderr


def test_bad_input_and_a_missing_token_are_refused(alice, fake):
    fake.clear_calls()
    status, body = endpoint(alice, f"target=s3%3A%2F%2F{BUCKET}%2Fprefix%2F&permission=READ", token=False)
    assert status == 401 and body["code"] == "Unauthorized"
    status, body = endpoint(alice, "target=s3%3A%2F%2Fb%2Fp&permission=READ")
    assert status == 400 and "is not a bucket name" in body["message"]
    status, body = endpoint(alice, f"target=s3%3A%2F%2F{BUCKET}%2Fprefix%2F&permission=READ&duration=60")
    assert status == 400 and "from 900 to 43200" in body["message"]
    r = tipctl(alice, "s3ag", "env", "https://example.com/x", check=False)
    assert r.returncode == 1 and r.stderr == "tipctl: the target must be an S3 URL: s3://bucket[/prefix or key]\n"
    assert fake.count("GetDataAccess") == 0


def test_the_fake_grants_only_to_identity_enhanced_sessions(fake, grants, moto):
    """The harness is strict: credentials without an Identity Center context get AccessDenied even where a
    grant exists, so the tests above prove tipd asked with the identity-enhanced session."""
    import boto3
    from botocore.exceptions import ClientError

    from tipd.exchange import _no_account_label_on_ip

    grants.grant(ALICE_ID, f"s3://{BUCKET}/*", "READ")
    sts = boto3.client("sts", endpoint_url=fake.url, region_name="us-east-1", aws_access_key_id="testing",
                       aws_secret_access_key="testing")
    plain = sts.assume_role(RoleArn="arn:aws:iam::123456789012:role/plain", RoleSessionName="plain")["Credentials"]
    s3c = boto3.client("s3control", endpoint_url=fake.url, region_name="us-east-1",
                       aws_access_key_id=plain["AccessKeyId"], aws_secret_access_key=plain["SecretAccessKey"],
                       aws_session_token=plain["SessionToken"])
    s3c.meta.events.register("before-call.s3-control.GetDataAccess", _no_account_label_on_ip)
    with pytest.raises(ClientError) as e:
        s3c.get_data_access(AccountId="123456789012", Target=f"s3://{BUCKET}/x", Permission="READ")
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    assert "not an identity-enhanced session" in e.value.response["Error"]["Message"]
