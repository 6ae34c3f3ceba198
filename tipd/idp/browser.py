"""Authorization code + PKCE through the system browser with a loopback redirect (RFC 8252)."""
from __future__ import annotations

import asyncio
import errno
import html
import logging
import threading
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from ..errors import LoginError
from .oidc import ProviderMetadata, TokenResponse, token_request
from .pkce import AuthRequest

log = logging.getLogger(__name__)

CALLBACK_PATH = "/callback"
PAGE = """<!doctype html><meta charset="utf-8"><title>tipd</title>
<body style="font-family:system-ui;margin:3em"><h2>{title}</h2><p>{text}</p></body>"""


@dataclass
class Callback:
    code: str | None = None
    error: str | None = None


class LoopbackReceiver:
    """A one-shot HTTP listener on 127.0.0.1 that waits for the IdP's redirect."""

    def __init__(self, request: AuthRequest, port: int = 0) -> None:
        self.request = request
        self.port = port
        self.result: asyncio.Future[Callback] = asyncio.get_running_loop().create_future()
        self._runner: web.AppRunner | None = None

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}{CALLBACK_PATH}"

    async def __aenter__(self) -> "LoopbackReceiver":
        app = web.Application()
        app.router.add_get(CALLBACK_PATH, self._callback)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        try:
            await site.start()
        except OSError as e:
            await self._runner.cleanup()
            if not self.port:
                raise LoginError(f"cannot listen on 127.0.0.1 for the sign-in redirect ({e.strerror or e})") from None
            reason = "the port is in use" if e.errno == errno.EADDRINUSE else (e.strerror or str(e))
            raise LoginError(f"cannot listen on 127.0.0.1:{self.port} (the profile's redirect_port) for the sign-in "
                             f"redirect: {reason}; close what uses it, or set redirect_port = 0 if your IdP accepts "
                             "any loopback port") from None
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def _callback(self, request: web.Request) -> web.Response:
        q = request.query
        if self.result.done():
            return _page(409, "Already handled", "This sign-in is finished; you can close this tab.")
        if "error" in q:
            desc = q.get("error_description")
            text = f"The IdP refused the sign-in: {q['error']}" + (f" ({desc})" if desc else "")
            # an IdP error redirect still has to carry our state, or anyone could cancel a sign-in
            if self.request.state_matches(q.get("state")):
                self.result.set_result(Callback(error=text))
            return _page(400, "Sign-in failed", text)
        if not self.request.state_matches(q.get("state")):
            self.result.set_result(Callback(error="the sign-in redirect carried the wrong state "
                                                  "(a forged or stale redirect); try again"))
            return _page(400, "Sign-in refused", "This redirect does not belong to the sign-in in progress.")
        code = q.get("code")
        if not code:
            self.result.set_result(Callback(error="the IdP redirected back without an authorization code"))
            return _page(400, "Sign-in failed", "The IdP sent no authorization code.")
        self.result.set_result(Callback(code=code))
        return _page(200, "Signed in", "You can close this tab and return to the terminal.")


def _page(status: int, title: str, text: str) -> web.Response:
    return web.Response(status=status, content_type="text/html",
                        text=PAGE.format(title=html.escape(title), text=html.escape(text)))


def authorization_url(meta: ProviderMetadata, client_id: str, scopes: list[str], redirect_uri: str,
                      req: AuthRequest) -> str:
    params = {
        "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "scope": " ".join(scopes),
        "state": req.state, "nonce": req.nonce, "code_challenge": req.challenge, "code_challenge_method": "S256",
    }
    sep = "&" if "?" in meta.authorization_endpoint else "?"
    return meta.authorization_endpoint + sep + urlencode(params)


async def browser_login(http: aiohttp.ClientSession, meta: ProviderMetadata, client_id: str, scopes: list[str],
                        *, port: int = 0, timeout: float = 300, open_browser: bool = True,
                        show: Callable[[str], None] = print) -> tuple[TokenResponse, AuthRequest]:
    """Run the browser sign-in; returns the token response and the request (for the nonce check)."""
    req = AuthRequest()
    async with LoopbackReceiver(req, port) as rx:
        url = authorization_url(meta, client_id, scopes, rx.redirect_uri, req)
        show(f"Opening your browser to sign in. If it does not open, visit:\n\n  {url}\n")
        if open_browser:
            # webbrowser may run the browser command and wait for it to exit (BROWSER=firefox waits until the
            # window closes): a daemon thread keeps the receiver's loop free, and unlike the loop's executor,
            # which asyncio.run joins on the way out, it never holds up the login or a Ctrl-C
            threading.Thread(target=_open, args=(url,), name="open-browser", daemon=True).start()
        try:
            cb = await asyncio.wait_for(asyncio.shield(rx.result), timeout)
        except asyncio.TimeoutError:
            raise LoginError(f"no sign-in arrived within {int(timeout)} s; run the command again "
                             "(or use --device on a machine without a browser)") from None
    if cb.error:
        raise LoginError(cb.error)
    form = {"grant_type": "authorization_code", "code": cb.code or "", "redirect_uri": rx.redirect_uri,
            "client_id": client_id, "code_verifier": req.verifier}
    tokens = await token_request(http, meta.token_endpoint, form, "exchanging the authorization code")
    return tokens, req


def _open(url: str) -> None:
    try:
        webbrowser.open(url)
    except Exception as e:  # no browser is not fatal: the URL is printed
        log.debug("could not open a browser: %s", type(e).__name__)
