"""Checks of the IAM side: the OIDC provider, the OIDC (bootstrap) role and the identity-enhanced role."""
from __future__ import annotations

import json
from typing import Any

from .facts import Facts
from .model import Check, Failure, Target, cannot_read, failure, ok, skipped, warning
from .policy import Decision, Request, evaluate, names_exactly

#: an audience no real client has: a trust policy that accepts it does not check aud at all
OTHER_AUDIENCE = "tipd-diag-any-other-client"


def _role_name(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def check_iam(f: Facts) -> list[Check]:
    return [*_provider(f), *_oidc_trust(f), *_oidc_permissions(f), _enhanced_trust(f), _max_session(f)]


def _provider(f: Facts) -> list[Check]:
    t = f.target
    p = f.oidc_provider
    if isinstance(p, Failure):
        if p.not_found:
            return [failure("iam.oidc_provider", f"there is no IAM OIDC provider {f.provider_arn}",
                            f"Create it: aws iam create-open-id-connect-provider --url {f.iss} --client-id-list "
                            f"{t.aud}."),
                    skipped("iam.oidc_audience", "no OIDC provider")]
        return [cannot_read("iam.oidc_provider", p, "the IAM OIDC provider"),
                skipped("iam.oidc_audience", "the OIDC provider could not be read")]
    if p is None:
        return [skipped("iam.oidc_provider", "not read"), skipped("iam.oidc_audience", "not read")]
    out = [ok("iam.oidc_provider", f"IAM OIDC provider {f.provider_arn} exists")]
    clients = p.get("ClientIDList") or []
    if t.aud in clients:
        out.append(ok("iam.oidc_audience", f"the provider lists {t.aud_named} as an audience"))
    else:
        out.append(failure("iam.oidc_audience", f"the provider's audiences {clients} do not include {t.aud_named}",
                           f"Add it: aws iam add-client-id-to-open-id-connect-provider --open-id-connect-provider-arn "
                           f"{f.provider_arn} --client-id {t.aud}."))
    return out


def _trust_document(role: dict[str, Any]) -> dict[str, Any]:
    doc = role.get("AssumeRolePolicyDocument")
    if isinstance(doc, str):  # botocore decodes it; other clients hand over the URL-encoded JSON
        from urllib.parse import unquote

        doc = json.loads(unquote(doc))
    return doc or {}


def _web_identity_request(f: Facts, aud: str) -> Request:
    ns = f.provider_path + ":"
    ctx: dict[str, str | list[str]] = {ns + "aud": aud}
    from .token import TokenFacts

    if isinstance(f.token, TokenFacts) and isinstance(f.token.claims.get("sub"), str):
        ctx[ns + "sub"] = f.token.claims["sub"]
    return Request("sts:AssumeRoleWithWebIdentity", f.target.oidc_role_arn, ("Federated", f.provider_arn), ctx,
                   (ns + "aud", ns + "sub"))


def _oidc_trust(f: Facts) -> list[Check]:
    t = f.target
    role = f.oidc_role
    name = _role_name(t.oidc_role_arn)
    if isinstance(role, Failure):
        if role.not_found:
            return [failure("iam.oidc_trust", f"the OIDC role {t.oidc_role_arn} does not exist",
                            "Create it (see `tipctl cfn-template`), or fix the profile's oidc_role_arn."),
                    skipped("iam.oidc_trust_aud", "no OIDC role")]
        return [cannot_read("iam.oidc_trust", role, "the OIDC role"), skipped("iam.oidc_trust_aud", "no OIDC role")]
    if role is None:
        return [skipped("iam.oidc_trust", "not read"), skipped("iam.oidc_trust_aud", "not read")]
    doc = _trust_document(role)
    aud = t.aud
    statement = {"Effect": "Allow", "Principal": {"Federated": f.provider_arn},
                 "Action": "sts:AssumeRoleWithWebIdentity",
                 "Condition": {"StringEquals": {f"{f.provider_path}:aud": aud}}}
    fix = f"Add this statement to the trust policy of {name}: {json.dumps(statement, separators=(',', ':'))}."
    d = evaluate([doc], _web_identity_request(f, aud))
    first = _verdict("iam.oidc_trust", d,
                     f"{name} trusts {f.provider_arn} for sts:AssumeRoleWithWebIdentity with aud {aud}",
                     f"the trust policy of {name} does not allow sts:AssumeRoleWithWebIdentity from "
                     f"{f.provider_arn} with aud {aud}", fix)
    if first.status != "ok" and first.status != "warning":
        return [first, skipped("iam.oidc_trust_aud", "the trust policy does not allow the token in the first place")]
    other = evaluate([doc], _web_identity_request(f, OTHER_AUDIENCE))
    if other.allowed and not other.caveats:
        second = failure("iam.oidc_trust_aud", f"the trust policy of {name} does not check the token's aud: a token "
                                               "the IdP issued to any other application would be accepted too",
                         f"Add the condition {{\"StringEquals\":{{\"{f.provider_path}:aud\":\"{aud}\"}}}} to its "
                         "sts:AssumeRoleWithWebIdentity statement.")
    else:
        second = ok("iam.oidc_trust_aud", f"the trust policy accepts only tokens whose aud is {aud}")
    return [first, second]


def _verdict(cid: str, d: Decision, good: str, bad: str, fix: str, note: str = "") -> Check:
    if d.effect == "deny":
        return failure(cid, bad + f" (an explicit Deny{_sid(d)} applies)", fix)
    if not d.allowed:
        return failure(cid, bad, fix)
    caveats = list(d.caveats) + ([note] if note else [])
    if caveats:
        return warning(cid, good + ", but diag cannot judge: " + "; ".join(caveats),
                       "Make sure those conditions or limits hold for tipd's calls.")
    return ok(cid, good)


def _sid(d: Decision) -> str:
    st = d.statements[0] if d.statements else {}
    return f" {st['Sid']!r}" if st.get("Sid") else ""


def _oidc_permissions(f: Facts) -> list[Check]:
    t = f.target
    ids = ("iam.create_token", "iam.assume_enhanced", "iam.set_context")
    name = _role_name(t.oidc_role_arn)
    if isinstance(f.oidc_role_policies, Failure):
        return [cannot_read(ids[0], f.oidc_role_policies, f"the policies of {name}")] + \
               [skipped(i, "the OIDC role's policies could not be read") for i in ids[1:]]
    if f.oidc_role_policies is None or not isinstance(f.oidc_role, dict):
        return [skipped(i, "the OIDC role could not be read") for i in ids]
    docs = [doc for _, doc in f.oidc_role_policies]
    boundary = ("a permissions boundary is set on the role, which diag does not evaluate"
                if f.oidc_role.get("PermissionsBoundary") else "")
    out = [_verdict(ids[0], evaluate(docs, Request("sso-oauth:CreateTokenWithIAM", t.application_arn)),
                    f"{name} may call sso-oauth:CreateTokenWithIAM on the application",
                    f"the policies of {name} do not allow sso-oauth:CreateTokenWithIAM on {t.application_arn}",
                    _permission_fix(name, "sso-oauth:CreateTokenWithIAM", t.application_arn), boundary)]
    trust = _trust_document(f.enhanced_role) if isinstance(f.enhanced_role, dict) else None
    for cid, action in ((ids[1], "sts:AssumeRole"), (ids[2], "sts:SetContext")):
        d = evaluate(docs, Request(action, t.enhanced_role_arn))
        if not d.allowed and d.effect != "deny" and trust is not None and _same_account(t) and \
                _trust_names_role(trust, action, t.oidc_role_arn):
            # within one account, a trust policy that names the role itself grants the call on its own
            out.append(ok(cid, f"{name} may call {action} on the identity-enhanced role: its trust policy names "
                               f"{name} (same account)"))
            continue
        out.append(_verdict(cid, d, f"{name} may call {action} on the identity-enhanced role",
                            f"the policies of {name} do not allow {action} on {t.enhanced_role_arn}",
                            _permission_fix(name, action, t.enhanced_role_arn), boundary))
    return out


def _permission_fix(role: str, action: str, resource: str) -> str:
    st = {"Effect": "Allow", "Action": action, "Resource": resource}
    return f"Add this statement to a policy of {role}: {json.dumps(st, separators=(',', ':'))}."


def _same_account(t: Target) -> bool:
    return t.oidc_role_arn.split(":")[4] == t.enhanced_role_arn.split(":")[4]


def _trust_names_role(trust: dict[str, Any], action: str, role_arn: str) -> bool:
    d = evaluate([trust], Request(action, "*", ("AWS", role_arn), {"aws:principalarn": role_arn},
                                  ("aws:principalarn",)))
    return d.allowed and not d.caveats and any(names_exactly(st, ("AWS", role_arn)) for st in d.statements)


def _enhanced_trust(f: Facts) -> Check:
    t = f.target
    role = f.enhanced_role
    name = _role_name(t.enhanced_role_arn)
    cid = "iam.enhanced_trust"
    if isinstance(role, Failure):
        if role.not_found:
            return failure(cid, f"the identity-enhanced role {t.enhanced_role_arn} does not exist",
                           "Create it (see `tipctl cfn-template`), or fix the profile's identity_enhanced_role_arn.")
        return cannot_read(cid, role, "the identity-enhanced role")
    if role is None:
        return skipped(cid, "not read")
    doc = _trust_document(role)
    missing: list[str] = []
    caveats: list[str] = []
    for action in ("sts:AssumeRole", "sts:SetContext"):
        d = evaluate([doc], Request(action, "*", ("AWS", t.oidc_role_arn), {"aws:principalarn": t.oidc_role_arn},
                                    ("aws:principalarn",)))
        if not d.allowed:
            missing.append(action)
        caveats += d.caveats
    statement = {"Effect": "Allow", "Principal": {"AWS": t.oidc_role_arn},
                 "Action": ["sts:AssumeRole", "sts:SetContext"]}
    if missing:
        return failure(cid, f"the trust policy of {name} does not let {_role_name(t.oidc_role_arn)} call "
                            f"{' and '.join(missing)}",
                       f"Add this statement to the trust policy of {name}: "
                       f"{json.dumps(statement, separators=(',', ':'))}.")
    if caveats:
        return warning(cid, f"{name} trusts {_role_name(t.oidc_role_arn)} for sts:AssumeRole and sts:SetContext, but "
                            "diag cannot judge: " + "; ".join(caveats),
                       "Make sure those conditions hold for tipd's calls.")
    return ok(cid, f"{name} trusts {_role_name(t.oidc_role_arn)} for sts:AssumeRole and sts:SetContext")


def _max_session(f: Facts) -> Check:
    t = f.target
    cid = "iam.max_session"
    want = t.session_duration
    short = []
    for arn, role in ((t.oidc_role_arn, f.oidc_role), (t.enhanced_role_arn, f.enhanced_role)):
        if not isinstance(role, dict):
            return skipped(cid, "a role could not be read")
        if int(role.get("MaxSessionDuration") or 3600) < want:
            short.append((_role_name(arn), int(role.get("MaxSessionDuration") or 3600)))
    if short:
        name, got = short[0]
        return failure(cid, f"{name} allows sessions of at most {got} s, tipd asks for {want} s",
                       f"Raise it: aws iam update-role --role-name {name} --max-session-duration {max(want, 3600)}.")
    return ok(cid, f"both roles allow sessions of {want} s (tipd's session_duration)")
