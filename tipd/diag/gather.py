"""Fetch what diag judges, once, concurrently: the issuer's keys, and the set-up read with the admin's OWN
AWS credentials (the ambient chain or --aws-profile; never tipd's). Endpoints follow AWS_ENDPOINT_URL*.
No call raises: each answer is the data or a `Failure`."""
from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, Literal

from .facts import Facts, UserFacts, claim_value, issuer_for, oidc_config
from .model import Failure, Target
from .token import TokenFacts, fetch_jwks

if TYPE_CHECKING:
    import aiohttp

#: the services diag reads (the operation is named at run time, so the clients are used untyped)
Service = Literal["sts", "sso-admin", "iam", "identitystore"]

#: a list call is followed for at most this many pages (a diagnosis, not an inventory)
MAX_PAGES = 20


class AwsReader:
    def __init__(self, region: str, aws_profile: str | None = None) -> None:
        from aiobotocore.session import AioSession

        self.region = region
        self.aws_profile = aws_profile
        self.session = AioSession(profile=aws_profile) if aws_profile else AioSession()
        self._stack = AsyncExitStack()
        self._clients: dict[str, Any] = {}
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> AwsReader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def _client(self, service: Service) -> Any:
        from aiobotocore.config import AioConfig

        async with self._lock:
            if service not in self._clients:
                cfg = AioConfig(region_name=self.region, retries={"mode": "standard", "max_attempts": 2},
                                connect_timeout=5, read_timeout=15)
                self._clients[service] = await self._stack.enter_async_context(
                    self.session.create_client(service, region_name=self.region, config=cfg))
            return self._clients[service]

    async def call(self, service: Service, operation: str, **params: Any) -> dict[str, Any] | Failure:
        from botocore import xform_name
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ProfileNotFound

        what = f"{service} {operation}"
        try:
            client = await self._client(service)
            r: dict[str, Any] = await getattr(client, xform_name(operation))(**params)
        except ClientError as e:
            err = e.response.get("Error", {})
            return Failure(what, err.get("Code") or "Unknown", (err.get("Message") or "")[:300])
        except NoCredentialsError:
            return Failure(what, "NoCredentials", "no AWS credentials were found")
        except ProfileNotFound as e:
            return Failure(what, "NoCredentials", str(e))
        except BotoCoreError as e:  # cannot connect, bad configuration...: botocore's sentence names it
            return Failure(what, type(e).__name__, str(e)[:300])
        r.pop("ResponseMetadata", None)
        return r

    async def pages(self, service: Service, operation: str, key: str, **params: Any) -> list[Any] | Failure:
        items: list[Any] = []
        for _ in range(MAX_PAGES):
            r = await self.call(service, operation, **params)
            if isinstance(r, Failure):
                return r
            items += r.get(key) or []
            if not r.get("NextToken"):
                break
            params["NextToken"] = r["NextToken"]
        return items


async def gather(target: Target, token: TokenFacts | Failure, *, aws_profile: str | None = None,
                 http: aiohttp.ClientSession | None = None) -> Facts:
    """Everything at once: the IdP's keys and every AWS read that does not depend on another."""
    import aiohttp

    facts = Facts(target, token)
    async with AsyncExitStack() as stack:
        if http is None:
            http = await stack.enter_async_context(aiohttp.ClientSession())
        aws = await stack.enter_async_context(AwsReader(target.region, aws_profile))
        keys = fetch_jwks(http, target.issuer) if isinstance(token, TokenFacts) else _none()
        facts.jwks, facts.caller = await asyncio.gather(keys, aws.call("sts", "GetCallerIdentity"))
        if isinstance(facts.caller, Failure):
            return facts  # no usable credentials: the AWS checks say so once
        await asyncio.gather(_identity_center(aws, facts), _iam(aws, facts))
        await _user(aws, facts)
    return facts


async def _none() -> None:
    return None


async def _identity_center(aws: AwsReader, f: Facts) -> None:
    app = f.target.application_arn
    calls = asyncio.gather(
        aws.call("sso-admin", "DescribeApplication", ApplicationArn=app),
        aws.call("sso-admin", "GetApplicationAuthenticationMethod", ApplicationArn=app, AuthenticationMethodType="IAM"),
        aws.call("sso-admin", "GetApplicationAssignmentConfiguration", ApplicationArn=app),
        aws.call("sso-admin", "DescribeInstance", InstanceArn=f.target.instance_arn))
    pages = asyncio.gather(
        aws.pages("sso-admin", "ListApplicationAssignments", "ApplicationAssignments", ApplicationArn=app),
        aws.pages("sso-admin", "ListApplicationGrants", "Grants", ApplicationArn=app),
        aws.pages("sso-admin", "ListApplicationAccessScopes", "Scopes", ApplicationArn=app),
        aws.pages("sso-admin", "ListTrustedTokenIssuers", "TrustedTokenIssuers", InstanceArn=f.target.instance_arn))
    ((f.application, auth, config, f.instance),
     (f.assignments, grants, f.scopes, issuers)) = await asyncio.gather(calls, pages)
    if isinstance(auth, Failure):
        f.actor_policy = None if auth.not_found else auth
    else:
        f.actor_policy = ((auth.get("AuthenticationMethod") or {}).get("Iam") or {}).get("ActorPolicy") or {}
    f.assignment_required = config if isinstance(config, Failure) else bool(config.get("AssignmentRequired", True))
    f.grants = grants if isinstance(grants, Failure) else {g.get("GrantType"): g.get("Grant") or {} for g in grants}
    if isinstance(issuers, Failure):
        f.issuers = issuers
    else:
        described = await asyncio.gather(*(aws.call("sso-admin", "DescribeTrustedTokenIssuer",
                                                    TrustedTokenIssuerArn=i["TrustedTokenIssuerArn"]) for i in issuers))
        failed = next((d for d in described if isinstance(d, Failure)), None)
        f.issuers = failed or [d for d in described if not isinstance(d, Failure)]


async def _iam(aws: AwsReader, f: Facts) -> None:
    t = f.target
    oidc = t.oidc_role_arn.rsplit("/", 1)[-1]
    (f.oidc_provider, oidc_role, enhanced, f.oidc_role_policies) = await asyncio.gather(
        aws.call("iam", "GetOpenIDConnectProvider", OpenIDConnectProviderArn=f.provider_arn),
        aws.call("iam", "GetRole", RoleName=oidc),
        aws.call("iam", "GetRole", RoleName=t.enhanced_role_arn.rsplit("/", 1)[-1]),
        _role_policies(aws, oidc),
    )
    f.oidc_role = oidc_role if isinstance(oidc_role, Failure) else oidc_role.get("Role", {})
    f.enhanced_role = enhanced if isinstance(enhanced, Failure) else enhanced.get("Role", {})


async def _role_policies(aws: AwsReader, role: str) -> list[tuple[str, Any]] | Failure:
    """The role's identity policies: inline ones and the default version of each attached managed one."""
    inline, attached = await asyncio.gather(
        aws.pages("iam", "ListRolePolicies", "PolicyNames", RoleName=role),
        aws.pages("iam", "ListAttachedRolePolicies", "AttachedPolicies", RoleName=role))
    if isinstance(inline, Failure):
        return inline
    if isinstance(attached, Failure):
        return attached

    async def inline_doc(name: str) -> tuple[str, Any] | Failure:
        r = await aws.call("iam", "GetRolePolicy", RoleName=role, PolicyName=name)
        return r if isinstance(r, Failure) else (name, r.get("PolicyDocument"))

    async def managed_doc(arn: str) -> tuple[str, Any] | Failure:
        p = await aws.call("iam", "GetPolicy", PolicyArn=arn)
        if isinstance(p, Failure):
            return p
        v = await aws.call("iam", "GetPolicyVersion", PolicyArn=arn, VersionId=p["Policy"]["DefaultVersionId"])
        return v if isinstance(v, Failure) else (arn, v["PolicyVersion"].get("Document"))

    docs = await asyncio.gather(*(inline_doc(n) for n in inline),
                                *(managed_doc(a["PolicyArn"]) for a in attached))
    failed = next((d for d in docs if isinstance(d, Failure)), None)
    return failed or [(n, _decoded(d)) for n, d in (d for d in docs if not isinstance(d, Failure))]


def _decoded(doc: Any) -> Any:
    if isinstance(doc, str):  # botocore decodes policy documents; be safe with a URL-encoded string
        import json
        from urllib.parse import unquote

        return json.loads(unquote(doc))
    return doc


async def _user(aws: AwsReader, f: Facts) -> None:
    """The identity store user the token's mapped claim resolves to, and the user's groups."""
    if not isinstance(f.token, TokenFacts) or not isinstance(f.issuers, list):
        return
    tti, _ = issuer_for(f.issuers, f.iss)
    if tti is None:
        return
    conf = oidc_config(tti)
    value = claim_value(f.token.claims, conf.get("ClaimAttributePath", ""))
    store = _identity_store_id(f)
    if value is None or store is None:
        return
    attr = conf.get("IdentityStoreAttributePath", "")
    r = await aws.call("identitystore", "GetUserId", IdentityStoreId=store,
                       AlternateIdentifier={"UniqueAttribute": {"AttributePath": attr, "AttributeValue": value}})
    f.user = UserFacts(attr, value, r if isinstance(r, Failure) else r["UserId"])
    if isinstance(r, Failure):
        return
    desc, groups = await asyncio.gather(
        aws.call("identitystore", "DescribeUser", IdentityStoreId=store, UserId=r["UserId"]),
        aws.pages("identitystore", "ListGroupMembershipsForMember", "GroupMemberships", IdentityStoreId=store,
                  MemberId={"UserId": r["UserId"]}))
    f.user.description = desc
    f.user.group_ids = groups if isinstance(groups, Failure) else [g.get("GroupId") for g in groups]


def _identity_store_id(f: Facts) -> str | None:
    for source in (f.instance, f.application):
        if isinstance(source, dict):
            if source.get("IdentityStoreId"):
                return str(source["IdentityStoreId"])
            if source.get("IdentityStoreArn"):
                return str(source["IdentityStoreArn"]).rsplit("/", 1)[-1]
    return None
