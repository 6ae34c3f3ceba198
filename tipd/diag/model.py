"""What `tipctl diag` reports: one `Check` per question, and what it diagnoses (`Target`)."""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    OK = "ok"
    WARNING = "warning"
    FAILURE = "failure"
    #: could not be judged because something it depends on failed (that failure has its own line)
    SKIPPED = "skipped"


#: the sections of the report, in order
SECTIONS = {
    "token": "IdP token",
    "aws": "Your AWS credentials (diag reads the set-up with them)",
    "application": "Identity Center application",
    "issuer": "Trusted token issuer and user",
    "instance": "Identity Center instance",
    "iam": "IAM roles and OIDC provider",
}


@dataclass(frozen=True)
class Check:
    id: str  # stable, e.g. "application.status"
    section: str  # a key of SECTIONS
    status: Status
    detail: str  # what was found, one sentence
    fix: str = ""  # for a warning or failure: what to do, one sentence

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "section": self.section, "status": str(self.status), "detail": self.detail,
                "fix": self.fix or None}


def ok(id: str, detail: str) -> Check:
    return Check(id, id.split(".", 1)[0], Status.OK, detail)


def warning(id: str, detail: str, fix: str) -> Check:
    return Check(id, id.split(".", 1)[0], Status.WARNING, detail, fix)


def failure(id: str, detail: str, fix: str) -> Check:
    return Check(id, id.split(".", 1)[0], Status.FAILURE, detail, fix)


def skipped(id: str, detail: str) -> Check:
    return Check(id, id.split(".", 1)[0], Status.SKIPPED, detail)


@dataclass(frozen=True)
class Target:
    """One profile's set-up as tipd uses it (from the config file, with command-line overrides)."""

    profile: str
    issuer: str
    client_id: str
    application_arn: str
    oidc_role_arn: str
    enhanced_role_arn: str
    region: str
    session_duration: int = 3600
    #: the account profiles signing in through this profile (they need AWS account access)
    account_profiles: int = 0
    #: the JWT tipd sends to AWS (the profile's exchange_token)
    exchange_token: str = "id_token"
    #: that JWT's aud as AWS compares it: "" for an id_token's (the client_id); an access token's is the IdP's
    #: choice, taken from the token checked (diag.judge)
    audience: str = ""

    @property
    def aud(self) -> str:
        return self.audience or self.client_id

    @property
    def aud_named(self) -> str:
        """The expected audience, in words."""
        if self.aud == self.client_id:
            return f"the profile's client_id {self.client_id}"
        return f"the access token's aud {self.aud}"

    @property
    def partition(self) -> str:
        return self.application_arn.split(":")[1]

    @property
    def instance_arn(self) -> str:
        """arn:aws:sso:::instance/ssoins-... (the application ARN names its instance)."""
        instance_id = self.application_arn.split("/")[1]
        return f"arn:{self.partition}:sso:::instance/{instance_id}"


@dataclass(frozen=True)
class Failure:
    """A call diag made that did not answer: the reason in words, never a traceback."""

    call: str  # e.g. "sso-admin DescribeApplication"
    code: str  # the AWS error code, or a short kind such as "IdPUnreachable"
    message: str

    def sentence(self) -> str:
        return f"{self.call} failed: {self.code}" + (f" ({self.message})" if self.message else "")

    @property
    def access_denied(self) -> bool:
        return self.code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation")

    @property
    def not_found(self) -> bool:
        return self.code in ("ResourceNotFoundException", "NoSuchEntity", "NoSuchEntityException")


def cannot_read(id: str, f: Failure, what: str) -> Check:
    """The line for a check whose data could not be read with the admin's credentials."""
    if f.access_denied:
        service, action = f.call.split()[0], f.call.split()[-1]
        service = {"sso-admin": "sso"}.get(service, service)  # IAM's action prefix
        fix = (f"Run diag with AWS credentials allowed to call {service}:{action} (choose them with "
               f"--aws-profile or AWS_PROFILE); the check itself says nothing about tipd's set-up yet.")
    elif f.code == "NoCredentials":
        fix = "Give diag your own AWS credentials: --aws-profile NAME, AWS_PROFILE, or the usual environment variables."
    else:
        fix = f"Retry, or check {what} in the AWS console; diag could not read it."
    return failure(id, f"cannot read {what}: {f.sentence()}", fix)
