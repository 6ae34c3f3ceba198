"""The IdP presets: the issuer derived from what people know (an Okta org URL, an Entra tenant id, a Cognito
user pool id, a Keycloak realm, ...), and back. Pure functions, stdlib only (tipctl imports this module to build
its parser). The other settings each IdP needs (scopes, refresh scope, redirect host, client secret, ...) are
the provider defaults of tipd/config.py; docs/idp-setup.md says why for each."""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import ConfigError
from ..profiles import PROVIDERS
from ..urls import split_url

_GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_REGION = r"[a-z]{2}(?:-[a-z]+)+-\d"
_POOL_ID = re.compile(rf"({_REGION})_([A-Za-z0-9]+)")
_OKTA_ADMIN = re.compile(r"(.+)-admin(\.(?:okta|oktapreview|okta-emea|okta-gov|okta-mil)\.com)")
_HOST = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+")


class FieldError(ConfigError):
    """One value is wrong: `reason` says why, in words a prompt can show under the question."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class Input:
    """One value `tipctl configure` takes: a flag (--name-with-dashes), a key of --from files, a question."""

    name: str
    prompt: str
    help: str
    #: the providers that use it
    providers: tuple[str, ...] = PROVIDERS
    #: asked in interactive mode (the others are flags only)
    asked: bool = True

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


INPUTS = (
    Input("org_url", "Okta org URL", "Okta: the org URL, e.g. https://dev-123.okta.com (not the -admin console URL)",
          ("okta",)),
    Input("authorization_server", "Okta authorization server",
          "Okta: the authorization server: 'default' (the default), an id such as aus1a2b3c4d5e6f7g8h9, "
          "or 'org' for the org authorization server", ("okta",)),
    Input("tenant", "Entra ID directory (tenant) ID",
          "Entra ID: the Directory (tenant) ID, a GUID shown on the app registration's Overview page", ("entra",)),
    Input("user_pool_id", "Cognito user pool ID", "Cognito: the user pool ID, e.g. eu-west-1_AbCdEf123",
          ("cognito",)),
    Input("cognito_region", "Cognito user pool region",
          "Cognito: the user pool's region (only checked against the pool ID's prefix)", ("cognito",), asked=False),
    Input("cognito_domain", "Cognito domain (optional, checked against the user pool)",
          "Cognito: the user pool's domain (prefix.auth.REGION.amazoncognito.com or a custom domain); "
          "optional, checked against the pool's sign-in endpoint", ("cognito",)),
    Input("keycloak_url", "Keycloak base URL",
          "Keycloak: the server's base URL, e.g. https://sso.example.com (Keycloak 16 and older: with /auth)",
          ("keycloak",)),
    Input("realm", "Keycloak realm", "Keycloak: the realm's name (its issuer is BASE/realms/REALM)", ("keycloak",)),
    Input("auth0_domain", "Auth0 domain",
          "Auth0: the tenant's domain, e.g. example.eu.auth0.com, or its custom domain", ("auth0",)),
    Input("pingfederate_url", "PingFederate base URL",
          "PingFederate: its base URL (System > Server > Protocol Settings), e.g. https://sso.example.com; "
          "the issuer is this URL unless an issuer is set there (then give --issuer)", ("pingfederate",)),
    Input("pingone_region", "PingOne region (com, ca, eu, com.au, sg or asia)",
          "PingOne: the top-level domain of the environment's region: com (North America), ca, eu, com.au, sg, "
          "asia (default com)", ("pingone",)),
    Input("environment_id", "PingOne environment ID",
          "PingOne: the environment ID, a UUID (Settings > Environment Properties)", ("pingone",)),
    Input("onelogin_subdomain", "OneLogin subdomain",
          "OneLogin: your subdomain, as in https://SUBDOMAIN.onelogin.com", ("onelogin",)),
    Input("issuer", "Issuer URL",
          "the issuer URL, exactly as the IdP's discovery document publishes it (any provider: it replaces the "
          "preset's values; required for --provider oidc)", ("oidc",)),
    Input("client_id", "Client ID", "the OIDC app's client ID"),
    Input("scopes", "Scopes", "space- or comma-separated scopes (default: the provider's)"),
    Input("redirect_host", "Redirect host (127.0.0.1 or localhost)",
          "host of the sign-in redirect http://HOST:PORT/callback, exactly as registered with the app: 127.0.0.1 "
          "or localhost (default: the provider's)", asked=False),
    Input("redirect_port", "Redirect port (0 = any free port)",
          "loopback port of the sign-in redirect http://HOST:PORT/callback: the one registered with the app, "
          "or 0 for any free port when the IdP allows it (RFC 8252)"),
    Input("refresh_scope", "Refresh scope (omit or granted)",
          "the scope of a refresh: omit (the grant stays as it is) or granted (exactly what the IdP granted, for "
          "IdPs that require one); default: the provider's", asked=False),
    Input("exchange_token", "Token exchanged with AWS (id_token or access_token)",
          "the JWT sent to AWS: id_token, or access_token (a JWT) for IdPs that return no id_token on a refresh",
          asked=False),
    Input("client_auth", "Client authentication (none, client_secret_post or client_secret_basic)",
          "how the app authenticates at the token endpoint: none (a public client, the default), or with its "
          "secret (client_secret_post, client_secret_basic); the secret goes to the OS keyring, never to the "
          "config file", asked=False),
    Input("auth_params", "Extra authorization parameters",
          "extra parameters of the sign-in request, as KEY=VALUE separated by commas or spaces "
          "(default: the provider's, e.g. Google's access_type=offline,prompt=consent)", asked=False),
    Input("application_arn", "Identity Center application ARN",
          "the Identity Center customer managed application that trusts the IdP"),
    Input("oidc_role_arn", "OIDC role ARN", "the IAM role assumed with the id_token (AssumeRoleWithWebIdentity)"),
    Input("identity_enhanced_role_arn", "Identity-enhanced role ARN",
          "the IAM role assumed with the Identity Center identity context"),
    Input("region", "Identity Center region", "the Identity Center instance's region, e.g. eu-west-1"),
    Input("account_id", "S3 Access Grants account",
          "the 12-digit account of the S3 Access Grants instance (default: the identity-enhanced role's account)",
          asked=False),
)
BY_NAME = {i.name: i for i in INPUTS}
#: inputs that make the issuer, by provider
PRESET_INPUTS = {"okta": ("org_url", "authorization_server"), "entra": ("tenant",),
                 "cognito": ("user_pool_id", "cognito_region", "cognito_domain"),
                 "keycloak": ("keycloak_url", "realm"), "auth0": ("auth0_domain",),
                 "pingfederate": ("pingfederate_url",), "pingone": ("pingone_region", "environment_id"),
                 "google": (), "onelogin": ("onelogin_subdomain",), "jumpcloud": (), "oidc": ()}
#: the inputs a provider cannot do without (the issuer may replace them: see derive_issuer)
REQUIRED_PRESET = {"okta": ("org_url",), "entra": ("tenant",), "cognito": ("user_pool_id",),
                   "keycloak": ("keycloak_url", "realm"), "auth0": ("auth0_domain",),
                   "pingfederate": ("pingfederate_url",), "pingone": ("environment_id",), "google": (),
                   "onelogin": ("onelogin_subdomain",), "jumpcloud": (), "oidc": ("issuer",)}
#: IdPs with one issuer for everyone
FIXED_ISSUER = {
    # https://developers.google.com/identity/openid-connect/openid-connect#discovery
    "google": "https://accounts.google.com",
    # one issuer shared by every JumpCloud org, with a trailing slash (https://jumpcloud.com/support/sso-with-oidc)
    "jumpcloud": "https://oauth.id.jumpcloud.com/",
}
#: IdPs whose redirect URI is registered with its exact port (Okta, Cognito: documented; the others as the
#: test IdP's personas assume, strictest): `redirect_port = 0` cannot work there
EXACT_PORT = {"okta": "Okta", "cognito": "Cognito", "auth0": "Auth0", "pingfederate": "PingFederate",
              "onelogin": "OneLogin", "jumpcloud": "JumpCloud"}
#: PingOne's regions by the top-level domain of their hosts
# (https://developer.pingidentity.com/pingone-api/workflow-library/using-postman-workflow-collections/
#  using-the-pingone-postman-environment.html)
PINGONE_REGIONS = ("com", "ca", "eu", "com.au", "sg", "asia")



def okta_org_url(value: str) -> str:
    """'dev-123', 'dev-123.okta.com' or 'https://dev-123.okta.com/' -> 'https://dev-123.okta.com'."""
    v = value.strip().rstrip("/")
    if "://" not in v:
        v = "https://" + (v if "." in v else f"{v}.okta.com")
    try:
        parts = split_url(v)
    except ValueError as e:
        raise FieldError("org_url", f"is not a valid URL: {e}") from None
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or not _HOST.fullmatch(host):
        raise FieldError("org_url", "must be an https:// URL such as https://dev-123.okta.com")
    if parts.path or parts.query or parts.fragment or parts.username:
        raise FieldError("org_url", f"give the org URL alone (https://{host}); the authorization server is "
                                    "a separate value")
    m = _OKTA_ADMIN.fullmatch(host)
    if m:
        raise FieldError("org_url", f"that is the Admin Console; the org URL is https://{m[1]}{m[2]}")
    return f"https://{host}" + (f":{parts.port}" if parts.port else "")


def okta_issuer(org_url: str, authorization_server: str | None = None) -> str:
    """A custom authorization server's issuer is ORG/oauth2/ID ('default' is the one every org has); the org
    authorization server's issuer is the org URL itself."""
    org = okta_org_url(org_url)
    server = (authorization_server or "default").strip()
    if server == "org":
        return org
    if not re.fullmatch(r"[A-Za-z0-9]+", server):
        raise FieldError("authorization_server", "must be 'default', an authorization server id such as "
                                                 "aus1a2b3c4d5e6f7g8h9, or 'org' for the org authorization server")
    return f"{org}/oauth2/{server}"


def entra_issuer(tenant: str) -> str:
    """The v2.0 endpoints' issuer. Entra ID names the tenant by its id in every token, whatever name was used
    to ask, so only the id makes an issuer that matches the discovery document and the tokens."""
    t = tenant.strip()
    if t.lower() in ("common", "organizations", "consumers"):
        raise FieldError("tenant", f"{t!r} stands for many tenants and tokens carry the user's own, so no single "
                                   "issuer would match them; give your Directory (tenant) ID")
    if not _GUID.fullmatch(t):
        raise FieldError("tenant", "give the Directory (tenant) ID, a GUID such as "
                                   "72f988bf-86f1-41af-91ab-2d7cd011db47 (on the app registration's Overview page, "
                                   "next to the Application (client) ID): tokens name the tenant by this ID")
    return f"https://login.microsoftonline.com/{t.lower()}/v2.0"


def cognito_pool(user_pool_id: str, region: str | None = None) -> tuple[str, str]:
    """(region, pool id) from 'eu-west-1_AbC123', or from 'AbC123' and its region."""
    pool = user_pool_id.strip()
    region = region.strip() if region else None
    if region is not None and not re.fullmatch(_REGION, region):
        raise FieldError("cognito_region", "does not look right (expected a region such as eu-west-1)")
    m = _POOL_ID.fullmatch(pool)
    if m is None and region and re.fullmatch(r"[A-Za-z0-9]+", pool):
        pool = f"{region}_{pool}"
        m = _POOL_ID.fullmatch(pool)
    if m is None:
        raise FieldError("user_pool_id", "expected REGION_ID, such as eu-west-1_AbCdEf123")
    if region and m[1] != region:
        raise FieldError("user_pool_id", f"this pool ID is of a pool in {m[1]}, not in {region}")
    return m[1], pool


def cognito_issuer(user_pool_id: str, region: str | None = None) -> str:
    pool_region, pool = cognito_pool(user_pool_id, region)
    return f"https://cognito-idp.{pool_region}.amazonaws.com/{pool}"


def cognito_domain(domain: str, pool_region: str) -> str:
    """The host of a user pool domain: 'https://x.auth.eu-west-1.amazoncognito.com', a bare host, a custom
    domain, or just the prefix 'x'."""
    v = domain.strip().rstrip("/")
    if "://" in v:
        try:
            parts = split_url(v)
        except ValueError as e:
            raise FieldError("cognito_domain", f"is not a valid URL: {e}") from None
        if parts.scheme != "https" or parts.path or parts.query or parts.port:
            raise FieldError("cognito_domain",
                             "give the domain alone, such as myprefix.auth.eu-west-1.amazoncognito.com")
        v = parts.hostname or ""
    host = v.lower()
    if re.fullmatch(r"[a-z0-9-]+", host):
        host = f"{host}.auth.{pool_region}.amazoncognito.com"  # a domain prefix
    if not _HOST.fullmatch(host):
        raise FieldError("cognito_domain", "expected a domain such as myprefix.auth.eu-west-1.amazoncognito.com "
                                           "or auth.example.com")
    m = re.fullmatch(r"[a-z0-9-]+\.auth\.([a-z0-9-]+)\.amazoncognito\.com", host)
    if m and m[1] != pool_region:
        raise FieldError("cognito_domain", f"this domain is in {m[1]}, but the user pool is in {pool_region}")
    return host


def base_url(field: str, value: str, example: str) -> str:
    """An https base URL (scheme and host, maybe a port and a path), without a trailing slash."""
    v = value.strip().rstrip("/")
    if "://" not in v:
        v = "https://" + v
    try:
        parts = split_url(v)
    except ValueError as e:
        raise FieldError(field, f"is not a valid URL: {e}") from None
    if parts.scheme != "https" or not _HOST.fullmatch((parts.hostname or "").lower()):
        raise FieldError(field, f"must be an https:// URL such as {example}")
    if parts.query or parts.fragment or parts.username:
        raise FieldError(field, f"give the base URL alone, such as {example}")
    return v


def host_name(field: str, value: str, example: str) -> str:
    v = value.strip().rstrip("/").lower()
    v = v.removeprefix("https://")
    if not _HOST.fullmatch(v):
        raise FieldError(field, f"expected a host name such as {example}")
    return v


def keycloak_issuer(base: str, realm: str) -> str:
    """Keycloak 17+ serves realms at BASE/realms/REALM (16 and older at BASE/auth/realms/REALM: give the /auth)
    (https://keycloak.org/securing-apps/oidc-layers: "/realms/{realm-name}/.well-known/openid-configuration")."""
    url = base_url("keycloak_url", base, "https://sso.example.com")
    if url.rstrip("/").endswith("/realms") or "/realms/" in url:
        raise FieldError("keycloak_url", "give the server's base URL, without /realms/...; the realm is a "
                                         "separate value")
    r = realm.strip()
    if not re.fullmatch(r"[A-Za-z0-9._~-]{1,255}", r):
        raise FieldError("realm", "give the realm's name as it appears in its URLs, such as myrealm")
    return f"{url}/realms/{r}"


def auth0_issuer(domain: str) -> str:
    """Auth0's issuer is https://DOMAIN/ with a trailing slash, which AWS compares byte for byte
    (https://auth0.com/docs/secure/tokens/id-tokens/id-token-structure)."""
    return f"https://{host_name('auth0_domain', domain, 'example.eu.auth0.com')}/"


def pingone_issuer(region: str | None, environment_id: str) -> str:
    """https://auth.pingone.TLD/ENVIRONMENT/as."""
    tld = (region or "com").strip().lower().lstrip(".")
    if tld not in PINGONE_REGIONS:
        raise FieldError("pingone_region", f"must be one of {', '.join(PINGONE_REGIONS)} (com is North America)")
    env = environment_id.strip().lower()
    if not _GUID.fullmatch(env):
        raise FieldError("environment_id", "give the environment ID, a UUID such as "
                                           "a1b2c3d4-5e6f-4a0b-9c8d-7e6f5a4b3c2d (Settings > Environment Properties)")
    return f"https://auth.pingone.{tld}/{env}/as"


def onelogin_issuer(subdomain: str) -> str:
    """OneLogin's OIDC v2 issuer (https://developers.onelogin.com/openid-connect)."""
    v = subdomain.strip().lower().removeprefix("https://").rstrip("/").removesuffix(".onelogin.com")
    if not re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", v):
        raise FieldError("onelogin_subdomain", "give the subdomain alone, as in https://SUBDOMAIN.onelogin.com")
    return f"https://{v}.onelogin.com/oidc/2"


def derive_issuer(provider: str, inputs: Mapping[str, str | None]) -> str:
    """The issuer a provider's inputs make (raises FieldError naming the input that is wrong)."""
    if provider == "okta":
        return okta_issuer(inputs.get("org_url") or "", inputs.get("authorization_server"))
    if provider == "entra":
        return entra_issuer(inputs.get("tenant") or "")
    if provider == "cognito":
        return cognito_issuer(inputs.get("user_pool_id") or "", inputs.get("cognito_region"))
    if provider == "keycloak":
        return keycloak_issuer(inputs.get("keycloak_url") or "", inputs.get("realm") or "")
    if provider == "auth0":
        return auth0_issuer(inputs.get("auth0_domain") or "")
    if provider == "pingfederate":
        # its base URL, unless an issuer of its own is configured there (then --issuer); the discovery check
        # before saving compares it with what the server publishes
        return base_url("pingfederate_url", inputs.get("pingfederate_url") or "", "https://sso.example.com")
    if provider == "pingone":
        return pingone_issuer(inputs.get("pingone_region"), inputs.get("environment_id") or "")
    if provider == "onelogin":
        return onelogin_issuer(inputs.get("onelogin_subdomain") or "")
    if provider in FIXED_ISSUER:
        return (inputs.get("issuer") or "").strip() or FIXED_ISSUER[provider]
    return (inputs.get("issuer") or "").strip()


def preset_inputs(provider: str, issuer: str) -> dict[str, str]:
    """The inputs an issuer was made from (the defaults when a profile is configured again); {} when it was
    not made by the preset."""
    if provider == "okta":
        m = re.fullmatch(r"(https://[^/]+)(?:/oauth2/([A-Za-z0-9]+))?", issuer)
        return {"org_url": m[1], "authorization_server": m[2] or "org"} if m else {}
    if provider == "entra":
        m = re.fullmatch(r"https://login\.microsoftonline\.com/([^/]+)/v2\.0", issuer)
        return {"tenant": m[1]} if m else {}
    if provider == "cognito":
        m = re.fullmatch(rf"https://cognito-idp\.({_REGION})\.amazonaws\.com/({_REGION}_[A-Za-z0-9]+)", issuer)
        return {"user_pool_id": m[2]} if m else {}
    if provider == "keycloak":
        m = re.fullmatch(r"(https://.+?)/realms/([^/]+)", issuer)
        return {"keycloak_url": m[1], "realm": m[2]} if m else {}
    if provider == "auth0":
        m = re.fullmatch(r"https://([^/]+)/", issuer)
        return {"auth0_domain": m[1]} if m else {}
    if provider == "pingfederate":
        return {"pingfederate_url": issuer} if issuer.startswith("https://") else {}
    if provider == "pingone":
        m = re.fullmatch(r"https://auth\.pingone\.([a-z.]+)/([0-9a-f-]{36})/as", issuer)
        return {"pingone_region": m[1], "environment_id": m[2]} if m and m[1] in PINGONE_REGIONS else {}
    if provider == "onelogin":
        m = re.fullmatch(r"https://([a-z0-9-]+)\.onelogin\.com/oidc/2", issuer)
        return {"onelogin_subdomain": m[1]} if m else {}
    if provider in FIXED_ISSUER:
        return {}
    return {"issuer": issuer}
