"""`tipctl diag`: is this profile's trusted identity propagation set up right? Every link of the chain is
read once (gather.py) and judged by small check groups (token.py, identity_center.py, iam.py), each
answering ok / warning / failure with the fix in one sentence. docs/diag.md describes every check."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .facts import Facts
from .iam import check_iam
from .identity_center import check_application, check_instance, check_issuer
from .model import Check, Failure, Status, Target, cannot_read, ok, skipped
from .token import TokenFacts, check_token, parse

if TYPE_CHECKING:
    import aiohttp

    from ..secret import Secret

__all__ = ["Check", "Failure", "Status", "Target", "diagnose", "judge"]


async def diagnose(target: Target, token: Secret | Failure, *, aws_profile: str | None = None, now: float,
                   skew: float = 60.0, http: aiohttp.ClientSession | None = None) -> list[Check]:
    """`token` is the Secret to check, or a Failure saying why there is none."""
    from .gather import gather  # aiobotocore: only when diagnosing

    facts = await gather(target, token if isinstance(token, Failure) else parse(token), aws_profile=aws_profile,
                         http=http)
    return judge(facts, now=now, skew=skew)


def judge(f: Facts, *, now: float, skew: float) -> list[Check]:
    f = with_audience(f)
    checks = check_token(f.target, f.token, f.jwks, now, skew)
    if isinstance(f.caller, Failure):
        checks.append(cannot_read("aws.credentials", f.caller, "your AWS identity"))
        return checks + [skipped(f"{s}.all", "not checked: diag has no usable AWS credentials")
                         for s in ("application", "issuer", "instance", "iam")]
    if f.caller is not None:
        checks.append(ok("aws.credentials", f"reading the set-up as {f.caller.get('Arn')}"))
    return checks + check_application(f) + check_issuer(f) + check_instance(f) + check_iam(f)


def with_audience(f: Facts) -> Facts:
    """A profile that exchanges its access token is checked against that token's aud (which the IdP chooses),
    not the client_id: an id_token's aud is the client, an access token's usually an API."""
    from dataclasses import replace

    t, token = f.target, f.token
    if t.exchange_token != "access_token" or not isinstance(token, TokenFacts) or not token.audiences:
        return f
    if t.client_id in token.audiences:
        return f
    return replace(f, target=replace(t, audience=token.audiences[0]))
