"""Authorization code + PKCE through the system browser with a loopback redirect (RFC 8252)."""
from __future__ import annotations

import asyncio
import errno
import html
import logging
import os
import socket
import threading
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from authlib.oauth2.rfc6749 import MissingCodeException
from authlib.oauth2.rfc6749.parameters import parse_authorization_code_response, prepare_grant_uri

from ..errors import LoginError
from .oidc import IdpClient, ProviderMetadata, TokenResponse
from .pkce import AuthRequest

log = logging.getLogger(__name__)

CALLBACK_PATH = "/callback"
REDIRECT_HOSTS = ("127.0.0.1", "localhost")
#: the authorization request's own parameters: a profile's `auth_params` never replaces them
PROTECTED_PARAMS = frozenset({"response_type", "client_id", "redirect_uri", "scope", "state", "nonce",
                              "code_challenge", "code_challenge_method"})
PAGE = """<!doctype html><meta charset="utf-8"><title>tipd</title>
<body style="font-family:system-ui;margin:3em"><h2>{title}</h2><p>{text}</p></body>"""


@dataclass
class Callback:
    code: str | None = None
    error: str | None = None


class LoopbackReceiver:
    """A one-shot HTTP listener on the loopback interface that waits for the IdP's redirect.

    `host` is what the redirect URI names: 127.0.0.1, or `localhost` for IdPs that accept only that name
    (the listener then takes the port on ::1 as well where IPv6 exists, since a browser may resolve
    `localhost` to either). `issuer`, when given, must match an `iss` in the redirect (RFC 9207)."""

    def __init__(self, request: AuthRequest, port: int = 0, host: str = "127.0.0.1", issuer: str | None = None) -> None:
        if host not in REDIRECT_HOSTS:
            raise LoginError(f"redirect_host must be one of {', '.join(REDIRECT_HOSTS)}, not {host!r}")
        self.request = request
        self.port = port
        self.host = host
        self.issuer = issuer
        self.result: asyncio.Future[Callback] = asyncio.get_running_loop().create_future()
        self._runner: web.AppRunner | None = None

    @property
    def redirect_uri(self) -> str:
        return f"http://{self.host}:{self.port}{CALLBACK_PATH}"

    async def __aenter__(self) -> LoopbackReceiver:
        fixed = self.port != 0
        for attempt in range(1 if fixed else 5):
            try:
                await self._listen()
                return self
            except OSError as e:
                if self._runner:
                    await self._runner.cleanup()
                if not fixed:
                    if e.errno == errno.EADDRINUSE and attempt < 4:
                        self.port = 0  # the free port on 127.0.0.1 was taken on ::1: another one
                        continue
                    raise LoginError(f"cannot listen on {self.host} for the sign-in redirect "
                                     f"({e.strerror or e})") from None
                reason = "the port is in use" if e.errno == errno.EADDRINUSE else (e.strerror or str(e))
                raise LoginError(f"cannot listen on {self.host}:{self.port} (the profile's redirect_port) for the "
                                 f"sign-in redirect: {reason}; close what uses it, or set redirect_port = 0 if your "
                                 "IdP accepts any loopback port") from None
        raise AssertionError("unreachable")

    async def _listen(self) -> None:
        app = web.Application()
        app.router.add_get(CALLBACK_PATH, self._callback)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        port: int = self._runner.addresses[0][1]  # the one site's: the port the OS chose for port 0
        self.port = port
        if self.host == "localhost":
            await self._also_ipv6()

    async def _also_ipv6(self) -> None:
        """The same port on ::1. Where IPv6 is absent there is nothing to take; where another program holds
        the port on ::1, a browser resolving `localhost` there would reach it instead, so that fails."""
        if not socket.has_ipv6:
            return
        assert self._runner is not None
        try:
            await web.TCPSite(self._runner, "::1", self.port).start()
        except OSError as e:
            if e.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                return
            raise

    async def __aexit__(self, *exc: Any) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def _callback(self, request: web.Request) -> web.Response:
        q = request.query
        if self.result.done():
            return _page(409, "Already handled", "This sign-in is finished; you can close this tab.")
        if "error" in q:
            desc = q.get("error_description")
            text = f"The IdP refused the sign-in: {q['error']}" + (f" ({desc})" if desc else "")
            text = "".join(c if c.isprintable() else "\ufffd" for c in text)[:500]
            # an IdP error redirect still has to carry our state, or anyone could cancel a sign-in
            if self.request.state_matches(q.get("state")):
                self.result.set_result(Callback(error=text))
            return _page(400, "Sign-in failed", text)
        if not self.request.state_matches(q.get("state")):
            self.result.set_result(Callback(error="the sign-in redirect carried the wrong state "
                                                  "(a forged or stale redirect); try again"))
            return _page(400, "Sign-in refused", "This redirect does not belong to the sign-in in progress.")
        if self.issuer is not None and "iss" in q and q["iss"] != self.issuer:
            # RFC 9207: the IdP names itself in the redirect; another issuer means a mix-up attack
            self.result.set_result(Callback(error="the sign-in redirect came from another issuer than the "
                                                  "profile's (RFC 9207 iss mismatch); try again"))
            return _page(400, "Sign-in refused", "This redirect was issued by another identity provider.")
        try:
            params = parse_authorization_code_response(str(request.rel_url))  # state was checked above
        except MissingCodeException:
            params = {}
        if not params.get("code"):
            self.result.set_result(Callback(error="the IdP redirected back without an authorization code"))
            return _page(400, "Sign-in failed", "The IdP sent no authorization code.")
        self.result.set_result(Callback(code=params["code"]))
        return _page(200, "Signed in", "You can close this tab and return to the terminal.")


def _page(status: int, title: str, text: str) -> web.Response:
    return web.Response(status=status, content_type="text/html",
                        text=PAGE.format(title=html.escape(title), text=html.escape(text)))


def authorization_url(meta: ProviderMetadata, client_id: str, scopes: list[str], redirect_uri: str,
                      req: AuthRequest, extra: dict[str, str] | None = None) -> str:
    """The authorization request (RFC 6749 section 4.1.1 with PKCE and an OIDC nonce). `extra` adds an IdP's
    own parameters (Google: access_type=offline, prompt=consent); it never replaces the ones above."""
    params = {k: v for k, v in (extra or {}).items() if k not in PROTECTED_PARAMS}
    params.update(nonce=req.nonce, code_challenge=req.challenge, code_challenge_method="S256")
    url: str = prepare_grant_uri(meta.authorization_endpoint, client_id, "code", redirect_uri=redirect_uri,
                                 scope=scopes, state=req.state, **params)
    return url


async def browser_login(idp: IdpClient, *, scopes: list[str] | None = None, timeout: float = 300,
                        open_browser: bool = True, show: Callable[[str], None] = print
                        ) -> tuple[TokenResponse, AuthRequest]:
    """Run the browser sign-in for the client's profile (its scopes, redirect_host/redirect_port and
    auth_params); returns the token response and the request (for the nonce check)."""
    profile = idp.profile
    scopes = list(scopes if scopes is not None else profile.scopes)
    meta = await idp.metadata()
    req = AuthRequest()
    async with LoopbackReceiver(req, profile.redirect_port, profile.redirect_host, issuer=meta.issuer) as rx:
        url = authorization_url(meta, idp.client_id, scopes, rx.redirect_uri, req, profile.auth_params)
        if open_browser:
            show(f"Opening your browser to sign in. If it does not open, visit:\n\n  {url}\n")
            # webbrowser may run the browser command and wait for it to exit (BROWSER=firefox waits until the
            # window closes): a daemon thread keeps the receiver's loop free, and unlike the loop's executor,
            # which asyncio.run joins on the way out, it never holds up the login or a Ctrl-C
            threading.Thread(target=_open, args=(url, show), name="open-browser", daemon=True).start()
        else:
            show(f"Open this URL in a browser to sign in:\n\n  {url}\n")
        try:
            cb = await asyncio.wait_for(asyncio.shield(rx.result), timeout)
        except TimeoutError:
            raise LoginError(f"no sign-in arrived within {int(timeout)} s; run the command again "
                             "(or use --device on a machine without a browser)") from None
    if cb.error:
        raise LoginError(cb.error)
    assert cb.code is not None
    tokens = await idp.exchange_code(cb.code, rx.redirect_uri, req.verifier, " ".join(scopes))
    return tokens, req


def _open(url: str, show: Callable[[str], None]) -> None:
    """Open `url` in the browser; when none opens, say so (the URL is already on the screen). A BROWSER the
    user set is the only one tried: webbrowser would go on to any console browser it finds (lynx, w3m),
    which would take over the terminal tipctl runs in."""
    chosen = [c for c in os.environ.get("BROWSER", "").split(os.pathsep) if c.strip()]
    why = "it exited with an error or was not found"
    try:
        opened = any(webbrowser.get(c).open(url) for c in chosen) if chosen else webbrowser.open(url)
    except Exception as e:  # webbrowser.Error (nothing runnable), OSError: none is fatal
        opened, why = False, type(e).__name__
    if not opened:
        which = f"BROWSER={os.pathsep.join(chosen)}: {why}" if chosen else "no browser was found"
        show(f"Could not open a browser ({which}): open the URL above yourself, or use --device.")
