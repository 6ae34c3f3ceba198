"""The IdP client against what real IdPs do differently (issue 10 sections 1 and 3; issue 11 #10 and #11):
client authentication with a secret that never shows, extra authorization parameters, the granted scope,
revocation absent or refused, bounded bodies, timeouts as sentences, error strings from the IdP cleaned.
A small aiohttp server on loopback plays the IdP, answering what each test scripts."""
from __future__ import annotations

import asyncio
import base64
import tracemalloc
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.support.profiles import profile
from tipd.errors import ConfigError, UpstreamError
from tipd.idp import oidc
from tipd.idp.browser import LoopbackReceiver, authorization_url
from tipd.idp.oidc import IdpClient, OAuthError, ProviderMetadata
from tipd.idp.pkce import AuthRequest
from tipd.secret import Secret

SECRET = "s3:cr%41t"  # a raw "%41" would decode to "A": the encoding shows
TOKEN_OK = {"access_token": "at-1", "token_type": "Bearer", "expires_in": 300, "id_token": "h.p.s",
            "refresh_token": "rt-2"}


#: a path's answer: (status, JSON or text body), or a handler
Answer = tuple[int, Any] | Callable[[web.Request], Awaitable[web.StreamResponse]]


class ScriptedIdp:
    """/token, /revoke and /jwks answering from `answers[path]` (a (status, body) tuple or a handler);
    every request's form and headers are kept."""

    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {"/token": (200, TOKEN_OK), "/revoke": (200, "")}
        self.seen: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        #: IdpClients against this IdP (the `scripted` fixture sets it)
        self.client: Callable[..., IdpClient]

    def app(self) -> web.Application:
        app = web.Application()
        for path in ("/token", "/revoke", "/device"):
            app.router.add_post(path, self._answer)
        app.router.add_get("/jwks", self._answer)
        return app

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        form = dict(await request.post()) if request.method == "POST" else {}
        self.seen.append((request.path, form, dict(request.headers)))
        answer = self.answers[request.path]
        if callable(answer):
            return await answer(request)
        status, body = answer
        if isinstance(body, (dict, list)):
            return web.json_response(body, status=status)
        return web.Response(status=status, text=body)


@pytest.fixture
async def scripted(aiohttp_server):
    idp = ScriptedIdp()
    server = await aiohttp_server(idp.app())
    base = str(server.make_url("")).rstrip("/")
    meta = ProviderMetadata(issuer=base, authorization_endpoint=base + "/auth", token_endpoint=base + "/token",
                            jwks_uri=base + "/jwks", revocation_endpoint=base + "/revoke",
                            device_authorization_endpoint=base + "/device")
    async with aiohttp.ClientSession() as http:
        def client(secret: str | None = None, meta_over: dict[str, Any] | None = None, **settings) -> IdpClient:
            m = ProviderMetadata(**{**meta.__dict__, **(meta_over or {})})
            return IdpClient(http, profile(issuer=base, **settings), Secret(secret) if secret else None, metadata=m)

        idp.client = client
        yield idp


# -- client authentication ---------------------------------------------------------------------------
async def test_a_public_client_sends_its_id_and_no_secret(scripted):
    await scripted.client().refresh(Secret("rt-1"))
    _, form, headers = scripted.seen[-1]
    assert form == {"grant_type": "refresh_token", "refresh_token": "rt-1", "client_id": "cid"}
    assert "Authorization" not in headers


async def test_client_secret_post_puts_the_secret_in_the_form(scripted):
    await scripted.client(SECRET, client_auth="client_secret_post").refresh(Secret("rt-1"))
    _, form, headers = scripted.seen[-1]
    assert form["client_id"] == "cid" and form["client_secret"] == SECRET and "Authorization" not in headers


async def test_client_secret_basic_form_urlencodes_both_parts_first(scripted):
    """RFC 6749 section 2.3.1: a ':' or '%' in the secret must survive (authlib's own encoder would not)."""
    await scripted.client(SECRET, client_auth="client_secret_basic").refresh(Secret("rt-1"))
    _, form, headers = scripted.seen[-1]
    assert "client_secret" not in form
    user, _, password = base64.b64decode(headers["Authorization"].removeprefix("Basic ")).decode().partition(":")
    assert urllib.parse.unquote(user) == "cid" and urllib.parse.unquote(password) == SECRET


async def test_the_secret_is_sent_with_every_kind_of_request(scripted):
    idp = scripted.client(SECRET, client_auth="client_secret_post")
    await idp.exchange_code("code-1", "http://127.0.0.1:5/callback", "v" * 43, "openid")
    await idp.revoke(Secret("rt-1"))
    scripted.answers["/device"] = (200, {"device_code": "dc", "user_code": "U", "verification_uri": "https://v",
                                         "expires_in": 60})
    from tipd.idp.device import start

    await start(idp, ["openid"])
    assert [(p, f.get("client_secret")) for p, f, _ in scripted.seen] == [
        ("/token", SECRET), ("/revoke", SECRET), ("/device", SECRET)]
    assert scripted.seen[0][1]["code_verifier"] == "v" * 43
    assert scripted.seen[0][1]["grant_type"] == "authorization_code"


async def test_the_secret_never_shows_in_reprs_or_errors(scripted):
    idp = scripted.client(SECRET, client_auth="client_secret_post")
    scripted.answers["/token"] = (401, {"error": "invalid_client", "error_description": "bad secret"})
    with pytest.raises(OAuthError) as e:
        await idp.refresh(Secret("rt-1"))
    shown = f"{e.value} {e.value!r} {e.value.message} {idp!r} {idp.__dict__!r}"
    assert SECRET not in shown and "invalid_client" in e.value.message and e.value.permanent


async def test_a_missing_secret_is_a_sentence_and_nothing_is_sent(scripted):
    with pytest.raises(ConfigError) as e:
        await scripted.client(None, client_auth="client_secret_basic").refresh(Secret("rt-1"))
    assert "client secret" in e.value.message and "tipctl configure" in e.value.message
    assert scripted.seen == []


# -- the refresh grant's scope ---------------------------------------------------------------------------
async def test_the_granted_scope_is_the_answers_else_the_one_asked_for(scripted):
    idp = scripted.client()
    scripted.answers["/token"] = (200, {**TOKEN_OK, "scope": "openid email"})
    assert (await idp.refresh(Secret("rt"), "openid email offline_access")).scope == "openid email"
    scripted.answers["/token"] = (200, TOKEN_OK)  # RFC 6749 section 5.1: absent = as requested
    assert (await idp.refresh(Secret("rt"), "openid email")).scope == "openid email"
    assert (await idp.refresh(Secret("rt"))).scope is None  # no scope sent, none said: the grant as it was
    assert "scope" not in scripted.seen[-1][1] and scripted.seen[0][1]["scope"] == "openid email offline_access"


@pytest.mark.parametrize("value,expected", [(300, 300), ("300", 300), (299.7, 299), ("1e400", None), ("soon", None),
                                            (-5, None), (True, None), (10**12, oidc.MAX_EXPIRES_IN)])
def test_expires_in_as_a_number_or_a_string(value, expected):
    assert oidc.parse_token_response({"access_token": "a", "expires_in": value}, "x").expires_in == expected


# -- the authorization request ---------------------------------------------------------------------------
def test_a_profiles_auth_params_are_added_but_never_replace_tipds_own():
    meta = ProviderMetadata("https://i", "https://i/auth?tenant=t1", "https://i/token", "https://i/jwks")
    req = AuthRequest()
    url = authorization_url(meta, "cid", ["openid", "email"], "http://127.0.0.1:5/callback", req,
                            {"access_type": "offline", "prompt": "consent", "state": "mine", "redirect_uri": "http://x"})
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert q["access_type"] == ["offline"] and q["prompt"] == ["consent"] and q["tenant"] == ["t1"]
    assert q["state"] == [req.state] and q["redirect_uri"] == ["http://127.0.0.1:5/callback"]
    assert q["code_challenge"] == [req.challenge] and q["nonce"] == [req.nonce] and q["scope"] == ["openid email"]


async def _get(url: str) -> int:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status


async def test_a_localhost_redirect_names_localhost_and_answers_on_both_loopbacks():
    req = AuthRequest()
    async with LoopbackReceiver(req, host="localhost") as rx:
        assert rx.redirect_uri == f"http://localhost:{rx.port}/callback"
        assert await _get(f"http://127.0.0.1:{rx.port}/favicon.ico") == 404  # listening on 127.0.0.1
        try:
            v6 = await _get(f"http://[::1]:{rx.port}/favicon.ico")
        except aiohttp.ClientConnectorError:
            v6 = None  # no IPv6 on this machine: nothing to listen on there
        assert v6 in (404, None)
        assert await _get(f"http://localhost:{rx.port}/callback?code=c&state={req.state}") == 200
        assert (await rx.result).code == "c"


async def test_a_redirect_from_another_issuer_is_refused():
    """RFC 9207: the IdP names itself in the redirect; an `iss` of another IdP is a mix-up attack."""
    req = AuthRequest()
    async with LoopbackReceiver(req, issuer="https://idp.example") as rx:
        status = await _get(f"{rx.redirect_uri}?code=c&state={req.state}&iss=https%3A%2F%2Fevil.example")
        cb = await rx.result
    assert status == 400 and cb.code is None and cb.error is not None and "another issuer" in cb.error
    req = AuthRequest()
    async with LoopbackReceiver(req, issuer="https://idp.example") as rx:
        await _get(f"{rx.redirect_uri}?code=c&state={req.state}&iss=https%3A%2F%2Fidp.example")
        assert (await rx.result).code == "c"


# -- revocation -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("answer,outcome,detail", [
    ((200, ""), "revoked", ""),
    ((400, {"error": "unsupported_token_type"}), "refused", "HTTP 400 unsupported_token_type"),
    ((401, "no"), "refused", "HTTP 401"),
    ((503, "busy"), "failed", "HTTP 503"),
])
async def test_revocation_says_what_the_idp_did(scripted, answer, outcome, detail):
    scripted.answers["/revoke"] = answer
    r = await scripted.client().revoke(Secret("rt-1"))
    assert (r.outcome, r.detail, bool(r)) == (outcome, detail, outcome == "revoked")
    assert scripted.seen[-1][1] == {"token": "rt-1", "token_type_hint": "refresh_token", "client_id": "cid"}


async def test_no_revocation_endpoint_is_unsupported_and_nothing_is_sent(scripted):
    r = await scripted.client(meta_over={"revocation_endpoint": None}).revoke(Secret("rt-1"))
    assert r.outcome == "unsupported" and not r and scripted.seen == []


async def test_an_unreachable_revocation_endpoint_is_failed_not_raised(scripted):
    r = await scripted.client(meta_over={"revocation_endpoint": "http://127.0.0.1:9/revoke"}).revoke(Secret("rt-1"))
    assert r.outcome == "failed" and "cannot reach the IdP" in r.detail and "rt-1" not in r.detail


# -- bounded bodies, timeouts, hostile error strings -------------------------------------------------------
async def test_a_huge_token_answer_is_refused_without_reading_it_all(scripted):
    """Issue 11 #10: a 200 MB IdP body took the daemon to 478 MB. Streamed without a length, read no further
    than the cap."""
    sent = []

    async def flood(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        chunk = b" " * (256 * 1024)
        try:
            for _ in range(800):  # 200 MiB
                await resp.write(chunk)
                sent.append(len(chunk))
        except (ConnectionError, RuntimeError):
            pass
        return resp

    scripted.answers["/token"] = flood
    tracemalloc.start()
    try:
        with pytest.raises(UpstreamError) as e:
            await scripted.client().refresh(Secret("rt-1"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "larger than 1024 KiB" in e.value.message and not e.value.permanent
    assert peak < 16 * 1024 * 1024, peak
    assert sum(sent) < 200 * 1024 * 1024  # the client hung up long before the end


async def test_a_declared_huge_length_is_refused_before_reading(scripted):
    async def big(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json", "Content-Length": str(200 * 2**20)})
        await resp.prepare(request)
        await resp.write(b"{")
        await asyncio.sleep(30)  # never sends the rest: the client must not wait for it
        return resp

    scripted.answers["/jwks"] = big
    idp = scripted.client()
    with pytest.raises(UpstreamError) as e:
        await asyncio.wait_for(idp.jwks(), 10)
    assert "larger than" in e.value.message


async def test_a_slow_idp_is_a_sentence_not_a_timeout_traceback(scripted, monkeypatch):
    """Issue 11 #11: aiohttp's total timeout raises a bare asyncio.TimeoutError, which is no ClientError."""
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.json_response(TOKEN_OK)

    scripted.answers["/token"] = slow
    monkeypatch.setattr(oidc, "TIMEOUT", aiohttp.ClientTimeout(total=0.5))
    with pytest.raises(UpstreamError) as e:
        await scripted.client().refresh(Secret("rt-1"))
    assert e.value.message == "refreshing the IdP tokens: cannot reach the IdP (it did not answer in time)"
    assert e.value.code == "IdPUnreachable" and not e.value.permanent


async def test_the_idps_error_strings_reach_logs_without_control_characters(scripted):
    scripted.answers["/token"] = (400, {"error": "invalid_grant\x1b[2J",
                                        "error_description": "gone\r\n\x07" + "x" * 900})
    with pytest.raises(OAuthError) as e:
        await scripted.client().refresh(Secret("rt-1"))
    assert e.value.error == "invalid_grant[2J" and "\x1b" not in e.value.message and "\r" not in e.value.message
    assert e.value.description is not None and len(e.value.description) <= 303


@pytest.mark.parametrize("body", ["[]", "null", '"str"', "{", "[" * 100000])
async def test_a_token_answer_that_is_not_an_object_is_a_sentence(scripted, body):
    scripted.answers["/token"] = (200, body)
    with pytest.raises(UpstreamError) as e:
        await scripted.client().refresh(Secret("rt-1"))
    assert "not a JSON object" in e.value.message


async def test_discovery_needs_the_endpoints_a_sign_in_uses(aiohttp_server):
    async def doc(request: web.Request) -> web.Response:
        base = str(request.url.origin())
        return web.json_response({"issuer": base, "jwks_uri": base + "/jwks", "token_endpoint": 7})

    app = web.Application()
    app.router.add_get("/.well-known/openid-configuration", doc)
    server = await aiohttp_server(app)
    issuer = str(server.make_url("")).rstrip("/")
    async with aiohttp.ClientSession() as http:
        assert (await oidc.discover(http, issuer)).jwks_uri == issuer + "/jwks"  # a key check needs no more
        with pytest.raises(UpstreamError) as e:
            await IdpClient(http, profile(issuer=issuer)).metadata()
    assert "lacks authorization_endpoint, token_endpoint" in e.value.message and e.value.permanent


async def test_the_issuer_is_compared_byte_for_byte(aiohttp_server):
    async def doc(request: web.Request) -> web.Response:
        return web.json_response({"issuer": str(request.url.origin()) + "/", "jwks_uri": "x"})

    app = web.Application()
    app.router.add_get("/.well-known/openid-configuration", doc)
    server = await aiohttp_server(app)
    issuer = str(server.make_url("")).rstrip("/")
    async with aiohttp.ClientSession() as http:
        with pytest.raises(UpstreamError) as e:
            await oidc.discover(http, issuer)
        assert (await oidc.discover(http, issuer + "/")).issuer == issuer + "/"  # the slash, as published
    assert "set `issuer` to exactly the value the IdP publishes" in e.value.message


async def test_each_idp_request_gets_a_connection_of_its_own(aiohttp_server):
    """A pooled idle connection races the IdP's keep-alive timeout (Node's 5 s = a device poll's interval):
    the session for IdPs never reuses one."""
    peers = []

    async def token(request: web.Request) -> web.Response:
        assert request.transport is not None
        peers.append(request.transport.get_extra_info("peername"))
        return web.json_response(TOKEN_OK)

    app = web.Application()
    app.router.add_post("/token", token)
    server = await aiohttp_server(app)
    meta = ProviderMetadata("https://i", "https://i/a", str(server.make_url("/token")), "https://i/j")
    async with oidc.new_session() as http:
        idp = IdpClient(http, profile(issuer="https://i"), metadata=meta)
        for _ in range(3):
            await idp.refresh(Secret("rt"))
    assert len(set(peers)) == 3, peers


async def test_a_localhost_redirect_port_held_on_ipv6_by_another_program_is_a_sentence():
    """A browser may resolve `localhost` to ::1: a program there would receive the code instead."""
    import socket

    from tipd.errors import LoginError

    squatter = socket.socket(socket.AF_INET6)
    try:
        squatter.bind(("::1", 0))
    except OSError:
        squatter.close()
        pytest.skip("no IPv6 loopback here")
    squatter.listen()
    port = squatter.getsockname()[1]
    try:
        with pytest.raises(LoginError) as e:
            async with LoopbackReceiver(AuthRequest(), port, host="localhost"):
                pass
    finally:
        squatter.close()
    assert f"cannot listen on localhost:{port} (the profile's redirect_port)" in e.value.message
    assert "the port is in use" in e.value.message


async def test_an_unreachable_issuer_is_a_sentence_without_aiohttp_internals():
    """`tipctl configure` showed aiohttp's text ("Cannot connect to host ... ssl:default [Connect call failed
    ...]") even for an http URL; a refused connection and a TLS failure are said in words."""
    from tests.support.net import free_port
    from tipd.configure.profile import _discover

    port = free_port()
    with pytest.raises(UpstreamError) as e:
        await _discover(f"http://127.0.0.1:{port}")
    assert e.value.message.endswith(f"cannot reach the IdP (connection to 127.0.0.1:{port} refused)"), e.value.message

    async def plain_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)  # a TLS ClientHello, answered as a plain HTTP server would
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(plain_http, "127.0.0.1", 0)
    tls_port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(UpstreamError) as e:
            await _discover(f"https://127.0.0.1:{tls_port}")
    finally:
        server.close()
        await server.wait_closed()
    assert f"the TLS handshake with 127.0.0.1:{tls_port} failed" in e.value.message, e.value.message
    assert "ssl:" not in e.value.message and "Connect call" not in e.value.message
