"""The device authorization grant (RFC 8628): sign in on another device (a phone, a laptop's browser) with a
short code, for SSH sessions and machines without a browser."""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from authlib.oauth2.rfc8628 import DEVICE_CODE_GRANT_TYPE

from ..clock import Clock, ClockLike
from ..errors import LoginError, UpstreamError
from ..secret import Secret
from .oidc import IdpClient, OAuthError, TokenResponse

log = logging.getLogger(__name__)

DEVICE_GRANT = DEVICE_CODE_GRANT_TYPE
#: RFC 8628 section 3.2: the polling interval when the IdP names none (oidc-provider, for one, never does)
DEFAULT_INTERVAL = 5
#: section 3.5: every slow_down adds 5 s to the interval, for the rest of the flow
SLOW_DOWN_STEP = 5
#: OAuth errors that say "not now" rather than "no": the poll is retried at the interval
TRANSIENT_ERRORS = {"server_error", "temporarily_unavailable"}
#: the person said no: RFC 8628's access_denied, and Entra's authorization_declined
#: (https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-device-code#expected-errors)
DENIED_ERRORS = {"access_denied", "authorization_declined"}
#: a sentence for the flow's absence (its discovery document names no device_authorization_endpoint)
NO_DEVICE_FLOW = ("this IdP does not offer the device flow; use the browser flow: run `tipctl login` without "
                  "--device (the IdP's discovery document names no device_authorization_endpoint)")


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


def _positive_int(value: Any, limit: int = 86400) -> int | None:
    """A count of seconds; some IdPs send numbers as strings ("1800", "5")."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return min(value, limit) if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


async def start(idp: IdpClient, scopes: list[str]) -> DeviceAuthorization:
    """Ask the IdP for a device code and a user code (RFC 8628 section 3.1)."""
    meta = await idp.metadata()
    if not meta.device_authorization_endpoint:
        raise LoginError(NO_DEVICE_FLOW, code="DeviceFlowUnsupported")
    what = "requesting a device code"
    data = await idp.post(meta.device_authorization_endpoint, {"scope": " ".join(scopes)}, what)
    # Google says verification_url (https://developers.google.com/identity/protocols/oauth2/limited-input-device);
    # the RFC (and everyone else) verification_uri
    uri = data.get("verification_uri") or data.get("verification_url")
    expires_in = _positive_int(data.get("expires_in"))
    if not (isinstance(data.get("device_code"), str) and data["device_code"] and isinstance(data.get("user_code"), str)
            and data["user_code"] and isinstance(uri, str) and uri and expires_in):
        raise UpstreamError(f"{what}: the IdP's answer lacks device_code, user_code, verification_uri or expires_in",
                            code="IdPError", permanent=True)
    complete = data.get("verification_uri_complete")
    return DeviceAuthorization(
        device_code=Secret(data["device_code"]), user_code=data["user_code"], verification_uri=uri,
        verification_uri_complete=complete if isinstance(complete, str) and complete else None,
        expires_in=expires_in, interval=_positive_int(data.get("interval")) or DEFAULT_INTERVAL)


async def poll(idp: IdpClient, auth: DeviceAuthorization, *, clock: ClockLike, started: float,
               timeout: float | None = None, show: Callable[[str], None] = print,
               requested_scope: str | None = None) -> TokenResponse:
    """Poll the token endpoint until the user approves (tokens), refuses, or the code expires (LoginError).
    `started` is the clock time the code was issued; `timeout` may end the wait before the code expires."""
    expires = started + auth.expires_in
    deadline = min(expires, started + timeout) if timeout else expires
    params = {"device_code": auth.device_code.reveal()}
    interval = auth.interval
    while True:
        await clock.sleep(interval)
        if clock.time() >= deadline:
            if deadline < expires:
                raise LoginError(f"the sign-in was not approved within {int(timeout or 0)} s; run the command again")
            raise LoginError(f"the code expired before the sign-in was approved ({_minutes(auth.expires_in)}); "
                             "run the command again for a new code")
        try:
            return await idp.token(DEVICE_GRANT, params, "waiting for the device sign-in",
                                   requested_scope=requested_scope)
        except OAuthError as e:
            if e.error == "authorization_pending":
                continue
            if e.error == "slow_down":
                interval += SLOW_DOWN_STEP
                log.debug("the IdP asked to slow down: polling every %d s", interval)
                continue
            if e.error in DENIED_ERRORS:
                raise LoginError(f"the IdP refused the sign-in: {e.error}"
                                 + (f" ({e.description})" if e.description else "")) from None
            if e.error == "expired_token":
                raise LoginError("the code expired before the sign-in was approved; run the command again "
                                 "for a new code") from None
            if e.error == "bad_verification_code":
                raise LoginError("the IdP does not recognise the device code (bad_verification_code); run the "
                                 "command again for a new code") from None
            if e.error not in TRANSIENT_ERRORS:
                raise
            show(f"{e.message}; trying again in {interval} s")
        except UpstreamError as e:  # the IdP unreachable or failing: the code stays valid, so keep polling
            if e.permanent:
                raise
            show(f"{e.message}; trying again in {interval} s")


async def device_login(idp: IdpClient, *, scopes: list[str] | None = None, timeout: float | None = None,
                       clock: ClockLike | None = None, show: Callable[[str], None] = print) -> TokenResponse:
    """Run the device sign-in: show the code and where to enter it, then wait for the approval."""
    clock = clock or Clock()
    scopes = list(scopes if scopes is not None else idp.profile.scopes)
    auth = await start(idp, scopes)
    started = clock.time()
    show(auth.instructions())
    return await poll(idp, auth, clock=clock, started=started, timeout=timeout, show=show,
                      requested_scope=" ".join(scopes))
