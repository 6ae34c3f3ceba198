"""Checks of the Identity Center side: the application, the trusted token issuer and its user, the instance."""
from __future__ import annotations

import json
from typing import Any

from .facts import Facts, claim_value, issuer_for, issuer_url, oidc_config
from .model import Check, Failure, cannot_read, failure, ok, skipped, warning
from .policy import Request, evaluate
from .token import TokenFacts

CUSTOM_PROVIDER = "arn:aws:sso::aws:applicationProvider/custom"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def _relevant_issuer(f: Facts) -> tuple[dict[str, Any] | None, bool]:
    if isinstance(f.issuers, list):
        return issuer_for(f.issuers, f.iss)
    return None, False


# -- the application ----------------------------------------------------------------------------------
def check_application(f: Facts) -> list[Check]:
    t = f.target
    out: list[Check] = []
    app = f.application
    if isinstance(app, Failure):
        if app.not_found:
            out.append(failure("application.status", f"no application {t.application_arn} answers in "
                                                     f"{t.region}: {app.message or app.code}",
                               "Check the profile's application_arn and region against the application in the "
                               "Identity Center console."))
        else:
            out.append(cannot_read("application.status", app, "the application"))
        out.append(skipped("application.customer_managed", "the application could not be read"))
    elif app is not None:
        name = app.get("Name") or t.application_arn
        if app.get("Status") == "ENABLED":
            out.append(ok("application.status", f"application {name!r} is enabled"))
        else:
            out.append(failure("application.status", f"application {name!r} is {app.get('Status', 'not enabled')}",
                               f"Enable it: aws sso-admin update-application --application-arn {t.application_arn} "
                               "--status ENABLED."))
        provider = app.get("ApplicationProviderArn", "")
        if provider == CUSTOM_PROVIDER:
            out.append(ok("application.customer_managed", "it is a customer managed application"))
        else:
            out.append(failure("application.customer_managed", f"it is not a customer managed application "
                                                               f"(provider {provider or 'unknown'})",
                               "Create a customer managed OAuth application (provider "
                               f"{CUSTOM_PROVIDER}) for tipd and set application_arn to it."))
    out.append(_actor_policy(f))
    out.append(_assignment(f))
    out += _grants(f)
    out.append(_scopes(f))
    out.append(_account_access(f))
    return out


def _actor_policy(f: Facts) -> Check:
    t = f.target
    cid = "application.actor_policy"
    fix = (f"Name the OIDC role in the application's ActorPolicy: aws sso-admin put-application-authentication-method "
           f"--application-arn {t.application_arn} --authentication-method-type IAM --authentication-method "
           f"'{{\"Iam\":{{\"ActorPolicy\":{_actor_policy_example(t.oidc_role_arn)}}}}}'.")
    if isinstance(f.actor_policy, Failure):
        return cannot_read(cid, f.actor_policy, "the application's IAM authentication method")
    if f.actor_policy is None:
        return failure(cid, "the application has no IAM authentication method (ActorPolicy)", fix)
    d = evaluate([f.actor_policy], Request("sso-oauth:CreateTokenWithIAM", t.application_arn,
                                           ("AWS", t.oidc_role_arn)))
    if d.effect == "deny":
        return failure(cid, "the ActorPolicy explicitly denies the OIDC role sso-oauth:CreateTokenWithIAM", fix)
    if not d.allowed:
        return failure(cid, f"the ActorPolicy does not name the OIDC role {t.oidc_role_arn} for "
                            "sso-oauth:CreateTokenWithIAM", fix)
    if d.caveats:
        return warning(cid, "the ActorPolicy allows the OIDC role, under conditions diag cannot judge: "
                            + "; ".join(d.caveats), "Make sure those conditions hold for tipd's calls.")
    return ok(cid, "the ActorPolicy lets the OIDC role call sso-oauth:CreateTokenWithIAM")


def _actor_policy_example(role: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": role}, "Action": "sso-oauth:CreateTokenWithIAM", "Resource": "*"}]},
        separators=(",", ":"))


def _assignment(f: Facts) -> Check:
    t = f.target
    cid = "application.assignment"
    if isinstance(f.assignment_required, Failure):
        return cannot_read(cid, f.assignment_required, "the application's assignment configuration")
    if f.assignment_required is False:
        return ok(cid, "assignment is not required: every user of the instance may use the application")
    if f.assignment_required is None:
        return skipped(cid, "the assignment configuration was not read")
    if isinstance(f.assignments, Failure):
        return cannot_read(cid, f.assignments, "the application's assignments")
    user = f.user
    if user is None or isinstance(user.user_id, Failure):
        return skipped(cid, "assignment is required, and the user is unknown (see the trusted token issuer checks)")
    assigned = {(a.get("PrincipalType"), a.get("PrincipalId")) for a in f.assignments or []}
    fix = (f"Assign the user or one of their groups: aws sso-admin create-application-assignment --application-arn "
           f"{t.application_arn} --principal-type USER --principal-id {user.user_id} (or make assignment optional).")
    if ("USER", user.user_id) in assigned:
        return ok(cid, f"assignment is required and user {user.user_id} is assigned")
    if isinstance(user.group_ids, Failure):
        return cannot_read(cid, user.group_ids, "the user's group memberships")
    via = [g for g in user.group_ids or [] if ("GROUP", g) in assigned]
    if via:
        return ok(cid, f"assignment is required and user {user.user_id} is assigned through group {via[0]}")
    return failure(cid, f"assignment is required and user {user.user_id} is not assigned, directly or through a group",
                   fix)


def _grants(f: Facts) -> list[Check]:
    t = f.target
    if isinstance(f.grants, Failure):
        return [cannot_read("application.jwt_bearer", f.grants, "the application's grants"),
                skipped("application.audience", "the grants could not be read"),
                skipped("application.refresh_grant", "the grants could not be read")]
    if f.grants is None:
        return [skipped(i, "the grants were not read") for i in
                ("application.jwt_bearer", "application.audience", "application.refresh_grant")]
    out: list[Check] = []
    grant_fix = (f"Authorize the trusted token issuer for {f.iss} in the application's jwt-bearer grant: aws "
                 f"sso-admin put-application-grant --application-arn {t.application_arn} --grant-type {JWT_BEARER} "
                 "--grant '{\"JwtBearer\":{\"AuthorizedTokenIssuers\":[{\"TrustedTokenIssuerArn\":\"<issuer ARN>\","
                 f"\"AuthorizedAudiences\":[\"{t.aud}\"]}}]}}}}'.")
    entries = ((f.grants.get(JWT_BEARER) or {}).get("JwtBearer") or {}).get("AuthorizedTokenIssuers")
    entry = None
    if entries is None:
        out.append(failure("application.jwt_bearer", "the application has no jwt-bearer grant", grant_fix))
    else:
        known = {tti.get("TrustedTokenIssuerArn"): tti for tti in f.issuers} if isinstance(f.issuers, list) else {}
        tti, _ = _relevant_issuer(f)
        if tti is not None:
            entry = next((e for e in entries if e.get("TrustedTokenIssuerArn") == tti["TrustedTokenIssuerArn"]), None)
        else:  # no issuer of the instance is meant for iss: does the grant name one whose URL is iss anyway?
            entry = next((e for e in entries
                          if issuer_url(known.get(e.get("TrustedTokenIssuerArn"), {})) == f.iss), None)
        if entry is not None:
            arn = entry.get("TrustedTokenIssuerArn")
            name = (known.get(arn) or {}).get("Name") or arn
            out.append(ok("application.jwt_bearer", f"the jwt-bearer grant authorizes trusted token issuer {name!r} "
                                                    f"(issuer URL {f.iss})"))
        else:
            named = [issuer_url(known.get(e.get("TrustedTokenIssuerArn"), {})) or str(e.get("TrustedTokenIssuerArn"))
                     for e in entries]
            out.append(failure("application.jwt_bearer",
                               f"the jwt-bearer grant authorizes {', '.join(named) or 'no issuer'}"
                               f", not the profile's issuer {f.iss}", grant_fix))
    if entry is None:
        out.append(skipped("application.audience", "no jwt-bearer grant entry for the profile's issuer"))
    else:
        allowed = entry.get("AuthorizedAudiences") or []
        if t.aud in allowed:
            out.append(ok("application.audience", f"the grant accepts {t.aud_named} as audience"))
        else:
            out.append(failure("application.audience", f"the grant accepts audiences {allowed}, not {t.aud_named}",
                               f"Add {t.aud!r} to AuthorizedAudiences of the jwt-bearer grant "
                               "(aws sso-admin put-application-grant, as above)."))
    if "refresh_token" in f.grants:
        out.append(ok("application.refresh_grant", "the application has the refresh_token grant"))
    else:
        out.append(warning("application.refresh_grant", "the application has no refresh_token grant: every renewal "
                                                        "then needs a fresh IdP token",
                           f"Add it: aws sso-admin put-application-grant --application-arn {t.application_arn} "
                           "--grant-type refresh_token --grant '{\"RefreshToken\":{}}'."))
    return out


def _scopes(f: Facts) -> Check:
    if isinstance(f.scopes, Failure):
        return cannot_read("application.scopes", f.scopes, "the application's access scopes")
    if f.scopes is None:
        return skipped("application.scopes", "the access scopes were not read")
    names = [str(s["Scope"]) for s in f.scopes if s.get("Scope")]
    if names:
        return ok("application.scopes", f"access scopes: {', '.join(names)}")
    return failure("application.scopes", "the application has no access scopes",
                   f"Add the scopes of the services the user reaches, e.g. aws sso-admin put-application-access-scope "
                   f"--application-arn {f.target.application_arn} --scope s3:access.")


# -- the trusted token issuer and the user it maps to ---------------------------------------------------
def check_issuer(f: Facts) -> list[Check]:
    out: list[Check] = []
    t = f.target
    if isinstance(f.issuers, Failure):
        return [cannot_read("issuer.url", f.issuers, "the instance's trusted token issuers"),
                skipped("issuer.claim", "the trusted token issuers could not be read"),
                skipped("issuer.user", "the trusted token issuers could not be read"),
                skipped("issuer.user_status", "the trusted token issuers could not be read")]
    tti, exact = _relevant_issuer(f)
    create = (f"Create one whose issuer URL is exactly {f.iss}: aws sso-admin create-trusted-token-issuer "
              f"--instance-arn {t.instance_arn} --name tipd --trusted-token-issuer-type OIDC_JWT "
              "--trusted-token-issuer-configuration '{\"OidcJwtConfiguration\":{\"IssuerUrl\":\"" + f.iss + "\","
              "\"ClaimAttributePath\":\"email\",\"IdentityStoreAttributePath\":\"emails.value\","
              "\"JwksRetrievalOption\":\"OPEN_ID_DISCOVERY\"}}', and authorize it in the jwt-bearer grant.")
    if tti is None:
        out.append(failure("issuer.url", f"no trusted token issuer of the instance has issuer URL {f.iss}", create))
    elif not exact:
        out.append(failure("issuer.url",
                           f"trusted token issuer {tti.get('Name')!r} has issuer URL {issuer_url(tti)!r}, "
                           f"the IdP's iss is {f.iss!r}: Identity Center compares them exactly",
                           "The issuer URL cannot be changed: " + create[0].lower() + create[1:]))
    else:
        out.append(ok("issuer.url", f"trusted token issuer {tti.get('Name')!r} has issuer URL {f.iss} exactly"))
    out += _claim_and_user(f, tti)
    return out


def _claim_and_user(f: Facts, tti: dict[str, Any] | None) -> list[Check]:
    ids = ("issuer.claim", "issuer.user", "issuer.user_status")
    if tti is None:
        return [skipped(i, "no trusted token issuer for the profile's issuer") for i in ids]
    conf = oidc_config(tti)
    claim, attr = conf.get("ClaimAttributePath", ""), conf.get("IdentityStoreAttributePath", "")
    if not isinstance(f.token, TokenFacts):
        return [skipped(i, "there is no token to check") for i in ids]
    value = claim_value(f.token.claims, claim)
    if value is None:
        return [failure("issuer.claim", f"the token has no {claim!r} claim, which trusted token issuer "
                                        f"{tti.get('Name')!r} maps to the identity store's {attr}",
                        f"Have the IdP put {claim!r} in its tokens (request the scope that carries it), or map a claim "
                        f"the token has: aws sso-admin update-trusted-token-issuer --trusted-token-issuer-arn "
                        f"{tti.get('TrustedTokenIssuerArn')} --trusted-token-issuer-configuration "
                        "'{\"OidcJwtConfiguration\":{\"ClaimAttributePath\":\"<claim>\"}}'."),
                skipped("issuer.user", "the token lacks the mapped claim"),
                skipped("issuer.user_status", "the token lacks the mapped claim")]
    out = [ok("issuer.claim", f"the token's {claim!r} claim is {value!r}, matched against the identity store's {attr}")]
    u = f.user
    if u is None:
        return [*out, skipped("issuer.user", "the identity store is unknown (see the instance check)"),
                skipped("issuer.user_status", "no user")]
    if isinstance(u.user_id, Failure):
        if u.user_id.not_found:
            out.append(failure("issuer.user", f"the identity store has no user whose {attr} is {u.value!r}",
                               f"Create or provision (SCIM) that user with {attr} = {u.value!r}, or map the trusted "
                               "token issuer to an attribute the user has."))
        elif u.user_id.code == "ValidationException":
            out.append(failure("issuer.user", f"{attr} cannot identify exactly one user: {u.user_id.message}",
                               "Map the trusted token issuer to a unique identity store attribute (emails.value, "
                               "userName or externalId)."))
        else:
            out.append(cannot_read("issuer.user", u.user_id, "the identity store user"))
        out.append(skipped("issuer.user_status", "no user"))
        return out
    desc = u.description
    name = desc.get("UserName") if isinstance(desc, dict) else None
    out.append(ok("issuer.user", f"exactly one user has {attr} = {u.value!r}: "
                                 + (f"{name} ({u.user_id})" if name else u.user_id)))
    if isinstance(desc, Failure):
        out.append(cannot_read("issuer.user_status", desc, "the user"))
    elif desc is None:
        out.append(skipped("issuer.user_status", "the user was not described"))
    else:
        ext = desc.get("ExternalIds") or []
        origin = (f"provisioned by SCIM (external id from {ext[0].get('Issuer')})" if ext
                  else "created in Identity Center itself (not SCIM-provisioned)")
        status = desc.get("UserStatus")
        if status == "DISABLED":
            out.append(failure("issuer.user_status", f"the user is disabled; {origin}",
                               "Enable the user in Identity Center"
                               + (", or in the IdP that provisions it" if ext else "") + "."))
        else:
            shown = "enabled" if status else "present (status not reported)"
            out.append(ok("issuer.user_status", f"the user is {shown}; {origin}"))
    return out


#: the scope that lets the application's tokens call the portal API (AWS account access); see docs/accounts.md
ACCOUNT_ACCESS = "sso:account:access"
ACCOUNT_ACCESS_DOC = ("https://docs.aws.amazon.com/singlesignon/latest/userguide/"
                      "enable-account-access-customer-managed-apps.html")


def _account_access(f: Facts) -> Check:
    """`tipctl accounts`, `tipctl console` and account profiles need sso:account:access on the application: a
    failure when this profile has account profiles, else a note (the identity-enhanced session does not need it)."""
    cid, t = "application.account_access", f.target
    if isinstance(f.scopes, Failure) or f.scopes is None:
        return skipped(cid, "the access scopes were not read (see application.scopes)")
    if any(s.get("Scope") == ACCOUNT_ACCESS for s in f.scopes):
        return ok(cid, f"AWS account access is enabled ({ACCOUNT_ACCESS}): `tipctl accounts` lists your accounts")
    fix = (f"An Identity Center administrator of the management or delegated administrator account enables it: "
           f"aws sso-admin put-application-access-scope --application-arn {t.application_arn} --scope "
           f"{ACCOUNT_ACCESS} (organization instances only; {ACCOUNT_ACCESS_DOC}).")
    if t.account_profiles:
        return failure(cid, f"the application lacks {ACCOUNT_ACCESS}, which this profile's {t.account_profiles} "
                            "account profile(s) need", fix)
    return ok(cid, f"AWS account access is not enabled ({ACCOUNT_ACCESS}); only `tipctl accounts`, `tipctl console` "
                   "and account profiles need it")


def _instance_kind(f: Facts, inst: dict[str, Any]) -> Check:
    """AWS account access exists only on organization instances; an account instance has no permission sets
    (DescribeInstance's PermissionSetsEnabled), so nothing can enable it there."""
    cid, t = "instance.kind", f.target
    enabled = inst.get("PermissionSetsEnabled")
    if enabled is None:
        return ok(cid, "the instance does not say whether permission sets are enabled (PermissionSetsEnabled)")
    if enabled:
        return ok(cid, "an organization instance (permission sets enabled): AWS account access is possible")
    detail = "an account instance (no permission sets): AWS account access (sso:account:access) is not possible"
    if t.account_profiles:
        return failure(cid, detail + f", yet this profile has {t.account_profiles} account profile(s)",
                       "Use the organization instance of Identity Center for tipd's application (an account "
                       "instance cannot reach AWS accounts), or remove the account profiles.")
    return ok(cid, detail + " (the identity-enhanced session does not need it)")


# -- the instance ----------------------------------------------------------------------------------------
def check_instance(f: Facts) -> list[Check]:
    if isinstance(f.instance, dict):
        return [*_check_region(f), _instance_kind(f, f.instance)]
    return _check_region(f)


def _check_region(f: Facts) -> list[Check]:
    t = f.target
    inst = f.instance
    fix = "Set the profile's `region` to the Identity Center instance's region (its Settings page shows it)."
    if isinstance(inst, Failure):
        if inst.not_found or inst.code == "ValidationException":
            return [failure("instance.region", f"no Identity Center instance {t.instance_arn} answers in "
                                               f"{t.region}: {inst.message or inst.code}", fix)]
        return [cannot_read("instance.region", inst, "the Identity Center instance")]
    if inst is None:
        return [skipped("instance.region", "the instance was not read")]
    active = [r.get("RegionName") for r in inst.get("Regions") or [] if r.get("Status", "ACTIVE") == "ACTIVE"]
    primary = inst.get("PrimaryRegion")
    regions = active or ([primary] if primary else [])
    if inst.get("Status") not in (None, "ACTIVE"):
        return [failure("instance.region", f"the instance is {inst['Status']}",
                        "Wait for the instance to become ACTIVE, or fix it in the Identity Center console.")]
    if not regions:
        return [ok("instance.region", f"the instance answers in {t.region} (it reports no region list)")]
    if t.region in regions:
        return [ok("instance.region", f"tipd calls {t.region}, one of the instance's regions ({', '.join(regions)})")]
    return [failure("instance.region", f"tipd calls Identity Center in {t.region}, but the instance's regions are "
                                       f"{', '.join(regions)}" + (f" (primary {primary})" if primary else ""),
                    f"Set region = \"{primary or regions[0]}\" in the profile (or add {t.region} to the instance).")]
