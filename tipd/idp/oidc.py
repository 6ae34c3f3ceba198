"""The IdP's endpoints: discovery, the token endpoint (code, refresh and device grants), revocation, JWKS.

The OAuth requests are built with authlib's client primitives (RFC 6749 token request bodies, client
authentication, RFC 7009 revocation bodies); aiohttp carries them. Every body read from the IdP is capped
and every failure is a sentence (docs/design.md, "Departures", says what authlib leaves to this module)."""
from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp
from authlib.oauth2.auth import ClientAuth, encode_client_secret_post, encode_none
from authlib.oauth2.base import invalid_error_characters
from authlib.oauth2.rfc6749.parameters import prepare_token_request
from authlib.oauth2.rfc7009 import prepare_revoke_token_request

from ..errors import ConfigError, UpstreamError
from ..secret import Secret, optional

log = logging.getLogger(__name__)

TIMEOUT = aiohttp.ClientTimeout(total=20, connect=5)
#: the most tipd reads of any IdP answer: discovery documents, JWKS and token responses are a few KiB
#: (issue 11 #10: an uncapped 200 MB body took the daemon to 478 MB)
MAX_BODY = 1024 * 1024
#: OAuth errors that no retry will fix: the grant is gone, or the client is misconfigured
PERMANENT_OAUTH_ERRORS = {"invalid_grant", "invalid_client", "unauthorized_client", "unsupported_grant_type",
                          "invalid_scope", "access_denied", "expired_token"}
#: how tipd authenticates the client at the token, device and revocation endpoints (RFC 6749 section 2.3)
CLIENT_AUTH_METHODS = ("none", "client_secret_post", "client_secret_basic")
#: an unknown `kid` refetches the JWKS at most this often (seconds): key rotation, without a fetch storm
JWKS_REFETCH_INTERVAL = 60.0
#: a token lifetime beyond this is not believed (an `expires_in` of 1e400 is not a lifetime)
MAX_EXPIRES_IN = 10 * 365 * 86400


@dataclass(frozen=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    revocation_endpoint: str | None = None
    device_authorization_endpoint: str | None = None
    end_session_endpoint: str | None = None


REQUIRED_ENDPOINTS = ("authorization_endpoint", "token_endpoint", "jwks_uri")


@dataclass(frozen=True)
class TokenResponse:
    access_token: Secret
    id_token: Secret | None
    refresh_token: Secret | None
    expires_in: int | None
    #: the granted scope: the answer's `scope`, else the scope asked for (RFC 6749 section 5.1: the IdP may
    #: leave it out when it granted what was asked); None when neither is known (a refresh without `scope`)
    scope: str | None = None

    def __repr__(self) -> str:
        return f"TokenResponse(expires_in={self.expires_in}, refresh_token={'yes' if self.refresh_token else 'no'})"


@dataclass(frozen=True)
class Revocation:
    """What became of a logout's revocation at the IdP. True only when the IdP revoked the token."""

    #: revoked | unsupported (no revocation_endpoint) | refused (a 4xx) | failed (unreachable, 5xx)
    #: | not-signed-in (nothing to revoke)
    outcome: str
    detail: str = ""

    def __bool__(self) -> bool:
        return self.outcome == "revoked"


NOT_SIGNED_IN = Revocation("not-signed-in")


def _clean(text: Any, limit: int) -> str | None:
    """An IdP-supplied error string, reduced to RFC 6749's error character set (no control characters
    reach a log or a terminal) and to `limit` characters."""
    if not isinstance(text, str) or not text:
        return None
    bad = set(invalid_error_characters(text))
    cleaned = "".join(c for c in text if c not in bad).strip()
    return (cleaned[:limit] + "...") if len(cleaned) > limit else (cleaned or None)


class OAuthError(UpstreamError):
    """The IdP answered with an OAuth error (`error` / `error_description`, RFC 6749 section 5.2)."""

    def __init__(self, error: str, description: str | None, status: int, what: str) -> None:
        self.error = _clean(error, 64) or "invalid_request"
        self.description = _clean(description, 300)
        permanent = self.error in PERMANENT_OAUTH_ERRORS
        said = f"{self.error}{': ' + self.description if self.description else ''}"
        if self.error == "invalid_grant":
            msg = f"{what}: the IdP says your sign-in is no longer valid ({said}); sign in again"
        else:
            msg = f"{what}: the IdP answered HTTP {status} {said}"
        super().__init__(msg, code="IdPError", permanent=permanent, status=401 if permanent else 502)


def new_session(**kw: Any) -> aiohttp.ClientSession:
    """The HTTP session for talking to an IdP: a new connection per request. A pooled idle connection
    races the IdP's keep-alive timeout (Node's is 5 s, aiohttp keeps idle ones 15 s): the IdP closes it as
    the next request goes out and that request dies with "connection reset" (a device-flow poll every 5 s
    hits the window; the matrix saw it on a code exchange). A token request may not simply be retried (the
    code or a rotating refresh token would be spent twice), and IdP calls are minutes apart anyway."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True), **kw)


def connection_error(what: str, e: BaseException) -> UpstreamError:
    return UpstreamError(f"{what}: cannot reach the IdP ({network_reason(e)})", code="IdPUnreachable", status=503,
                         permanent=False)


def network_reason(e: BaseException) -> str:
    """Why a connection failed, in words: aiohttp's own text names its internals ("ssl:default", the connect
    call's tuple) even for an http URL."""
    if isinstance(e, asyncio.TimeoutError):
        return "it did not answer in time"
    if isinstance(e, aiohttp.ClientConnectorCertificateError):
        cert = e.certificate_error
        detail = getattr(cert, "verify_message", None) or getattr(cert, "reason", None) or type(cert).__name__
        return f"the TLS certificate of {e.host}:{e.port} was not accepted: {detail}"
    if isinstance(e, aiohttp.ClientSSLError):
        return f"the TLS handshake with {e.host}:{e.port} failed"
    if isinstance(e, aiohttp.ClientConnectorDNSError):
        return f"the host name {e.host} does not resolve"
    if isinstance(e, aiohttp.ClientConnectorError):
        if isinstance(e.os_error, ConnectionRefusedError):
            return f"connection to {e.host}:{e.port} refused"
        return f"{e.host}:{e.port} is unreachable ({e.os_error.strerror or type(e.os_error).__name__})"
    if isinstance(e, aiohttp.ServerDisconnectedError):
        return "it closed the connection without an answer"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


#: what a request to the IdP can raise on the way (aiohttp's total timeout is a plain asyncio.TimeoutError)
NETWORK_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)


async def read_body(resp: aiohttp.ClientResponse, what: str, limit: int = MAX_BODY) -> bytes:
    """The response body, refused beyond `limit` bytes (counted after any decompression)."""
    def too_big() -> UpstreamError:
        return UpstreamError(f"{what}: the IdP's answer is larger than {limit // 1024} KiB, far more than any "
                             "OIDC document or token; check that the issuer URL points at your IdP",
                             code="IdPError", status=502, permanent=False)

    if resp.content_length is not None and resp.content_length > limit:
        raise too_big()
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise too_big()
        chunks.append(chunk)
    return b"".join(chunks)


def _oauth_error(data: Any, status: int, what: str) -> UpstreamError:
    if isinstance(data, dict) and isinstance(data.get("error"), str) and data["error"]:
        return OAuthError(data["error"], data.get("error_description"), status, what)
    return UpstreamError(f"{what}: the IdP answered HTTP {status}", code="IdPError",
                         status=502, permanent=status < 500 and status not in (408, 429))


async def read_json(resp: aiohttp.ClientResponse, what: str) -> dict[str, Any]:
    body = await read_body(resp, what)
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        data = None
    if resp.status >= 400:
        raise _oauth_error(data, resp.status, what)
    if not isinstance(data, dict):
        raise UpstreamError(f"{what}: the IdP sent something that is not a JSON object", code="IdPError")
    return data


async def get_json(http: aiohttp.ClientSession, url: str, what: str, **kw: Any) -> dict[str, Any]:
    try:
        async with http.get(url, timeout=TIMEOUT, headers={"Accept": "application/json"}, **kw) as resp:
            return await read_json(resp, what)
    except NETWORK_ERRORS as e:
        raise connection_error(what, e) from None


async def discover(http: aiohttp.ClientSession, issuer: str, need: tuple[str, ...] = ("jwks_uri",)) -> ProviderMetadata:
    """The issuer's discovery document. `need` names the endpoints the caller cannot do without (a sign-in
    needs REQUIRED_ENDPOINTS; a key check only the jwks_uri)."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    what = f"discovery at {url}"
    data = await get_json(http, url, what, allow_redirects=False)
    # compared byte for byte, trailing slash included: AWS IAM and Identity Center compare `iss` the same way
    if data.get("issuer") != issuer:
        raise UpstreamError(f"{what}: the document names issuer {str(data.get('issuer'))[:200]!r}, not {issuer!r}; "
                            "set `issuer` to exactly the value the IdP publishes", code="IdPError", permanent=True)
    fields = {}
    for k in ProviderMetadata.__dataclass_fields__:
        v = data.get(k)
        if v is not None and not (isinstance(v, str) and v):
            v = None  # a malformed optional endpoint counts as absent; a required one fails below
        fields[k] = v
    missing = [k for k in need if fields[k] is None]
    if missing:
        raise UpstreamError(f"{what}: the document lacks {', '.join(missing)}", code="IdPError", permanent=True)
    # the required fields were checked above; mypy cannot follow that through the dict
    return ProviderMetadata(**fields)  # type: ignore[arg-type]


async def fetch_jwks(http: aiohttp.ClientSession, jwks_uri: str) -> dict[str, Any]:
    return await get_json(http, jwks_uri, "fetching the IdP's signing keys")


def _lifetime(value: Any) -> int | None:
    """`expires_in` as a number of seconds; some IdPs send it as a string ("3600")."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value) or value <= 0:
        return None
    return int(min(value, MAX_EXPIRES_IN))


def parse_token_response(data: dict[str, Any], what: str, requested_scope: str | None = None) -> TokenResponse:
    if not isinstance(data, dict) or not isinstance(data.get("access_token"), str) or not data["access_token"]:
        raise UpstreamError(f"{what}: the IdP's answer has no access_token", code="IdPError")

    def text(key: str) -> str | None:
        v = data.get(key)
        return v if isinstance(v, str) and v else None

    scope = text("scope")
    return TokenResponse(
        access_token=Secret(data["access_token"]),
        id_token=optional(text("id_token")),
        refresh_token=optional(text("refresh_token")),
        expires_in=_lifetime(data.get("expires_in")),
        scope=scope.strip() if scope and scope.strip() else requested_scope,
    )


# -- client authentication (RFC 6749 section 2.3) ----------------------------------------------------------
def _encode_client_secret_basic(client: ClientAuth, method: str, uri: str, headers: dict[str, str],
                                body: str) -> tuple[str, dict[str, str], str]:
    """RFC 6749 section 2.3.1: id and secret are form-urlencoded before base64 (authlib's own encoder
    skips that step, which breaks secrets with ':' or '%')."""
    import base64

    pair = f"{quote(client.client_id, safe='')}:{quote(client.client_secret, safe='')}"
    headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    return uri, headers, body


_ENCODERS = {"none": encode_none, "client_secret_post": encode_client_secret_post,
             "client_secret_basic": _encode_client_secret_basic}


def authenticated_body(body: str, client_id: str, client_auth: str = "none",
                       client_secret: Secret | None = None) -> tuple[str, dict[str, str]]:
    """The form body and headers of a request to the IdP, with the client authenticated as configured."""
    if client_auth not in _ENCODERS:
        raise ConfigError(f"client_auth {client_auth!r} is not one of {', '.join(CLIENT_AUTH_METHODS)}")
    if client_auth != "none" and client_secret is None:
        raise ConfigError(f'the IdP app needs a client secret (client_auth = "{client_auth}") and none is set: '
                          "run `tipctl configure` to store it")
    headers = {"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"}
    secret = client_secret.reveal() if client_secret is not None and client_auth != "none" else None
    _, headers, body = ClientAuth(client_id, secret, _ENCODERS[client_auth]).prepare("POST", "", headers, body)
    return body, headers


async def post_form(http: aiohttp.ClientSession, endpoint: str, body: str, headers: dict[str, str],
                    what: str) -> dict[str, Any]:
    try:
        async with http.post(endpoint, data=body.encode(), timeout=TIMEOUT, headers=headers,
                             allow_redirects=False) as resp:
            return await read_json(resp, what)
    except NETWORK_ERRORS as e:
        raise connection_error(what, e) from None


async def token_request(http: aiohttp.ClientSession, endpoint: str, grant_type: str,
                        params: Mapping[str, str | None],
                        what: str, *, client_id: str, client_auth: str = "none", client_secret: Secret | None = None,
                        requested_scope: str | None = None) -> TokenResponse:
    """One token endpoint request (RFC 6749 section 4.1.3, 6; RFC 8628 section 3.4); None values are left out."""
    body = prepare_token_request(grant_type, **{k: v for k, v in params.items() if v is not None})
    body, headers = authenticated_body(body, client_id, client_auth, client_secret)
    return parse_token_response(await post_form(http, endpoint, body, headers, what), what, requested_scope)


async def refresh(http: aiohttp.ClientSession, meta: ProviderMetadata, client_id: str, refresh_token: Secret,
                  scope: str | None, client_auth: str = "none", client_secret: Secret | None = None) -> TokenResponse:
    """`scope` None leaves `scope` out: the grant then keeps the original scopes (RFC 6749 section 6);
    a string is sent as it is."""
    return await token_request(http, meta.token_endpoint, "refresh_token",
                               {"refresh_token": refresh_token.reveal(), "scope": scope}, "refreshing the IdP tokens",
                               client_id=client_id, client_auth=client_auth, client_secret=client_secret,
                               requested_scope=scope)


async def revoke(http: aiohttp.ClientSession, meta: ProviderMetadata, client_id: str, token: Secret,
                 client_auth: str = "none", client_secret: Secret | None = None) -> Revocation:
    """RFC 7009 revocation of the refresh token. Never raises for what the IdP does: the outcome says it."""
    if not meta.revocation_endpoint:
        return Revocation("unsupported")
    what = "revoking the refresh token"
    body, _ = prepare_revoke_token_request(token.reveal(), "refresh_token")
    try:
        body, headers = authenticated_body(body, client_id, client_auth, client_secret)
    except ConfigError as e:
        return Revocation("failed", e.message)
    try:
        async with http.post(meta.revocation_endpoint, data=body.encode(), timeout=TIMEOUT, headers=headers,
                             allow_redirects=False) as resp:
            raw = await read_body(resp, what)
            if resp.status < 400:
                return Revocation("revoked")
            try:
                data = json.loads(raw)
            except (ValueError, RecursionError):
                data = None
            err = _oauth_error(data, resp.status, what)
    except UpstreamError as e:
        return Revocation("failed", e.message)
    except NETWORK_ERRORS as e:
        return Revocation("failed", connection_error(what, e).message)
    detail = f"HTTP {resp.status}" + (f" {err.error}" if isinstance(err, OAuthError) else "")
    return Revocation("refused" if resp.status < 500 else "failed", detail)


class Idp(Protocol):
    """What a profile session needs of its IdP: the refresh grant, revocation, and the client secret it sends
    (set again when `tipctl configure` stores a new one). `IdpClient` is the real one; unit tests pass stand-ins
    (tests/support/fakes.py), which satisfy this structurally."""

    client_secret: Secret | None

    async def refresh(self, refresh_token: Secret, scope: str | None = None) -> TokenResponse: ...
    async def revoke(self, token: Secret) -> Revocation: ...


class IdpClient:
    """One profile's IdP: discovery (cached), the token endpoint's grants, revocation and the signing keys.
    The daemon's only IdP dependency, so tests can substitute it. `profile` is a config.Profile (or anything
    with its attributes); the client secret, when the IdP app has one, never shows in a repr or a log."""

    def __init__(self, http: aiohttp.ClientSession, profile: Any, client_secret: Secret | None = None, *,
                 metadata: ProviderMetadata | None = None, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.http = http
        self.profile = profile
        self.issuer: str = profile.issuer
        self.client_id: str = profile.client_id
        self.client_auth: str = profile.client_auth
        self.client_secret = client_secret
        self._meta = metadata
        self._monotonic = monotonic
        self._jwks: dict[str, Any] | None = None
        self._refetched_at = -math.inf

    def __repr__(self) -> str:
        return f"IdpClient(issuer={self.issuer!r}, client_id={self.client_id!r}, client_auth={self.client_auth!r})"

    async def metadata(self) -> ProviderMetadata:
        if self._meta is None:
            self._meta = await discover(self.http, self.issuer, REQUIRED_ENDPOINTS)
        return self._meta

    def _auth(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "client_auth": self.client_auth, "client_secret": self.client_secret}

    async def token(self, grant_type: str, params: Mapping[str, str | None], what: str,
                    requested_scope: str | None = None) -> TokenResponse:
        meta = await self.metadata()
        return await token_request(self.http, meta.token_endpoint, grant_type, params, what,
                                   requested_scope=requested_scope, **self._auth())

    async def refresh(self, refresh_token: Secret, scope: str | None = None) -> TokenResponse:
        """The refresh grant: `scope` None leaves it out (the grant keeps its scopes, RFC 6749 section 6)."""
        return await refresh(self.http, await self.metadata(), self.client_id, refresh_token, scope,
                             self.client_auth, self.client_secret)

    async def exchange_code(self, code: str, redirect_uri: str, verifier: str, requested_scope: str) -> TokenResponse:
        return await self.token("authorization_code", {"code": code, "redirect_uri": redirect_uri,
                                                       "code_verifier": verifier},
                                "exchanging the authorization code", requested_scope=requested_scope)

    async def post(self, endpoint: str, params: dict[str, str], what: str) -> dict[str, Any]:
        """A form post with the client authenticated (the device authorization request)."""
        from authlib.common.urls import url_encode

        body, headers = authenticated_body(url_encode(list(params.items())), **self._auth())
        return await post_form(self.http, endpoint, body, headers, what)

    async def revoke(self, token: Secret) -> Revocation:
        try:
            meta = await self.metadata()
        except UpstreamError as e:
            return Revocation("failed", e.message)
        return await revoke(self.http, meta, self.client_id, token, self.client_auth, self.client_secret)

    async def jwks(self, *, refetch: bool = False) -> dict[str, Any]:
        """The IdP's signing keys, cached; `refetch` fetches them again unless an earlier refetch happened
        within JWKS_REFETCH_INTERVAL (a token with an unknown `kid` must not make every call a fetch)."""
        if self._jwks is None or (refetch and self._monotonic() - self._refetched_at >= JWKS_REFETCH_INTERVAL):
            if self._jwks is not None:
                self._refetched_at = self._monotonic()
            self._jwks = await fetch_jwks(self.http, (await self.metadata()).jwks_uri)
        return self._jwks

    async def verify_id_token(self, token: str, nonce: str | None, now: float | None = None) -> dict[str, Any]:
        """Check an id_token (signature, iss, aud/azp, exp, nonce). An unknown `kid` means the IdP rotated its
        keys since they were fetched: they are fetched again, once."""
        from .verify import UnknownSigningKey, accepted_issuers, verify_id_token

        issuers = accepted_issuers(self.issuer, self.profile.provider)
        meta = await self.metadata()
        try:
            return verify_id_token(token, await self.jwks(), issuer=meta.issuer, client_id=self.client_id,
                                   nonce=nonce, now=now, issuers=issuers)
        except UnknownSigningKey:
            before = self._jwks
            keys = await self.jwks(refetch=True)
            if keys is before:  # refetched moments ago: the IdP does not publish that key
                raise
            log.info("the id_token names a signing key fetched keys lacked: the IdP rotated its keys")
            return verify_id_token(token, keys, issuer=meta.issuer, client_id=self.client_id, nonce=nonce, now=now,
                                   issuers=issuers)

