"""The AWS calls: the three of the chain, and S3 Access Grants' GetDataAccess with its result.

Every client is created either UNSIGNED or with explicit credentials, so botocore never resolves
ambient credentials for the daemon (which could otherwise be its own endpoint, via the very
variables it publishes). Endpoints follow the standard AWS_ENDPOINT_URL* variables."""
from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from functools import cache
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol
from urllib.parse import urlsplit

from .clock import ClockLike, iso_utc, local_expiry, parse_time
from .errors import UpstreamError
from .secret import Secret

if TYPE_CHECKING:
    import ssl
    from datetime import datetime

    import aiohttp

log = logging.getLogger(__name__)


def unverified_claims(token: str) -> dict[str, Any]:
    """idp.verify's, imported at the first use: PyJWT (with cryptography) is not needed on tipd's way to
    listening."""
    from .idp.verify import unverified_claims as claims

    return claims(token)

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
IDENTITY_CENTER_PROVIDER = "arn:aws:iam::aws:contextProvider/IdentityCenter"
#: botocore refuses DurationSeconds below STS's real minimum; test stacks use shorter sessions
STS_MIN_DURATION = 900
#: the largest AWS answer read (the chain's are a few KiB; an error page, a proxy or a fake may send more)
MAX_RESPONSE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class AwsCredentials:
    access_key_id: str
    secret_access_key: Secret
    session_token: Secret
    expires_at: float
    account_id: str
    arn: str = ""

    def __repr__(self) -> str:
        return (f"AwsCredentials(access_key_id={self.access_key_id!r}, arn={self.arn!r}, "
                f"expires={iso_utc(self.expires_at)})")

    def container_json(self) -> dict[str, str]:
        """The body of the container-credentials endpoint (what every SDK parses)."""
        return {
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key.reveal(),
            "Token": self.session_token.reveal(),
            "Expiration": iso_utc(self.expires_at),
            "AccountId": self.account_id,
        }


@dataclass(frozen=True)
class IdcToken:
    """The Identity Center token from CreateTokenWithIAM."""

    access_token: Secret
    refresh_token: Secret | None
    identity_context: Secret
    expires_at: float
    user_id: str = ""
    scopes: tuple[str, ...] = field(default=())

    def __repr__(self) -> str:
        return f"IdcToken(user_id={self.user_id!r}, refresh_token={'yes' if self.refresh_token else 'no'})"


@cache
def _boto() -> SimpleNamespace:
    """botocore and aiobotocore, imported at the first AWS call: they are about a third of tipd's start-up, and
    nothing before the first renewal needs them (the credential port serves without them)."""
    from aiobotocore.config import AioConfig
    from aiobotocore.httpsession import AIOHTTPSession
    from aiobotocore.session import AioSession
    from botocore import UNSIGNED
    from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    class ResponseTooLarge(HTTPClientError):
        fmt = "AWS answered more than {limit} bytes; the answer was not read"

    class _SharedTLSSession(AIOHTTPSession):
        """aiobotocore builds a new SSL context (loading the whole CA bundle) for every client: two thirds of
        a rotation's CPU. The verify context depends only on the verify setting, so build it once.

        It also bounds every answer: aiobotocore reads a whole body into memory (a 200 MB one took 1.5 GB), so
        the body is read here, in chunks, and refused past MAX_RESPONSE_BYTES (or a larger Content-Length)."""

        _contexts: ClassVar[dict[bool | str, ssl.SSLContext]] = {}
        # set by AIOHTTPSession.__init__; types-aiobotocore leaves these private attributes out
        _cert_file: str | None
        _verify: bool | str

        # Any: the stubs type these as requests' Request/Response; aiobotocore passes an AWSPreparedRequest
        # and returns an AioAWSResponse
        async def send(self, request: Any) -> Any:
            streaming, request.stream_output = request.stream_output, True  # we read the body, not aiobotocore
            try:
                response = await super().send(request)
            finally:
                request.stream_output = streaming
            if not streaming:
                response._content = await _read_capped(response.raw, MAX_RESPONSE_BYTES)
            return response

        def _build_verify_context(self) -> ssl.SSLContext:
            build = super()._build_verify_context  # type: ignore[misc]  # private, not in types-aiobotocore
            if self._cert_file:  # a client certificate is loaded into the context: never share that one
                own: ssl.SSLContext = build()
                return own
            ctx = self._contexts.get(self._verify)
            if ctx is None:
                ctx = self._contexts[self._verify] = build()
            return ctx

    return SimpleNamespace(AioConfig=AioConfig, AioSession=AioSession, UNSIGNED=UNSIGNED, ClientError=ClientError,
                           BotoConnectionError=BotoConnectionError, HTTPClientError=HTTPClientError,
                           ResponseTooLarge=ResponseTooLarge, SharedTLSSession=_SharedTLSSession,
                           errors=(ClientError, BotoCoreError))


def _boto_errors() -> tuple[type[Exception], ...]:
    """What a botocore call raises that `explain` turns into a sentence."""
    errors: tuple[type[Exception], ...] = _boto().errors
    return errors


async def _read_capped(raw: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body of an aiohttp response, or ResponseTooLarge (the connection is closed, not drained)."""
    try:
        declared = int(raw.headers.get("Content-Length", "0"))
    except ValueError:
        declared = 0
    chunks: list[bytes] = []
    size = 0
    try:
        if declared > limit:
            raise _boto().ResponseTooLarge(limit=limit)
        async for chunk in raw.content.iter_chunked(65536):
            size += len(chunk)
            if size > limit:
                raise _boto().ResponseTooLarge(limit=limit)
            chunks.append(chunk)
    except _boto().ResponseTooLarge:
        raw.close()
        raise
    return b"".join(chunks)


def _account_from_arn(arn: str) -> str:
    parts = arn.split(":")
    return parts[4] if len(parts) > 4 else ""


def session_name(user_id: str) -> str:
    """`tip-<Identity Center user id>`, within STS's 64-character, [\\w+=,.@-] limits."""
    safe = "".join(c if c.isalnum() or c in "+=,.@-_" else "-" for c in user_id) or "user"
    return ("tip-" + safe)[:64]


class Chain(Protocol):
    """What a profile session needs of AWS: the chain's three calls. `AwsChain` makes them; unit tests pass
    stand-ins on virtual time (tests/support/fakes.py), which satisfy this structurally."""

    async def assume_role_with_web_identity(self, *, region: str, role_arn: str, id_token: Secret,
                                            session: str, duration: int = 3600) -> AwsCredentials: ...

    async def create_token_with_iam(self, *, region: str, creds: AwsCredentials, application_arn: str,
                                    assertion: Secret | None = None,
                                    refresh_token: Secret | None = None) -> IdcToken: ...

    async def assume_role_with_context(self, *, region: str, creds: AwsCredentials, role_arn: str, session: str,
                                       identity_context: Secret, duration: int = 3600) -> AwsCredentials: ...


class DataAccess(Protocol):
    """What the S3 Access Grants cache needs of AWS: GetDataAccess (`AwsChain`, or a unit test's stand-in)."""

    async def get_data_access(self, *, region: str, creds: AwsCredentials, account_id: str, target: str,
                              permission: str, privilege: str | None = None, target_type: str | None = None,
                              duration: int | None = None) -> tuple[AwsCredentials, str]: ...


class AwsChain:
    def __init__(self, clock: ClockLike, session: Any = None) -> None:
        self.clock = clock
        self._session = session

    @property
    def session(self) -> Any:
        if self._session is None:
            # Ignore AWS_PROFILE / AWS_DEFAULT_PROFILE: the user's choice of profile is for their tools, and a
            # profile that does not exist (or that points at tipd itself) must not break the daemon.
            self._session = _boto().AioSession(session_vars={"profile": (None, None, None, None)})
        return self._session

    def _expiry(self, r: dict[str, Any], expiration: str | datetime, stage: str) -> float:
        """`Expiration` on our clock (see clock.local_expiry), refusing credentials already expired on AWS's
        own clock: they would be served with a past Expiration."""
        expires, sent, now = parse_time(expiration), _server_time(r), self.clock.time()
        if expires <= (sent if sent is not None else now):
            raise UpstreamError(f"{stage}: AWS returned credentials that had already expired; retrying",
                                code="ExpiredCredentials")
        return local_expiry(expires, sent, now)

    def credentials_from(self, r: dict[str, Any], stage: str) -> AwsCredentials:
        """The credentials of an STS answer, their expiry counted on our clock (AWS's Date header corrects skew)."""
        c = r["Credentials"]
        arn = (r.get("AssumedRoleUser") or {}).get("Arn", "")
        return AwsCredentials(
            access_key_id=c["AccessKeyId"], secret_access_key=Secret(c["SecretAccessKey"]),
            session_token=Secret(c["SessionToken"]), expires_at=self._expiry(r, c["Expiration"], stage),
            account_id=_account_from_arn(arn), arn=arn)

    def _client(self, service: Literal["sts", "sso-oidc", "s3control"], region: str, creds: AwsCredentials | None,
                duration: int | None = None) -> Any:
        """The client's async context manager (Any: its type depends on `service`)."""
        boto = _boto()
        cfg = boto.AioConfig(
            region_name=region,
            signature_version=boto.UNSIGNED if creds is None else None,
            retries={"mode": "standard", "max_attempts": 2},
            connect_timeout=5, read_timeout=15,
            parameter_validation=not (duration is not None and duration < STS_MIN_DURATION),
            http_session_cls=boto.SharedTLSSession,
        )
        kw: dict[str, str] = {}
        if creds is not None:
            kw = dict(aws_access_key_id=creds.access_key_id,
                      aws_secret_access_key=creds.secret_access_key.reveal(),
                      aws_session_token=creds.session_token.reveal())
        return self.session.create_client(service, region_name=region, config=cfg, **kw)

    async def _call(self, service: Literal["sts", "sso-oidc", "s3control"], operation: str, *, stage: str,
                    region: str, creds: AwsCredentials | None,
                    duration: int | None = None, hints: dict[str, tuple[bool, str]] | None = None,
                    prepare: Callable[[Any], None] | None = None, **params: Any) -> dict[str, Any]:
        """One AWS call, and the one place a botocore error of the chain becomes a sentence (`explain`, with the
        call's `hints`): a client made for it (unsigned, or with explicit credentials), `prepare`d, `operation`
        called with `params`; its response."""
        try:
            async with self._client(service, region, creds, duration) as client:
                if prepare is not None:
                    prepare(client)
                response: dict[str, Any] = await getattr(client, operation)(**params)
                return response
        except _boto_errors() as e:
            raise explain(stage, e, HINTS if hints is None else hints) from None

    async def assume_role_with_web_identity(self, *, region: str, role_arn: str, id_token: Secret,
                                            session: str, duration: int = 3600) -> AwsCredentials:
        stage = "AssumeRoleWithWebIdentity (bootstrap session)"
        r = await self._call("sts", "assume_role_with_web_identity", stage=stage, region=region, creds=None,
                             duration=duration, hints=WEB_IDENTITY_HINTS, RoleArn=role_arn, RoleSessionName=session,
                             WebIdentityToken=id_token.reveal(), DurationSeconds=duration)
        return self.credentials_from(r, stage)

    async def create_token_with_iam(self, *, region: str, creds: AwsCredentials, application_arn: str,
                                    assertion: Secret | None = None,
                                    refresh_token: Secret | None = None) -> IdcToken:
        if (assertion is None) == (refresh_token is None):
            raise ValueError("exactly one of assertion and refresh_token")
        kw: dict[str, Any]  # the operation's parameters (Any: botocore's request JSON)
        if assertion is not None:
            kw = {"grantType": JWT_BEARER, "assertion": assertion.reveal()}
        else:
            assert refresh_token is not None  # exactly one of the two, checked above
            kw = {"grantType": "refresh_token", "refreshToken": refresh_token.reveal()}
        stage = f"CreateTokenWithIAM ({'jwt-bearer' if assertion is not None else 'refresh_token'} grant)"
        r = await self._call("sso-oidc", "create_token_with_iam", stage=stage, region=region, creds=creds,
                             clientId=application_arn, **kw)
        ctx = (r.get("awsAdditionalDetails") or {}).get("identityContext")
        claims = unverified_claims(r["idToken"]) if r.get("idToken") else {}
        ctx = ctx or claims.get("sts:identity_context")
        if not ctx:
            raise UpstreamError(f"{stage}: Identity Center returned no identity context; check that the "
                                "application's scopes include sts:identity_context", permanent=True)
        return IdcToken(
            access_token=Secret(r["accessToken"]),
            refresh_token=Secret(r["refreshToken"]) if r.get("refreshToken") else None,
            identity_context=Secret(ctx),
            expires_at=self.clock.time() + int(r.get("expiresIn") or 3600),
            user_id=str(claims.get("sub", "")),
            scopes=tuple(r.get("scope") or ()),
        )

    async def assume_role_with_context(self, *, region: str, creds: AwsCredentials, role_arn: str, session: str,
                                       identity_context: Secret, duration: int = 3600) -> AwsCredentials:
        stage = "AssumeRole with ProvidedContexts (identity-enhanced session)"
        r = await self._call("sts", "assume_role", stage=stage, region=region, creds=creds, duration=duration,
                             RoleArn=role_arn, RoleSessionName=session, DurationSeconds=duration,
                             ProvidedContexts=[{"ProviderArn": IDENTITY_CENTER_PROVIDER,
                                                "ContextAssertion": identity_context.reveal()}])
        return self.credentials_from(r, stage)

    async def get_data_access(self, *, region: str, creds: AwsCredentials, account_id: str, target: str,
                              permission: str, privilege: str | None = None, target_type: str | None = None,
                              duration: int | None = None) -> tuple[AwsCredentials, str]:
        """S3 Access Grants credentials for `target`, asked with the identity-enhanced session; returns them
        with the grant scope they came from (MatchedGrantTarget)."""
        stage = f"S3 Access Grants GetDataAccess ({permission} {target})"
        kw = {k: v for k, v in (("Privilege", privilege), ("TargetType", target_type),
                                ("DurationSeconds", duration)) if v is not None}
        r = await self._call(
            "s3control", "get_data_access", stage=stage, region=region, creds=creds, duration=duration,
            hints=S3AG_HINTS, AccountId=account_id, Target=target, Permission=permission, **kw,
            prepare=lambda s3c: s3c.meta.events.register("before-call.s3-control.GetDataAccess",
                                                         _no_account_label_on_ip))
        c = r["Credentials"]
        return (AwsCredentials(access_key_id=c["AccessKeyId"], secret_access_key=Secret(c["SecretAccessKey"]),
                               session_token=Secret(c["SessionToken"]),
                               expires_at=self._expiry(r, c["Expiration"], stage), account_id=account_id),
                r.get("MatchedGrantTarget") or target)


def _no_account_label_on_ip(params: dict[str, Any], **kwargs: Any) -> None:
    """s3control's endpoint rules put `<AccountId>.` in front of every host, a custom endpoint's too; in front
    of an IP address or localhost (a local emulator) that name can never resolve, so drop it there. The
    account id still travels in the x-amz-account-id header."""
    parts = urlsplit(params["url"])
    label, _, rest = (parts.hostname or "").partition(".")
    if label.isdigit() and _is_ip_or_localhost(rest):
        params["url"] = parts._replace(netloc=parts.netloc.replace(f"{label}.", "", 1)).geturl()


def _is_ip_or_localhost(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return host == "localhost"


def _server_time(r: dict[str, Any]) -> float | None:
    """When AWS answered, on AWS's clock: the response's HTTP Date header."""
    date = ((r.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}).get("date")
    try:
        return parsedate_to_datetime(date).timestamp() if date else None
    except (TypeError, ValueError):
        return None


#: error code -> (permanent, what it usually means and what to do)
HINTS: dict[str, tuple[bool, str]] = {
    "InvalidIdentityToken": (True, "STS rejected the IdP token: the IAM OIDC provider must list this issuer and "
                                   "the client id as an audience"),
    "IDPRejectedClaim": (True, "STS rejected the IdP token's claims: check the OIDC role's trust policy conditions"),
    "IDPCommunicationError": (False, "STS could not reach the IdP's keys; retrying"),
    "InvalidGrantException": (True, "Identity Center rejected the IdP token: the trusted token issuer's issuer URL "
                                    "or audience does not match the token, its claim maps to no user, or the token "
                                    "was replayed or expired"),
    "InvalidClientException": (True, "Identity Center does not know this application: "
                                     "check application_arn and region"),
    "UnauthorizedClientException": (True, "the application does not allow this grant: add the jwt-bearer grant "
                                          "for your trusted token issuer"),
    "AccessDeniedException": (True, "Identity Center refused: you may not be assigned to the application "
                                    "(assignment is required by default), or the OIDC role is not in the "
                                    "application's ActorPolicy"),
    "InvalidRequestRegionException": (True, "the Identity Center instance is in another region: fix `region`"),
    "ExpiredTokenException": (False, "a token expired on the way; getting a new one"),
    "AccessDenied": (True, "STS refused the role: its trust policy must allow the calling role sts:AssumeRole "
                           "and sts:SetContext (and DurationSeconds may be at most 3600 when chaining)"),
    "RegionDisabledException": (True, "STS is not enabled in this region for the account"),
    "ValidationError": (True, "STS rejected a parameter"),
}
TRANSIENT_CODES = {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException",
                   "InternalServerException", "InternalFailure", "ServiceUnavailable", "SlowDownException",
                   "RequestTimeout", "RequestTimeoutException"}


#: STS's AccessDenied means something else for each of its two calls: on the first (the web identity), the
#: OIDC role's trust policy refused the IdP token; on the second, the identity-enhanced role refused the OIDC role
WEB_IDENTITY_HINTS: dict[str, tuple[bool, str]] = {
    **HINTS,
    "AccessDenied": (True, "the OIDC role's trust policy must allow sts:AssumeRoleWithWebIdentity for the IAM OIDC "
                           "provider of your issuer, with an `aud` condition equal to the profile's client_id"),
}

#: GetDataAccess answers in S3's error codes (its AccessDenied is not STS's)
S3AG_HINTS: dict[str, tuple[bool, str]] = {
    "AccessDenied": (True, "no S3 Access Grant of yours covers this target with this permission (or the "
                           "identity-enhanced role may not call s3:GetDataAccess)"),
    "InvalidRequest": (True, "S3 Access Grants rejected the request: check the target, permission and duration"),
    "ExpiredToken": (False, "the identity-enhanced session expired on the way; retrying"),
}


def _printable(text: str) -> str:
    """An upstream's words as tipd repeats them (logs, last_error, `tipctl status` on a terminal): control
    characters, escape sequences among them, become '?'."""
    return "".join(c if c.isprintable() else "?" for c in text)


def explain(stage: str, e: Exception, hints: dict[str, tuple[bool, str]] = HINTS) -> UpstreamError:
    boto = _boto()
    if isinstance(e, boto.ClientError):
        err = e.response.get("Error", {})
        code = _printable(str(err.get("Code", "Unknown"))[:100])
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        permanent, hint = hints.get(code, (False, ""))
        if code in TRANSIENT_CODES or status >= 500:
            permanent, hint = False, hint or "AWS is busy or failing; retrying with backoff"
        msg = f"{stage} failed: {code}" + (f" - {hint}" if hint else "")
        if err.get("Message") and not permanent:
            msg += f" ({_printable(str(err['Message'])[:200])})"
        out = UpstreamError(msg, code=code, permanent=permanent, status=502 if not permanent else 403)
    elif isinstance(e, boto.ResponseTooLarge):
        out = UpstreamError(f"{stage} failed: {e}", code="ResponseTooLarge", permanent=False, status=502)
    elif isinstance(e, (boto.BotoConnectionError, boto.HTTPClientError)):
        out = UpstreamError(f"{stage} failed: cannot reach AWS ({type(e).__name__})", code="AwsUnreachable",
                            permanent=False, status=503)
    else:  # botocore's own complaint (bad parameter, config): its message names the problem, no secrets
        out = UpstreamError(f"{stage} failed: {e}", code=type(e).__name__, permanent=False, status=502)
    return out
