"""Fast tests of the AWS test harness (tests/support/aws.py) with real boto3 / aiobotocore clients."""
from __future__ import annotations

import base64
import datetime as dt
import json
import time
from typing import Any

import jwt
import pytest
from botocore import UNSIGNED
from botocore.exceptions import ClientError

from tests.support.aws import (
    IDENTITY_CENTER_PROVIDER_ARN,
    JWT_BEARER,
    AppConfig,
    FakeAWS,
    FakeConfig,
    JwtIssuer,
    MotoServer,
    sha256_hex,
)
from tests.support.harness import ACCOUNT, ALICE, ALICE_ID, APP, AUD, OIDC_ROLE, OTHER_APP, REGION, client

APP_NO_REFRESH = OTHER_APP  # without the refresh_token grant
APP_ASSIGNED = f"arn:aws:sso::{ACCOUNT}:application/ssoins-1111222233334444/apl-9999888877776666"
ENHANCED_ROLE = f"arn:aws:iam::{ACCOUNT}:role/tipd-identity-enhanced"
BOB, BOB_ID = "bob@example.com", "9067a0d1f2-bob"


@pytest.fixture(scope="module")
def moto():
    """A moto of this module's own (not the session's): its tests reset it and record every call."""
    with MotoServer() as server:
        yield server


@pytest.fixture
def fake(moto, issuer):
    moto.reset()
    moto.start_recording()
    config = FakeConfig(
        applications={
            APP: AppConfig(issuer_url=issuer.url, audiences=["other", AUD], access_token_ttl=1800),
            APP_NO_REFRESH: AppConfig(issuer_url=issuer.url, audiences=[AUD], refresh_token_grant=False),
            APP_ASSIGNED: AppConfig(issuer_url=issuer.url, audiences=[AUD], assigned={BOB_ID}),
        },
        users={ALICE: ALICE_ID, BOB: BOB_ID},
        region=REGION,
    )
    with FakeAWS(moto.url, config) as f:
        yield f
    assert f.errors == []


def _bootstrap(fake, token, duration=900):
    sts = client(fake, "sts")
    return sts.assume_role_with_web_identity(
        RoleArn=OIDC_ROLE, RoleSessionName="tipd-alice", WebIdentityToken=token, DurationSeconds=duration,
    )["Credentials"]


def _exchange(fake, creds, assertion, app=APP):
    oidc = client(fake, "sso-oidc", creds)
    return oidc.create_token_with_iam(clientId=app, grantType=JWT_BEARER, assertion=assertion)


def _tamper(token):
    head, body, sig = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[0] ^= 0xFF
    return ".".join([head, body, base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()])


def _error(excinfo):
    return excinfo.value.response["Error"]["Code"]


def _answer(excinfo: pytest.ExceptionInfo[ClientError]) -> dict[str, Any]:
    """The error's whole parsed answer: botocore keeps sso-oidc's OAuth `error` / `error_description` beside `Error`
    (the TypedDict of botocore-stubs names only the latter)."""
    return dict(excinfo.value.response)


# --- STS pass-through ------------------------------------------------------------------------------


def test_sts_passes_through_to_moto_and_is_logged(fake, moto, issuer):
    token = issuer.token(aud=AUD, email=ALICE)
    before = dt.datetime.now(dt.UTC)
    creds = _bootstrap(fake, token, duration=15)  # tiny duration: parameter_validation=False on the client
    after = dt.datetime.now(dt.UTC)
    # 15 s from when moto answered, which is somewhere in [before, after]: a loaded machine's first STS call can
    # take many seconds (moto loads the service on first use; a CI run saw 12 s), so bound each side by its own end
    expires = creds["Expiration"]
    assert (expires - before).total_seconds() >= 15 - 2
    assert (expires - after).total_seconds() <= 15 + 2

    sts = client(fake, "sts", creds)
    enhanced = sts.assume_role(
        RoleArn=ENHANCED_ROLE, RoleSessionName="alice", DurationSeconds=30,
        ProvidedContexts=[{"ProviderArn": IDENTITY_CENTER_PROVIDER_ARN, "ContextAssertion": "ctx-blob"}],
    )["Credentials"]
    assert enhanced["AccessKeyId"] != creds["AccessKeyId"]

    arwwi, assume = fake.calls
    assert (arwwi.service, arwwi.operation, arwwi.access_key_id, arwwi.status) == (
        "sts", "AssumeRoleWithWebIdentity", None, 200)
    assert arwwi.params["RoleArn"] == OIDC_ROLE and arwwi.params["DurationSeconds"] == "15"
    assert "WebIdentityToken" not in arwwi.params
    assert arwwi.params["WebIdentityToken_sha256"] == sha256_hex(token)
    assert (assume.service, assume.operation, assume.access_key_id) == ("sts", "AssumeRole", creds["AccessKeyId"])
    assert assume.params["ProvidedContexts.member.1.ProviderArn"] == IDENTITY_CENTER_PROVIDER_ARN
    assert assume.params["ProvidedContexts.member.1.ContextAssertion"] == "ctx-blob"
    assert assume.params["RoleSessionName"] == "alice" and assume.params["DurationSeconds"] == "30"
    assert fake.count("AssumeRole") == 1 and fake.bootstrap_access_keys() == {creds["AccessKeyId"]}

    recorded = moto.recorded()
    assert [r["action"] for r in recorded] == ["AssumeRoleWithWebIdentity", "AssumeRole"]
    assert recorded[0]["service"] == "sts" and recorded[0]["access_key_id"] is None
    assert recorded[0]["params"]["WebIdentityToken"] == token  # forwarded unchanged
    assert recorded[1]["access_key_id"] == creds["AccessKeyId"]
    assert recorded[1]["params"]["ProvidedContexts.member.1.ContextAssertion"] == "ctx-blob"

    fake.clear_calls()
    assert fake.calls == []


# --- CreateTokenWithIAM ----------------------------------------------------------------------------


def test_create_token_with_iam_happy_path_and_full_chain(fake, issuer):
    assertion = issuer.token(aud=AUD, email=ALICE)
    creds = _bootstrap(fake, issuer.token(aud=AUD, email=ALICE))
    resp = _exchange(fake, creds, assertion)

    assert resp["tokenType"] == "Bearer" and resp["expiresIn"] == 1800
    assert resp["accessToken"] and resp["refreshToken"]
    assert resp["issuedTokenType"] == "urn:ietf:params:oauth:token-type:refresh_token"
    assert "sts:identity_context" in resp["scope"]
    context = resp["awsAdditionalDetails"]["identityContext"]
    assert fake.identity_context_user(context) == ALICE_ID

    claims = jwt.decode(resp["idToken"], key=jwt.PyJWKSet.from_dict(fake.idc_jwks()).keys[0].key,
                        algorithms=["RS256"], audience=APP, issuer=fake.idc_issuer)
    assert claims["sub"] == ALICE_ID and claims["sts:identity_context"] == context and claims["sts:audit_context"]
    assert fake.idc_issuer.startswith("https://identitycenter.amazonaws.com/ssoins-")
    assert len(fake.idc_issuer.rsplit("ssoins-", 1)[1]) == 16

    call = next(c for c in fake.calls if c.operation == "CreateTokenWithIAM")
    assert (call.service, call.access_key_id, call.status) == ("sso-oidc", creds["AccessKeyId"], 200)
    assert call.params == {"clientId": APP, "grantType": JWT_BEARER, "assertion_sha256": sha256_hex(assertion)}

    # the last hop of the chain with the context the fake issued
    enhanced = client(fake, "sts", creds).assume_role(
        RoleArn=ENHANCED_ROLE, RoleSessionName="alice",
        ProvidedContexts=[{"ProviderArn": IDENTITY_CENTER_PROVIDER_ARN, "ContextAssertion": context}],
    )["Credentials"]
    assert enhanced["AccessKeyId"]


def test_replayed_assertion_is_refused(fake, issuer):
    creds = _bootstrap(fake, issuer.token(aud=AUD, email=ALICE))
    assertion = issuer.token(aud=AUD, email=ALICE)
    _exchange(fake, creds, assertion)
    with pytest.raises(ClientError) as excinfo:
        _exchange(fake, creds, assertion)
    assert _error(excinfo) == "InvalidGrantException"
    assert _answer(excinfo)["error"] == "invalid_grant"
    assert "already been used" in _answer(excinfo)["error_description"]
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert fake.count("CreateTokenWithIAM", error="InvalidGrantException") == 1


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda iss: iss.token(aud="someone-else", email=ALICE), "aud"),
        (lambda iss: iss.token(aud=AUD, email=ALICE, iss=iss.url + "/other"), "iss"),
        (lambda iss: iss.token(aud=AUD, email=ALICE, iat=int(time.time()) - 600, ttl=300), "expired"),
        (lambda iss: _tamper(iss.token(aud=AUD, email=ALICE)), "signature"),
        (lambda iss: iss.token(aud=AUD, email=ALICE, unpublished=True), "signature"),
        (lambda iss: iss.token(aud=AUD, email=ALICE, unpublished=True, kid=iss.jwks()["keys"][-1]["kid"]), "signature"),
        (lambda iss: iss.token(aud=AUD, email="mallory@example.com"), "no Identity Center user"),
        (lambda iss: iss.token(aud=AUD), "mapped claim"),
        (lambda iss: "not-a-jwt", "well-formed"),
    ],
    ids=["wrong-aud", "wrong-iss", "expired", "tampered", "unknown-kid", "wrong-key", "unmapped", "no-claim",
         "garbage"],
)
def test_bad_assertions_are_invalid_grant(fake, issuer, make, reason):
    creds = _bootstrap(fake, issuer.token(aud=AUD, email=ALICE))
    with pytest.raises(ClientError) as excinfo:
        _exchange(fake, creds, make(issuer))
    assert _error(excinfo) == "InvalidGrantException"
    assert reason in _answer(excinfo)["error_description"]


def test_rotated_issuer_key_is_refetched(fake, issuer):
    creds = _bootstrap(fake, issuer.token(aud=AUD, email=ALICE))
    _exchange(fake, creds, issuer.token(aud=AUD, email=ALICE))
    fetches = fake.jwks_fetches
    issuer.rotate()
    _exchange(fake, creds, issuer.token(aud=AUD, email=ALICE))  # new kid: JWKS fetched again
    assert fake.jwks_fetches == fetches + 1
    _exchange(fake, creds, issuer.token(aud=AUD, email=ALICE))  # cached now
    assert fake.jwks_fetches == fetches + 1


# --- trusted token issuers of the matrix's personas: verified like Identity Center ------------------


@pytest.fixture(scope="module")
def es256_slash():
    """An ES256 issuer whose identifier ends in a slash (Auth0 issuers do: https://TENANT.auth0.com/)."""
    with JwtIssuer("ES256", trailing_slash=True) as iss:
        yield iss


@pytest.fixture
def tti(fake, es256_slash):
    """An application trusting es256_slash, matching users by another claim than email."""
    app = APP.replace("aaaabbbbccccdddd", "eeee000011112222")
    fake.config.applications[app] = AppConfig(issuer_url=es256_slash.url, audiences=["api://tipd", AUD],
                                              claim="preferred_username")
    fake.config.users["alice"] = ALICE_ID
    yield app


def test_es256_aud_array_trailing_slash_issuer_and_another_claim(fake, issuer, es256_slash, tti):
    assert es256_slash.url.endswith("/")
    creds = _bootstrap(fake, issuer.token(aud=AUD, email=ALICE))
    token = es256_slash.token(aud=[AUD, "https://graph.example.com"], extra={"azp": AUD,
                                                                             "preferred_username": "alice"})
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    resp = _exchange(fake, creds, token, app=tti)
    assert fake.identity_context_user(resp["awsAdditionalDetails"]["identityContext"]) == ALICE_ID


def test_access_token_jwt_with_an_api_audience(fake, issuer, es256_slash, tti):
    """An access token in RFC 9068 form (typ at+jwt), its aud an API identifier, no email claim."""
    creds = _bootstrap(fake, issuer.token(aud=AUD, email=ALICE))
    token = es256_slash.token(aud="api://tipd", typ="at+jwt", extra={"client_id": AUD, "scope": "openid",
                                                                     "preferred_username": "alice"})
    resp = _exchange(fake, creds, token, app=tti)
    assert fake.identity_context_user(resp["awsAdditionalDetails"]["identityContext"]) == ALICE_ID


@pytest.mark.parametrize("iss, reason", [
    (lambda url: url.rstrip("/"), "iss does not match"),          # the slash left out
    (lambda url: url + "/", "iss does not match"),                 # one slash too many
    (lambda url: url.upper(), "iss does not match"),               # not byte for byte
], ids=["no-slash", "two-slashes", "case"])
def test_issuer_is_compared_byte_for_byte(fake, issuer, es256_slash, tti, iss, reason):
    creds = _bootstrap(fake, issuer.token(aud=AUD, email=ALICE))
    token = es256_slash.token(aud=AUD, iss=iss(es256_slash.url), extra={"preferred_username": "alice"})
    with pytest.raises(ClientError) as excinfo:
        _exchange(fake, creds, token, app=tti)
    assert _error(excinfo) == "InvalidGrantException" and reason in _answer(excinfo)["error_description"]


def test_a_trusted_token_issuer_url_without_the_slash_is_refused_by_discovery(fake, issuer, es256_slash):
    """The discovery document names the issuer with its slash: a TTI configured without it never verifies."""
    app = APP.replace("aaaabbbbccccdddd", "eeee000011113333")
    fake.config.applications[app] = AppConfig(issuer_url=es256_slash.url.rstrip("/"), audiences=[AUD])
    creds = _bootstrap(fake, issuer.token(aud=AUD, email=ALICE))
    with pytest.raises(ClientError) as excinfo:
        _exchange(fake, creds, es256_slash.token(aud=AUD, iss=es256_slash.url.rstrip("/"), email=ALICE), app=app)
    assert "discovery document names a different issuer" in _answer(excinfo)["error_description"]


def test_unmapped_other_claim_and_nested_claim_paths(fake, issuer, es256_slash, tti):
    creds = _bootstrap(fake, issuer.token(aud=AUD, email=ALICE))
    with pytest.raises(ClientError) as excinfo:  # an email, but the TTI maps preferred_username
        _exchange(fake, creds, es256_slash.token(aud=AUD, email=ALICE), app=tti)
    assert "lacks the mapped claim 'preferred_username'" in _answer(excinfo)["error_description"]
    fake.config.applications[tti].claim = "user.login"
    resp = _exchange(fake, creds, es256_slash.token(aud=AUD, extra={"user": {"login": "alice"}}), app=tti)
    assert fake.identity_context_user(resp["awsAdditionalDetails"]["identityContext"]) == ALICE_ID


def test_unknown_application_is_invalid_client(fake, issuer):
    creds = _bootstrap(fake, issuer.token(aud=AUD, email=ALICE))
    with pytest.raises(ClientError) as excinfo:
        _exchange(fake, creds, issuer.token(aud=AUD, email=ALICE), app=APP + "-nope")
    assert _error(excinfo) == "InvalidClientException"
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 401


def test_callers_other_than_bootstrap_credentials_are_refused(fake, issuer):
    assertion = issuer.token(aud=AUD, email=ALICE)
    oidc = client(fake, "sso-oidc")  # unsigned
    with pytest.raises(ClientError) as excinfo:
        oidc.create_token_with_iam(clientId=APP, grantType=JWT_BEARER, assertion=assertion)
    assert _error(excinfo) == "AccessDeniedException"
    assert "missing authentication" in _answer(excinfo)["error_description"]

    # built, so scans for real keys stay quiet
    foreign = {"AccessKeyId": "AKIA" + "FOREIGNFOREIGN00", "SecretAccessKey": "x" * 40}
    with pytest.raises(ClientError) as excinfo:
        _exchange(fake, foreign, assertion)
    assert _error(excinfo) == "AccessDeniedException"

    creds = _bootstrap(fake, issuer.token(aud=AUD, email=ALICE))
    enhanced = client(fake, "sts", creds).assume_role(RoleArn=ENHANCED_ROLE, RoleSessionName="x")["Credentials"]
    with pytest.raises(ClientError) as excinfo:
        _exchange(fake, enhanced, assertion)  # an AssumeRole key is not the bootstrap role
    assert _error(excinfo) == "AccessDeniedException"

    with pytest.raises(ClientError) as excinfo:
        _exchange(fake, dict(creds, SecretAccessKey="wrong" * 8), assertion)
    assert _error(excinfo) == "InvalidSignatureException"

    with pytest.raises(ClientError) as excinfo:
        _exchange(fake, dict(creds, SessionToken="forged"), assertion)
    assert _error(excinfo) == "UnrecognizedClientException"

    expired = _bootstrap(fake, issuer.token(aud=AUD, email=ALICE), duration=0)
    with pytest.raises(ClientError) as excinfo:
        _exchange(fake, expired, assertion)
    assert _error(excinfo) == "ExpiredTokenException"

    assert _exchange(fake, creds, assertion)["accessToken"]  # none of the above consumed the assertion


def test_unassigned_user_is_access_denied(fake, issuer):
    creds = _bootstrap(fake, issuer.token(aud=AUD, email=ALICE))
    with pytest.raises(ClientError) as excinfo:
        _exchange(fake, creds, issuer.token(aud=AUD, email=ALICE), app=APP_ASSIGNED)
    assert _error(excinfo) == "AccessDeniedException"
    resp = _exchange(fake, creds, issuer.token(aud=AUD, email=BOB), app=APP_ASSIGNED)
    assert fake.identity_context_user(resp["awsAdditionalDetails"]["identityContext"]) == BOB_ID


def test_refresh_token_grant_rotates(fake, issuer):
    creds = _bootstrap(fake, issuer.token(aud=AUD, email=ALICE))
    first = _exchange(fake, creds, issuer.token(aud=AUD, email=ALICE))
    oidc = client(fake, "sso-oidc", creds)

    second = oidc.create_token_with_iam(clientId=APP, grantType="refresh_token", refreshToken=first["refreshToken"])
    assert second["refreshToken"] != first["refreshToken"]
    assert second["accessToken"] != first["accessToken"]
    ctx = second["awsAdditionalDetails"]["identityContext"]
    assert ctx != first["awsAdditionalDetails"]["identityContext"] and fake.identity_context_user(ctx) == ALICE_ID
    call = fake.calls[-1]
    assert call.params == {"clientId": APP, "grantType": "refresh_token",
                           "refreshToken_sha256": sha256_hex(first["refreshToken"])}

    with pytest.raises(ClientError) as excinfo:  # the old one is gone
        oidc.create_token_with_iam(clientId=APP, grantType="refresh_token", refreshToken=first["refreshToken"])
    assert _error(excinfo) == "InvalidGrantException"
    assert "already been used" in _answer(excinfo)["error_description"]

    with pytest.raises(ClientError) as excinfo:  # bound to its application
        oidc.create_token_with_iam(clientId=APP_NO_REFRESH, grantType="refresh_token",
                                   refreshToken=second["refreshToken"])
    assert _error(excinfo) == "UnsupportedGrantTypeException"
    fake.config.applications[APP_ASSIGNED].assigned = None
    with pytest.raises(ClientError) as excinfo:
        oidc.create_token_with_iam(clientId=APP_ASSIGNED, grantType="refresh_token",
                                   refreshToken=second["refreshToken"])
    assert _error(excinfo) == "InvalidGrantException"

    third = oidc.create_token_with_iam(clientId=APP, grantType="refresh_token", refreshToken=second["refreshToken"])
    assert fake.revoke_refresh_tokens(ALICE_ID) == 1
    with pytest.raises(ClientError) as excinfo:
        oidc.create_token_with_iam(clientId=APP, grantType="refresh_token", refreshToken=third["refreshToken"])
    assert _error(excinfo) == "InvalidGrantException"
    with pytest.raises(ClientError) as excinfo:
        oidc.create_token_with_iam(clientId=APP, grantType="refresh_token", refreshToken="aor-made-up")
    assert _error(excinfo) == "InvalidGrantException"


def test_application_without_refresh_grant(fake, issuer):
    creds = _bootstrap(fake, issuer.token(aud=AUD, email=ALICE))
    resp = _exchange(fake, creds, issuer.token(aud=AUD, email=ALICE), app=APP_NO_REFRESH)
    assert "refreshToken" not in resp
    assert resp["issuedTokenType"] == "urn:ietf:params:oauth:token-type:access_token"
    with pytest.raises(ClientError) as excinfo:
        client(fake, "sso-oidc", creds).create_token_with_iam(
            clientId=APP_NO_REFRESH, grantType="refresh_token", refreshToken="anything")
    assert _error(excinfo) == "UnsupportedGrantTypeException"
    assert _answer(excinfo)["error"] == "unsupported_grant_type"


# --- fault injection -------------------------------------------------------------------------------


def test_injected_sts_faults(fake, moto, issuer):
    creds = _bootstrap(fake, issuer.token(aud=AUD, email=ALICE))
    sts = client(fake, "sts", creds)
    fake.inject("AssumeRole", "Throttling", count=2)
    for _ in range(2):
        with pytest.raises(ClientError) as excinfo:
            sts.assume_role(RoleArn=ENHANCED_ROLE, RoleSessionName="x")
        assert _error(excinfo) == "Throttling"
        assert _answer(excinfo)["Error"]["Type"] == "Sender"
        assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert sts.assume_role(RoleArn=ENHANCED_ROLE, RoleSessionName="x")["Credentials"]
    assert fake.count("AssumeRole") == 3 and fake.count("AssumeRole", error="Throttling") == 2
    assert [r["action"] for r in moto.recorded()].count("AssumeRole") == 1  # faults never reach moto

    fake.inject("AssumeRoleWithWebIdentity", "InvalidIdentityToken", count=-1, message="nope")
    for _ in range(3):
        with pytest.raises(ClientError) as excinfo:
            _bootstrap(fake, "whatever")
        assert _error(excinfo) == "InvalidIdentityToken"
        assert excinfo.value.response["Error"]["Message"] == "nope"
    fake.clear_faults()
    assert _bootstrap(fake, issuer.token(aud=AUD, email=ALICE))["AccessKeyId"]


def test_injected_faults_are_retried_by_botocore(fake, issuer):
    creds = _bootstrap(fake, issuer.token(aud=AUD, email=ALICE))
    sts = client(fake, "sts", creds, retries={"total_max_attempts": 3, "mode": "standard"})
    fake.inject("AssumeRole", "Throttling", count=1)
    assert sts.assume_role(RoleArn=ENHANCED_ROLE, RoleSessionName="x")["Credentials"]
    assert fake.count("AssumeRole") == 2


def test_injected_create_token_faults(fake, issuer):
    creds = _bootstrap(fake, issuer.token(aud=AUD, email=ALICE))
    fake.inject("CreateTokenWithIAM", "InternalServerException", status=500)
    with pytest.raises(ClientError) as excinfo:
        _exchange(fake, creds, issuer.token(aud=AUD, email=ALICE))
    assert _error(excinfo) == "InternalServerException"
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert _answer(excinfo)["error"] == "server_error"
    fake.inject("CreateTokenWithIAM", "ExpiredTokenException")
    with pytest.raises(ClientError) as excinfo:
        _exchange(fake, creds, issuer.token(aud=AUD, email=ALICE))
    assert _error(excinfo) == "ExpiredTokenException"
    assert _exchange(fake, creds, issuer.token(aud=AUD, email=ALICE))["accessToken"]


# --- async client through AWS_ENDPOINT_URL ------------------------------------------------------------


async def test_aiobotocore_via_aws_endpoint_url(fake, issuer, monkeypatch):
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    monkeypatch.setenv("AWS_ENDPOINT_URL", fake.url)
    for var in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL_SSO_OIDC"):
        monkeypatch.delenv(var, raising=False)
    session = get_session()
    cfg = AioConfig(parameter_validation=False, retries={"total_max_attempts": 1})
    async with session.create_client("sts", region_name=REGION, config=cfg.merge(AioConfig(signature_version=UNSIGNED)),
                                     aws_access_key_id="unused", aws_secret_access_key="unused") as sts:
        boot = (await sts.assume_role_with_web_identity(
            RoleArn=OIDC_ROLE, RoleSessionName="s", WebIdentityToken=issuer.token(aud=AUD, email=ALICE),
            DurationSeconds=20))["Credentials"]
    async with session.create_client("sso-oidc", region_name=REGION, config=cfg,
                                     aws_access_key_id=boot["AccessKeyId"],
                                     aws_secret_access_key=boot["SecretAccessKey"],
                                     aws_session_token=boot["SessionToken"]) as oidc:
        resp = await oidc.create_token_with_iam(clientId=APP, grantType=JWT_BEARER,
                                                assertion=issuer.token(aud=AUD, email=ALICE))
    assert fake.identity_context_user(resp["awsAdditionalDetails"]["identityContext"]) == ALICE_ID
    assert [c.operation for c in fake.calls] == ["AssumeRoleWithWebIdentity", "CreateTokenWithIAM"]
    json.dumps([c.params for c in fake.calls])  # the log is plain data


def test_s3_head_through_the_fake_keeps_the_object_size(fake):
    """A HEAD answer has no body but must carry the object's Content-Length (the aws CLI's `s3 cp` reads it)."""
    keys = dict(AccessKeyId="AKIA" + "HEADTEST0000001", SecretAccessKey="unused")
    s3 = client(fake, "s3", keys)
    s3.create_bucket(Bucket="head-size")
    s3.put_object(Bucket="head-size", Key="obj", Body=b"twelve bytes")
    assert s3.head_object(Bucket="head-size", Key="obj")["ContentLength"] == 12
