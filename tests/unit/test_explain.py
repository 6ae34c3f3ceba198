"""AWS errors become sentences that name the step and its usual cause: the same code can mean different things."""
from __future__ import annotations

from botocore.exceptions import ClientError

from tipd.exchange import HINTS, WEB_IDENTITY_HINTS, explain


def _denied(code: str, status: int = 403) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "User: arn:aws:sts::1:assumed-role/x is not authorized"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "AssumeRole")


def test_access_denied_on_the_web_identity_step_points_at_the_oidc_role_trust():
    e = explain("AssumeRoleWithWebIdentity (bootstrap session)", _denied("AccessDenied"), WEB_IDENTITY_HINTS)
    assert e.permanent and "AssumeRoleWithWebIdentity" in e.message and "`aud` condition" in e.message
    assert "SetContext" not in e.message


def test_access_denied_on_the_enhanced_step_points_at_set_context():
    e = explain("AssumeRole with ProvidedContexts (identity-enhanced session)", _denied("AccessDenied"), HINTS)
    assert e.permanent and "sts:SetContext" in e.message


def test_throttling_is_transient_and_keeps_the_message():
    e = explain("AssumeRole", _denied("Throttling", 400))
    assert not e.permanent and "retrying" in e.message and "not authorized" in e.message
