"""What the tests of the AWS fake and of the portal client share: the account, application, role, audience and
user they configure the fake with, a boto3 client for the fake, and the chain's first two calls."""
from __future__ import annotations

from typing import Any

import boto3
from botocore import UNSIGNED
from botocore.config import Config

from .aws import JWT_BEARER, FakeAWS, JwtIssuer

ACCOUNT = "123456789012"
REGION = "us-east-1"
APP = f"arn:aws:sso::{ACCOUNT}:application/ssoins-1111222233334444/apl-aaaabbbbccccdddd"
#: a second application of the same instance (each module says what sets it apart)
OTHER_APP = f"arn:aws:sso::{ACCOUNT}:application/ssoins-1111222233334444/apl-0000111122223333"
OIDC_ROLE = f"arn:aws:iam::{ACCOUNT}:role/tipd-oidc-bootstrap"
AUD = "tipd-client"
ALICE, ALICE_ID = "alice@example.com", "9067a0d1f2-alice"
NO_RETRY = {"total_max_attempts": 1}


def client(fake: FakeAWS, service: str, creds: dict[str, Any] | None = None, **config: Any) -> Any:
    """A boto3 client for the fake: unsigned without `creds` (the unsigned calls of the chain), no retries unless
    `retries` says otherwise, no client-side validation (a test may send what boto3 would refuse)."""
    kw: dict[str, str | None]
    if creds is None:
        kw = dict(aws_access_key_id="unused", aws_secret_access_key="unused")
        config.setdefault("signature_version", UNSIGNED)
    else:
        kw = dict(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                  aws_session_token=creds.get("SessionToken"))
    cfg = Config(parameter_validation=False, retries=config.pop("retries", NO_RETRY), **config)
    return boto3.session.Session().client(service, endpoint_url=fake.url, region_name=REGION, config=cfg, **kw)


def bootstrap(fake: FakeAWS, issuer: JwtIssuer) -> dict[str, Any]:
    """Alice's bootstrap session (AssumeRoleWithWebIdentity with a fresh id_token)."""
    sts = client(fake, "sts")
    creds: dict[str, Any] = sts.assume_role_with_web_identity(
        RoleArn=OIDC_ROLE, RoleSessionName="tipd-alice", DurationSeconds=900,
        WebIdentityToken=issuer.token(aud=AUD, email=ALICE))["Credentials"]
    return creds


def idc_token(fake: FakeAWS, issuer: JwtIssuer, app: str = APP) -> dict[str, Any]:
    """Alice's Identity Center token for `app` (CreateTokenWithIAM, jwt-bearer), as the fake answers it."""
    token: dict[str, Any] = client(fake, "sso-oidc", bootstrap(fake, issuer)).create_token_with_iam(
        clientId=app, grantType=JWT_BEARER, assertion=issuer.token(aud=AUD, email=ALICE))
    return token
