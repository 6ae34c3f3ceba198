"""The refresh grant's form: `scope` is sent when asked for (Entra requires it) and left out otherwise (Cognito)."""
from __future__ import annotations

import aiohttp
from aiohttp import web

from tipd.idp import oidc
from tipd.secret import Secret


async def _refresh_form(aiohttp_server, scopes, **auth):
    seen: dict[str, object] = {}

    async def token(request: web.Request) -> web.Response:
        seen.update(await request.post())
        if "Authorization" in request.headers:
            seen["authorization"] = request.headers["Authorization"]
        return web.json_response({"access_token": "a", "token_type": "Bearer", "expires_in": 300, "id_token": "x.y.z"})

    app = web.Application()
    app.router.add_post("/token", token)
    server = await aiohttp_server(app)
    meta = oidc.ProviderMetadata(issuer=str(server.make_url("")), authorization_endpoint=str(server.make_url("/a")),
                                 token_endpoint=str(server.make_url("/token")), jwks_uri=str(server.make_url("/j")))
    async with aiohttp.ClientSession() as http:
        await oidc.refresh(http, meta, "client-1", Secret("rt-1"), scopes, **auth)
    return seen


async def test_refresh_sends_the_scopes_when_given(aiohttp_server):
    form = await _refresh_form(aiohttp_server, "openid offline_access")
    assert form == {"grant_type": "refresh_token", "refresh_token": "rt-1", "client_id": "client-1",
                    "scope": "openid offline_access"}


async def test_refresh_leaves_scope_out_when_none(aiohttp_server):
    form = await _refresh_form(aiohttp_server, None)
    assert "scope" not in form and form["refresh_token"] == "rt-1"


async def test_a_client_secret_goes_in_the_form_or_the_basic_header(aiohttp_server):
    form = await _refresh_form(aiohttp_server, None, client_auth="client_secret_post", client_secret=Secret("s3"))
    assert form["client_secret"] == "s3" and "authorization" not in form
    form = await _refresh_form(aiohttp_server, None, client_auth="client_secret_basic", client_secret=Secret("a:b"))
    # RFC 6749 section 2.3.1: both parts form-urlencoded before base64
    assert form["authorization"] == "Basic Y2xpZW50LTE6YSUzQWI=" and "client_secret" not in form
