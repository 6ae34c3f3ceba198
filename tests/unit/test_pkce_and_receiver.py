
import aiohttp
import pytest

from tests.support.profiles import profile
from tipd.errors import LoginError
from tipd.idp.browser import LoopbackReceiver, authorization_url, browser_login
from tipd.idp.oidc import IdpClient, ProviderMetadata
from tipd.idp.pkce import AuthRequest, s256

META = ProviderMetadata(issuer="http://127.0.0.1:1", authorization_endpoint="http://127.0.0.1:1/auth",
                        token_endpoint="http://127.0.0.1:1/token", jwks_uri="http://127.0.0.1:1/jwks")


def test_s256_matches_rfc7636_appendix_b():
    assert s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_each_request_is_unguessable_and_distinct():
    a, b = AuthRequest(), AuthRequest()
    assert len({a.state, b.state, a.nonce, b.nonce, a.verifier, b.verifier}) == 6
    assert len(a.verifier) >= 43 and len(a.state) >= 32
    assert "verifier" not in repr(a) or a.verifier not in repr(a)


def test_authorization_url_carries_pkce_state_nonce():
    req = AuthRequest()
    url = authorization_url(META, "cid", ["openid", "offline_access"], "http://127.0.0.1:5/callback", req)
    q = dict(p.split("=", 1) for p in url.split("?", 1)[1].split("&"))
    assert q["code_challenge_method"] == "S256" and q["code_challenge"] == req.challenge
    assert q["state"] == req.state and q["nonce"] == req.nonce and q["response_type"] == "code"
    assert q["scope"] == "openid+offline_access"


async def _get(url):
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, await r.text()


async def test_receiver_ignores_stray_requests_and_takes_the_right_callback():
    req = AuthRequest()
    async with LoopbackReceiver(req) as rx:
        base = f"http://127.0.0.1:{rx.port}"
        assert (await _get(base + "/favicon.ico"))[0] == 404
        assert not rx.result.done()
        status, _ = await _get(f"{base}/callback?code=abc&state={req.state}")
        assert status == 200
        cb = await rx.result
    assert cb.code == "abc" and cb.error is None


async def test_receiver_refuses_wrong_state():
    req = AuthRequest()
    async with LoopbackReceiver(req) as rx:
        status, _ = await _get(f"http://127.0.0.1:{rx.port}/callback?code=abc&state=forged")
        cb = await rx.result
    assert status == 400 and cb.code is None and cb.error is not None and "wrong state" in cb.error


async def test_receiver_turns_idp_error_into_a_sentence():
    req = AuthRequest()
    async with LoopbackReceiver(req) as rx:
        await _get(f"http://127.0.0.1:{rx.port}/callback?error=access_denied&error_description=User+said+no"
                   f"&state={req.state}")
        cb = await rx.result
    assert cb.error == "The IdP refused the sign-in: access_denied (User said no)"


async def test_error_callback_without_our_state_cannot_cancel_a_sign_in():
    req = AuthRequest()
    async with LoopbackReceiver(req) as rx:
        await _get(f"http://127.0.0.1:{rx.port}/callback?error=access_denied&state=other")
        assert not rx.result.done()


async def test_login_times_out_cleanly():
    async with aiohttp.ClientSession() as http:
        with pytest.raises(LoginError) as e:
            idp = IdpClient(http, profile(issuer=META.issuer), metadata=META)
            await browser_login(idp, timeout=0.2, open_browser=False, show=lambda s: None)
    assert "no sign-in arrived within" in e.value.message


async def test_busy_fixed_redirect_port_is_a_sentence():
    req = AuthRequest()
    async with LoopbackReceiver(req) as rx:
        with pytest.raises(LoginError) as e:
            async with LoopbackReceiver(AuthRequest(), rx.port):
                pass
    assert f"127.0.0.1:{rx.port}" in e.value.message and "redirect_port" in e.value.message
