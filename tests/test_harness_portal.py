"""Fast tests of the AWS fake's portal API and console federation endpoint (tests/support/fake_portal.py), with
real boto3 clients: each behaviour the fake emulates, so a fake that drops one fails here."""
from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.aws import ACCOUNT_ACCESS, AppConfig, FakeAWS, FakeConfig
from tests.support.harness import ACCOUNT, ALICE, ALICE_ID, APP, AUD, OTHER_APP, REGION, bootstrap, client, idc_token

APP_NO_SCOPE = OTHER_APP  # without sso:account:access
PROD, DEV = "111111111111", "222222222222"


@pytest.fixture
def fake(moto, issuer):
    config = FakeConfig(
        applications={
            APP: AppConfig(issuer_url=issuer.url, audiences=[AUD],
                           scopes=["sts:identity_context", "openid", "aws", ACCOUNT_ACCESS]),
            APP_NO_SCOPE: AppConfig(issuer_url=issuer.url, audiences=[AUD]),
        },
        users={ALICE: ALICE_ID}, region=REGION)
    with FakeAWS(moto.url, config) as f:
        f.portal.account(PROD, "prod", "prod@example.com")
        f.portal.account(DEV, "dev", "dev@example.com")
        f.portal.assign(ALICE_ID, PROD, "AdministratorAccess", "ReadOnly")
        f.portal.assign(ALICE_ID, DEV, "Developer")
        yield f
    assert f.errors == []


def _token(fake, issuer, app=APP):
    return idc_token(fake, issuer, app)


def _code(excinfo):
    return excinfo.value.response["Error"]["Code"], excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"]


def _role_creds(fake, token, account, role):
    c = client(fake, "sso").get_role_credentials(accessToken=token, accountId=account, roleName=role)
    c = c["roleCredentials"]
    return {"AccessKeyId": c["accessKeyId"], "SecretAccessKey": c["secretAccessKey"],
            "SessionToken": c["sessionToken"], "expiration": c["expiration"]}


# --- the scope in CreateTokenWithIAM -------------------------------------------------------------------

def test_the_scope_comes_back_only_when_the_application_has_it(fake, issuer):
    assert ACCOUNT_ACCESS in _token(fake, issuer)["scope"]
    assert ACCOUNT_ACCESS not in _token(fake, issuer, APP_NO_SCOPE)["scope"]


def test_an_account_instance_never_grants_account_access(fake, issuer):
    fake.config.instance_kind = "account"
    r = _token(fake, issuer)
    assert ACCOUNT_ACCESS not in r["scope"] and "sts:identity_context" in r["scope"]
    with pytest.raises(ClientError) as e:
        client(fake, "sso").list_accounts(accessToken=r["accessToken"])
    assert _code(e) == ("UnauthorizedException", 401)


# --- the portal API ----------------------------------------------------------------------------------

def test_list_accounts_and_roles_with_pagination(fake, issuer):
    token = _token(fake, issuer)["accessToken"]
    sso = client(fake, "sso")
    accounts = [a for page in sso.get_paginator("list_accounts").paginate(accessToken=token,
                                                                           PaginationConfig={"PageSize": 1})
                for a in page["accountList"]]
    assert accounts == [{"accountId": PROD, "accountName": "prod", "emailAddress": "prod@example.com"},
                        {"accountId": DEV, "accountName": "dev", "emailAddress": "dev@example.com"}]
    first = sso.list_accounts(accessToken=token, maxResults=1)
    assert len(first["accountList"]) == 1 and first["nextToken"]
    roles = [r["roleName"] for page in sso.get_paginator("list_account_roles").paginate(
        accessToken=token, accountId=PROD, PaginationConfig={"PageSize": 1}) for r in page["roleList"]]
    assert roles == ["AdministratorAccess", "ReadOnly"]
    assert sso.list_account_roles(accessToken=token, accountId="333333333333")["roleList"] == []
    assert fake.count("ListAccounts", service="sso") >= 3


def test_role_credentials_are_usable_and_distinct_per_account_and_role(fake, issuer):
    token = _token(fake, issuer)["accessToken"]
    arns = set()
    for account, role in ((PROD, "AdministratorAccess"), (PROD, "ReadOnly"), (DEV, "Developer")):
        creds = _role_creds(fake, token, account, role)
        assert creds["expiration"] > 10**12  # epoch milliseconds
        who = client(fake, "sts", creds).get_caller_identity()
        assert who["Account"] == account
        assert f"AWSReservedSSO_{role}_" in who["Arn"] and who["Arn"].endswith("/" + ALICE)
        arns.add(who["Arn"])
    assert len(arns) == 3


def test_permission_set_session_duration(fake, issuer):
    import time

    fake.portal.session_durations["ReadOnly"] = 8 * 3600
    token = _token(fake, issuer)["accessToken"]
    creds = _role_creds(fake, token, PROD, "ReadOnly")
    assert abs(creds["expiration"] / 1000 - (time.time() + 8 * 3600)) < 120


def test_refusals(fake, issuer):
    sso = client(fake, "sso")
    good = _token(fake, issuer)["accessToken"]
    without = _token(fake, issuer, APP_NO_SCOPE)["accessToken"]
    with pytest.raises(ClientError) as e:
        sso.list_accounts(accessToken="aoa-not-issued-here")
    assert _code(e) == ("UnauthorizedException", 401)
    assert e.value.response["Error"]["Message"] == "Session token not found or invalid"
    with pytest.raises(ClientError) as e:
        sso.list_accounts(accessToken=without)
    assert _code(e) == ("UnauthorizedException", 401)
    fake.portal.scope_error = "ForbiddenException"
    with pytest.raises(ClientError) as e:
        sso.get_role_credentials(accessToken=without, accountId=PROD, roleName="ReadOnly")
    assert _code(e) == ("ForbiddenException", 403)
    with pytest.raises(ClientError) as e:
        sso.get_role_credentials(accessToken=good, accountId=DEV, roleName="AdministratorAccess")
    assert _code(e) == ("ForbiddenException", 403) and e.value.response["Error"]["Message"] == "No access"
    with pytest.raises(ClientError) as e:
        sso.list_accounts(accessToken=good, maxResults=101)
    assert _code(e) == ("InvalidRequestException", 400)
    fake.inject("ListAccounts", "TooManyRequestsException", status=429)
    with pytest.raises(ClientError) as e:
        sso.list_accounts(accessToken=good)
    assert _code(e) == ("TooManyRequestsException", 429)
    assert sso.list_accounts(accessToken=good)["accountList"]


def test_the_bearer_token_stays_out_of_the_call_log(fake, issuer):
    token = _token(fake, issuer)["accessToken"]
    _role_creds(fake, token, PROD, "ReadOnly")
    assert token not in repr(fake.calls)


# --- the federation endpoint --------------------------------------------------------------------------

def _federation(fake, **params):
    url = fake.url + "/federation?" + urllib.parse.urlencode(params)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kw):
            return None

    try:
        with urllib.request.build_opener(NoRedirect).open(url, timeout=10) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


def _session(creds):
    return json.dumps({"sessionId": creds["AccessKeyId"], "sessionKey": creds["SecretAccessKey"],
                       "sessionToken": creds["SessionToken"]})


def test_signin_token_and_login_redirect(fake, issuer):
    creds = _role_creds(fake, _token(fake, issuer)["accessToken"], PROD, "ReadOnly")
    status, body, _ = _federation(fake, Action="getSigninToken", Session=_session(creds), SessionDuration="43200")
    assert status == 200
    token = json.loads(body)["SigninToken"]
    assert token in fake.portal.issued_signin_tokens
    dest = "https://console.aws.amazon.com/s3/home?region=eu-west-1"
    status, _, headers = _federation(fake, Action="login", Issuer="tipd", Destination=dest, SigninToken=token)
    assert status == 302 and headers["Location"] == dest
    assert _federation(fake, Action="login", Issuer="tipd", Destination=dest, SigninToken="forged")[0] == 400
    assert token not in repr(fake.calls) and creds["SecretAccessKey"] not in repr(fake.calls)


def test_signin_token_refusals(fake, issuer):
    creds = _role_creds(fake, _token(fake, issuer)["accessToken"], PROD, "ReadOnly")
    assert _federation(fake, Action="getSigninToken", Session=_session(creds), SessionDuration="899")[0] == 400
    wrong = dict(creds, SecretAccessKey="not-the-secret")
    assert _federation(fake, Action="getSigninToken", Session=_session(wrong))[0] == 400
    assert _federation(fake, Action="getSigninToken", Session="{}")[0] == 400


def test_role_chained_credentials_take_no_session_duration(fake, issuer):
    boot = bootstrap(fake, issuer)  # temporary credentials: an AssumeRole made with them is role chaining
    chained = client(fake, "sts", boot).assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/other",
                                                     RoleSessionName="chained")["Credentials"]
    assert _federation(fake, Action="getSigninToken", Session=_session(chained), SessionDuration="3600")[0] == 400
    status, body, _ = _federation(fake, Action="getSigninToken", Session=_session(chained))
    assert status == 200 and json.loads(body)["SigninToken"]


def test_an_expired_token_is_unauthorized(fake, issuer):
    fake.config.applications[APP].access_token_ttl = 0  # expired the moment it is issued
    token = _token(fake, issuer)["accessToken"]
    with pytest.raises(ClientError) as e:
        client(fake, "sso").list_accounts(accessToken=token)
    assert _code(e) == ("UnauthorizedException", 401)


def test_the_aws_cli_speaks_to_the_portal_fake(fake, issuer):
    import os
    import subprocess

    from tests.support.stack import aws_cli

    token = _token(fake, issuer)["accessToken"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL=fake.url, AWS_DEFAULT_REGION=REGION, AWS_EC2_METADATA_DISABLED="true")

    def aws(*args: str) -> dict[str, Any]:
        r = subprocess.run([aws_cli(), "sso", *args, "--access-token", token, "--output", "json"], env=env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        answer: dict[str, Any] = json.loads(r.stdout)
        return answer

    assert [a["accountId"] for a in aws("list-accounts")["accountList"]] == [PROD, DEV]
    assert [r["roleName"] for r in aws("list-account-roles", "--account-id", DEV)["roleList"]] == ["Developer"]
    creds = aws("get-role-credentials", "--account-id", DEV, "--role-name", "Developer")["roleCredentials"]
    assert creds["accessKeyId"] and creds["expiration"] > 10**12
