"""Identity Center's admin side for tests: the sso-admin calls `tipctl diag` reads, answered from a
`Scenario` a test chooses (moto has no applications, grants or trusted token issuers), plus what moto's
identitystore does not model.

    center = IdentityCenter(Scenario.matching(fake.config, APP_ARN, oidc_role_arn=OIDC_ROLE))
    # or Scenario.build(APP_ARN, issuer_url=..., audiences=[...], oidc_role_arn=..., identity_store_id=...)
    fake.identity_center = center          # FakeAWS routes sso-admin and identitystore here
    center.scenario.app.status = "DISABLED"  # a misconfiguration, mutable while the fake runs

Served from the scenario: DescribeApplication, GetApplicationAuthenticationMethod,
ListApplicationAuthenticationMethods, GetApplicationAssignmentConfiguration, ListApplicationAssignments,
ListApplicationGrants, GetApplicationGrant, ListApplicationAccessScopes, ListTrustedTokenIssuers,
DescribeTrustedTokenIssuer, DescribeInstance, ListInstances. Other sso-admin calls go on to moto.

identitystore: moto serves it (CreateUser, GetUserId on userName / emails.value, DescribeUser, groups),
except that its DescribeUser has no UserStatus and always empty ExternalIds: this module adds them from
`Scenario.user_status` (default ENABLED) and `Scenario.external_ids` (SCIM-provisioned users).

Simplifications (documented): every call must be SigV4-signed, but any credentials are accepted (the real
service checks the caller's IAM permissions; tests inject AccessDeniedException with `fake.inject`); the
instance answers in every region (the real service only in its own regions: DescribeInstance reports
them, which is what diag compares); no pagination (scenarios are small)."""
from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .aws import DEFAULT_SCOPES, JWT_BEARER, FakeConfig, _AwsError

CUSTOM_PROVIDER = "arn:aws:sso::aws:applicationProvider/custom"


def actor_policy(*role_arns: str) -> dict[str, Any]:
    """The ActorPolicy that lets these roles call CreateTokenWithIAM (what the console writes)."""
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": list(role_arns)}, "Action": "sso-oauth:CreateTokenWithIAM",
        "Resource": "*"}]}


@dataclass
class TrustedTokenIssuer:
    arn: str
    issuer_url: str
    name: str = "test-idp"
    claim: str = "email"  # ClaimAttributePath (JMESPath into the JWT)
    identity_store_attribute: str = "emails.value"

    def describe(self) -> dict[str, Any]:
        return {"TrustedTokenIssuerArn": self.arn, "Name": self.name, "TrustedTokenIssuerType": "OIDC_JWT",
                "TrustedTokenIssuerConfiguration": {"OidcJwtConfiguration": {
                    "IssuerUrl": self.issuer_url, "ClaimAttributePath": self.claim,
                    "IdentityStoreAttributePath": self.identity_store_attribute,
                    "JwksRetrievalOption": "OPEN_ID_DISCOVERY"}}}


@dataclass
class Application:
    arn: str
    name: str = "tipd"
    status: str = "ENABLED"
    provider_arn: str = CUSTOM_PROVIDER
    actor_policy: dict[str, Any] | None = None  # None: no IAM authentication method at all
    assignment_required: bool = False
    assignments: list[tuple[str, str]] = field(default_factory=list)  # (USER or GROUP, principal id)
    jwt_bearer: list[tuple[str, list[str]]] | None = None  # (issuer ARN, audiences); None: no such grant
    refresh_token_grant: bool = True
    scopes: list[str] = field(default_factory=list)

    def grants(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        if self.jwt_bearer is not None:
            out[JWT_BEARER] = {"JwtBearer": {"AuthorizedTokenIssuers": [
                {"TrustedTokenIssuerArn": arn, "AuthorizedAudiences": list(auds)} for arn, auds in self.jwt_bearer]}}
        if self.refresh_token_grant:
            out["refresh_token"] = {"RefreshToken": {}}
        return out


@dataclass
class Scenario:
    instance_arn: str
    identity_store_id: str
    account_id: str
    applications: dict[str, Application] = field(default_factory=dict)
    issuers: dict[str, TrustedTokenIssuer] = field(default_factory=dict)
    regions: list[str] = field(default_factory=lambda: ["us-east-1"])  # the first is the primary
    user_status: dict[str, str] = field(default_factory=dict)  # identity store user id -> ENABLED / DISABLED
    external_ids: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # user id -> SCIM ExternalIds
    #: DescribeInstance's PermissionSetsEnabled: False on an account instance (no AWS account access there)
    permission_sets: bool = True

    @classmethod
    def build(cls, app_arn: str, *, issuer_url: str, audiences: list[str], oidc_role_arn: str,
              identity_store_id: str, account_id: str = "123456789012", region: str = "us-east-1",
              claim: str = "email", refresh_token_grant: bool = True, scopes: list[str] | None = None,
              assignment_required: bool = False, permission_sets: bool = True) -> Scenario:
        """A correct set-up: one application with an ActorPolicy naming the OIDC role and a jwt-bearer grant
        for the one trusted token issuer of `issuer_url`."""
        instance_id = app_arn.split("/")[1]  # the application ARN names its instance
        tti_arn = f"arn:aws:sso::{account_id}:trustedTokenIssuer/{instance_id}/tti-{uuid.uuid4().hex[:12]}"
        return cls(
            instance_arn=f"arn:aws:sso:::instance/{instance_id}", identity_store_id=identity_store_id,
            account_id=account_id, regions=[region], permission_sets=permission_sets,
            issuers={tti_arn: TrustedTokenIssuer(tti_arn, issuer_url, claim=claim)},
            applications={app_arn: Application(
                app_arn, actor_policy=actor_policy(oidc_role_arn), assignment_required=assignment_required,
                jwt_bearer=[(tti_arn, list(audiences))], refresh_token_grant=refresh_token_grant,
                scopes=list(DEFAULT_SCOPES if scopes is None else scopes))})

    @classmethod
    def matching(cls, config: FakeConfig, app_arn: str, *, oidc_role_arn: str) -> Scenario:
        """The set-up an application of the fake's FakeConfig implies: the same issuer, audiences, claim,
        refresh grant and scopes its CreateTokenWithIAM enforces."""
        app = config.applications[app_arn]
        return cls.build(app_arn, issuer_url=app.issuer_url, audiences=app.audiences, oidc_role_arn=oidc_role_arn,
                         identity_store_id=config.identity_store_id, account_id=config.account_id,
                         region=config.region, claim=app.claim, refresh_token_grant=app.refresh_token_grant,
                         scopes=app.scopes, assignment_required=app.assigned is not None,
                         permission_sets=config.instance_kind == "organization")

    @property
    def app(self) -> Application:
        """The only application (most scenarios have one)."""
        (only,) = self.applications.values()
        return only

    @property
    def issuer(self) -> TrustedTokenIssuer:
        """The first trusted token issuer."""
        return next(iter(self.issuers.values()))


class IdentityCenter:
    """What FakeAWS calls for sso-admin and identitystore requests while a test has installed it."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario

    async def handle(self, info: Any, forward: Callable[[], Awaitable[web.Response]]) -> web.Response:
        if info.scope is None:
            raise _AwsError("MissingAuthenticationTokenException", "Missing Authentication Token", 403)
        if info.service == "identitystore":
            response = await forward()
            return self._amend_user(response) if info.operation == "DescribeUser" else response
        handler = getattr(self, f"_{info.operation}", None)
        if handler is None:
            return await forward()
        body = info.json_body if isinstance(info.json_body, dict) else {}
        return _answer(handler(body))

    # identitystore --------------------------------------------------------------------------------
    def _amend_user(self, response: web.Response) -> web.Response:
        if response.status != 200 or not isinstance(response.body, bytes):
            return response
        user = json.loads(response.body)
        uid = user.get("UserId")
        user["UserStatus"] = self.scenario.user_status.get(uid, "ENABLED")
        if self.scenario.external_ids.get(uid):
            user["ExternalIds"] = self.scenario.external_ids[uid]
        else:
            user.pop("ExternalIds", None)
        return _answer({k: v for k, v in user.items() if v is not None})

    # sso-admin ------------------------------------------------------------------------------------
    def _application(self, body: dict[str, Any]) -> Application:
        arn = body.get("ApplicationArn")
        app = self.scenario.applications.get(arn or "")
        if app is None:
            raise _AwsError("ResourceNotFoundException", f"Application {arn} not found")
        return app

    def _issuer(self, arn: str | None) -> TrustedTokenIssuer:
        tti = self.scenario.issuers.get(arn or "")
        if tti is None:
            raise _AwsError("ResourceNotFoundException", f"Trusted token issuer {arn} not found")
        return tti

    def _check_instance(self, arn: str | None) -> None:
        if arn != self.scenario.instance_arn:
            raise _AwsError("ResourceNotFoundException", f"Instance {arn} not found")

    def _DescribeApplication(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802 - named for the operation
        app = self._application(body)
        s = self.scenario
        return {"ApplicationArn": app.arn, "ApplicationProviderArn": app.provider_arn, "Name": app.name,
                "ApplicationAccount": s.account_id, "InstanceArn": s.instance_arn,
                "IdentityStoreArn": f"arn:aws:identitystore::{s.account_id}:identitystore/{s.identity_store_id}",
                "Status": app.status, "PortalOptions": {"Visibility": "DISABLED"}}

    def _GetApplicationAuthenticationMethod(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        app = self._application(body)
        if body.get("AuthenticationMethodType") != "IAM" or app.actor_policy is None:
            raise _AwsError("ResourceNotFoundException", "Authentication method not found")
        return {"AuthenticationMethod": {"Iam": {"ActorPolicy": app.actor_policy}}}

    def _ListApplicationAuthenticationMethods(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        app = self._application(body)
        methods = [] if app.actor_policy is None else [
            {"AuthenticationMethodType": "IAM", "AuthenticationMethod": {"Iam": {"ActorPolicy": app.actor_policy}}}]
        return {"AuthenticationMethods": methods}

    def _GetApplicationAssignmentConfiguration(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        return {"AssignmentRequired": self._application(body).assignment_required}

    def _ListApplicationAssignments(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        app = self._application(body)
        return {"ApplicationAssignments": [{"ApplicationArn": app.arn, "PrincipalType": kind, "PrincipalId": pid}
                                           for kind, pid in app.assignments]}

    def _ListApplicationGrants(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        grants = self._application(body).grants()
        return {"Grants": [{"GrantType": kind, "Grant": grant} for kind, grant in grants.items()]}

    def _GetApplicationGrant(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        grant = self._application(body).grants().get(body.get("GrantType") or "")
        if grant is None:
            raise _AwsError("ResourceNotFoundException", "Grant not found")
        return {"Grant": grant}

    def _ListApplicationAccessScopes(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        return {"Scopes": [{"Scope": s} for s in self._application(body).scopes]}

    def _ListTrustedTokenIssuers(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        self._check_instance(body.get("InstanceArn"))
        return {"TrustedTokenIssuers": [{"TrustedTokenIssuerArn": t.arn, "Name": t.name,
                                         "TrustedTokenIssuerType": "OIDC_JWT"} for t in self.scenario.issuers.values()]}

    def _DescribeTrustedTokenIssuer(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        return self._issuer(body.get("TrustedTokenIssuerArn")).describe()

    def _instance(self) -> dict[str, Any]:
        s = self.scenario
        return {"InstanceArn": s.instance_arn, "IdentityStoreId": s.identity_store_id,
                "IdentityStoreArn": f"arn:aws:identitystore::{s.account_id}:identitystore/{s.identity_store_id}",
                "OwnerAccountId": s.account_id, "Name": "test", "Status": "ACTIVE", "PrimaryRegion": s.regions[0],
                "PermissionSetsEnabled": s.permission_sets,
                "Regions": [{"RegionName": r, "Status": "ACTIVE", "IsPrimaryRegion": i == 0}
                            for i, r in enumerate(s.regions)]}

    def _DescribeInstance(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        self._check_instance(body.get("InstanceArn"))
        return self._instance()

    def _ListInstances(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        return {"Instances": [self._instance()]}


def _answer(data: dict[str, Any]) -> web.Response:
    return web.Response(status=200, text=json.dumps(data), content_type="application/x-amz-json-1.1",
                        headers={"x-amzn-RequestId": str(uuid.uuid4())})
