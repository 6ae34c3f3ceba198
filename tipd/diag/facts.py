"""Everything diag reads, fetched once (tipd/diag/gather.py) and then judged by the check groups.

Each field holds the answer, a `Failure` (the call did not answer), or None (not asked: what it depends
on is missing)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .model import Failure, Target
from .token import TokenFacts


@dataclass
class UserFacts:
    attribute_path: str  # the identity store attribute the issuer maps to
    value: str  # the token's claim value looked up in it
    user_id: str | Failure  # GetUserId's answer
    description: dict[str, Any] | Failure | None = None  # DescribeUser
    group_ids: list[str] | Failure | None = None  # ListGroupMembershipsForMember


@dataclass
class Facts:
    target: Target
    token: TokenFacts | Failure
    jwks: dict[str, Any] | Failure | None = None
    caller: dict[str, Any] | Failure | None = None  # sts GetCallerIdentity: whose credentials diag uses
    # Identity Center
    application: dict[str, Any] | Failure | None = None
    actor_policy: dict[str, Any] | Failure | None = None  # None after ResourceNotFound: no IAM method at all
    assignment_required: bool | Failure | None = None
    assignments: list[dict[str, Any]] | Failure | None = None
    grants: dict[str, dict[str, Any]] | Failure | None = None  # grant type -> Grant
    scopes: list[dict[str, Any]] | Failure | None = None
    instance: dict[str, Any] | Failure | None = None
    issuers: list[dict[str, Any]] | Failure | None = None  # DescribeTrustedTokenIssuer of each
    user: UserFacts | None = None
    # IAM
    oidc_provider: dict[str, Any] | Failure | None = None
    oidc_role: dict[str, Any] | Failure | None = None
    oidc_role_policies: list[tuple[str, Any]] | Failure | None = None  # (name, document)
    enhanced_role: dict[str, Any] | Failure | None = None

    @property
    def iss(self) -> str:
        """The issuer the AWS side is judged against: the profile's (what tipd's own tokens carry), so a --jwt
        token that differs fails once, in the token section, rather than in every check that compares."""
        return self.target.issuer

    @property
    def provider_path(self) -> str:
        """The IAM OIDC provider's name for the issuer: host and path, without the scheme."""
        p = urlsplit(self.iss)
        return (p.netloc + p.path).rstrip("/")

    @property
    def provider_arn(self) -> str:
        account = self.target.oidc_role_arn.split(":")[4]
        return f"arn:{self.target.partition}:iam::{account}:oidc-provider/{self.provider_path}"


def claim_value(claims: dict[str, Any], path: str) -> str | None:
    """What the trusted token issuer's ClaimAttributePath (a JMESPath expression) finds in the token: a
    string or number to look the user up by, else None."""
    import jmespath

    try:
        value = jmespath.search(path, claims)
    except jmespath.exceptions.JMESPathError:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)) or value == "":
        return None
    return str(value)


def loose_url(url: str) -> str:
    try:
        p = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket in a token's iss: compare it as it is
        return url
    return f"{p.scheme.lower()}://{p.netloc.lower()}{p.path.rstrip('/')}"


def issuer_for(issuers: list[dict[str, Any]], iss: str) -> tuple[dict[str, Any] | None, bool]:
    """The instance's trusted token issuer meant for `iss`: (issuer, exact URL match), or (None, False).
    A URL that differs only by a trailing slash or letter case is found too, so the report can say so:
    Identity Center compares the URL with iss exactly."""
    loose = None
    for tti in issuers:
        url = issuer_url(tti)
        if url == iss:
            return tti, True
        if loose is None and url and loose_url(url) == loose_url(iss):
            loose = tti
    return loose, False


def issuer_url(tti: dict[str, Any]) -> str:
    return str(oidc_config(tti).get("IssuerUrl", ""))


def oidc_config(tti: dict[str, Any]) -> dict[str, Any]:
    return (tti.get("TrustedTokenIssuerConfiguration") or {}).get("OidcJwtConfiguration") or {}
