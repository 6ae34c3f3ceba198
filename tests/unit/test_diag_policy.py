"""The small IAM policy evaluator behind `tipctl diag`'s IAM and ActorPolicy checks."""
import pytest

from tipd.diag.policy import Request, evaluate, names_exactly, wildcard_match

ACCT = "123456789012"
OIDC = f"arn:aws:iam::{ACCT}:role/tip-oidc"
ENH = f"arn:aws:iam::{ACCT}:role/tip-enhanced"
APP = f"arn:aws:sso::{ACCT}:application/ssoins-1111222233334444/apl-aaaabbbbccccdddd"
PROVIDER = f"arn:aws:iam::{ACCT}:oidc-provider/idp.example.com"


def doc(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action, resource="*", **extra):
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action, resource="*", **extra):
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


@pytest.mark.parametrize("pattern,value,ignore_case,expected", [
    ("sts:*", "sts:SetContext", False, True),
    ("sts:Set?ontext", "sts:SetContext", False, True),
    ("sts:setcontext", "sts:SetContext", True, True),
    ("sts:setcontext", "sts:SetContext", False, False),
    ("arn:aws:iam::*:role/tip-*", ENH, False, True),
    ("arn:aws:iam::*:role/tip-*", "arn:aws:iam::1:role/other", False, False),
    ("a.b", "axb", False, False),  # regex characters are literal
])
def test_wildcards(pattern, value, ignore_case, expected):
    assert wildcard_match(pattern, value, ignore_case) is expected


def test_an_allow_with_matching_action_and_resource_allows():
    d = evaluate([doc(allow(["sts:AssumeRole", "sts:SetContext"], ENH))], Request("sts:SetContext", ENH))
    assert d.allowed and not d.caveats


def test_actions_match_case_insensitively_and_with_wildcards():
    assert evaluate([doc(allow("STS:assume*", ENH))], Request("sts:AssumeRole", ENH)).allowed
    assert evaluate([doc(allow("sso-oauth:*"))], Request("sso-oauth:CreateTokenWithIAM", APP)).allowed


def test_nothing_matching_is_an_implicit_deny():
    d = evaluate([doc(allow("sts:AssumeRole", f"arn:aws:iam::{ACCT}:role/other"))], Request("sts:AssumeRole", ENH))
    assert d.effect == "none" and not d.allowed
    assert evaluate([], Request("sts:AssumeRole", ENH)).effect == "none"


def test_resources_match_case_sensitively():
    assert not evaluate([doc(allow("sts:AssumeRole", ENH.upper()))], Request("sts:AssumeRole", ENH)).allowed


def test_an_explicit_deny_wins_over_any_allow_in_any_document():
    d = evaluate([doc(allow("*")), doc({**deny("sts:SetContext", ENH), "Sid": "NoContext"})],
                 Request("sts:SetContext", ENH))
    assert d.effect == "deny" and d.statements[0]["Sid"] == "NoContext"


def test_not_action_and_not_resource():
    policy = doc({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})
    assert evaluate([policy], Request("sts:AssumeRole", ENH)).allowed
    assert not evaluate([policy], Request("iam:PassRole", ENH)).allowed
    policy = doc({"Effect": "Allow", "Action": "sts:*", "NotResource": ENH})
    assert not evaluate([policy], Request("sts:AssumeRole", ENH)).allowed
    assert evaluate([policy], Request("sts:AssumeRole", OIDC)).allowed


def test_a_single_statement_object_and_garbage_are_handled():
    assert evaluate([{"Statement": allow("sts:AssumeRole")}], Request("sts:AssumeRole", ENH)).allowed
    assert not evaluate([None, "x", {"Statement": ["x", {"Effect": "Allow"}]}], Request("sts:AssumeRole")).allowed


@pytest.mark.parametrize("principal,expected", [
    ({"AWS": OIDC}, True),
    ({"AWS": [f"arn:aws:iam::{ACCT}:role/other", OIDC]}, True),
    ({"AWS": f"arn:aws:iam::{ACCT}:root"}, True),
    ({"AWS": ACCT}, True),
    ({"AWS": "*"}, True),
    ("*", True),
    ({"AWS": f"arn:aws:iam::{ACCT}:role/other"}, False),
    ({"AWS": "arn:aws:iam::999999999999:root"}, False),
    ({"Federated": PROVIDER}, False),
    ({"Service": "ec2.amazonaws.com"}, False),
])
def test_trust_policy_principals(principal, expected):
    trust = doc({"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"})
    assert evaluate([trust], Request("sts:AssumeRole", ENH, ("AWS", OIDC))).allowed is expected


def test_names_exactly_tells_the_role_itself_from_its_account():
    req = ("AWS", OIDC)
    assert names_exactly({"Principal": {"AWS": [OIDC]}}, req)
    assert not names_exactly({"Principal": {"AWS": f"arn:aws:iam::{ACCT}:root"}}, req)
    assert not names_exactly({"Principal": "*"}, req)


def test_not_principal_excludes():
    policy = doc({"Effect": "Deny", "NotPrincipal": {"AWS": OIDC}, "Action": "sts:AssumeRole"},
                 {"Effect": "Allow", "Principal": {"AWS": ACCT}, "Action": "sts:AssumeRole"})
    assert evaluate([policy], Request("sts:AssumeRole", ENH, ("AWS", OIDC))).allowed
    other = f"arn:aws:iam::{ACCT}:role/other"
    assert evaluate([policy], Request("sts:AssumeRole", ENH, ("AWS", other))).effect == "deny"


def web_identity(aud, sub="alice", **extra):
    ctx = {"idp.example.com:aud": aud, "idp.example.com:sub": sub}
    return Request("sts:AssumeRoleWithWebIdentity", OIDC, ("Federated", PROVIDER), ctx,
                   ("idp.example.com:aud", "idp.example.com:sub"), **extra)


def oidc_trust(condition):
    return doc({"Effect": "Allow", "Principal": {"Federated": PROVIDER}, "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": condition})


def test_string_equals_on_aud():
    trust = oidc_trust({"StringEquals": {"idp.example.com:aud": "cid"}})
    assert evaluate([trust], web_identity("cid")).allowed
    assert not evaluate([trust], web_identity("other")).allowed


def test_condition_key_names_are_case_insensitive_values_are_not():
    trust = oidc_trust({"StringEquals": {"IDP.example.com:AUD": "cid"}})
    assert evaluate([trust], web_identity("cid")).allowed
    assert not evaluate([trust], web_identity("CID")).allowed
    trust = oidc_trust({"StringEqualsIgnoreCase": {"idp.example.com:aud": "cid"}})
    assert evaluate([trust], web_identity("CID")).allowed


def test_string_like_and_lists_of_values():
    trust = oidc_trust({"StringLike": {"idp.example.com:aud": ["x", "ci*"]}})
    assert evaluate([trust], web_identity("cid")).allowed
    assert not evaluate([trust], web_identity("dic")).allowed


def test_all_conditions_must_hold():
    trust = oidc_trust({"StringEquals": {"idp.example.com:aud": "cid", "idp.example.com:sub": "alice"}})
    assert evaluate([trust], web_identity("cid")).allowed
    assert not evaluate([trust], web_identity("cid", sub="mallory")).allowed


def test_for_any_and_for_all_values_on_a_multi_valued_key():
    req = Request("sts:AssumeRoleWithWebIdentity", OIDC, ("Federated", PROVIDER),
                  {"idp.example.com:aud": ["cid", "other"]}, ("idp.example.com:aud",))
    assert evaluate([oidc_trust({"ForAnyValue:StringEquals": {"idp.example.com:aud": "cid"}})], req).allowed
    assert not evaluate([oidc_trust({"ForAllValues:StringEquals": {"idp.example.com:aud": "cid"}})], req).allowed


def test_absent_keys_of_a_known_namespace():
    req = Request("sts:AssumeRoleWithWebIdentity", OIDC, ("Federated", PROVIDER), {}, ("idp.example.com:",))
    assert not evaluate([oidc_trust({"StringEquals": {"idp.example.com:aud": "cid"}})], req).allowed
    assert evaluate([oidc_trust({"StringEqualsIfExists": {"idp.example.com:aud": "cid"}})], req).allowed
    assert evaluate([oidc_trust({"StringNotEquals": {"idp.example.com:aud": "cid"}})], req).allowed
    assert evaluate([oidc_trust({"Null": {"idp.example.com:aud": "true"}})], req).allowed
    assert not evaluate([oidc_trust({"Null": {"idp.example.com:aud": "false"}})], req).allowed


def test_an_allow_on_conditions_it_cannot_judge_is_an_allow_with_caveats():
    for condition in ({"StringEquals": {"idp.example.com:amr": "mfa"}},  # a key the request does not carry
                      {"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}},  # an operator it lacks
                      {"StringEquals": {"idp.example.com:sub": "${aws:username}"}}):  # a policy variable
        d = evaluate([oidc_trust(condition)], web_identity("cid"))
        assert d.allowed and d.caveats, condition


def test_a_deny_on_conditions_it_cannot_judge_is_reported_not_applied():
    policy = doc(allow("sts:AssumeRole", ENH),
                 deny("sts:AssumeRole", ENH, Condition={"Bool": {"aws:MultiFactorAuthPresent": "false"}}))
    d = evaluate([policy], Request("sts:AssumeRole", ENH))
    assert d.allowed and any("Deny" in c for c in d.caveats)


def test_a_definite_allow_is_preferred_over_a_conditional_one():
    policy = doc(allow("sts:AssumeRole", ENH, Condition={"NumericLessThan": {"sts:DurationSeconds": "3600"}}),
                 allow("sts:AssumeRole", ENH))
    d = evaluate([policy], Request("sts:AssumeRole", ENH))
    assert d.allowed and not d.caveats


def test_a_condition_that_fails_beats_one_it_cannot_judge():
    trust = oidc_trust({"StringEquals": {"idp.example.com:aud": "cid"}, "DateLessThan": {"aws:CurrentTime": "x"}})
    assert not evaluate([trust], web_identity("other")).allowed
