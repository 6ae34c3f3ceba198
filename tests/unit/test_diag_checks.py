"""`tipctl diag`'s judging and report over hand-made facts: the cases the acceptance tests do not reach."""
import json
from typing import TypeVar

import pytest

from tipd.diag import judge
from tipd.diag.facts import Facts, UserFacts, issuer_for
from tipd.diag.model import Failure, Status, Target
from tipd.diag.report import exit_code, render_text, to_json
from tipd.diag.token import TokenFacts
from tipd.secret import Secret

ACCT = "123456789012"
APP = f"arn:aws:sso::{ACCT}:application/ssoins-1111222233334444/apl-aaaabbbbccccdddd"
OIDC = f"arn:aws:iam::{ACCT}:role/tip-oidc"
ENH = f"arn:aws:iam::{ACCT}:role/tip-enhanced"
ISS = "https://idp.example.com"
PROVIDER = f"arn:aws:iam::{ACCT}:oidc-provider/idp.example.com"
TTI = f"arn:aws:sso::{ACCT}:trustedTokenIssuer/ssoins-1111222233334444/tti-1"
TARGET = Target("work", ISS, "cid", APP, OIDC, ENH, "us-east-1")
NOW = 1_800_000_000
_T = TypeVar("_T")


def found(fact: _T | Failure | None) -> _T:
    """A fact good_facts() set: neither missing nor a failed look-up."""
    assert fact is not None and not isinstance(fact, Failure), fact
    return fact


def good_facts() -> Facts:
    token = TokenFacts(Secret("h.p.s"), {"alg": "RS256", "kid": "k1"},
                       {"iss": ISS, "aud": "cid", "sub": "alice", "exp": NOW + 600, "jti": "j", "email": "a@x"})
    tti = {"TrustedTokenIssuerArn": TTI, "Name": "idp", "TrustedTokenIssuerConfiguration": {"OidcJwtConfiguration": {
        "IssuerUrl": ISS, "ClaimAttributePath": "email", "IdentityStoreAttributePath": "emails.value"}}}
    return Facts(
        TARGET, token, jwks=None, caller={"Arn": f"arn:aws:iam::{ACCT}:user/admin"},
        application={"Name": "tipd", "Status": "ENABLED",
                     "ApplicationProviderArn": "arn:aws:sso::aws:applicationProvider/custom"},
        actor_policy={"Statement": [{"Effect": "Allow", "Principal": {"AWS": OIDC},
                                     "Action": "sso-oauth:CreateTokenWithIAM", "Resource": "*"}]},
        assignment_required=False, assignments=[],
        grants={"urn:ietf:params:oauth:grant-type:jwt-bearer": {"JwtBearer": {"AuthorizedTokenIssuers": [
            {"TrustedTokenIssuerArn": TTI, "AuthorizedAudiences": ["cid"]}]}}, "refresh_token": {"RefreshToken": {}}},
        scopes=[{"Scope": "s3:access"}],
        instance={"Status": "ACTIVE", "IdentityStoreId": "d-1", "PrimaryRegion": "us-east-1",
                  "Regions": [{"RegionName": "us-east-1", "Status": "ACTIVE"}]},
        issuers=[tti],
        user=UserFacts("emails.value", "a@x", "u-1", {"UserId": "u-1", "UserName": "alice"}, []),
        oidc_provider={"ClientIDList": ["cid"]},
        oidc_role={"RoleName": "tip-oidc", "MaxSessionDuration": 3600, "AssumeRolePolicyDocument": {"Statement": [{
            "Effect": "Allow", "Principal": {"Federated": PROVIDER}, "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {"idp.example.com:aud": "cid"}}}]}},
        oidc_role_policies=[("tip", {"Statement": [
            {"Effect": "Allow", "Action": "sso-oauth:CreateTokenWithIAM", "Resource": "*"},
            {"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:SetContext"], "Resource": ENH}]})],
        enhanced_role={"RoleName": "tip-enhanced", "MaxSessionDuration": 3600, "AssumeRolePolicyDocument": {
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": OIDC},
                           "Action": ["sts:AssumeRole", "sts:SetContext"]}]}},
    )


def statuses(checks):
    return {c.id: c.status for c in checks}


def judged(f):
    return {c.id: c for c in judge(f, now=NOW, skew=60)}


def test_good_facts_are_all_ok_except_the_unfetched_signature():
    checks = judged(good_facts())
    assert checks.pop("token.signature").status == Status.SKIPPED
    assert {c.status for c in checks.values()} == {Status.OK}, {k: c.detail for k, c in checks.items()
                                                              if c.status != Status.OK}


def test_without_aws_credentials_every_aws_section_says_so_once():
    f = good_facts()
    f.caller = Failure("sts GetCallerIdentity", "NoCredentials", "no AWS credentials were found")
    checks = judged(f)
    assert checks["aws.credentials"].status == Status.FAILURE and "--aws-profile" in checks["aws.credentials"].fix
    assert [k for k, c in checks.items() if c.status == Status.SKIPPED and k.endswith(".all")] == [
        "application.all", "issuer.all", "instance.all", "iam.all"]


def test_access_denied_names_the_permission_the_admin_lacks():
    f = good_facts()
    f.grants = Failure("sso-admin ListApplicationGrants", "AccessDeniedException", "not authorized")
    checks = judged(f)
    c = checks["application.jwt_bearer"]
    assert c.status == Status.FAILURE and "AccessDeniedException" in c.detail and "sso:ListApplicationGrants" in c.fix
    assert checks["application.audience"].status == checks["application.refresh_grant"].status == Status.SKIPPED


def test_the_same_account_trust_naming_the_role_needs_no_identity_permission():
    f = good_facts()
    f.oidc_role_policies = [("tip", {"Statement": [
        {"Effect": "Allow", "Action": "sso-oauth:CreateTokenWithIAM", "Resource": "*"}]})]
    checks = judged(f)
    assert checks["iam.assume_enhanced"].status == checks["iam.set_context"].status == Status.OK
    assert "same account" in checks["iam.set_context"].detail
    # a trust policy naming only the account delegates to identity policies, which say nothing here
    trust = found(f.enhanced_role)["AssumeRolePolicyDocument"]
    trust["Statement"][0]["Principal"] = {"AWS": f"arn:aws:iam::{ACCT}:root"}
    checks = judged(f)
    assert checks["iam.set_context"].status == Status.FAILURE and "sts:SetContext" in checks["iam.set_context"].fix


def test_an_explicit_deny_in_the_oidc_role_fails_even_with_the_trust():
    f = good_facts()
    found(f.oidc_role_policies).append(("deny", {"Statement": [{"Effect": "Deny", "Action": "sts:SetContext",
                                                         "Resource": "*", "Sid": "NoCtx"}]}))
    c = judged(f)["iam.set_context"]
    assert c.status == Status.FAILURE and "'NoCtx'" in c.detail


def test_a_permissions_boundary_makes_the_permission_checks_warnings():
    f = good_facts()
    found(f.oidc_role)["PermissionsBoundary"] = {"PermissionsBoundaryArn": "arn:aws:iam::aws:policy/x"}
    c = judged(f)["iam.create_token"]
    assert c.status == Status.WARNING and "permissions boundary" in c.detail
    assert exit_code(judge(f, now=NOW, skew=60)) == 0


def test_an_instance_that_does_not_answer_in_the_region():
    f = good_facts()
    f.instance = Failure("sso-admin DescribeInstance", "ResourceNotFoundException", "no such instance")
    c = judged(f)["instance.region"]
    assert c.status == Status.FAILURE and "answers in us-east-1" in c.detail and "region" in c.fix


def test_an_identity_store_attribute_that_is_not_unique():
    f = good_facts()
    f.user = UserFacts("name.givenName", "a@x", Failure("identitystore GetUserId", "ValidationException",
                                                          "not a unique attribute"))
    checks = judged(f)
    assert checks["issuer.user"].status == Status.FAILURE and "exactly one user" in checks["issuer.user"].detail
    assert checks["issuer.user_status"].status == Status.SKIPPED


def test_a_scim_provisioned_user_is_said_so():
    f = good_facts()
    found(found(f.user).description)["ExternalIds"] = [{"Issuer": "https://scim.example.com", "Id": "x"}]
    assert "provisioned by SCIM" in judged(f)["issuer.user_status"].detail


def test_no_iam_authentication_method():
    f = good_facts()
    f.actor_policy = None
    c = judged(f)["application.actor_policy"]
    assert c.status == Status.FAILURE and "no IAM authentication method" in c.detail
    assert "put-application-authentication-method" in c.fix


@pytest.mark.parametrize("urls,found,exact", [
    ([ISS], ISS, True), ([ISS + "/"], ISS + "/", False),
    (["HTTPS://IDP.example.com"], "HTTPS://IDP.example.com", False),
    (["https://other.example.com"], None, False), ([ISS + "/", ISS], ISS, True),
])
def test_issuer_matching(urls, found, exact):
    issuers = [{"TrustedTokenIssuerConfiguration": {"OidcJwtConfiguration": {"IssuerUrl": u}}} for u in urls]
    tti, is_exact = issuer_for(issuers, ISS)
    assert (tti and tti["TrustedTokenIssuerConfiguration"]["OidcJwtConfiguration"]["IssuerUrl"]) == found
    assert is_exact is exact


def test_a_nested_claim_path_is_a_jmespath_expression():
    f = good_facts()
    found(f.token).claims["ext"] = {"upn": "a@x"}
    found(f.issuers)[0]["TrustedTokenIssuerConfiguration"]["OidcJwtConfiguration"]["ClaimAttributePath"] = "ext.upn"
    assert judged(f)["issuer.claim"].status == Status.OK


def test_text_report_words_or_symbols_and_exit_codes():
    f = good_facts()
    found(f.application)["Status"] = "DISABLED"
    checks = judge(f, now=NOW, skew=60)
    plain = render_text(TARGET, checks, symbols=False)
    assert "  FAIL application 'tipd' is DISABLED" in plain
    assert "      fix: Enable it: aws sso-admin update-application" in plain
    assert "  ok   the application has the refresh_token grant" in plain
    assert "✓" not in plain and plain.splitlines()[-1].endswith("1 failure, 1 skipped")
    fancy = render_text(TARGET, checks, symbols=True)
    assert "  ✗ application 'tipd' is DISABLED" in fancy and "  - " in fancy
    assert exit_code(checks) == 1


def test_json_report():
    checks = judge(good_facts(), now=NOW, skew=60)
    data = json.loads(json.dumps(to_json(TARGET, checks)))
    assert data["profile"] == "work" and data["ok"] is True and data["counts"]["failure"] == 0
    assert set(data["checks"][0]) == {"id", "section", "status", "detail", "fix"}


def _with_accounts(f: Facts, n: int) -> Facts:
    from dataclasses import replace

    f.target = replace(f.target, account_profiles=n)
    return f


def test_account_access_is_a_note_without_account_profiles_and_a_failure_with_them():
    checks = judged(good_facts())
    assert checks["application.account_access"].status == Status.OK
    assert "not enabled" in checks["application.account_access"].detail
    checks = judged(_with_accounts(good_facts(), 2))
    c = checks["application.account_access"]
    assert c.status == Status.FAILURE and "2 account profile(s)" in c.detail
    assert f"put-application-access-scope --application-arn {APP} --scope sso:account:access" in c.fix
    f = _with_accounts(good_facts(), 2)
    f.scopes = [{"Scope": "s3:access"}, {"Scope": "sso:account:access"}]
    assert judged(f)["application.account_access"].status == Status.OK


def test_an_account_instance_cannot_have_account_access():
    f = good_facts()
    f.instance = dict(found(f.instance), PermissionSetsEnabled=True)
    assert "organization instance" in judged(f)["instance.kind"].detail
    f.instance = dict(f.instance, PermissionSetsEnabled=False)
    assert judged(f)["instance.kind"].status == Status.OK  # nothing needs account access
    c = judged(_with_accounts(f, 1))["instance.kind"]
    assert c.status == Status.FAILURE and "account instance" in c.detail and "organization instance" in c.fix
def test_a_profile_that_exchanges_its_access_token_is_checked_against_that_tokens_aud():
    """With exchange_token = "access_token" the JWT tipd hands over is the access token, whose aud is the IdP's
    API (Okta: api://default), not the client_id: that was a false token.aud failure, and the IAM and Identity
    Center audience checks looked for the client_id."""
    from dataclasses import replace

    f = good_facts()
    assert f.token is not None and not isinstance(f.token, Failure)
    f.token = replace(f.token, claims=dict(f.token.claims, aud="api://default"))
    f.oidc_provider = {"ClientIDList": ["api://default"]}
    found(f.grants)["urn:ietf:params:oauth:grant-type:jwt-bearer"]["JwtBearer"]["AuthorizedTokenIssuers"][0][
        "AuthorizedAudiences"] = ["api://default"]
    found(f.oidc_role)["AssumeRolePolicyDocument"]["Statement"][0]["Condition"] = {
        "StringEquals": {"idp.example.com:aud": "api://default"}}
    as_id_token = judged(f)
    assert as_id_token["token.aud"].status == Status.FAILURE  # an id_token with that aud is wrong
    f.target = replace(TARGET, exchange_token="access_token")
    checks = judged(f)
    assert checks.pop("token.signature").status == Status.SKIPPED
    assert {c.status for c in checks.values()} == {Status.OK}, {k: c.detail for k, c in checks.items()
                                                              if c.status != Status.OK}
    assert "the access token's aud api://default" in checks["iam.oidc_audience"].detail
    f.oidc_provider = {"ClientIDList": ["cid"]}  # the client_id is not what AWS sees here
    assert judged(f)["iam.oidc_audience"].status == Status.FAILURE
