"""The IdP's endpoints: discovery, the token endpoint (code, refresh, device grants), revocation, JWKS."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp

from ..errors import UpstreamError
from ..secret import Secret, optional

log = logging.getLogger(__name__)

TIMEOUT = aiohttp.ClientTimeout(total=20, connect=5)
#: OAuth errors that no retry will fix: the grant is gone, or the client is misconfigured
PERMANENT_OAUTH_ERRORS = {"invalid_grant", "invalid_client", "unauthorized_client", "unsupported_grant_type",
                          "invalid_scope", "access_denied", "expired_token"}


@dataclass(frozen=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    revocation_endpoint: str | None = None
    device_authorization_endpoint: str | None = None
    end_session_endpoint: str | None = None


@dataclass(frozen=True)
class TokenResponse:
    access_token: Secret
    id_token: Secret | None
    refresh_token: Secret | None
    expires_in: int | None
    scope: str | None = None

    def __repr__(self) -> str:
        return f"TokenResponse(expires_in={self.expires_in}, refresh_token={'yes' if self.refresh_token else 'no'})"


class OAuthError(UpstreamError):
    """The IdP answered with an OAuth error (`error` / `error_description`)."""

    def __init__(self, error: str, description: str | None, status: int, what: str) -> None:
        self.error = error
        self.description = description
        permanent = error in PERMANENT_OAUTH_ERRORS
        if error == "invalid_grant":
            msg = (f"{what}: the IdP says your sign-in is no longer valid (invalid_grant"
                   f"{': ' + description if description else ''}); sign in again")
        else:
            msg = f"{what}: the IdP answered HTTP {status} {error}{': ' + description if description else ''}"
        super().__init__(msg, code="IdPError", permanent=permanent, status=401 if permanent else 502)


def connection_error(what: str, e: Exception) -> UpstreamError:
    return UpstreamError(f"{what}: cannot reach the IdP ({type(e).__name__}: {e})", code="IdPUnreachable",
                         status=503, permanent=False)


async def read_json(resp: aiohttp.ClientResponse, what: str) -> dict[str, Any]:
    body = await resp.read()
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if resp.status >= 400:
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            raise OAuthError(data["error"], data.get("error_description"), resp.status, what)
        raise UpstreamError(f"{what}: the IdP answered HTTP {resp.status}", code="IdPError",
                            status=502, permanent=resp.status < 500 and resp.status not in (408, 429))
    if not isinstance(data, dict):
        raise UpstreamError(f"{what}: the IdP sent something that is not a JSON object", code="IdPError")
    return data


async def discover(http: aiohttp.ClientSession, issuer: str) -> ProviderMetadata:
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    what = f"discovery at {url}"
    try:
        async with http.get(url, timeout=TIMEOUT, allow_redirects=False) as resp:
            data = await read_json(resp, what)
    except aiohttp.ClientError as e:
        raise connection_error(what, e) from None
    if data.get("issuer") != issuer:
        raise UpstreamError(f"{what}: the document names issuer {data.get('issuer')!r}, not {issuer!r}; "
                            "set `issuer` to exactly the value the IdP publishes", code="IdPError", permanent=True)
    try:
        return ProviderMetadata(**{k: data.get(k) for k in ProviderMetadata.__dataclass_fields__})
    except TypeError:
        raise UpstreamError(f"{what}: the document lacks required endpoints", code="IdPError", permanent=True) from None


async def fetch_jwks(http: aiohttp.ClientSession, jwks_uri: str) -> dict[str, Any]:
    what = "fetching the IdP's signing keys"
    try:
        async with http.get(jwks_uri, timeout=TIMEOUT) as resp:
            return await read_json(resp, what)
    except aiohttp.ClientError as e:
        raise connection_error(what, e) from None


def parse_token_response(data: dict[str, Any], what: str) -> TokenResponse:
    if not isinstance(data.get("access_token"), str):
        raise UpstreamError(f"{what}: the IdP's answer has no access_token", code="IdPError")
    expires_in = data.get("expires_in")
    return TokenResponse(
        access_token=Secret(data["access_token"]),
        id_token=optional(data.get("id_token")),
        refresh_token=optional(data.get("refresh_token")),
        expires_in=int(expires_in) if isinstance(expires_in, (int, float, str)) and str(expires_in).isdigit() else None,
        scope=data.get("scope"),
    )


async def token_request(http: aiohttp.ClientSession, endpoint: str, form: dict[str, str], what: str) -> TokenResponse:
    try:
        async with http.post(endpoint, data=form, timeout=TIMEOUT, headers={"Accept": "application/json"}) as resp:
            return parse_token_response(await read_json(resp, what), what)
    except aiohttp.ClientError as e:
        raise connection_error(what, e) from None


async def refresh(http: aiohttp.ClientSession, meta: ProviderMetadata, client_id: str, refresh_token: Secret,
                  scope: str | None, client_auth: str = "none", client_secret: Secret | None = None) -> TokenResponse:
    """`scope` None leaves `scope` out: the grant then keeps the original scopes (RFC 6749 section 6)."""
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token.reveal(), "client_id": client_id}
    if scope is not None:
        form["scope"] = scope
    headers = {"Accept": "application/json"}
    if client_secret is not None and client_auth == "client_secret_post":
        form["client_secret"] = client_secret.reveal()
    elif client_secret is not None and client_auth == "client_secret_basic":
        import base64
        from urllib.parse import quote

        pair = f"{quote(client_id, safe='')}:{quote(client_secret.reveal(), safe='')}"  # RFC 6749 section 2.3.1
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    what = "refreshing the IdP tokens"
    try:
        async with http.post(meta.token_endpoint, data=form, timeout=TIMEOUT, headers=headers) as resp:
            return parse_token_response(await read_json(resp, what), what)
    except aiohttp.ClientError as e:
        raise connection_error(what, e) from None


async def revoke(http: aiohttp.ClientSession, meta: ProviderMetadata, client_id: str, token: Secret) -> bool:
    """RFC 7009 revocation of the refresh token; False when the IdP offers none."""
    if not meta.revocation_endpoint:
        return False
    form = {"token": token.reveal(), "token_type_hint": "refresh_token", "client_id": client_id}
    try:
        async with http.post(meta.revocation_endpoint, data=form, timeout=TIMEOUT) as resp:
            if resp.status >= 400:
                await read_json(resp, "revoking the refresh token")
            return True
    except aiohttp.ClientError as e:
        raise connection_error("revoking the refresh token", e) from None


class IdpClient:
    """One profile's IdP: discovery (cached), refresh and revocation. The daemon's only IdP dependency,
    so tests can substitute it."""

    def __init__(self, http: aiohttp.ClientSession, profile: Any, client_secret: Secret | None = None) -> None:
        self.http = http
        self.issuer = profile.issuer
        self.client_id = profile.client_id
        self.client_auth = profile.client_auth
        self.client_secret = client_secret
        self._meta: ProviderMetadata | None = None

    async def metadata(self) -> ProviderMetadata:
        if self._meta is None:
            self._meta = await discover(self.http, self.issuer)
        return self._meta

    async def refresh(self, refresh_token: Secret, scope: str | None = None) -> TokenResponse:
        return await refresh(self.http, await self.metadata(), self.client_id, refresh_token, scope,
                             self.client_auth, self.client_secret)

    async def revoke(self, token: Secret) -> bool:
        return await revoke(self.http, await self.metadata(), self.client_id, token)
