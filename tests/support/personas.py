"""Personas of real IdPs for the test IdP: named sets of switches (tests/idp/switches.mjs).

Every persona is one vendor's documented behaviour, as far as it matters to tipd, with the
documentation each choice rests on in ``sources``. Where the vendor's docs are silent, the
persona takes the strictest plausible behaviour and its ``notes`` say "(unconfirmed)".

Use (the API the IdP matrix relies on; keep it stable)::

    from tests.support.idp import IdP
    from tests.support.personas import PERSONAS, Persona, persona

    for name, p in PERSONAS.items():          # "default", "okta", "okta-org", "entra", ...
        with IdP(persona=name) as idp:         # or IdP(persona=p), or IdP(switches={...})
            idp.issuer                         # exactly the iss of its tokens (path, trailing "/")
            idp.discovery_url                  # <issuer without trailing "/">/.well-known/openid-configuration
            idp.client_id
            idp.client_secret                  # None unless the persona requires a secret
            idp.client_auth                    # "none" | "client_secret_post" | "..._basic" | "..._any"
            idp.redirect_host                  # "127.0.0.1" or "localhost" (the one to use)
            idp.redirect_port                  # the registered port (exact-port personas), else None
            idp.redirect_uri                   # http://<host>:<port>/callback when exact, else None
            idp.device_flow                    # bool: device_authorization_endpoint in discovery
            idp.revocation                     # "enabled" | "absent" | "error"
            idp.switches                       # every switch, as the IdP runs them
            idp.discovery()                    # the discovery document (cached)
            idp.client_form(), idp.client_headers()  # the client's credentials, as the IdP wants them
            idp.end_sessions()                 # every IdP session ends (session-bound tokens die)
            idp.rotate_keys(keep_old=True)     # a new signing key; the old one kept in the JWKS or not
            idp.advance_clock(60)              # the IdP's clock jumps ahead (lifetimes pass at once)

    IdP(persona="okta", switches={"refresh_rotation": "rotate"})   # explicit switches win
    IdP(persona="pingfederate", id_ttl=20)     # explicit lifetimes win over Persona.lifetimes

``Persona.lifetimes`` holds the persona's default token lifetimes (IdP keyword arguments
``access_ttl``, ``id_ttl``, ``refresh_ttl``, ``device_ttl``), e.g. PingFederate's 300 s id_token.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Persona:
    """A named set of test-IdP switches emulating one real IdP's documented behaviour."""

    name: str
    switches: dict[str, Any]
    sources: list[str]
    notes: str
    lifetimes: dict[str, int] = field(default_factory=dict)


# ----- vendor documentation (each persona cites the pages its switches rest on) ----------------
OKTA_REFRESH = "https://developer.okta.com/docs/guides/refresh-tokens/get-refresh-token/"
OKTA_ROTATION = "https://developer.okta.com/docs/guides/refresh-tokens/refresh-token-rotation/"
OKTA_EXPIRY = "https://support.okta.com/help/s/article/refresh-token-expiration-behavior?language=en_US"
OKTA_DEVICE = "https://developer.okta.com/docs/guides/device-authorization-grant/main/"
OKTA_LEEWAY = ("https://github.com/okta/okta-sdk-dotnet/blob/master/docs/"
               "OpenIdConnectApplicationSettingsRefreshToken.md")
ENTRA_REFRESH = "https://learn.microsoft.com/en-us/entra/identity-platform/refresh-tokens"
ENTRA_DEVICE = "https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-device-code"
ENTRA_REPLY_URL = "https://learn.microsoft.com/en-Us/azure/active-directory/develop/reply-url"
ENTRA_ID_TOKEN = "https://learn.microsoft.com/de-de/entra/identity-platform/id-token-claims-reference"
ENTRA_OPTIONAL_CLAIMS = "https://docs.azure.cn/en-us/active-directory/develop/optional-claims-reference"
ENTRA_NO_REVOKE = ("https://learn.microsoft.com/en-us/answers/questions/1158831/"
                   "invalidate-old-refresh-token-after-using-it-to-get")
ENTRA_REFRESH_SCOPE = ("https://learn.microsoft.com/en-us/answers/questions/192699/"
                       "confusing-error-message-on-failed-refresh-token-re")
ENTRA_REFRESH_SCOPE_REPORT = "https://github.com/golang/oauth2/pull/540"
COGNITO_REFRESH = ("https://docs.aws.amazon.com/cognito/latest/developerguide/"
                   "amazon-cognito-user-pools-using-the-refresh-token.html")
COGNITO_ROTATION = ("https://docs.aws.amazon.com/cognito-user-identity-pools/latest/APIReference/"
                    "API_RefreshTokenRotationType.html")
COGNITO_TOKEN = "https://docs.aws.amazon.com/cognito/latest/developerguide/token-endpoint.html"
COGNITO_REVOKE = "https://docs.aws.amazon.com/cognito/latest/developerguide/revocation-endpoint.html"
COGNITO_CALLBACK = ("https://docs.aws.amazon.com/sdk-for-kotlin/api/latest/cognitoidentityprovider/"
                    "aws.sdk.kotlin.services.cognitoidentityprovider.model/"
                    "-create-user-pool-client-request/callback-urls.html")
COGNITO_SCOPES = "https://docs.aws.amazon.com/cdk/api/v2/python/aws_cdk.aws_cognito/OAuthSettings.html"
KEYCLOAK_TIMEOUTS = ("https://docs.redhat.com/zh-cn/documentation/red_hat_build_of_keycloak/26.4/html/"
                     "server_administration_guide/timeouts")
KEYCLOAK_OFFLINE = ("https://docs.redhat.com/zh-cn/documentation/red_hat_build_of_keycloak/22.0/html/"
                    "server_administration_guide/offline-access")
KEYCLOAK_REFRESH_SCOPE = "https://github.com/keycloak/keycloak/issues/24323"
KEYCLOAK_NO_ISS = "https://github.com/keycloak/keycloak/issues/16525"
KEYCLOAK_REFRESH_SCOPE_PR = "https://github.com/keycloak/keycloak/pull/12043"
KEYCLOAK_DEVICE = ("https://keycloak.org/docs-api/latest/javadocs/org/keycloak/representations/"
                   "OAuth2DeviceAuthorizationResponse.html")
AUTH0_ROTATION = "https://auth0.com/docs/secure/tokens/refresh-tokens/refresh-token-rotation"
AUTH0_ROTATION_CONFIG = "https://auth0.com/docs/tokens/guides/configure-refresh-token-rotation"
AUTH0_EXPIRY = "https://auth0.com/docs/tokens/refresh-tokens/configure-refresh-token-expiration"
AUTH0_DEVICE = "https://auth0.github.io/auth0.net/api/Auth0.AuthenticationApi.Models.DeviceCodeResponse.html"
AUTH0_NON_ROTATING = "https://Auth0.com/docs/secure/tokens/refresh-tokens/disable-refresh-token-rotation"
PINGFED_ID_TOKEN = ("https://docs.pingidentity.com/pingfederate/latest/administrators_reference_guide/"
                    "help_policymanagementtasklet_policymanagementstate.html")
PINGFED_REFRESH_ID_TOKEN = ("https://docs.pingidentity.com/r/en-us/pingfederate-103/"
                            "help_policymanagementtasklet_policymanagementstate")
PINGFED_AS = ("https://docs.pingidentity.com/r/en-us/pingfederate-100/"
              "help_authorizationserversettingstasklet_oauthauthorizationserversettingsstate")
PINGONE_SESSION = ("https://developer.pingidentity.com/pingone-api/foundations/authentication-concepts/"
                   "access-tokens-and-id-tokens/token-validation.html")
PINGONE_TOKENS = ("https://developer.pingidentity.com/pingone-api/foundations/authentication-concepts/"
                  "access-tokens-and-id-tokens.html")
GOOGLE_NATIVE = "https://developers.google.com/identity/protocols/oauth2/native-app"
GOOGLE_DEVICE = "https://developers.google.com/identity/protocols/oauth2/limited-input-device"
GOOGLE_DEVICE_SIGNIN = "https://developers.google.com/identity/gsi/web/guides/devices"
GOOGLE_OFFLINE = "https://developers.google.com/identity/protocols/oauth2/web-server#offline"
ONELOGIN_REFRESH = "https://developers.onelogin.com/openid-connect/api/refresh-token"
JUMPCLOUD_OIDC = "https://jumpcloud.com/support/sso-with-oidc"

DAY = 24 * 60 * 60

PERSONAS: dict[str, Persona] = {p.name: p for p in [
    Persona(
        name="default",
        switches={},
        sources=[],
        notes="The test IdP as it always was: offline_access gives a rotating refresh token whose "
              "reuse revokes the grant, any 127.0.0.1 port, public client, device flow, revocation.",
    ),
    Persona(
        name="okta",
        switches={
            "issuer_path": "/oauth2/default",
            "refresh_rotation": "same",           # native apps: persistent refresh tokens by default
            "refresh_needs_offline_scope": True,  # refresh_token + offline_access -> refresh token
            "refresh_idle_ttl": 7 * DAY,          # "expire if not used" (default policy; unconfirmed)
            "access_token_format": "jwt",
            "access_token_audience": "api://default",
            "id_token_jti": True,
            "redirect_port": "exact",
        },
        sources=[OKTA_REFRESH, OKTA_ROTATION, OKTA_EXPIRY, OKTA_DEVICE, OKTA_LEEWAY],
        notes="Okta custom authorization server (default). Refresh tokens need offline_access; "
              "native apps get persistent (non-rotating) refresh tokens unless rotation is on (then "
              "reuse revokes, after a 30 s leeway by default), and a refresh returns one only when "
              "offline_access is in its scope; a refresh scope must be a subset of the grant. "
              "Device authorization for native apps. JWT access tokens (aud api://default, "
              "unconfirmed in the searched pages). Exact redirect URI match including the port "
              "(unconfirmed). Idle lifetime 7 days in the default policy (unconfirmed).",
    ),
    Persona(
        name="okta-org",
        switches={
            "refresh_rotation": "same",
            "refresh_needs_offline_scope": True,
            "refresh_absolute_ttl": 90 * DAY,     # org AS: always 90 days, no idle lifetime
            "id_token_jti": True,
            "redirect_port": "exact",
        },
        sources=[OKTA_REFRESH, OKTA_EXPIRY, OKTA_DEVICE],
        notes="Okta org authorization server: issuer is the org URL (no path); its access tokens "
              "are only for Okta's own APIs, so tipd must use the id_token (modelled as opaque). "
              "Refresh token lifetime fixed at 90 days from sign-in, rotation keeps the expiry. "
              "Exact redirect match (unconfirmed).",
    ),
    Persona(
        name="entra",
        switches={
            "issuer_path": "/9f0e5c4e-7a1d-4b6e-8c3f-1d2e3f4a5b6c/v2.0",
            "refresh_reuse": "allowed",           # old refresh tokens are not revoked on use
            "refresh_scope": "required",          # required in practice, docs disagree
            "id_token_email": False,              # email is an optional claim
            "redirect_host": "localhost",
            "device_uri_complete": False,
            "device_denied_error": "authorization_declined",
            "device_unknown_code_error": "bad_verification_code",
            "device_interval": 5,
            "revocation": "absent",
            "authorization_response_iss": False,  # (unconfirmed)
        },
        sources=[ENTRA_REFRESH, ENTRA_DEVICE, ENTRA_REPLY_URL, ENTRA_ID_TOKEN, ENTRA_OPTIONAL_CLAIMS,
                 ENTRA_NO_REVOKE, ENTRA_REFRESH_SCOPE, ENTRA_REFRESH_SCOPE_REPORT],
        notes="Microsoft Entra ID v2.0 endpoints: issuer https://login.microsoftonline.com/{tenant}/v2.0. "
              "Refresh tokens (offline_access) replace themselves on every use and the old ones are "
              "not revoked; no RFC 7009 revocation endpoint. A refresh without scope fails in "
              "practice (reports; the v2 docs call it optional). id_token has uti (no jti) and email "
              "only as an optional claim. Device flow without verification_uri_complete, errors "
              "authorization_declined / bad_verification_code, interval 5. Loopback redirect on "
              "http://localhost with any port (127.0.0.1 support is disputed: strictest chosen, "
              "unconfirmed). No RFC 9207 iss on the authorization response (unconfirmed).",
    ),
    Persona(
        name="cognito",
        switches={
            "issuer_path": "/us-east-1_TipdTest1",
            "refuse_scopes": ["offline_access"],
            "refresh_token_issue": "always",
            "refresh_rotation": "none",           # rotation disabled: refresh gives id + access only
            "refresh_scope": "ignored",           # (unconfirmed)
            "access_token_format": "jwt",
            "id_token_jti": True,
            "redirect_host": "localhost",
            "redirect_port": "exact",
            "device_flow": False,
            "authorization_response_iss": False,  # (unconfirmed)
        },
        sources=[COGNITO_REFRESH, COGNITO_ROTATION, COGNITO_TOKEN, COGNITO_REVOKE, COGNITO_CALLBACK,
                 COGNITO_SCOPES],
        notes="Amazon Cognito user pool (managed login): a refresh token with every authorization "
              "code grant; its OAuth scopes are openid, email, phone, profile, "
              "aws.cognito.signin.user.admin and custom ones, so offline_access is refused (the "
              "exact error is unconfirmed); a refresh returns new ID and access tokens only "
              "(rotation is opt-in, 0-60 s grace); `scope` on a refresh is not a documented "
              "parameter (ignored, unconfirmed). JWT access tokens. No device flow. Redirect URIs "
              "must be registered exactly; http only for localhost. Revocation at /oauth2/revoke. "
              "No RFC 9207 iss on the authorization response (unconfirmed).",
    ),
    Persona(
        name="keycloak",
        switches={
            "issuer_path": "/realms/tipd",
            "refresh_token_issue": "always",
            "refresh_dies_with_session": "without_offline_access",
            "refresh_reuse": "allowed",           # "Revoke Refresh Token" is off by default
            "id_token_jti": True,
            "authorization_response_iss": False,  # no RFC 9207 iss (open feature request)
        },
        lifetimes={"access_ttl": 300, "id_ttl": 300},
        sources=[KEYCLOAK_TIMEOUTS, KEYCLOAK_OFFLINE, KEYCLOAK_DEVICE, KEYCLOAK_REFRESH_SCOPE,
                 KEYCLOAK_REFRESH_SCOPE_PR, KEYCLOAK_NO_ISS],
        notes="Keycloak realm: issuer .../realms/{realm}. A refresh token with every code grant; "
              "without offline_access it belongs to the SSO session (dies with it, idle 30 min), "
              "with it an offline token that survives logout. A new refresh token on every "
              "refresh, old ones stay valid unless Revoke Refresh Token is on. Access and id_token "
              "lifespan 300 s. Device flow (per-client switch) with verification_uri_complete. "
              "No RFC 9207 iss on the authorization response. "
              "Since the refresh `scope` support (24) a scope beyond the grant is an error; any "
              "port on http://127.0.0.1/callback (unconfirmed).",
    ),
    Persona(
        name="auth0",
        switches={
            "issuer_trailing_slash": True,
            "refresh_rotation": "none",           # non-rotating refresh tokens by default
            "redirect_port": "exact",
            "device_interval": 5,
        },
        sources=[AUTH0_ROTATION, AUTH0_ROTATION_CONFIG, AUTH0_EXPIRY, AUTH0_DEVICE, AUTH0_NON_ROTATING],
        notes="Auth0 tenant: issuer https://{tenant}.auth0.com/ with a trailing slash. "
              "offline_access gives a refresh token; without rotation (the default) a refresh "
              "returns no new one (unconfirmed); with rotation reuse revokes the family after the "
              "overlap period. Device flow with verification_uri_complete. Access tokens are "
              "opaque without an API audience. Exact callback URL (unconfirmed).",
    ),
    Persona(
        name="pingfederate",
        switches={
            "refresh_id_token": False,            # "Return ID Token On Refresh Grant" off
            "redirect_port": "exact",
        },
        lifetimes={"id_ttl": 300},
        sources=[PINGFED_ID_TOKEN, PINGFED_REFRESH_ID_TOKEN, PINGFED_AS],
        notes="PingFederate: ID token lifetime 5 minutes by default, and an id_token on a refresh "
              "only when the OIDC policy's optional Return ID Token On Refresh Grant is selected; "
              "reference (opaque) access tokens by default. Refresh tokens rotate (strictest, "
              "unconfirmed); exact redirect (unconfirmed).",
    ),
    Persona(
        name="pingone",
        switches={
            "issuer_path": "/a1b2c3d4-5e6f-4a0b-9c8d-7e6f5a4b3c2d/as",
            "refresh_dies_with_session": True,    # session validity is checked for refresh tokens
            "access_token_format": "jwt",         # all PingOne tokens are RS256 JWTs
        },
        sources=[PINGONE_SESSION, PINGONE_TOKENS],
        notes="PingOne: issuer https://auth.pingone.com/{envId}/as. A refresh token is invalid once "
              "the user's session ends (sign-off, expiry, 30-day idle) unless the application sets "
              "skipTokenSessionValidation. Access and id tokens are RS256 JWTs. Device flow at "
              "/as/device_authorization (unconfirmed details). Any loopback port (unconfirmed).",
    ),
    Persona(
        name="google",
        switches={
            "refuse_scopes": ["offline_access"],
            "refresh_token_issue": "access_type_offline",
            "refresh_token_first_grant_only": True,
            "refresh_rotation": "none",
            "client_auth": "client_secret_any",
            "redirect_host": "loopback",
            "device_verification_url": True,
            "device_uri_complete": False,
            "device_interval": 5,
            "authorization_response_iss": False,  # (unconfirmed)
        },
        sources=[GOOGLE_NATIVE, GOOGLE_DEVICE, GOOGLE_DEVICE_SIGNIN, GOOGLE_OFFLINE],
        notes="Google: a desktop (installed) app client has a secret that the token request must "
              "carry; loopback redirect on 127.0.0.1 or localhost, any port. Refresh tokens only "
              "with access_type=offline, never through an offline_access scope (invalid_scope, "
              "unconfirmed wording), and only at the first code exchange of a user unless the "
              "request says prompt=consent; a refresh returns no new refresh token. TV/limited-input "
              "device flow says verification_url, needs the client secret when polling, has no "
              "verification_uri_complete. No RFC 9207 iss on the authorization response (unconfirmed).",
    ),
    Persona(
        name="onelogin",
        switches={
            "issuer_path": "/oidc/2",
            "redirect_port": "exact",
            "device_flow": False,
        },
        sources=[ONELOGIN_REFRESH],
        notes="OneLogin OIDC: issuer https://{subdomain}.onelogin.com/oidc/2; token endpoint "
              "authentication Basic, POST or None (PKCE), one at a time. A refresh returns a new "
              "refresh token and an id_token (reuse of the old one: revoked, unconfirmed). No device "
              "flow, exact redirect URIs (unconfirmed: strictest).",
    ),
    Persona(
        name="jumpcloud",
        switches={
            "issuer_trailing_slash": True,
            "redirect_port": "exact",
            "device_flow": False,
            "revocation": "absent",
        },
        sources=[JUMPCLOUD_OIDC],
        notes="JumpCloud OIDC SSO application: one issuer for every tenant, "
              "https://oauth.id.jumpcloud.com/ (trailing slash, unconfirmed). Refresh Token is an "
              "optional grant type of the app; public clients use PKCE without a secret. No device "
              "flow, no revocation endpoint, exact redirect URIs (unconfirmed: strictest).",
    ),
]}


def persona(name: str) -> Persona:
    """The persona called ``name``; a KeyError names the known ones."""
    try:
        return PERSONAS[name]
    except KeyError:
        raise KeyError(f"unknown persona {name!r}; known: {', '.join(PERSONAS)}") from None
