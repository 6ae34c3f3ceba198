"""A small IAM policy evaluator: enough to tell whether the policies of a set-up allow the calls of
tipd's chain, without SimulatePrincipalPolicy (which needs more permissions, and which moto lacks).

What it judges: Allow and Deny statements (an explicit Deny wins); Action/NotAction (case-insensitive,
`*` and `?` wildcards); Resource/NotResource (case-sensitive wildcards; a statement without Resource, as
in trust policies, covers every resource); Principal/NotPrincipal for `AWS` (a role ARN, the account's
root ARN or id, `*`) and `Federated` principals; Condition with the String* and Arn* operators (with
`IfExists`, `ForAnyValue:`/`ForAllValues:`) and `Null`, against the keys the request carries.

Its limits, on purpose: no SCPs, permissions boundaries, session policies or resource control policies;
no policy variables (`${...}`); other operators (Numeric, Date, Bool, IpAddress...) and keys the request
does not carry cannot be judged. Such a statement is not guessed at: an Allow that depends on one is an
allow "with caveats" and a Deny that depends on one is reported as a caveat, never applied, so the
caller can say what it could not verify."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

#: string operators -> (compare as wildcard pattern, case-insensitive, negated)
_STRING_OPS = {
    "StringEquals": (False, False, False),
    "StringNotEquals": (False, False, True),
    "StringEqualsIgnoreCase": (False, True, False),
    "StringNotEqualsIgnoreCase": (False, True, True),
    "StringLike": (True, False, False),
    "StringNotLike": (True, False, True),
    "ArnEquals": (True, False, False),  # ARN operators take wildcards too
    "ArnLike": (True, False, False),
    "ArnNotEquals": (True, False, True),
    "ArnNotLike": (True, False, True),
}


@dataclass(frozen=True)
class Request:
    """One call to judge. `principal` is (kind, value), e.g. ("AWS", role ARN) or ("Federated", provider
    ARN); it matters only for policies with Principal (trust and resource policies). `context` holds the
    condition keys the request carries (lower-cased names); keys in `namespaces` that are absent are known
    to be absent, other absent keys are unknown."""

    action: str
    resource: str = "*"
    principal: tuple[str, str] | None = None
    context: dict[str, str | list[str]] = field(default_factory=dict)
    namespaces: tuple[str, ...] = ()


@dataclass(frozen=True)
class Decision:
    effect: str  # "allow", "deny" (explicit), or "none" (implicitly denied)
    statements: tuple[dict[str, Any], ...] = ()  # the statements that decided it
    caveats: tuple[str, ...] = ()  # what could not be judged

    @property
    def allowed(self) -> bool:
        return self.effect == "allow"


def statements(document: Any) -> list[dict[str, Any]]:
    if not isinstance(document, dict):
        return []
    st = document.get("Statement", [])
    st = [st] if isinstance(st, dict) else st
    return [s for s in st if isinstance(s, dict)]


def _as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


@lru_cache(maxsize=512)
def _pattern(text: str, ignore_case: bool) -> re.Pattern[str]:
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text)
    return re.compile(rx, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def wildcard_match(pattern: str, value: str, ignore_case: bool = False) -> bool:
    return bool(_pattern(pattern, ignore_case).fullmatch(value))


def _matches_any(patterns: Any, value: str, ignore_case: bool) -> bool:
    return any(isinstance(p, str) and wildcard_match(p, value, ignore_case) for p in _as_list(patterns))


def _account(arn: str) -> str:
    parts = arn.split(":")
    return parts[4] if len(parts) > 5 else ""


def principal_matches(principal: Any, req: tuple[str, str]) -> bool:
    """Does a Principal element cover the caller? A role ARN names that role (and its sessions); the
    account's root ARN or bare id delegates to the account's own identity policies (see `names_exactly`)."""
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    kind, value = req
    for v in _as_list(principal.get(kind, [])):
        if v == "*" or v == value:
            return True
        if kind == "AWS" and isinstance(v, str):
            acct = _account(value)
            if acct and v in (acct, f"arn:{value.split(':')[1]}:iam::{acct}:root"):
                return True
    return False


def names_exactly(statement: dict[str, Any], req: tuple[str, str]) -> bool:
    """True when the statement names the caller itself rather than its whole account or everyone: only then
    does a same-account resource policy grant access without an identity policy."""
    principal = statement.get("Principal")
    return isinstance(principal, dict) and req[1] in _as_list(principal.get(req[0], []))


def _condition(block: Any, req: Request) -> tuple[bool | None, list[str]]:
    """(True / False / None for "cannot judge", caveats)."""
    if not block:
        return True, []
    if not isinstance(block, dict):
        return None, ["a malformed Condition block"]
    result: bool | None = True
    caveats: list[str] = []
    ctx = {k.lower(): v for k, v in req.context.items()}
    for op_full, pairs in block.items():
        op = op_full
        qualifier = ""
        if ":" in op:
            qualifier, op = op.split(":", 1)
        if_exists = op.endswith("IfExists")
        op = op.removesuffix("IfExists")
        if not isinstance(pairs, dict):
            return None, [f"a malformed {op_full} condition"]
        for key, wanted in pairs.items():
            verdict = _one_condition(op, qualifier, if_exists, key, _as_list(wanted), ctx, req.namespaces)
            if verdict is None:
                caveats.append(f"{op_full} on {key}")
                result = None if result is not False else False
            elif verdict is False:
                result = False
    return result, caveats


def _one_condition(op: str, qualifier: str, if_exists: bool, key: str, wanted: list[Any], ctx: dict[str, Any],
                   namespaces: tuple[str, ...]) -> bool | None:
    k = key.lower()
    present = k in ctx
    known = present or any(k.startswith(ns.lower()) for ns in namespaces)
    if op == "Null":
        if not known:
            return None
        want_absent = str(wanted[0]).lower() == "true"
        return (not present) == want_absent
    if op not in _STRING_OPS:
        return None
    if any(isinstance(w, str) and "${" in w for w in wanted):
        return None  # policy variables are not resolved here
    like, ignore_case, negated = _STRING_OPS[op]
    if not present:
        if not known:
            return None
        # an absent key: IfExists and the negated operators are satisfied, the others are not
        return bool(if_exists or negated)
    values = [str(v) for v in _as_list(ctx[k])]

    def one(v: str) -> bool:
        for w in wanted:
            w = str(w)
            if (wildcard_match(w, v, ignore_case) if like else
                    (v.lower() == w.lower() if ignore_case else v == w)):
                return True
        return False

    # ForAnyValue, and a plain operator on a multi-valued key, match when any value matches
    hits = all(one(v) for v in values) if qualifier == "ForAllValues" else any(one(v) for v in values)
    return not hits if negated else hits


def _statement_applies(st: dict[str, Any], req: Request) -> tuple[bool | None, list[str]]:
    if "Action" in st:
        if not _matches_any(st["Action"], req.action, True):
            return False, []
    elif "NotAction" in st:
        if _matches_any(st["NotAction"], req.action, True):
            return False, []
    else:
        return False, []
    if "Resource" in st:
        if not _matches_any(st["Resource"], req.resource, False):
            return False, []
    elif "NotResource" in st and _matches_any(st["NotResource"], req.resource, False):
        return False, []
    if req.principal is not None:
        if "Principal" in st:
            if not principal_matches(st["Principal"], req.principal):
                return False, []
        elif "NotPrincipal" in st and principal_matches(st["NotPrincipal"], req.principal):
            return False, []
    return _condition(st.get("Condition"), req)


def evaluate(documents: list[Any], req: Request) -> Decision:
    """Judge `req` against the policy documents together (as IAM does within one policy type)."""
    allows: list[dict[str, Any]] = []
    maybe_allows: list[dict[str, Any]] = []
    caveats: list[str] = []
    for doc in documents:
        for st in statements(doc):
            applies, why = _statement_applies(st, req)
            if applies is False:
                continue
            effect = str(st.get("Effect", "")).lower()
            if effect == "deny":
                if applies is True:
                    return Decision("deny", (st,))
                caveats.append(f"a Deny{_sid(st)} that applies unless its conditions fail ({', '.join(why)})")
            elif effect == "allow":
                if applies is True:
                    allows.append(st)
                else:
                    maybe_allows.append(st)
                    caveats.append(f"the Allow{_sid(st)} depends on conditions diag cannot judge ({', '.join(why)})")
    if allows:
        return Decision("allow", tuple(allows), tuple(c for c in caveats if c.startswith("a Deny")))
    if maybe_allows:
        return Decision("allow", tuple(maybe_allows), tuple(caveats))
    return Decision("none", (), tuple(caveats))


def _sid(st: dict[str, Any]) -> str:
    return f" {st['Sid']!r}" if st.get("Sid") else ""
