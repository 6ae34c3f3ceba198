"""The typed configuration: one TOML file read into pydantic models, passed down everywhere."""
from __future__ import annotations

import difflib
import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from .config_file import config_path, read_config_file
from .errors import ConfigError
from .profiles import ACCOUNT, DEFAULT_PORT, IDP, PROFILE_NAME, PROVIDERS, Endpoint, pick_profile, profile_kind
from .urls import split_url

__all__ = ["DEFAULT_PORT", "PROFILE_NAME", "PROVIDERS", "config_path"]  # callers find these next to load_config

ACCOUNT_ROLE_ARN = r"^arn:aws[a-z-]*:iam::\d{12}:role/[A-Za-z0-9_+=,.@/-]+$"
APPLICATION_ARN = r"^arn:aws[a-z-]*:sso::\d{12}:application/ssoins-[0-9a-f]{16}/apl-[0-9a-f]{16}$"
REGION = r"^[a-z]{2}(-[a-z]+)+-\d$"
#: tipd.profiles.PROVIDERS, as a type (a unit test keeps the two equal)
Provider = Literal["okta", "entra", "cognito", "keycloak", "auth0", "pingfederate", "pingone", "google", "onelogin",
                   "jumpcloud", "oidc"]
#: IdPs that refuse the `offline_access` scope (invalid_scope) and issue refresh tokens without it
NO_OFFLINE_ACCESS = {
    # Cognito app clients allow only openid, email, phone, profile, aws.cognito.signin.user.admin and
    # resource-server scopes: asking for offline_access fails with invalid_scope
    # (https://github.com/mintel/dex-k8s-authenticator/issues/168). They need no such scope: the
    # authorization-code grant always returns a refresh token ("the only way to get all three token
    # types", https://docs.aws.amazon.com/cognito/latest/developerguide/federation-endpoints-oauth-grants.html).
    "cognito",
    # Google: a refresh token comes with access_type=offline, not with a scope; offline_access is not one of
    # its scopes (https://developers.google.com/identity/protocols/oauth2/native-app,
    # https://developers.google.com/identity/openid-connect/openid-connect#access-type-param)
    "google",
}
#: IdPs that issue refresh tokens by the client's grant types, where `offline_access` is a scope only if the
#: administrator defined one: asked for by default, and may be left out when the IdP refuses it (invalid_scope)
#: (PingFederate: https://docs.pingidentity.com/pingfederate/latest/introduction_to_pingfederate/pf_grant_types.html;
#: JumpCloud: the app's Refresh Token grant type, https://jumpcloud.com/support/sso-with-oidc)
OPTIONAL_OFFLINE_ACCESS = {"pingfederate", "jumpcloud"}
_OIDC_SCOPES = ["openid", "email", "offline_access"]
#: the scopes a profile asks for when it names none, by provider (`tipctl configure` has a preset for each)
DEFAULT_SCOPES: dict[str, list[str]] = {
    "okta": _OIDC_SCOPES,
    "entra": ["openid", "profile", "email", "offline_access"],
    "cognito": ["openid", "email"],
    "keycloak": _OIDC_SCOPES,
    "auth0": _OIDC_SCOPES,
    "pingfederate": _OIDC_SCOPES,
    "pingone": _OIDC_SCOPES,
    "google": ["openid", "email"],
    "onelogin": _OIDC_SCOPES,
    "jumpcloud": _OIDC_SCOPES,
    "oidc": _OIDC_SCOPES,
}
#: the other settings a provider changes when the profile does not set them (the matrix's defaults;
#: docs/idp-setup.md says why for each)
PROVIDER_DEFAULTS: dict[str, dict[str, object]] = {
    # Entra's v2.0 token endpoint documents `scope` as required on a refresh grant, a subset of the sign-in's
    # (https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow#refresh-the-access-token;
    # AADSTS90023 "the scope parameter is not specified": https://learn.microsoft.com/en-us/answers/questions/1822191).
    # Loopback redirects: http://localhost, any port, for public clients (support for 127.0.0.1 is disputed)
    # (https://learn.microsoft.com/en-us/entra/identity-platform/reply-url#localhost-exceptions)
    "entra": {"refresh_scope": "granted", "redirect_host": "localhost"},
    # Cognito: "HTTPS over HTTP except for http://localhost for testing purposes only"; the callback URL is
    # compared exactly, port included
    # (https://docs.aws.amazon.com/cognito-user-identity-pools/latest/APIReference/API_CreateUserPoolClient.html)
    "cognito": {"redirect_host": "localhost"},
    # Google: a refresh token only with access_type=offline, again on a later consent only with prompt=consent;
    # desktop clients have a secret that the token endpoint requires
    # (https://developers.google.com/identity/protocols/oauth2/native-app#exchange-authorization-code)
    "google": {"auth_params": {"access_type": "offline", "prompt": "consent"}, "client_auth": "client_secret_post"},
}
#: the settings of an IdP profile whose default depends on its provider (a profile that changes provider takes
#: the new one's)
PROVIDER_KEYS = ("scopes", "redirect_host", "refresh_scope", "exchange_token", "client_auth", "auth_params")
#: authorization request parameters tipd sets itself: auth_params may not replace them
RESERVED_AUTH_PARAMS = {"response_type", "client_id", "redirect_uri", "scope", "state", "nonce", "code_challenge",
                        "code_challenge_method", "request", "request_uri"}
_PARAM_NAME = r"[A-Za-z0-9_.-]{1,64}"


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_NAMES = {"cognito": "Cognito", "google": "Google"}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Model):
    port: int = Field(DEFAULT_PORT, ge=1, le=65535, description="loopback port of the credential endpoints")
    #: serve clients of other local users too (Linux refuses them by default; elsewhere it cannot tell)
    allow_other_users: bool = False
    #: the IMDSv2 emulation on the same port: None = on where the peer's uid can be checked (Linux)
    imds: bool | None = None
    #: answer IMDSv1 (token-less GETs); off, as on a hardened EC2 instance
    imds_v1: bool = False

    @property
    def imds_enabled(self) -> bool:
        """Whether IMDSv2 is served: as set, else where the peer's uid can be checked (Linux)."""
        from .server.peer import SUPPORTED

        return self.imds if self.imds is not None else SUPPORTED


class RefreshConfig(_Model):
    """When credentials are rotated and how fresh they must be when served (seconds)."""

    #: never serve credentials with less than this left: botocore re-fetches on every call below 15 min
    min_remaining: int = Field(1200, ge=1)
    #: rotate the identity-enhanced session while at least this much remains
    rotate_remaining: int = Field(1800, ge=1)
    #: DurationSeconds of the identity-enhanced session (role chaining caps it at 1 hour)
    session_duration: int = Field(3600, ge=1, le=3600)

    @model_validator(mode="after")
    def _ordered(self) -> RefreshConfig:
        if not self.rotate_remaining > self.min_remaining:
            raise ValueError("rotate_remaining must be greater than min_remaining, "
                             "so a new session is ready before the old one gets too short to serve")
        if not self.session_duration > self.rotate_remaining:
            raise ValueError("session_duration must be greater than rotate_remaining, "
                             "or every session would be rotated as soon as it is made")
        return self


class StoreConfig(_Model):
    #: where the IdP refresh token lives: the OS keyring when usable ("auto"), or a 0600 file
    backend: Literal["auto", "keyring", "file"] = "auto"


class Profile(_Model):
    #: which IdP preset made it (`tipctl configure`); first, so the scope rules below can see it
    provider: Provider = "oidc"
    issuer: str
    client_id: Annotated[str, Field(min_length=1, max_length=512)]
    scopes: list[Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[!#-\[\]-~]+$")]] = Field(
        default_factory=lambda: list(DEFAULT_SCOPES["oidc"]), max_length=64)
    #: the loopback redirect http://HOST:PORT/callback: the host exactly as registered at the IdP
    redirect_host: Literal["127.0.0.1", "localhost"] = "127.0.0.1"
    redirect_port: int = Field(0, ge=0, le=65535)
    #: the `scope` of a refresh grant: "omit" keeps the grant as it is (RFC 6749 section 6); "granted" sends
    #: exactly what the IdP granted, for IdPs that require a scope (a refresh never asks for more)
    refresh_scope: Literal["omit", "granted"] = "omit"
    #: the JWT that goes to AWS (STS AssumeRoleWithWebIdentity, Identity Center CreateTokenWithIAM): the
    #: id_token, or a JWT access token for IdPs that return no id_token on a refresh
    exchange_token: Literal["id_token", "access_token"] = "id_token"
    #: how the client authenticates at the token endpoint; a secret (`tipctl configure --client-secret-stdin`)
    #: is kept in the OS keyring or a 0600 file, never in this file
    client_auth: Literal["none", "client_secret_post", "client_secret_basic"] = "none"
    #: extra authorization request parameters (e.g. Google's access_type = "offline")
    auth_params: dict[str, str] = Field(default_factory=dict, max_length=16)
    application_arn: Annotated[str, Field(pattern=APPLICATION_ARN)]
    oidc_role_arn: Annotated[str, Field(pattern=ACCOUNT_ROLE_ARN)]
    identity_enhanced_role_arn: Annotated[str, Field(pattern=ACCOUNT_ROLE_ARN)]
    region: Annotated[str, Field(pattern=REGION)]
    #: the account of the S3 Access Grants instance (default: the identity-enhanced role's account)
    account_id: Annotated[str, Field(pattern=r"^\d{12}$")] | None = None

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, v: str) -> str:
        parts = split_url(v)  # its ValueError becomes the field's error
        if parts.scheme == "https" and parts.hostname:
            pass
        elif parts.scheme == "http" and is_loopback_host(parts.hostname):
            pass  # a local IdP (development, tests)
        else:
            raise ValueError("must be an https:// URL (http:// is allowed only on a loopback address)")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query or fragment")
        return v

    def refresh_scope_for(self, granted: str | None) -> str | None:
        """The `scope` of a refresh grant: None (left out: the grant stays as it is, RFC 6749 section 6), or
        exactly what was granted (what was asked for when the IdP did not say), never more."""
        if self.refresh_scope == "omit":
            return None
        return granted if granted else " ".join(self.scopes)

    @model_validator(mode="before")
    @classmethod
    def _provider_defaults(cls, data: object) -> object:
        if isinstance(data, dict) and isinstance(data.get("provider"), str):
            provider = data["provider"]
            defaults: dict[str, object] = dict(PROVIDER_DEFAULTS.get(provider, {}))
            if provider in DEFAULT_SCOPES:
                defaults["scopes"] = list(DEFAULT_SCOPES[provider])
            data = {**{k: v for k, v in defaults.items() if k not in data}, **data}
        return data

    @field_validator("auth_params")
    @classmethod
    def _auth_params(cls, v: dict[str, str]) -> dict[str, str]:
        for k, x in v.items():
            if not re.fullmatch(_PARAM_NAME, k):
                raise ValueError(f"{k!r} is not a parameter name (1-64 letters, digits, '_', '.' or '-')")
            if k in RESERVED_AUTH_PARAMS:
                raise ValueError(f"{k!r} is set by tipd itself")
            if len(x) > 1024 or any(ord(c) < 0x20 or ord(c) == 0x7F for c in x):
                raise ValueError(f"the value of {k!r} must be at most 1024 printable characters")
        return v

    @model_validator(mode="after")
    def _client_auth(self) -> Profile:
        if self.provider == "google" and self.client_auth == "none":
            raise ValueError('client_auth: Google requires the client secret even for desktop apps: use '
                             '"client_secret_post" and store the secret with `tipctl configure --client-secret-stdin`')
        return self

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, v: list[str], info: ValidationInfo) -> list[str]:
        if "openid" not in v:
            raise ValueError('must include "openid" (Identity Center exchanges the id_token)')
        provider = info.data.get("provider")
        if provider in NO_OFFLINE_ACCESS:
            if "offline_access" in v:
                how = ("issues a refresh token without it" if provider == "cognito" else
                       'issues a refresh token with auth_params access_type = "offline"')
                raise ValueError(f'must not include "offline_access" with {_NAMES.get(provider, provider)}: it '
                                 f"refuses that scope (invalid_scope) and {how}")
        elif "offline_access" not in v and provider not in OPTIONAL_OFFLINE_ACCESS:
            raise ValueError('must include "offline_access", or the IdP issues no refresh token '
                             "and tipd cannot keep you signed in")
        return v


def profile_default(provider: str, key: str) -> Any:
    """What an IdP profile of `provider` has for `key` when its table leaves the key out (a fresh copy)."""
    if key == "scopes":
        return list(DEFAULT_SCOPES[provider])
    if key in PROVIDER_DEFAULTS.get(provider, {}):
        value = PROVIDER_DEFAULTS[provider][key]
        return dict(value) if isinstance(value, dict) else value
    field = Profile.model_fields[key]
    if field.is_required():
        raise KeyError(f"{key} has no default")
    return field.get_default(call_default_factory=True)


def profile_defaults(provider: str) -> dict[str, Any]:
    """Every setting an IdP profile of `provider` has when its table leaves it out (leaving it out means this)."""
    return {k: profile_default(provider, k) for k, f in Profile.model_fields.items() if not f.is_required()}


class AccountProfile(_Model):
    """An account profile: a role in an AWS account, reached through the Identity Center sign-in of another
    profile (its `source`) with the portal API's GetRoleCredentials (docs/accounts.md)."""

    #: the IdP profile whose Identity Center token (with the sso:account:access scope) it uses
    source: Annotated[str, Field(pattern=f"^{PROFILE_NAME.pattern}$")]
    account_id: Annotated[str, Field(pattern=r"^\d{12}$")]
    #: the permission set's name, as Identity Center lists it (ListAccountRoles' roleName)
    role_name: Annotated[str, Field(pattern=r"^[\w+=,.@-]{1,64}$")]
    #: the region the SDKs are told to use (`tipctl aws-config sync`); the credentials come from the source's
    #: Identity Center region whatever this says
    region: Annotated[str, Field(pattern=REGION)] | None = None
    #: written by `tipctl accounts sync`, which removes only profiles it made once they are no longer assigned
    synced: bool = False


#: the model of each kind of profile (tipd.profiles.profile_kind tells the kind from the table's keys)
PROFILE_MODELS: dict[str, type[BaseModel]] = {IDP: Profile, ACCOUNT: AccountProfile}


def _kind(value: object) -> str:
    if isinstance(value, Mapping):
        return profile_kind(value)
    return next((k for k, m in PROFILE_MODELS.items() if isinstance(value, m)), IDP)


#: a profile of any kind: a new kind is one more tagged member here and in PROFILE_MODELS
AnyProfile = Annotated[Union[Annotated[Profile, Tag(IDP)], Annotated[AccountProfile, Tag(ACCOUNT)]],  # noqa: UP007
                      Discriminator(_kind)]


class Config(_Model):
    default_profile: str | None = None
    server: ServerConfig = ServerConfig()
    refresh: RefreshConfig = RefreshConfig()
    store: StoreConfig = StoreConfig()
    profiles: dict[str, AnyProfile] = Field(default_factory=dict)

    @field_validator("profiles", mode="before")
    @classmethod
    def _names(cls, v: object) -> object:
        for name in v if isinstance(v, dict) else ():
            if not PROFILE_NAME.fullmatch(name):
                raise ValueError(f"profile name {name!r} must be 1-64 letters, digits, '.', '_' or '-'")
        return v

    @model_validator(mode="after")
    def _default(self) -> Config:
        if self.default_profile is not None and self.default_profile not in self.profiles:
            raise ValueError(f"default_profile {self.default_profile!r} is not one of the profiles")
        for name, acct in self.accounts.items():
            if not isinstance(self.profiles.get(acct.source), Profile):
                what = "an account profile" if acct.source in self.profiles else "not a configured profile"
                raise ValueError(f"profiles.{name}.source: {acct.source!r} is {what}; the source of an account "
                                 "profile is a profile that signs in at an IdP (one with an issuer)")
        return self

    @property
    def idp_profiles(self) -> dict[str, Profile]:
        """The profiles that sign in at an IdP themselves."""
        return {n: p for n, p in self.profiles.items() if isinstance(p, Profile)}

    @property
    def accounts(self) -> dict[str, AccountProfile]:
        """The account profiles."""
        return {n: p for n, p in self.profiles.items() if isinstance(p, AccountProfile)}

    def accounts_of(self, source: str) -> dict[str, AccountProfile]:
        """The account profiles whose sign-in is `source`'s."""
        return {n: a for n, a in self.accounts.items() if a.source == source}

    def endpoint(self) -> Endpoint:
        return Endpoint(self.server.port, self.default_profile, tuple(self.profiles))

    def profile_name(self, name: str | None) -> str:
        """The profile a command means: the one named, the configured default, or the only one."""
        return pick_profile(name, self.default_profile, tuple(self.profiles))

    def idp_profile(self, name: str) -> Profile:
        """The IdP profile `name` (a ConfigError for a profile of another kind)."""
        prof = self.profiles[name]
        if not isinstance(prof, Profile):
            raise ConfigError(f"profile {name!r} does not sign in at an IdP itself ({_kind(prof)} profile)")
        return prof


def describe_error(err: ErrorDetails) -> str:
    """One pydantic error as `key.path: what is wrong`, in words for the person who wrote the file."""
    path = _path(err["loc"])
    loc = ".".join(str(p) for p in path)
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key (check the spelling)"
        near = difflib.get_close_matches(str(path[-1]), _keys_at(err["loc"]), n=1) if path else []
        if near:
            msg = f"unknown key; did you mean {near[0]!r}?"
    elif err["type"] == "missing":
        msg = "is required"
    elif err["type"] == "string_pattern_mismatch":
        msg = f"does not look right ({_pattern_hint(loc)})"
    return f"{loc or '(top level)'}: {msg}"


def _path(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """The key path of an error, without the parts pydantic adds (a profile's kind tag, validator names)."""
    parts = [p for p in loc if p not in ("function-after",)]
    if len(parts) >= 3 and parts[0] == "profiles" and parts[2] in PROFILE_MODELS:
        del parts[2]
    return tuple(parts)


def _keys_at(loc: tuple[int | str, ...]) -> list[str]:
    """The keys allowed beside the unknown key at `loc` (as pydantic gives it), for "did you mean"."""
    parts = [p for p in loc[:-1] if p not in ("function-after",)]
    model: type[BaseModel] | None = Config
    if len(parts) == 3 and parts[0] == "profiles":
        model = PROFILE_MODELS.get(str(parts[2]))
    elif len(parts) == 1:
        annotation = Config.model_fields[str(parts[0])].annotation if parts[0] in Config.model_fields else None
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    elif parts:
        model = None
    return list(model.model_fields) if model is not None else []


def _pattern_hint(loc: str) -> str:
    key = loc.rsplit(".", 1)[-1]
    return {
        "application_arn": "expected arn:aws:sso::<account>:application/ssoins-<16 hex>/apl-<16 hex>",
        "oidc_role_arn": "expected arn:aws:iam::<account>:role/<name>",
        "identity_enhanced_role_arn": "expected arn:aws:iam::<account>:role/<name>",
        "region": "expected a region such as eu-west-1",
        "account_id": "expected a 12-digit AWS account id",
        "role_name": "expected a permission set name: 1-64 letters, digits or +=,.@_-",
        "source": "expected the name of a profile that signs in at an IdP",
    }.get(key, "unexpected format")


def parse_config(data: Mapping[str, Any], source: str) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        lines = [describe_error(err) for err in e.errors(include_url=False, include_input=False)]
        raise ConfigError(f"{source}: invalid configuration:\n  " + "\n  ".join(lines)) from None


def load_config(path: str | os.PathLike[str] | None = None, *, missing_ok: bool = False) -> tuple[Config, Path]:
    """Read and validate the config; every problem becomes a ConfigError naming file and key.
    With `missing_ok`, an absent file at the implicit location is an empty config (a fresh install)."""
    data, p = read_config_file(path, missing_ok=missing_ok)
    return parse_config(data, str(p)), p
