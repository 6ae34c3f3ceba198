"""AWS errors become sentences that name the step and its usual cause: the same code can mean different things."""
from __future__ import annotations

from botocore.exceptions import ClientError

from tipd.exchange import HINTS, WEB_IDENTITY_HINTS, explain


def _denied(code: str, status: int = 403) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "User: arn:aws:sts::1:assumed-role/x is not authorized"},
                        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}, "HostId": "", "RequestId": "",
                                             "RetryAttempts": 0}}, "AssumeRole")


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


def test_attack_an_upstream_error_carrying_terminal_escapes_reaches_status_printable():
    """A hostile or compromised upstream (the portal, STS behind a proxy) answering an error whose Message and Code
    carry terminal escape sequences (OSC 52 writes the clipboard, others rewrite the screen): the message is kept in
    last_error and printed by `tipctl status`, so control characters become '?'."""
    e = explain("GetRoleCredentials", ClientError(
        {"Error": {"Code": "Throttling\x1b[2J", "Message": "slow down \x1b]52;c;ZXZpbA==\x07\nfake: all good"},
         "ResponseMetadata": {"HTTPStatusCode": 400, "HTTPHeaders": {}, "HostId": "", "RequestId": "",
                              "RetryAttempts": 0}},
        "GetRoleCredentials"))
    assert e.message.isprintable() and "\x1b" not in e.message and "slow down" in e.message
