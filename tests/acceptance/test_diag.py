"""`tipctl diag` end to end: the real tipctl (and tipd) processes, moto for IAM and the identity store, the
project's fake for the sso-admin side (tests/support/fake_ssoadmin.py, from a Scenario each test chooses),
and tokens from a local issuer (--jwt) or, through tipd, from the real IdP.

Each misconfiguration is set up on top of a correct set-up, and must produce its own failure line with its
fix while every unrelated check stays ok."""
from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
import jwt
import pytest
from botocore.config import Config

from tests.support.aws import JwtIssuer
from tests.support.fake_ssoadmin import IdentityCenter, Scenario, TrustedTokenIssuer, actor_policy
from tests.support.stack import ACCOUNT, APP_ARN, BIN, ENHANCED_ROLE, OIDC_ROLE, REGION, Home, tipctl

pytestmark = pytest.mark.acceptance
CLIENT = "tipd-diag-client"
ADMIN = {"AWS_ACCESS_KEY_ID": "AKIA" + "DIAGADMIN0000001", "AWS_SECRET_ACCESS_KEY": "admin-secret"}


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


class World:
    """A correct set-up in moto (OIDC provider, both roles, the user) and the fake (the Identity Center
    side), for one issuer and client; tests then break one thing."""

    def __init__(self, moto, fake, issuer_url: str, client_id: str) -> None:
        kw = dict(endpoint_url=moto.url, region_name=REGION, aws_access_key_id="testing",
                  aws_secret_access_key="testing")
        self.iam = boto3.client("iam", **kw)
        self.unchecked_iam = boto3.client("iam", config=Config(parameter_validation=False), **kw)
        self.ids = boto3.client("identitystore", **kw)
        self.fake = fake
        self.store = fake.config.identity_store_id
        self.client_id = client_id
        self.host = issuer_url.split("://", 1)[1].rstrip("/")
        self.provider = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{self.host}"
        self.issuer_url = issuer_url
        self._remove_iam()
        self.oidc_provider([client_id])
        self.iam.create_role(RoleName="tip-oidc", AssumeRolePolicyDocument=self.oidc_trust())
        self.iam.put_role_policy(RoleName="tip-oidc", PolicyName="tip", PolicyDocument=self.oidc_permissions())
        self.enhanced_role()
        self.user_id = self.ids.create_user(
            IdentityStoreId=self.store, UserName="alice", DisplayName="Alice",
            Name={"GivenName": "Alice", "FamilyName": "Liddell"},
            Emails=[{"Value": "alice@example.com", "Primary": True}])["UserId"]
        self.groups: list[str] = []
        self.scenario = Scenario.build(APP_ARN, issuer_url=issuer_url, audiences=[client_id], oidc_role_arn=OIDC_ROLE,
                                       identity_store_id=self.store, account_id=ACCOUNT, region=REGION,
                                       scopes=["s3:access", "sts:identity_context"])
        fake.identity_center = IdentityCenter(self.scenario)

    def oidc_trust(self, condition: dict[str, Any] | None = None) -> str:
        cond = {"StringEquals": {f"{self.host}:aud": self.client_id}} if condition is None else condition
        return policy({"Effect": "Allow", "Principal": {"Federated": self.provider},
                       "Action": "sts:AssumeRoleWithWebIdentity", **({"Condition": cond} if cond else {})})

    def oidc_permissions(self, actions: tuple[str, ...] = ("sts:AssumeRole", "sts:SetContext"),
                         create_token: bool = True) -> str:
        st = [{"Effect": "Allow", "Action": list(actions), "Resource": ENHANCED_ROLE}]
        if create_token:
            st.append({"Effect": "Allow", "Action": "sso-oauth:CreateTokenWithIAM", "Resource": "*"})
        return policy(*st)

    def enhanced_trust(self, principal: str = OIDC_ROLE,
                       actions: tuple[str, ...] = ("sts:AssumeRole", "sts:SetContext")) -> str:
        return policy({"Effect": "Allow", "Principal": {"AWS": principal}, "Action": list(actions)})

    def oidc_provider(self, audiences: list[str]) -> None:
        """(Re)creates the IAM OIDC provider (moto lacks Add/RemoveClientIDToOpenIDConnectProvider)."""
        with contextlib.suppress(self.iam.exceptions.NoSuchEntityException):
            self.iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=self.provider)
        self.iam.create_open_id_connect_provider(Url=self.issuer_url, ClientIDList=audiences,
                                                 ThumbprintList=["0" * 40])

    def enhanced_role(self, trust: str | None = None, max_session: int = 3600) -> None:
        """(Re)creates tip-enhanced: moto validates trust policies on update with rules that predate
        sts:SetContext, and IAM's (client-side) minimum MaxSessionDuration is 3600."""
        with contextlib.suppress(self.iam.exceptions.NoSuchEntityException):
            self.iam.delete_role(RoleName="tip-enhanced")
        self.unchecked_iam.create_role(RoleName="tip-enhanced", MaxSessionDuration=max_session,
                                       AssumeRolePolicyDocument=trust or self.enhanced_trust())

    def group_with_alice(self) -> str:
        gid: str = self.ids.create_group(IdentityStoreId=self.store, DisplayName="tip-users")["GroupId"]
        self.ids.create_group_membership(IdentityStoreId=self.store, GroupId=gid, MemberId={"UserId": self.user_id})
        self.groups.append(gid)
        return gid

    def _remove_iam(self) -> None:
        for role in ("tip-oidc", "tip-enhanced"):
            try:
                for name in self.iam.list_role_policies(RoleName=role)["PolicyNames"]:
                    self.iam.delete_role_policy(RoleName=role, PolicyName=name)
                self.iam.delete_role(RoleName=role)
            except self.iam.exceptions.NoSuchEntityException:
                pass
        with contextlib.suppress(self.iam.exceptions.NoSuchEntityException):
            self.iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=self.provider)

    def close(self) -> None:
        self.fake.identity_center = None
        self.fake.clear_faults()
        self._remove_iam()
        for gid in self.groups:
            self.ids.delete_group(IdentityStoreId=self.store, GroupId=gid)
        self.ids.delete_user(IdentityStoreId=self.store, UserId=self.user_id)


@pytest.fixture
def world(moto, fake, issuer):
    w = World(moto, fake, issuer.url, CLIENT)
    yield w
    w.close()


@pytest.fixture
def jwt_home(issuer, fake):
    h = Home(issuer.url, CLIENT, fake.url)
    yield h
    h.cleanup()


def diag(home: Home, token: str | None, *args: str,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """tipctl diag with the admin's credentials; the token goes through standard input, never argv."""
    argv = [str(BIN / "tipctl"), "diag", *(["--jwt", "-"] if token is not None else []), *args]
    return subprocess.run(argv, input=token or "", capture_output=True, text=True,
                          env={**home.env, **ADMIN, **(env or {})}, timeout=120)


def diag_json(home: Home, token: str | None, *args: str,
              env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    r = diag(home, token, "--json", *args, env=env)
    assert "Traceback" not in r.stderr, r.stderr
    return r.returncode, {c["id"]: c for c in json.loads(r.stdout)["checks"]}


def alice(issuer: JwtIssuer, **kw) -> str:
    return issuer.token(aud=kw.pop("aud", CLIENT), email=kw.pop("email", "alice@example.com"), **kw)


def without_jti(issuer: JwtIssuer) -> str:
    """alice's token with no jti at all (JwtIssuer.token always adds one)."""
    claims = jwt.decode(alice(issuer), options={"verify_signature": False})
    del claims["jti"]
    return issuer.sign(claims)


# -- a correct set-up ---------------------------------------------------------------------------------------
def test_a_correct_set_up_is_all_ok(world, issuer, jwt_home, fake):
    r = diag(jwt_home, alice(issuer))
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"Profile work: application {APP_ARN} in {REGION}")
    assert "IdP token" in lines and "Identity Center application" in lines and "IAM roles and OIDC provider" in lines
    assert not [ln for ln in lines if ln.startswith(("  FAIL", "  warn", "  skip"))], r.stdout
    assert "  ok   application 'tipd' is enabled" in lines
    assert f"  ok   exactly one user has emails.value = 'alice@example.com': alice ({world.user_id})" in lines
    assert lines[-1] == "30 ok, 0 warnings, 0 failures, 0 skipped"
    # it read the set-up with the admin's own credentials: every sso-admin call was signed with them
    sso = [c for c in fake.calls if c.service == "sso-admin"]
    assert len(sso) >= 8 and {c.access_key_id for c in sso} == {ADMIN["AWS_ACCESS_KEY_ID"]}


def test_json_output(world, issuer, jwt_home):
    r = diag(jwt_home, alice(issuer), "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["profile"] == "work" and data["application_arn"] == APP_ARN and data["region"] == REGION
    assert data["ok"] is True and data["counts"] == {"ok": 30, "warning": 0, "failure": 0, "skipped": 0}
    assert [c["section"] for c in data["checks"]][:5] == ["token"] * 5
    for c in data["checks"]:
        assert set(c) == {"id", "section", "status", "detail", "fix"} and c["status"] == "ok" and c["fix"] is None


# -- one misconfiguration at a time ------------------------------------------------------------------------
@dataclass
class Case:
    check: str  # the one line that must fail (or warn)
    detail: str  # words of that line
    fix: str  # words of its fix
    breaks: Callable[[World, JwtIssuer], Any] = lambda w, i: None  # breaks the set-up
    token: Callable[[JwtIssuer], str] = lambda i: alice(i)  # the token to check
    status: str = "failure"
    skipped: set[str] = field(default_factory=set)  # lines that depend on the broken one


def _set(obj, **kw):
    for k, v in kw.items():
        setattr(obj, k, v)


def _other_issuer(w: World, i: JwtIssuer) -> None:
    arn = w.scenario.issuer.arn.replace("tti-", "tti-other-")
    w.scenario.issuers[arn] = TrustedTokenIssuer(arn, "https://other-idp.example.com", name="other")
    w.scenario.app.jwt_bearer = [(arn, [CLIENT])]


CASES = {
    "application disabled": Case(
        "application.status", "is DISABLED", "--status ENABLED", lambda w, i: _set(w.scenario.app, status="DISABLED")),
    "not a customer managed application": Case(
        "application.customer_managed", "not a customer managed application", "applicationProvider/custom",
        lambda w, i: _set(w.scenario.app, provider_arn="arn:aws:sso::aws:applicationProvider/catalog/athena")),
    "ActorPolicy without the OIDC role": Case(
        "application.actor_policy", f"does not name the OIDC role {OIDC_ROLE}", "put-application-authentication-method",
        lambda w, i: _set(w.scenario.app, actor_policy=actor_policy(f"arn:aws:iam::{ACCOUNT}:role/someone-else"))),
    "no IAM authentication method": Case(
        "application.actor_policy", "no IAM authentication method", "ActorPolicy",
        lambda w, i: _set(w.scenario.app, actor_policy=None)),
    "assignment required, user not assigned": Case(
        "application.assignment", "is not assigned, directly or through a group", "create-application-assignment",
        lambda w, i: _set(w.scenario.app, assignment_required=True, assignments=[("GROUP", "g-unrelated")])),
    "jwt-bearer grant for another issuer": Case(
        "application.jwt_bearer", "authorizes https://other-idp.example.com, not the profile's issuer",
        "put-application-grant", _other_issuer, skipped={"application.audience"}),
    "no jwt-bearer grant": Case(
        "application.jwt_bearer", "no jwt-bearer grant", "put-application-grant",
        lambda w, i: _set(w.scenario.app, jwt_bearer=None), skipped={"application.audience"}),
    "jwt-bearer grant for another audience": Case(
        "application.audience", f"not the profile's client_id {CLIENT}", f"Add '{CLIENT}' to AuthorizedAudiences",
        lambda w, i: _set(w.scenario.app, jwt_bearer=[(w.scenario.issuer.arn, ["another-client"])])),
    "no refresh_token grant": Case(
        "application.refresh_grant", "every renewal then needs a fresh IdP token", "--grant-type refresh_token",
        lambda w, i: _set(w.scenario.app, refresh_token_grant=False), status="warning"),
    "no access scopes": Case(
        "application.scopes", "no access scopes", "put-application-access-scope",
        lambda w, i: _set(w.scenario.app, scopes=[])),
    "trusted token issuer URL with a trailing slash": Case(
        "issuer.url", "compares them exactly", "cannot be changed",
        lambda w, i: _set(w.scenario.issuer, issuer_url=i.url + "/")),
    "token without the mapped claim": Case(
        "issuer.claim", "the token has no 'email' claim", "update-trusted-token-issuer",
        token=lambda i: i.token(aud=CLIENT), skipped={"issuer.user", "issuer.user_status"}),
    "trusted token issuer maps a claim the token lacks": Case(
        "issuer.claim", "the token has no 'upn' claim", "update-trusted-token-issuer",
        lambda w, i: _set(w.scenario.issuer, claim="upn"), skipped={"issuer.user", "issuer.user_status"}),
    "no user in the identity store": Case(
        "issuer.user", "no user whose emails.value is 'nobody@example.com'", "SCIM",
        token=lambda i: alice(i, email="nobody@example.com"), skipped={"issuer.user_status"}),
    "user disabled": Case(
        "issuer.user_status", "the user is disabled", "Enable the user",
        lambda w, i: w.scenario.user_status.update({w.user_id: "DISABLED"})),
    "region of the calls outside the instance's regions": Case(
        "instance.region", "the instance's regions are eu-west-1", 'region = "eu-west-1"',
        lambda w, i: _set(w.scenario, regions=["eu-west-1"])),
    "no OIDC provider": Case(
        "iam.oidc_provider", "there is no IAM OIDC provider", "create-open-id-connect-provider",
        lambda w, i: w.iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=w.provider),
        skipped={"iam.oidc_audience"}),
    "OIDC provider without the audience": Case(
        "iam.oidc_audience", f"do not include the profile's client_id {CLIENT}", "add-client-id-to-open-id-connect",
        lambda w, i: w.oidc_provider(["another-client"])),
    "OIDC role trust without an aud condition": Case(
        "iam.oidc_trust_aud", "does not check the token's aud", ":aud",
        lambda w, i: w.iam.update_assume_role_policy(RoleName="tip-oidc", PolicyDocument=w.oidc_trust({}))),
    "OIDC role trust for another audience": Case(
        "iam.oidc_trust", "does not allow sts:AssumeRoleWithWebIdentity", "sts:AssumeRoleWithWebIdentity",
        lambda w, i: w.iam.update_assume_role_policy(RoleName="tip-oidc", PolicyDocument=w.oidc_trust(
            {"StringEquals": {f"{w.host}:aud": "another-client"}})), skipped={"iam.oidc_trust_aud"}),
    "OIDC role may not call CreateTokenWithIAM": Case(
        "iam.create_token", "do not allow sso-oauth:CreateTokenWithIAM", '"Action":"sso-oauth:CreateTokenWithIAM"',
        lambda w, i: w.iam.put_role_policy(RoleName="tip-oidc", PolicyName="tip",
                                           PolicyDocument=w.oidc_permissions(create_token=False))),
    "OIDC role lacks sts:SetContext": Case(
        "iam.set_context", "do not allow sts:SetContext", '"Action":"sts:SetContext"',
        lambda w, i: (w.iam.put_role_policy(RoleName="tip-oidc", PolicyName="tip",
                                            PolicyDocument=w.oidc_permissions(("sts:AssumeRole",))),
                      # a trust naming the whole account leaves the decision to the role's own policies
                      w.enhanced_role(trust=w.enhanced_trust(f"arn:aws:iam::{ACCOUNT}:root")))),  # type: ignore[func-returns-value]  # two steps in one lambda
    "identity-enhanced role does not trust the OIDC role for SetContext": Case(
        "iam.enhanced_trust", "does not let tip-oidc call sts:SetContext", '"sts:SetContext"',
        lambda w, i: w.enhanced_role(trust=w.enhanced_trust(actions=("sts:AssumeRole",)))),
    "identity-enhanced role's MaxSessionDuration below an hour": Case(
        "iam.max_session", "tip-enhanced allows sessions of at most 1800 s", "--max-session-duration 3600",
        lambda w, i: w.enhanced_role(max_session=1800)),
    "expired token": Case(
        "token.lifetime", "the token expired", "clock", token=lambda i: alice(i, ttl=-600)),
    "token for another audience": Case(
        "token.aud", "does not include the profile's client_id", "client_id",
        token=lambda i: alice(i, aud="other-app")),
    "token with a bad signature": Case(
        "token.signature", "does not verify against the issuer's keys", "signed with a key its JWKS publishes",
        token=lambda i: alice(i, unpublished=True)),
    "token without a jti": Case(
        "token.jti", "no usable jti", "jti", token=lambda i: without_jti(i), status="warning"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_each_misconfiguration_has_its_own_line(name, world, issuer, jwt_home):
    case = CASES[name]
    case.breaks(world, issuer)
    code, checks = diag_json(jwt_home, case.token(issuer))
    bad = checks[case.check]
    assert bad["status"] == case.status, bad
    assert case.detail in bad["detail"], bad["detail"]
    assert case.fix in bad["fix"], bad["fix"]
    others = {cid: c["status"] for cid, c in checks.items() if cid != case.check}
    assert others == {cid: "skipped" if cid in case.skipped else "ok" for cid in others}, \
        {cid: checks[cid]["detail"] for cid, s in others.items() if s != "ok"}
    assert code == (1 if case.status == "failure" else 0)


@pytest.mark.parametrize("how", ["directly", "through a group"])
def test_an_assigned_user_passes_required_assignment(how, world, issuer, jwt_home):
    principal = ("USER", world.user_id) if how == "directly" else ("GROUP", world.group_with_alice())
    _set(world.scenario.app, assignment_required=True, assignments=[("GROUP", "g-unrelated"), principal])
    code, checks = diag_json(jwt_home, alice(issuer))
    assert code == 0 and checks["application.assignment"]["status"] == "ok"
    assert ("through group" in checks["application.assignment"]["detail"]) is (how != "directly")


def test_access_denied_for_the_admin_is_a_failure_line_not_a_traceback(world, issuer, jwt_home, fake):
    fake.inject("DescribeApplication", "AccessDeniedException", count=-1,
                message="User: arn:aws:iam::123456789012:user/admin is not authorized to perform: "
                        "sso:DescribeApplication")
    r = diag(jwt_home, alice(issuer))
    assert r.returncode == 1 and "Traceback" not in r.stdout + r.stderr
    assert "  FAIL cannot read the application: sso-admin DescribeApplication failed: AccessDeniedException" in r.stdout
    assert "      fix: Run diag with AWS credentials allowed to call sso:DescribeApplication" in r.stdout
    assert "  skip the application could not be read" in r.stdout
    assert "  ok   the ActorPolicy lets the OIDC role call sso-oauth:CreateTokenWithIAM" in r.stdout


def test_no_aws_credentials_at_all(world, issuer, jwt_home):
    jwt_home.env.update(AWS_SHARED_CREDENTIALS_FILE=str(jwt_home.dir / "none"),
                        AWS_CONFIG_FILE=str(jwt_home.dir / "none"))
    r = diag(jwt_home, alice(issuer), env={"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""})
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "  FAIL cannot read your AWS identity: sts GetCallerIdentity failed: NoCredentials" in r.stdout
    assert "  ok   the signature verifies" in r.stdout  # the token is still checked


def test_the_admin_credentials_come_from_aws_profile(world, issuer, jwt_home, fake):
    key = "AKIA" + "DIAGPROFILE00002"
    creds = jwt_home.dir / "aws-credentials"
    creds.write_text(f"[admin]\naws_access_key_id = {key}\naws_secret_access_key = s\n")
    fake.clear_calls()
    r = diag(jwt_home, alice(issuer), "--aws-profile", "admin",
             env={"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SHARED_CREDENTIALS_FILE": str(creds)})
    assert r.returncode == 0, r.stdout
    assert {c.access_key_id for c in fake.calls if c.service in ("sso-admin", "iam", "identitystore")} == {key}
    r = diag(jwt_home, alice(issuer), "--aws-profile", "nosuch", env={"AWS_SHARED_CREDENTIALS_FILE": str(creds)})
    assert r.returncode == 1 and "FAIL cannot read your AWS identity" in r.stdout and "nosuch" in r.stdout


def test_application_and_region_overrides(world, issuer, jwt_home):
    other = APP_ARN.replace("apl-aaaabbbbccccdddd", "apl-0000000000000000")
    code, checks = diag_json(jwt_home, alice(issuer), "--application-arn", other, "--region", "eu-west-1")
    assert code == 1
    assert f"no application {other} answers in eu-west-1" in checks["application.status"]["detail"]
    assert "tipd calls Identity Center in eu-west-1" in checks["instance.region"]["detail"]


def test_usage_errors_exit_2(jwt_home):
    r = tipctl(jwt_home, "diag", "nosuchprofile", check=False)
    assert r.returncode == 2 and "no profile named 'nosuchprofile'" in r.stderr
    r = tipctl(jwt_home, "diag", "--application-arn", "arn:nope", check=False)
    assert r.returncode == 2 and "--application-arn" in r.stderr
    r = diag(jwt_home, "   ")
    assert r.returncode == 2 and "the token is empty" in r.stderr
    binary = jwt_home.dir / "token.bin"
    binary.write_bytes(b"\xff\xfe")
    r = tipctl(jwt_home, "diag", "--jwt", f"@{binary}", check=False)
    assert r.returncode == 2 and "is not a text file" in r.stderr and "Traceback" not in r.stderr


def test_without_jwt_and_without_tipd_the_aws_side_is_still_checked(world, jwt_home):
    code, checks = diag_json(jwt_home, None)
    assert code == 1 and checks["token.read"]["status"] == "failure"
    assert "tipd is not running" in checks["token.read"]["detail"] and "--jwt" in checks["token.read"]["fix"]
    assert checks["application.status"]["status"] == "ok" and checks["iam.oidc_trust"]["status"] == "ok"


def test_without_jwt_a_signed_out_profile_is_a_failure_line(home, tipd):
    code, checks = diag_json(home, None)
    assert code == 1 and checks["token.read"]["status"] == "failure"
    assert "not signed in: run `tipctl login work`" in checks["token.read"]["detail"]


# -- the token of a signed-in profile, from tipd ----------------------------------------------------------------
def test_diag_checks_a_fresh_token_of_the_signed_in_profile(moto, fake, idp, home, tipd):
    w = World(moto, fake, idp.issuer, idp.client_id)
    try:
        w.scenario = Scenario.matching(fake.config, APP_ARN, oidc_role_arn=OIDC_ROLE)  # what the fake enforces
        fake.identity_center = IdentityCenter(w.scenario)
        tipctl(home, "login")
        refreshes = idp.stats().get("/token", 0)
        r = diag(home, None)
        assert "Traceback" not in r.stderr
        assert idp.stats().get("/token", 0) == refreshes + 1  # tipd refreshed a new id_token for diag
        assert r.returncode == 0, r.stdout
        for line in ("the signature verifies against the issuer's published keys",
                     f"iss is the profile's issuer {idp.issuer}",
                     f"aud includes the profile's client_id {idp.client_id}",
                     "the token's 'email' claim is 'alice@example.com'", "application 'tipd' is enabled",
                     f"tip-oidc trusts {w.provider} for sts:AssumeRoleWithWebIdentity"):
            assert f"  ok   {line}" in r.stdout, r.stdout
        # the test IdP (oidc-provider) puts no jti in its id_tokens: the one warning
        assert [ln for ln in r.stdout.splitlines() if ln.startswith(("  FAIL", "  warn", "  skip"))] == [
            "  warn the token has no usable jti (unique token id) claim"]
        # and tipd keeps serving: the token diag got is never exchanged by the chain
        assert tipctl(home, "credential-process").returncode == 0
    finally:
        w.close()


def test_account_access_and_the_instance_kind_are_reported(world, issuer, jwt_home):
    code, checks = diag_json(jwt_home, alice(issuer))
    assert code == 0 and checks["application.account_access"]["status"] == "ok"
    assert "not enabled (sso:account:access)" in checks["application.account_access"]["detail"]
    assert "an organization instance" in checks["instance.kind"]["detail"]
    world.scenario.app.scopes.append("sso:account:access")
    world.scenario.permission_sets = False
    code, checks = diag_json(jwt_home, alice(issuer))
    assert "AWS account access is enabled" in checks["application.account_access"]["detail"]
    assert "an account instance" in checks["instance.kind"]["detail"]
