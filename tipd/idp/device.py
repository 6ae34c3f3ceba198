"""The device authorization grant (RFC 8628): sign in on another device (a phone, a laptop's browser) with a
short code, for SSH sessions and machines without a browser."""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from ..clock import Clock
from ..errors import LoginError, UpstreamError
from ..secret import Secret
from .oidc import (TIMEOUT, OAuthError, ProviderMetadata, TokenResponse, connection_error, read_json,
                   token_request)

log = logging.getLogger(__name__)

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
#: RFC 8628 section 3.2: the polling interval when the IdP names none (oidc-provider, for one, never does)
DEFAULT_INTERVAL = 5
#: section 3.5: every slow_down adds 5 s to the interval, for the rest of the flow
SLOW_DOWN_STEP = 5
#: OAuth errors that say "not now" rather than "no": the poll is retried at the interval
TRANSIENT_ERRORS = {"server_error", "temporarily_unavailable"}


@dataclass(frozen=True)
class DeviceAuthorization:
    """The IdP's answer to the device authorization request (RFC 8628 section 3.2)."""

    device_code: Secret
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: int
    interval: int

    def instructions(self) -> str:
        uri, code, link = (_printable(v) for v in (self.verification_uri, self.user_code,
                                                    self.verification_uri_complete or ""))
        text = (f"To sign in, open this page on any device:\n\n  {uri}\n\n"
                f"and enter the code:  {code}\n")
        if link:
            text += f"\nor open this link, which carries the code:\n\n  {link}\n"
        return text + (f"\nWaiting for the sign-in to be approved (the code is valid for {_minutes(self.expires_in)}; "
                       "Ctrl-C cancels)...")


def _printable(text: str) -> str:
    """The IdP's strings go to a terminal: no control characters (escape sequences) from it."""
    return "".join(c if c.isprintable() else "\ufffd" for c in text)


def _minutes(seconds: int) -> str:
    return f"{seconds // 60} min" if seconds >= 120 else f"{seconds} s"


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


async def start(http: aiohttp.ClientSession, meta: ProviderMetadata, client_id: str,
                scopes: list[str]) -> DeviceAuthorization:
    """Ask the IdP for a device code and a user code."""
    if not meta.device_authorization_endpoint:
        raise LoginError("this IdP does not offer the device flow; use the browser flow (its discovery document "
                         "names no device_authorization_endpoint)", code="DeviceFlowUnsupported")
    what = "requesting a device code"
    try:
        async with http.post(meta.device_authorization_endpoint, timeout=TIMEOUT,
                             data={"client_id": client_id, "scope": " ".join(scopes)},
                             headers={"Accept": "application/json"}) as resp:
            data = await read_json(resp, what)
    except aiohttp.ClientError as e:
        raise connection_error(what, e) from None
    # Google says verification_url; the RFC (and everyone else) verification_uri
    uri = data.get("verification_uri") or data.get("verification_url")
    expires_in = _positive_int(data.get("expires_in"))
    if not (isinstance(data.get("device_code"), str) and data["device_code"] and isinstance(data.get("user_code"), str)
            and isinstance(uri, str) and expires_in):
        raise UpstreamError(f"{what}: the IdP's answer lacks device_code, user_code, verification_uri or expires_in",
                            code="IdPError", permanent=True)
    complete = data.get("verification_uri_complete")
    return DeviceAuthorization(
        device_code=Secret(data["device_code"]), user_code=data["user_code"], verification_uri=uri,
        verification_uri_complete=complete if isinstance(complete, str) and complete else None,
        expires_in=expires_in, interval=_positive_int(data.get("interval")) or DEFAULT_INTERVAL)


async def poll(http: aiohttp.ClientSession, meta: ProviderMetadata, client_id: str, auth: DeviceAuthorization,
               *, clock: Clock, started: float, timeout: float | None = None,
               show: Callable[[str], None] = print) -> TokenResponse:
    """Poll the token endpoint until the user approves (tokens), refuses, or the code expires (LoginError).
    `started` is the clock time the code was issued; `timeout` may end the wait before the code expires."""
    expires = started + auth.expires_in
    deadline = min(expires, started + timeout) if timeout else expires
    form = {"grant_type": DEVICE_GRANT, "device_code": auth.device_code.reveal(), "client_id": client_id}
    interval = auth.interval
    while True:
        await clock.sleep(interval)
        if clock.time() >= deadline:
            if deadline < expires:
                raise LoginError(f"the sign-in was not approved within {int(timeout or 0)} s; run the command again")
            raise LoginError(f"the code expired before the sign-in was approved ({_minutes(auth.expires_in)}); "
                             "run the command again for a new code")
        try:
            return await token_request(http, meta.token_endpoint, form, "waiting for the device sign-in")
        except OAuthError as e:
            if e.error == "authorization_pending":
                continue
            if e.error == "slow_down":
                interval += SLOW_DOWN_STEP
                log.debug("the IdP asked to slow down: polling every %d s", interval)
                continue
            if e.error == "access_denied":
                raise LoginError("the IdP refused the sign-in: access_denied"
                                 + (f" ({e.description})" if e.description else "")) from None
            if e.error == "expired_token":
                raise LoginError("the code expired before the sign-in was approved; run the command again "
                                 "for a new code") from None
            if e.error not in TRANSIENT_ERRORS:
                raise
            show(f"{e.message}; trying again in {interval} s")
        except UpstreamError as e:  # the IdP unreachable or failing: the code stays valid, so keep polling
            if e.permanent:
                raise
            show(f"{e.message}; trying again in {interval} s")


async def device_login(http: aiohttp.ClientSession, meta: ProviderMetadata, client_id: str, scopes: list[str],
                       *, timeout: float | None = None, clock: Clock | None = None,
                       show: Callable[[str], None] = print) -> TokenResponse:
    """Run the device sign-in: show the code and where to enter it, then wait for the approval."""
    clock = clock or Clock()
    auth = await start(http, meta, client_id, scopes)
    started = clock.time()
    show(auth.instructions())
    return await poll(http, meta, client_id, auth, clock=clock, started=started, timeout=timeout, show=show)
