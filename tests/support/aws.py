"""The AWS side of the test stack: moto in server mode, plus a strict fake for what moto lacks.

Topology used by the tests::

    client (boto3 / aiobotocore / tipd, AWS_ENDPOINT_URL=fake.url)
        -> FakeAWS (aiohttp, own thread + loop)
              sso-oidc CreateTokenWithIAM  -> answered here, strictly
              everything else              -> forwarded byte-for-byte to MotoServer (a subprocess)

Tiny ``DurationSeconds`` (e.g. 15 s, or 0 for "already expired"): moto accepts any value and honours it
(``Expiration = now + DurationSeconds``); the 900 s minimum is enforced only by botocore's *client-side*
parameter validation. So the caller must build its STS client with
``botocore.config.Config(parameter_validation=False)`` (aiobotocore: ``AioConfig(parameter_validation=False)``).
Nothing needs configuring on the moto side. The real STS still validates server-side, so turning the
client-side check off costs nothing in production.

Simplifications (deliberate, documented):
- The real service authorises the CreateTokenWithIAM caller against the application's ActorPolicy
  (``sso-oauth:CreateTokenWithIAM`` for the role). The fake instead accepts exactly the credentials it saw
  issued by an AssumeRoleWithWebIdentity response it proxied (matching access key, session token,
  unexpired, valid SigV4 signature); anything else is AccessDeniedException.
- A refresh_token grant on an application without that grant answers UnsupportedGrantTypeException
  ("the grant type is not enabled for this application"); the real service's exact code is not documented.
  Callers should treat Unsupported/UnauthorizedClient/InvalidGrant on the refresh grant alike: fall back to
  the jwt-bearer grant.
- Error bodies of sso-oidc carry ``error`` / ``error_description`` (no ``message``), like the real service:
  botocore's ``e.response['Error']['Message']`` is then empty; read ``e.response['error_description']``.
"""
from __future__ import annotations

import asyncio
import base64
import datetime as dt
import functools
import hashlib
import hmac
import http.server
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape as xml_escape

import aiohttp
import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .net import free_port, wait_for_port

if TYPE_CHECKING:
    from .fake_ssoadmin import IdentityCenter

__all__ = [
    "ACCOUNT_ACCESS",
    "IDENTITY_CENTER_PROVIDER_ARN",
    "JWT_BEARER",
    "REFRESH_TOKEN",
    "AppConfig",
    "Call",
    "FakeAWS",
    "FakeConfig",
    "JwtIssuer",
    "MotoServer",
    "sha256_hex",
]

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
REFRESH_TOKEN = "refresh_token"
TOKEN_TYPE_REFRESH = "urn:ietf:params:oauth:token-type:refresh_token"
TOKEN_TYPE_ACCESS = "urn:ietf:params:oauth:token-type:access_token"
IDENTITY_CENTER_PROVIDER_ARN = "arn:aws:iam::aws:contextProvider/IdentityCenter"
DEFAULT_SCOPES = ("sts:identity_context", "openid", "aws")
#: the scope an administrator enables for AWS account access (the portal API), organization instances only
ACCOUNT_ACCESS = "sso:account:access"


def sha256_hex(value: str | bytes) -> str:
    """What the call log stores instead of a secret (assertions, refresh tokens, web identity tokens)."""
    if isinstance(value, str):
        value = value.encode("utf-8")
    return hashlib.sha256(value).hexdigest()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --------------------------------------------------------------------------------------------------
# moto
# --------------------------------------------------------------------------------------------------


class MotoServer:
    """moto in server mode as a subprocess (``python -m moto.server -H 127.0.0.1 -p PORT``).

    Recording is on from the start: moto 5.2 reads ``MOTO_ENABLE_RECORDING`` with
    ``bool(os.environ.get(...))`` (so any non-empty value, even "false", enables it) and writes to
    ``MOTO_RECORDER_FILEPATH`` (default ``./moto_recording``; we point it at a private temp dir).

    ``MotoServer().start()`` or ``with MotoServer() as moto:``; then ``moto.url``.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        python: str = sys.executable,
        env: dict[str, str] | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.port = port
        self._python = python
        self._extra_env = dict(env or {})
        self._startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: str | None = None
        self._log: Any = None

    # lifecycle ---------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._proc is None:
            raise RuntimeError("MotoServer not started")
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        if self._proc is not None:
            return self
        self._dir = tempfile.mkdtemp(prefix="tipd-moto-")
        recording = os.path.join(self._dir, "recording.jsonl")
        open(recording, "w").close()  # download-recording 500s until the file exists
        env = dict(os.environ)
        for key in list(env):  # moto must never be pointed back at a fake
            if key.startswith("AWS_ENDPOINT_URL"):
                del env[key]
        env.update(
            MOTO_ENABLE_RECORDING="True",
            MOTO_RECORDER_FILEPATH=recording,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION=env.get("AWS_DEFAULT_REGION", "us-east-1"),
        )
        env.update(self._extra_env)
        last_error: Exception | None = None
        for _attempt in range(3):  # free_port() can race with another process: retry on a new port
            port = self.port or free_port()
            self._log = open(os.path.join(self._dir, "moto.log"), "ab")
            self._proc = subprocess.Popen(
                [self._python, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                env=env,
                cwd=self._dir,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            self.port = port
            try:
                self._wait_ready()
                return self
            except Exception as exc:  # noqa: BLE001 - retried, then re-raised
                last_error = exc
                self._terminate()
                if self._extra_env.get("MOTO_PORT") or _attempt == 2:
                    break
                self.port = None
        self._cleanup_dir()
        raise RuntimeError(f"moto did not start: {last_error}")

    def _wait_ready(self) -> None:
        assert self._proc is not None and self.port is not None
        deadline = time.monotonic() + self._startup_timeout
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"moto exited with {self._proc.returncode}: {self.log_text()[-2000:]}")
            try:
                wait_for_port(self.port, timeout=0.25)
                # the socket is up; make sure the WSGI app answers too
                self._request("GET", "/moto-api/recorder/download-recording", timeout=5)
                return
            except (TimeoutError, OSError):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"moto not ready on port {self.port} after {self._startup_timeout}s") from None

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def _cleanup_dir(self) -> None:
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def stop(self) -> None:
        self._terminate()
        self._cleanup_dir()

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_text(self) -> str:
        if not self._dir:
            return ""
        try:
            with open(os.path.join(self._dir, "moto.log"), "rb") as fh:
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""

    # moto-api ------------------------------------------------------------------------------------
    def _request(self, method: str, path: str, timeout: float = 10.0) -> bytes:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method,
                                     data=b"" if method == "POST" else None)
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            data: bytes = resp.read()
            return data

    def reset(self) -> None:
        """Reset every moto backend (``POST /moto-api/reset``); the recording is kept."""
        self._request("POST", "/moto-api/reset")

    def start_recording(self, *, reset: bool = True) -> None:
        """(Re)enable recording; by default also forget everything recorded so far."""
        if reset:
            self.reset_recording()
        self._request("POST", "/moto-api/recorder/start-recording")

    def stop_recording(self) -> None:
        self._request("POST", "/moto-api/recorder/stop-recording")

    def reset_recording(self) -> None:
        self._request("POST", "/moto-api/recorder/reset-recording")

    def recorded(self) -> list[dict[str, Any]]:
        """What moto received, oldest first (moto-api calls left out).

        Each entry: ``method``, ``url``, ``path``, ``query`` (dict), ``headers``, ``body`` (decoded text),
        ``params`` (form params for query-protocol calls, else the query string), ``action``
        (query-protocol ``Action`` or None), ``service`` (from the SigV4 scope, or ``sts`` for
        unsigned STS calls), ``access_key_id`` (None when unsigned).
        """
        raw = self._request("GET", "/moto-api/recorder/download-recording").decode("utf-8")
        out: list[dict[str, Any]] = []
        for line in raw.splitlines():
            if not line.strip():
                continue
            entry = json.loads(line)
            body_raw = entry.get("body") or ""
            body = base64.b64decode(body_raw) if entry.get("body_encoded") else body_raw.encode("utf-8")
            split = urllib.parse.urlsplit(entry.get("url", ""))
            if split.path.startswith("/moto-api/"):
                continue
            headers = entry.get("headers") or {}
            lheaders = {k.lower(): v for k, v in headers.items()}
            query = dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
            params = dict(query)
            if lheaders.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                params.update(urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
            scope = _parse_sigv4(lheaders, query)
            service = scope.service if scope else None
            if service is None and params.get("Version") in _QUERY_VERSION_TO_SERVICE:
                service = _QUERY_VERSION_TO_SERVICE[params["Version"]]
            out.append(
                {
                    "method": entry.get("method"),
                    "url": entry.get("url"),
                    "path": split.path,
                    "query": query,
                    "headers": headers,
                    "body": body.decode("utf-8", "replace"),
                    "params": params,
                    "action": params.get("Action"),
                    "service": service,
                    "access_key_id": scope.access_key_id if scope else None,
                }
            )
        return out


# --------------------------------------------------------------------------------------------------
# request identification and SigV4
# --------------------------------------------------------------------------------------------------

_SIGNING_NAME_TO_SERVICE = {"sso-oauth": "sso-oidc", "sso": "sso-admin"}
_QUERY_VERSION_TO_SERVICE = {"2011-06-15": "sts", "2010-05-08": "iam"}
#: Session and SigninToken: the console federation endpoint's (credentials JSON, and the bearer sign-in token)
_SECRET_FORM_PARAMS = {"WebIdentityToken", "SAMLAssertion", "TokenCode", "Session", "SigninToken"}
_SECRETISH_KEY = re.compile(r"token|secret|password|assertion|credential", re.I)
_HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "trailers", "transfer-encoding", "upgrade", "content-length",
}


@dataclass(frozen=True)
class _SigV4:
    access_key_id: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    presigned: bool = False


def _parse_sigv4(headers: Any, query: dict[str, str]) -> _SigV4 | None:
    """The SigV4 credential scope of a request (header or presigned query), or None when unsigned."""
    auth = headers.get("authorization") or headers.get("Authorization") or ""
    if auth.startswith("AWS4-HMAC-SHA256"):
        parts: dict[str, str] = {}
        for piece in auth[len("AWS4-HMAC-SHA256"):].split(","):
            key, _, value = piece.strip().partition("=")
            parts[key] = value
        cred = parts.get("Credential", "").split("/")
        if len(cred) == 5:
            return _SigV4(cred[0], cred[1], cred[2], cred[3],
                          tuple(h for h in parts.get("SignedHeaders", "").split(";") if h),
                          parts.get("Signature", ""))
        return None
    if query.get("X-Amz-Credential"):
        cred = query["X-Amz-Credential"].split("/")
        if len(cred) == 5:
            return _SigV4(cred[0], cred[1], cred[2], cred[3],
                          tuple(h for h in query.get("X-Amz-SignedHeaders", "").split(";") if h),
                          query.get("X-Amz-Signature", ""), presigned=True)
    return None


def _verify_sigv4(method: str, raw_path: str, headers: Any, body: bytes, scope: _SigV4, secret_key: str) -> bool:
    """Independent SigV4 check (header-signed requests): recompute the signature with the secret."""
    if scope.presigned or "host" not in scope.signed_headers:
        return False
    amz_date = headers.get("X-Amz-Date", "")
    if not amz_date.startswith(scope.date):
        return False
    path, _, raw_query = raw_path.partition("?")
    canonical_uri = urllib.parse.quote(path or "/", safe="/~")
    pairs = urllib.parse.parse_qsl(raw_query, keep_blank_values=True)
    canonical_query = "&".join(
        f"{k}={v}" for k, v in sorted(
            (urllib.parse.quote(k, safe="-_.~"), urllib.parse.quote(v, safe="-_.~")) for k, v in pairs
        )
    )
    lines = []
    for name in scope.signed_headers:
        values = headers.getall(name, []) if hasattr(headers, "getall") else [headers.get(name, "")]
        lines.append(f"{name}:{','.join(' '.join(v.split()) for v in values)}")
    payload_hash = headers.get("X-Amz-Content-SHA256") or hashlib.sha256(body).hexdigest()
    canonical = "\n".join([method.upper(), canonical_uri, canonical_query, "\n".join(lines) + "\n",
                           ";".join(scope.signed_headers), payload_hash])
    cred_scope = f"{scope.date}/{scope.region}/{scope.service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, cred_scope, hashlib.sha256(canonical.encode()).hexdigest()])

    def _h(key: bytes, msg: str) -> bytes:
        return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()

    k = _h(_h(_h(_h(f"AWS4{secret_key}".encode(), scope.date), scope.region), scope.service), "aws4_request")
    expected = hmac.new(k, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, scope.signature)


@functools.lru_cache(maxsize=1)
def _botocore_session() -> Any:
    import botocore.session

    return botocore.session.get_session()


@functools.cache
def _service_model(service: str) -> Any:
    try:
        return _botocore_session().get_service_model(service)
    except Exception:  # noqa: BLE001 - unknown service name
        return None


@functools.cache
def _rest_routes(service: str) -> tuple[tuple[str, re.Pattern[str], tuple[str, ...], str], ...]:
    """(method, path regex, required query keys, operation) from the botocore model, most specific first."""
    model = _service_model(service)
    if model is None or not str(model.protocol).startswith("rest"):
        return ()
    routes = []
    for name in model.operation_names:
        http_ = model.operation_model(name).http
        path_t, _, query_t = http_.get("requestUri", "/").partition("?")
        rx, literal, pos = "", 0, 0
        for m in re.finditer(r"\{([^}]+?)(\+?)\}", path_t):
            rx += re.escape(path_t[pos:m.start()]) + (".+" if m.group(2) else "[^/]+")
            literal += m.start() - pos
            pos = m.end()
        rx += re.escape(path_t[pos:])
        literal += len(path_t) - pos
        keys = tuple(kv.partition("=")[0] for kv in query_t.split("&") if kv)
        routes.append((len(keys), literal, http_.get("method", "GET"), re.compile(rx + "/?"), keys, name))
    routes.sort(key=lambda r: (r[0], r[1]), reverse=True)
    return tuple((m, rx, keys, name) for _, _, m, rx, keys, name in routes)


def _match_rest(service: str, method: str, path: str, query: dict[str, str]) -> str | None:
    for m, rx, keys, name in _rest_routes(service):
        if m == method and rx.fullmatch(path) and all(k in query for k in keys):
            return name
    return None


def _protocol(service: str | None) -> str:
    model = _service_model(service) if service else None
    return str(model.protocol) if model is not None else "json"


@dataclass
class _Identified:
    service: str | None
    operation: str | None
    scope: _SigV4 | None
    form: dict[str, str]
    json_body: Any
    params: dict[str, Any]


def _identify(method: str, raw_path: str, headers: Any, body: bytes) -> _Identified:
    split = urllib.parse.urlsplit(raw_path)
    query = dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
    scope = _parse_sigv4(headers, query)
    signing = scope.service if scope else None
    service = _SIGNING_NAME_TO_SERVICE.get(signing, signing) if signing else None
    if service == "s3" and split.path.startswith("/v20180820/"):
        service = "s3control"
    form: dict[str, str] = {}
    ctype = headers.get("Content-Type", "")
    if method == "POST" and ctype.startswith("application/x-www-form-urlencoded"):
        form = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    elif "Action" in query:
        form = query
    json_body: Any = None
    if "json" in ctype and body:
        try:
            json_body = json.loads(body)
        except ValueError:
            json_body = None
    operation: str | None = None
    if form.get("Action"):
        operation = form["Action"]
        service = service or _QUERY_VERSION_TO_SERVICE.get(form.get("Version", ""))
    elif headers.get("X-Amz-Target"):
        operation = headers["X-Amz-Target"].rsplit(".", 1)[-1]
    else:
        # unsigned REST calls: sso-oidc's, and the portal API's (`sso`, bearer token in x-amz-sso_bearer_token)
        for candidate in ([service] if service else []) + (["sso-oidc", "sso"] if service is None else []):
            operation = _match_rest(candidate, method, split.path, query)
            if operation:
                service = candidate
                break
    params: dict[str, Any] = {}
    if form.get("Action"):
        for k, v in form.items():
            if k in _SECRET_FORM_PARAMS:
                params[f"{k}_sha256"] = sha256_hex(v)
            else:
                params[k] = v
    elif (service, operation) == ("sso-oidc", "CreateTokenWithIAM") and isinstance(json_body, dict):
        for k in ("clientId", "grantType", "scope", "requestedTokenType", "subjectTokenType", "redirectUri"):
            if k in json_body:
                params[k] = json_body[k]
        for k in ("assertion", "refreshToken", "subjectToken", "code", "codeVerifier"):
            if isinstance(json_body.get(k), str):
                params[f"{k}_sha256"] = sha256_hex(json_body[k])
    elif isinstance(json_body, dict):
        for k, v in json_body.items():
            if not (isinstance(v, (str, int, float, bool)) or v is None):
                continue
            if _SECRETISH_KEY.search(k):
                params[f"{k}_sha256"] = sha256_hex(str(v))
            else:
                params[k] = v
    return _Identified(service, operation, scope, form, json_body, params)


# --------------------------------------------------------------------------------------------------
# errors in each protocol
# --------------------------------------------------------------------------------------------------

_OAUTH_ERRORS = {
    "InvalidRequestException": "invalid_request",
    "InvalidClientException": "invalid_client",
    "InvalidGrantException": "invalid_grant",
    "UnauthorizedClientException": "unauthorized_client",
    "UnsupportedGrantTypeException": "unsupported_grant_type",
    "InvalidScopeException": "invalid_scope",
    "AccessDeniedException": "access_denied",
    "ExpiredTokenException": "expired_token",
    "InternalServerException": "server_error",
    "InvalidRequestRegionException": "invalid_request",
    "AuthorizationPendingException": "authorization_pending",
    "SlowDownException": "slow_down",
}
# status codes from botocore's sso-oidc model (httpStatusCode of each error shape)
_SSO_OIDC_STATUS = {"InvalidClientException": 401, "InternalServerException": 500}


class _AwsError(Exception):
    def __init__(self, code: str, description: str = "", status: int | None = None) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.status = status


def _error_response(service: str | None, code: str, status: int | None, message: str) -> web.Response:
    request_id = str(uuid.uuid4())
    protocol = _protocol(service)
    if service == "sso-oidc" and status is None:
        status = _SSO_OIDC_STATUS.get(code, 400)
    status = status or 400
    if protocol in ("query", "ec2", "rest-xml"):
        kind = "Receiver" if status >= 500 else "Sender"
        xmlns = ' xmlns="https://sts.amazonaws.com/doc/2011-06-15/"' if service == "sts" else ""
        body = (
            f"<ErrorResponse{xmlns}><Error><Type>{kind}</Type>"
            f"<Code>{xml_escape(code)}</Code><Message>{xml_escape(message)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        return web.Response(status=status, body=body.encode(), content_type="text/xml",
                            headers={"x-amzn-RequestId": request_id})
    if service == "sso-oidc":
        # The real service: x-amzn-ErrorType "<Code>:http://internal.amazon.com/coral/..." and an OAuth body.
        # botocore's RestJSONParser takes the code from that header (else body "code"; never from "error").
        if code in _OAUTH_ERRORS:
            payload: dict[str, Any] = {"error": _OAUTH_ERRORS[code], "error_description": message}
        else:
            payload = {"message": message}
        error_type = f"{code}:http://internal.amazon.com/coral/com.amazonaws.ssooidc/"
        return web.Response(status=status, text=json.dumps(payload), content_type="application/json",
                            headers={"x-amzn-ErrorType": error_type, "x-amzn-RequestId": request_id})
    payload = {"__type": code, "message": message}
    return web.Response(status=status, text=json.dumps(payload), content_type="application/x-amz-json-1.1",
                        headers={"x-amzn-ErrorType": code, "x-amzn-RequestId": request_id})


def _xml_find(body: bytes, wanted: str) -> dict[str, str] | str | None:
    """First element with local name ``wanted`` (namespace-agnostic): dict of children, or its text."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    for el in root.iter():
        if el.tag.rsplit("}", 1)[-1] == wanted:
            children = list(el)
            if children:
                return {c.tag.rsplit("}", 1)[-1]: (c.text or "") for c in children}
            return el.text or ""
    return None


# --------------------------------------------------------------------------------------------------
# the fake
# --------------------------------------------------------------------------------------------------


@dataclass
class AppConfig:
    """One Identity Center customer-managed application with a trusted token issuer.

    Verified like Identity Center does (the trusted token issuer settings,
    https://docs.aws.amazon.com/singlesignon/latest/userguide/trusted-token-issuer-configuration-settings.html,
    and OidcJwtConfiguration, https://docs.aws.amazon.com/singlesignon/latest/APIReference/API_OidcJwtConfiguration.html):
    the keys come from the issuer URL's OpenID discovery document (JwksRetrievalOption OPEN_ID_DISCOVERY,
    the only option), whose `issuer` must equal the configured URL; the token's `iss` is compared with it
    byte for byte (a trailing slash matters: Auth0's issuers end in one); `aud` (a string, or an array
    such as Entra's and Auth0's access tokens carry) must contain one of the application's audiences;
    the signature is RS256 or ES256 by a key of that JWKS; the user is found through `claim`
    (ClaimAttributePath: a claim name, or a dotted path into nested claims), whichever kind of JWT it
    is (an id_token, or an access token in RFC 9068 form, typ at+jwt).
    """

    issuer_url: str
    audiences: list[str]
    #: ClaimAttributePath: the claim (or dotted path) whose value names the Identity Center user
    claim: str = "email"
    refresh_token_grant: bool = True
    access_token_ttl: int = 3600
    assigned: set[str] | None = None  # user ids (claim values also accepted); None = everyone
    refresh_token_ttl: int = 90 * 24 * 3600
    scopes: list[str] = field(default_factory=lambda: list(DEFAULT_SCOPES))


@dataclass
class FakeConfig:
    applications: dict[str, AppConfig] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)  # claim value -> Identity Center user id
    region: str = "us-east-1"
    account_id: str = "123456789012"
    instance_id: str = field(default_factory=lambda: "ssoins-" + secrets.token_hex(8))
    identity_store_id: str = field(default_factory=lambda: "d-" + secrets.token_hex(5))
    leeway: float = 5.0  # seconds of clock skew allowed on the assertion's exp/nbf/iat
    #: "organization" or "account": account access (the sso:account:access scope) exists only on organization
    #: instances (tests/support/fake_portal.py), so an account instance never grants it
    instance_kind: str = "organization"
    verify_signatures: bool = True  # recompute SigV4 of CreateTokenWithIAM with the bootstrap secret


@dataclass
class Call:
    service: str | None
    operation: str | None
    time: float  # wall clock when the request arrived
    access_key_id: str | None
    params: dict[str, Any]
    method: str = ""
    path: str = ""
    status: int | None = None
    error: str | None = None  # AWS error code of the response, if it failed


@dataclass
class _Creds:
    action: str
    secret_access_key: str
    session_token: str
    expiration: float
    identity_user: str | None = None  # an identity-enhanced session's Identity Center user
    chained: bool = False  # an AssumeRole made with temporary credentials (role chaining)


@dataclass
class _Fault:
    code: str
    status: int
    remaining: int  # -1 = forever
    message: str


@dataclass
class _RefreshGrant:
    app: str
    user_id: str
    expires_at: float


class FakeAWS:
    """aiohttp server in a background thread: CreateTokenWithIAM itself, everything else proxied to moto.

    ``FakeAWS(moto.url, FakeConfig(...)).start()`` or ``with FakeAWS(...) as fake:``; ``fake.url``.
    ``moto_url=None`` answers every non-implemented call with a 501.
    ``fake.config`` may be mutated while running (e.g. ``fake.config.applications[arn].assigned = {...}``).
    """

    def __init__(self, moto_url: str | None, config: FakeConfig | None = None, *,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.moto_url = moto_url.rstrip("/") if moto_url else None
        self.config = config or FakeConfig()
        self._host = host
        self._port = port
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._calls: list[Call] = []
        self._faults: dict[str, list[_Fault]] = {}
        #: operations whose calls wait until released (hold/release), and how many wait now
        self._holds: dict[str, threading.Event] = {}
        self._held = 0
        self._issued_creds: dict[str, _Creds] = {}
        self._used_assertions: set[str] = set()
        self._refresh: dict[str, _RefreshGrant] = {}
        self._used_refresh: set[str] = set()
        self._contexts: dict[str, str] = {}
        self._access_tokens: dict[str, tuple[str, str, float]] = {}
        self._token_scopes: dict[str, tuple[str, ...]] = {}  # access token -> the scopes it was granted
        self._jwks_cache: dict[str, dict[str | None, jwt.PyJWK]] = {}
        self.jwks_fetches = 0
        self.errors: list[str] = []  # tracebacks of bugs inside the fake (tests may assert it stays empty)
        from .fake_s3control import AccessGrants  # it imports this module

        self.access_grants = AccessGrants(self)  # s3control GetDataAccess (S3 Access Grants)
        from .fake_portal import PortalDirectory

        #: the portal API (ListAccounts, ListAccountRoles, GetRoleCredentials) and the console federation endpoint
        self.portal = PortalDirectory(self)
        #: a test's Identity Center (tests/support/fake_ssoadmin.py IdentityCenter): sso-admin, identitystore
        self.identity_center: IdentityCenter | None = None
        self._signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._kid = "idc-" + secrets.token_hex(4)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._url: str | None = None

    # lifecycle -----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("FakeAWS not started")
        return self._url

    def start(self) -> FakeAWS:
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                loop.run_until_complete(self._astart())
            except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._astop())
                loop.close()

        self._thread = threading.Thread(target=run, name="FakeAWS", daemon=True)
        self._thread.start()
        if not ready.wait(30):
            raise TimeoutError("FakeAWS did not start")
        if failure:
            self._thread = None
            raise failure[0]
        return self

    async def _astart(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self._url = f"http://{host}:{port}"
        self._session = aiohttp.ClientSession(auto_decompress=False, timeout=aiohttp.ClientTimeout(total=30))

    async def _astop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self) -> None:
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        self._thread = None
        self._url = None

    def __enter__(self) -> FakeAWS:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # call log ------------------------------------------------------------------------------------
    @property
    def calls(self) -> list[Call]:
        """Snapshot (a new list, taken under the lock) of every completed request, in completion order."""
        with self._lock:
            return list(self._calls)

    def count(self, operation: str, *, service: str | None = None, error: str | None = None) -> int:
        with self._lock:
            return sum(1 for c in self._calls if c.operation == operation
                       and (service is None or c.service == service) and (error is None or c.error == error))

    def clear_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    def wait_for_count(self, operation: str, n: int, timeout: float = 10.0) -> None:
        """Block until at least ``n`` calls to ``operation`` completed (condition wait, with a deadline)."""
        with self._cond:
            if not self._cond.wait_for(lambda: self.count(operation) >= n, timeout=timeout):
                raise TimeoutError(f"{operation}: {self.count(operation)} calls after {timeout}s, wanted {n}")

    # faults --------------------------------------------------------------------------------------
    def inject(self, operation: str, error_code: str, count: int = 1, status: int = 400,
               message: str | None = None) -> None:
        """The next ``count`` calls to ``operation`` (any service; -1 = until clear_faults) fail with
        ``error_code`` in the service's own wire format; they never reach moto."""
        with self._lock:
            self._faults.setdefault(operation, []).append(
                _Fault(error_code, status, count, message or f"injected {error_code}"))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def hold(self, operation: str) -> None:
        """Calls to ``operation`` wait (up to 120 s) until ``release``: a test can act while one is under way."""
        with self._lock:
            self._holds[operation] = threading.Event()

    def wait_until_held(self, timeout: float = 60.0, count: int = 1) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self._held >= count, timeout=timeout):
                raise TimeoutError(f"{self._held} held calls after {timeout}s, wanted {count}")

    @property
    def held(self) -> int:
        """How many calls wait in `hold` now."""
        with self._lock:
            return self._held

    def release(self) -> None:
        with self._lock:
            holds, self._holds = self._holds, {}
        for gate in holds.values():
            gate.set()

    def _take_fault(self, operation: str | None) -> _Fault | None:
        if not operation:
            return None
        with self._lock:
            queue = self._faults.get(operation)
            while queue:
                fault = queue[0]
                if fault.remaining == -1:
                    return fault
                if fault.remaining > 0:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        queue.pop(0)
                    return fault
                queue.pop(0)
        return None

    # Identity Center helpers for tests ------------------------------------------------------------
    @property
    def idc_issuer(self) -> str:
        return f"https://identitycenter.amazonaws.com/{self.config.instance_id}"

    def idc_jwks(self) -> dict[str, Any]:
        """Public JWKS of the key that signs the idToken this fake returns."""
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self._signing_key.public_key(), as_dict=True)
        jwk.update(kid=self._kid, alg="RS256", use="sig")
        return {"keys": [jwk]}

    def identity_context_user(self, context: str) -> str:
        """The Identity Center user id a context assertion was issued for (ValueError if not ours)."""
        with self._lock:
            user = self._contexts.get(context)
        if user is None:
            raise ValueError("identity context was not issued by this fake")
        if json.loads(_b64url_decode(context)).get("userId") != user:
            raise ValueError("identity context does not decode to the user it was issued for")
        return user

    def revoke_refresh_tokens(self, user_id: str | None = None) -> int:
        """Invalidate Identity Center refresh tokens (all, or one user's); returns how many."""
        with self._lock:
            gone = [t for t, g in self._refresh.items() if user_id is None or g.user_id == user_id]
            for t in gone:
                del self._refresh[t]
            return len(gone)

    def issued(self, access_key_id: str) -> _Creds | None:
        """The credentials this fake (or moto behind it) issued under that access key id, if any."""
        with self._lock:
            return self._issued_creds.get(access_key_id)

    def record_issued(self, access_key_id: str, creds: _Creds) -> None:
        """Credentials issued on this fake's behalf by a neighbour (the portal fake's GetRoleCredentials), so
        the checks that look them up (the federation endpoint, chaining) know them."""
        with self._lock:
            self._issued_creds[access_key_id] = creds

    def access_token(self, token: str) -> tuple[str, tuple[str, ...]] | None:
        """The Identity Center user and scopes of an access token this fake issued and that has not expired."""
        with self._lock:
            entry = self._access_tokens.get(token)
            scopes = self._token_scopes.get(token, ())
        if entry is None or time.time() >= entry[2]:
            return None
        return entry[1], scopes

    def bootstrap_access_keys(self) -> set[str]:
        with self._lock:
            return {k for k, c in self._issued_creds.items() if c.action == "AssumeRoleWithWebIdentity"}

    # request handling ----------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        started = time.time()
        body = await request.read()
        info = _identify(request.method, request.raw_path, request.headers, body)
        call = Call(info.service, info.operation, started, info.scope.access_key_id if info.scope else None,
                    info.params, request.method, request.path)
        try:
            response = await self._dispatch(request, body, info)
        except _AwsError as exc:
            response = _error_response(info.service, exc.code, exc.status, exc.description)
            call.error = exc.code
        except Exception:  # noqa: BLE001 - a bug in the fake must not look like an AWS answer
            tb = traceback.format_exc()
            self.errors.append(tb)
            response = _error_response(info.service, "InternalFailure", 500, "fake AWS bug: " + tb[-500:])
            call.error = "InternalFailure"
        call.status = response.status
        if call.error is None and response.status >= 400:
            call.error = self._error_code_of(response)
        with self._cond:
            self._calls.append(call)
            self._cond.notify_all()
        return response

    @staticmethod
    def _error_code_of(response: web.Response) -> str | None:
        error_type = response.headers.get("x-amzn-ErrorType")
        if error_type:
            return error_type.split(":", 1)[0]
        body = response.body if isinstance(response.body, bytes) else b""
        code = _xml_find(body, "Code")
        if isinstance(code, str):
            return code
        try:
            parsed = json.loads(body)
            found: str | None = parsed.get("__type") or parsed.get("code")
            return found
        except (ValueError, AttributeError):
            return None

    async def _dispatch(self, request: web.Request, body: bytes, info: _Identified) -> web.Response:
        with self._lock:
            gate = self._holds.get(info.operation or "")
        if gate is not None:
            with self._cond:
                self._held += 1
                self._cond.notify_all()
            try:
                await asyncio.get_running_loop().run_in_executor(None, gate.wait, 120)
            finally:
                with self._cond:
                    self._held -= 1
        fault = self._take_fault(info.operation)
        if fault is not None:
            raise _AwsError(fault.code, fault.message, fault.status)
        if (info.service, info.operation) == ("sso-oidc", "CreateTokenWithIAM"):
            return await self._create_token_with_iam(request, body, info)
        if (info.service, info.operation) == ("s3control", "GetDataAccess"):
            return await self.access_grants.get_data_access(request, body, info)
        if info.service == "sso" and info.operation in ("ListAccounts", "ListAccountRoles", "GetRoleCredentials"):
            return await self.portal.handle(request, info)
        if request.path == "/federation":
            return await self.portal.federation(request)
        if self.identity_center is not None and info.service in ("sso-admin", "identitystore"):
            return await self.identity_center.handle(info, lambda: self._forward(request, body, info))
        return await self._forward(request, body, info)

    async def _forward(self, request: web.Request, body: bytes, info: _Identified) -> web.Response:
        if self.moto_url is None or self._session is None:
            return web.Response(status=501, text=f"FakeAWS: {info.service}:{info.operation} not implemented")
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP]
        async with self._session.request(
            request.method, self.moto_url + request.raw_path, headers=headers, data=body,
            allow_redirects=False, skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
        ) as upstream:
            payload = await upstream.read()
            out_headers = [(k, v) for k, v in upstream.headers.items()
                           if k.lower() not in _HOP_BY_HOP and k.lower() not in ("date", "server")]
            status = upstream.status
            # a HEAD answer has no body, but its Content-Length is the object's size (the aws CLI reads it)
            head_length = upstream.headers.get("Content-Length") if request.method == "HEAD" else None
        if status == 200 and info.service == "sts" and info.operation:
            creds = _xml_find(payload, "Credentials")
            if isinstance(creds, dict) and creds.get("AccessKeyId"):
                exp = creds.get("Expiration", "")
                try:
                    expiration = dt.datetime.fromisoformat(exp.replace("Z", "+00:00")).timestamp()
                except ValueError:
                    expiration = time.time() + 3600
                with self._lock:
                    caller = info.scope.access_key_id if info.scope else ""
                    self._issued_creds[creds["AccessKeyId"]] = _Creds(
                        info.operation, creds.get("SecretAccessKey", ""), creds.get("SessionToken", ""), expiration,
                        self._contexts.get(info.form.get("ProvidedContexts.member.1.ContextAssertion", "")),
                        chained=info.operation == "AssumeRole" and (caller in self._issued_creds
                                                                    or caller.startswith("ASIA")))
        response = web.Response(status=status, body=payload)
        for k, v in out_headers:
            response.headers.add(k, v)
        if head_length is not None:
            response.headers["Content-Length"] = head_length
        return response

    # sso-oidc CreateTokenWithIAM -------------------------------------------------------------------
    def _authenticate(self, request: web.Request, body: bytes, scope: _SigV4 | None) -> None:
        if scope is None:
            raise _AwsError("AccessDeniedException", "missing authentication: request is not SigV4-signed")
        if scope.service != "sso-oauth":
            raise _AwsError("InvalidSignatureException",
                            "Credential should be scoped to correct service: 'sso-oauth'.", 403)
        if scope.region != self.config.region:
            raise _AwsError("InvalidSignatureException", "Credential should be scoped to a valid region.", 403)
        with self._lock:
            creds = self._issued_creds.get(scope.access_key_id)
        if creds is None or creds.action != "AssumeRoleWithWebIdentity":
            raise _AwsError(
                "AccessDeniedException",
                f"access key {scope.access_key_id} is not authorized to perform sso-oauth:CreateTokenWithIAM "
                "(fake: only AssumeRoleWithWebIdentity credentials it proxied are allowed; the real service "
                "checks the application's ActorPolicy)")
        if request.headers.get("X-Amz-Security-Token") != creds.session_token:
            raise _AwsError("UnrecognizedClientException",
                            "The security token included in the request is invalid.", 403)
        if time.time() >= creds.expiration:
            raise _AwsError("ExpiredTokenException", "The security token included in the request is expired")
        if self.config.verify_signatures and not _verify_sigv4(
                request.method, request.raw_path, request.headers, body, scope, creds.secret_access_key):
            raise _AwsError("InvalidSignatureException",
                            "The request signature we calculated does not match the signature you provided.", 403)

    async def _create_token_with_iam(self, request: web.Request, body: bytes, info: _Identified) -> web.Response:
        self._authenticate(request, body, info.scope)
        req = info.json_body
        if not isinstance(req, dict):
            raise _AwsError("InvalidRequestException", "request body must be a JSON object")
        client_id = req.get("clientId")
        grant_type = req.get("grantType")
        if not client_id or not grant_type:
            raise _AwsError("InvalidRequestException", "clientId and grantType are required")
        app = self.config.applications.get(client_id)
        if app is None:
            raise _AwsError("InvalidClientException", f"unknown application (clientId) {client_id}")
        requested = req.get("scope")
        # the `scope` of the answer names sso:account:access only when the application has it, and an account
        # instance cannot have it (the administrator cannot enable it there)
        available = [s for s in app.scopes if s != ACCOUNT_ACCESS or self.config.instance_kind == "organization"]
        if requested is not None and (not isinstance(requested, list) or not set(requested) <= set(available)):
            raise _AwsError("InvalidScopeException", f"scopes {requested} are not configured for the application")
        scopes = list(requested) if requested else available

        if grant_type == JWT_BEARER:
            user_id = await self._jwt_bearer(app, req.get("assertion"))
        elif grant_type == REFRESH_TOKEN:
            user_id = self._refresh_grant(client_id, app, req.get("refreshToken"))
        else:
            raise _AwsError("UnsupportedGrantTypeException", f"grant type {grant_type!r} is not supported by this fake")
        if app.assigned is not None and user_id not in app.assigned and not (
                set(k for k, v in self.config.users.items() if v == user_id) & app.assigned):
            raise _AwsError("AccessDeniedException", "user is not assigned to the application")
        return self._issue(client_id, app, user_id, scopes)

    async def _jwt_bearer(self, app: AppConfig, assertion: Any) -> str:
        if not isinstance(assertion, str) or not assertion:
            raise _AwsError("InvalidRequestException", "assertion is required for the jwt-bearer grant")
        digest = sha256_hex(assertion)
        with self._lock:
            if digest in self._used_assertions:
                raise _AwsError("InvalidGrantException", "assertion has already been used (replayed JWT)")
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            raise _AwsError("InvalidGrantException", "assertion is not a well-formed JWT") from None
        alg = header.get("alg")
        if alg not in ("RS256", "ES256"):
            raise _AwsError("InvalidGrantException", f"assertion alg {alg!r} is not supported (RS256, ES256)")
        key = await self._issuer_key(app.issuer_url, header.get("kid"))
        if key is None:
            raise _AwsError("InvalidGrantException",
                            f"signature: no key with kid {header.get('kid')!r} in the issuer's JWKS")
        try:
            claims = jwt.decode(
                assertion, key=key.key, algorithms=[alg], audience=list(app.audiences), issuer=app.issuer_url,
                leeway=self.config.leeway, options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise _AwsError("InvalidGrantException", "assertion has expired (exp)") from None
        except jwt.InvalidAudienceError:
            raise _AwsError("InvalidGrantException",
                            "assertion aud does not match any audience of the trusted token issuer") from None
        except jwt.InvalidIssuerError:
            raise _AwsError("InvalidGrantException",
                            "assertion iss does not match the trusted token issuer URL") from None
        except jwt.ImmatureSignatureError:
            raise _AwsError("InvalidGrantException", "assertion is not yet valid (nbf/iat)") from None
        except jwt.MissingRequiredClaimError as exc:
            raise _AwsError("InvalidGrantException", f"assertion lacks the {exc.claim} claim") from None
        except jwt.InvalidSignatureError:
            raise _AwsError("InvalidGrantException", "signature verification of the assertion failed") from None
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise _AwsError("InvalidGrantException", f"signature/assertion invalid: {type(exc).__name__}") from None
        with self._lock:
            if digest in self._used_assertions:  # concurrent replay
                raise _AwsError("InvalidGrantException", "assertion has already been used (replayed JWT)")
            self._used_assertions.add(digest)
        value = claim_at(claims, app.claim)
        if value is None:
            raise _AwsError("InvalidGrantException", f"assertion lacks the mapped claim {app.claim!r}")
        user_id = self.config.users.get(str(value))
        if user_id is None:
            raise _AwsError("InvalidGrantException",
                            f"claim {app.claim!r} maps to no Identity Center user")
        return user_id

    async def _issuer_key(self, issuer: str, kid: str | None) -> jwt.PyJWK | None:
        keys = self._jwks_cache.get(issuer)
        if keys is None or (kid not in keys):
            keys = await self._fetch_jwks(issuer)
            self._jwks_cache[issuer] = keys
        if kid is None and len(keys) == 1:
            return next(iter(keys.values()))
        return keys.get(kid)

    async def _fetch_jwks(self, issuer: str) -> dict[str | None, jwt.PyJWK]:
        assert self._session is not None
        self.jwks_fetches += 1
        try:
            async with self._session.get(issuer.rstrip("/") + "/.well-known/openid-configuration") as resp:
                resp.raise_for_status()
                discovery = json.loads(await resp.read())
            if discovery.get("issuer") != issuer:
                raise _AwsError("InvalidGrantException", "issuer discovery document names a different issuer")
            async with self._session.get(discovery["jwks_uri"]) as resp:
                resp.raise_for_status()
                jwks = json.loads(await resp.read())
        except _AwsError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise _AwsError("InvalidGrantException",
                            f"could not retrieve the issuer's JWKS: {type(exc).__name__}") from None
        out: dict[str | None, jwt.PyJWK] = {}
        for data in jwks.get("keys", []):
            try:
                out[data.get("kid")] = jwt.PyJWK(data)
            except jwt.PyJWTError:
                continue
        return out

    def _refresh_grant(self, client_id: str, app: AppConfig, token: Any) -> str:
        if not app.refresh_token_grant:
            raise _AwsError("UnsupportedGrantTypeException",
                            "the refresh_token grant is not enabled for this application")
        if not isinstance(token, str) or not token:
            raise _AwsError("InvalidRequestException", "refreshToken is required for the refresh_token grant")
        with self._lock:
            grant = self._refresh.get(token)
            if grant is None:
                reason = "has already been used (rotated)" if sha256_hex(token) in self._used_refresh else \
                    "is invalid or revoked"
                raise _AwsError("InvalidGrantException", f"refresh token {reason}")
            if grant.app != client_id:
                raise _AwsError("InvalidGrantException", "refresh token was issued to another application")
            del self._refresh[token]
            self._used_refresh.add(sha256_hex(token))
            if time.time() >= grant.expires_at:
                raise _AwsError("InvalidGrantException", "refresh token has expired")
            return grant.user_id

    def _issue(self, client_id: str, app: AppConfig, user_id: str, scopes: list[str]) -> web.Response:
        now = int(time.time())
        cfg = self.config
        context = _b64url(json.dumps({
            "v": 1, "userId": user_id, "applicationArn": client_id, "identityStoreId": cfg.identity_store_id,
            "nonce": secrets.token_hex(16), "iat": now,
        }, separators=(",", ":")).encode())
        audit = _b64url(secrets.token_bytes(48))
        instance_arn = f"arn:aws:sso:::instance/{cfg.instance_id}"
        id_token = jwt.encode({
            "iss": self.idc_issuer, "sub": user_id, "aud": client_id, "iat": now, "exp": now + app.access_token_ttl,
            "jti": str(uuid.uuid4()),
            "sts:identity_context": context, "sts:audit_context": audit,
            "aws:identity_store_id": cfg.identity_store_id,
            "aws:identity_store_arn": f"arn:aws:identitystore::{cfg.account_id}:identitystore/{cfg.identity_store_id}",
            "aws:instance_account": cfg.account_id, "aws:instance_arn": instance_arn,
            "aws:application_arn": client_id,
        }, self._signing_key, algorithm="RS256", headers={"kid": self._kid})
        access_token = "aoa" + secrets.token_urlsafe(64)
        result: dict[str, Any] = {
            "accessToken": access_token,
            "tokenType": "Bearer",
            "expiresIn": app.access_token_ttl,
            "idToken": id_token,
            "issuedTokenType": TOKEN_TYPE_ACCESS,
            "scope": scopes,
            "awsAdditionalDetails": {"identityContext": context},
        }
        with self._lock:
            self._contexts[context] = user_id
            self._access_tokens[access_token] = (client_id, user_id, now + app.access_token_ttl)
            self._token_scopes[access_token] = tuple(scopes)
            if app.refresh_token_grant:
                refresh = "aor" + secrets.token_urlsafe(64)
                self._refresh[refresh] = _RefreshGrant(client_id, user_id, now + app.refresh_token_ttl)
                result["refreshToken"] = refresh
                result["issuedTokenType"] = TOKEN_TYPE_REFRESH
        return web.Response(status=200, text=json.dumps(result), content_type="application/json",
                            headers={"x-amzn-RequestId": str(uuid.uuid4())})


def claim_at(claims: dict[str, Any], path: str) -> Any:
    """The value a ClaimAttributePath names: a claim (names may hold '_' or '.'), else a dotted path into
    nested objects; None when absent or not a plain value (a user is matched by one string)."""
    value: Any = claims.get(path)
    if value is None and "." in path:
        value = claims
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
    return value if isinstance(value, (str, int)) and not isinstance(value, bool) else None


# --------------------------------------------------------------------------------------------------
# a tiny OIDC issuer (discovery + JWKS) for tests that do not need the real IdP
# --------------------------------------------------------------------------------------------------


class JwtIssuer:
    """Serves ``/.well-known/openid-configuration`` and ``/jwks`` on 127.0.0.1; mints id_tokens in-process.

    ``token(aud=..., email=...)`` signs with the current key; ``rotate()`` publishes a new key (old ones
    stay published unless ``drop_old``); ``token(..., unpublished=True)`` signs with a key never published.
    """

    def __init__(self, algorithm: str = "RS256", *, trailing_slash: bool = False) -> None:
        if algorithm not in ("RS256", "ES256"):
            raise ValueError(algorithm)
        self.algorithm = algorithm
        #: an issuer identifier ending in "/" (as Auth0's do): discovery lives at <issuer>.well-known/...
        self.trailing_slash = trailing_slash
        self._keys: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        self.jwks_requests = 0
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._unpublished = self._new_key()
        self.rotate()

    def _new_key(self) -> Any:
        if self.algorithm == "RS256":
            return rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return ec.generate_private_key(ec.SECP256R1())

    def rotate(self, *, drop_old: bool = False) -> str:
        kid = "k-" + secrets.token_hex(4)
        with self._lock:
            if drop_old:
                self._keys.clear()
            self._keys.append((kid, self._new_key()))
        return kid

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("JwtIssuer not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}" + ("/" if self.trailing_slash else "")

    def jwks(self) -> dict[str, Any]:
        algo = jwt.algorithms.RSAAlgorithm if self.algorithm == "RS256" else jwt.algorithms.ECAlgorithm
        keys = []
        with self._lock:
            for kid, key in self._keys:
                jwk = algo.to_jwk(key.public_key(), as_dict=True)
                jwk.update(kid=kid, alg=self.algorithm, use="sig")
                keys.append(jwk)
        return {"keys": keys}

    def token(self, *, aud: str | list[str], sub: str = "user-1", email: str | None = None, ttl: int = 300,
              iss: str | None = None, unpublished: bool = False, kid: str | None = None,
              extra: dict[str, Any] | None = None, iat: int | None = None, typ: str | None = None) -> str:
        now = int(time.time()) if iat is None else iat
        claims: dict[str, Any] = {"iss": iss if iss is not None else self.url, "sub": sub, "aud": aud,
                                  "iat": now, "exp": now + ttl, "jti": secrets.token_hex(8)}
        if email is not None:
            claims["email"] = email
        claims.update(extra or {})
        return self.sign(claims, unpublished=unpublished, kid=kid, typ=typ)

    def sign(self, claims: dict[str, Any], *, unpublished: bool = False, kid: str | None = None,
             typ: str | None = None) -> str:
        """Exactly these claims, signed with the current key (or one never published); the header's kid is the
        key's unless one is given."""
        with self._lock:
            current_kid, key = self._keys[-1]
        if unpublished:
            current_kid, key = "unpublished-" + current_kid, self._unpublished
        headers = {"kid": kid or current_kid, **({"typ": typ} if typ else {})}
        return jwt.encode(claims, key, algorithm=self.algorithm, headers=headers)

    def start(self) -> JwtIssuer:
        issuer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                if self.path == "/.well-known/openid-configuration":
                    doc = {"issuer": issuer.url, "jwks_uri": issuer.url.rstrip("/") + "/jwks",
                           "id_token_signing_alg_values_supported": [issuer.algorithm]}
                elif self.path == "/jwks":
                    issuer.jwks_requests += 1
                    doc = issuer.jwks()
                else:
                    self.send_error(404)
                    return
                data = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="JwtIssuer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> JwtIssuer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
