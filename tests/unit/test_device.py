"""The device authorization grant (RFC 8628) against a small local IdP stand-in (a real aiohttp server on
loopback answering from a script), with an injected clock that records every wait instead of sleeping."""
from __future__ import annotations

import time

import aiohttp
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.fakes import FakeClock
from tests.support.profiles import profile
from tipd.errors import LoginError, UpstreamError
from tipd.idp.device import DEVICE_GRANT, device_login
from tipd.idp.oidc import IdpClient, OAuthError, ProviderMetadata, TokenResponse
from tipd.idp.verify import verify_id_token

DEVICE_CODE = "dc-0123456789-secret"
SCOPES = ["openid", "email", "offline_access"]
OK = (200, {"access_token": "at-1", "id_token": "h.p.s", "refresh_token": "rt-1", "expires_in": 3600})


def pending():
    return 400, {"error": "authorization_pending"}


def slow_down():
    return 400, {"error": "slow_down"}


class RecordingClock(FakeClock):
    """FakeClock that also remembers how long each sleep asked for."""

    def __init__(self):
        super().__init__()
        self.sleeps: list[float] = []

    async def sleep(self, s):
        self.sleeps.append(s)
        await super().sleep(s)


class ScriptedIdP:
    """The device authorization and token endpoints, answering polls from a list (the last answer repeats)."""

    def __init__(self, clock, answers, **device_answer):
        self.clock = clock
        self.answers = list(answers)
        self.device_answer = {"device_code": DEVICE_CODE, "user_code": "WDJB-MJHT",
                              "verification_uri": "https://idp.example/device", "expires_in": 600, **device_answer}
        self.device_forms: list[dict[str, str]] = []
        self.polls: list[tuple[float, dict[str, str]]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/device/auth", self._device)
        app.router.add_post("/token", self._token)
        return app

    async def _device(self, request):
        self.device_forms.append(dict(await request.post()))
        return web.json_response({k: v for k, v in self.device_answer.items() if v is not None})

    async def _token(self, request):
        self.polls.append((self.clock.time(), dict(await request.post())))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if answer == "disconnect":  # a network failure: the connection drops without an answer
            request.transport.close()
            return web.Response()
        status, body = answer
        if isinstance(body, str):
            return web.Response(status=status, text=body)
        return web.json_response(body, status=status)


@pytest.fixture
def clock():
    return RecordingClock()


@pytest.fixture
def run(aiohttp_server, clock):
    """run(answers, **device_answer) -> (tokens or the raised error, the IdP, the shown lines)."""

    async def go(answers, meta_overrides=None, timeout=None, **device_answer):
        idp = ScriptedIdP(clock, answers, **device_answer)
        server = await aiohttp_server(idp.app())
        base = str(server.make_url("")).rstrip("/")
        meta = ProviderMetadata(issuer=base, authorization_endpoint=base + "/auth", token_endpoint=base + "/token",
                                jwks_uri=base + "/jwks", device_authorization_endpoint=base + "/device/auth")
        if meta_overrides:
            meta = ProviderMetadata(**{**meta.__dict__, **meta_overrides})
        shown: list[str] = []
        result: TokenResponse | Exception
        async with aiohttp.ClientSession() as http:
            try:
                client = IdpClient(http, profile(issuer=base, client_id="cid", scopes=SCOPES), metadata=meta)
                result = await device_login(client, timeout=timeout, clock=clock, show=shown.append)
            except Exception as e:  # noqa: BLE001 - the test inspects what was raised
                result = e
        return result, idp, shown

    return go


CLOCK_START = FakeClock().t


def poll_offsets(idp, clock_start=CLOCK_START):
    return [round(t - clock_start, 3) for t, _ in idp.polls]


async def test_default_interval_is_5_s_and_each_poll_is_a_device_code_grant(run, clock):
    tokens, idp, _shown = await run([pending(), pending(), OK])
    assert tokens.access_token.reveal() == "at-1" and tokens.refresh_token.reveal() == "rt-1"
    assert clock.sleeps == [5, 5, 5]  # the IdP sent no interval: RFC 8628's default, before the first poll too
    assert poll_offsets(idp) == [5, 10, 15]
    assert idp.device_forms == [{"client_id": "cid", "scope": "openid email offline_access"}]
    assert all(form == {"grant_type": DEVICE_GRANT, "device_code": DEVICE_CODE, "client_id": "cid"}
               for _, form in idp.polls)


async def test_the_idps_interval_is_honoured(run, clock):
    _, idp, _ = await run([pending(), OK], interval=2)
    assert clock.sleeps == [2, 2] and poll_offsets(idp) == [2, 4]


async def test_every_slow_down_adds_5_s_for_the_rest_of_the_flow(run, clock):
    tokens, idp, _ = await run([slow_down(), pending(), slow_down(), pending(), OK], interval=3)
    assert tokens.access_token.reveal() == "at-1"
    assert clock.sleeps == [3, 8, 8, 13, 13]
    assert poll_offsets(idp) == [3, 11, 19, 32, 45]


async def test_access_denied_stops_with_a_sentence(run, clock):
    err, idp, _ = await run([pending(), (400, {"error": "access_denied", "error_description": "End-User aborted"})])
    assert isinstance(err, LoginError)
    assert err.message == "the IdP refused the sign-in: access_denied (End-User aborted)"
    assert len(idp.polls) == 2 and DEVICE_CODE not in err.message


async def test_expired_token_stops_with_a_sentence(run):
    err, idp, _ = await run([pending(), (400, {"error": "expired_token"})])
    assert isinstance(err, LoginError) and "code expired" in err.message and "again" in err.message
    assert len(idp.polls) == 2


async def test_polling_ends_when_expires_in_has_passed(run, clock):
    err, idp, _ = await run([pending()], expires_in=12)
    assert isinstance(err, LoginError) and "code expired before the sign-in was approved" in err.message
    assert poll_offsets(idp) == [5, 10]  # no poll once the code is dead
    assert clock.sleeps == [5, 5, 5]


async def test_timeout_shorter_than_the_code_ends_the_wait(run):
    err, idp, _ = await run([pending()], timeout=7)
    assert isinstance(err, LoginError) and err.message.startswith("the sign-in was not approved within 7 s")
    assert poll_offsets(idp) == [5]


async def test_network_errors_and_5xx_are_retried_at_the_interval(run, clock):
    tokens, idp, shown = await run(["disconnect", (503, "busy"), (500, {"error": "server_error"}),
                                    (400, {"error": "temporarily_unavailable"}), OK], interval=4)
    assert tokens.access_token.reveal() == "at-1"
    assert clock.sleeps == [4] * 5 and poll_offsets(idp) == [4, 8, 12, 16, 20]
    retries = [s for s in shown if "trying again in 4 s" in s]
    assert len(retries) == 4 and "cannot reach the IdP" in retries[0] and "HTTP 503" in retries[1]


async def test_other_oauth_errors_are_not_retried(run):
    err, idp, _ = await run([(401, {"error": "invalid_client"})])
    assert isinstance(err, OAuthError) and err.error == "invalid_client" and len(idp.polls) == 1


async def test_the_code_and_both_urls_are_shown_never_the_device_code(run):
    _, _, shown = await run([OK], verification_uri_complete="https://idp.example/device?user_code=WDJB-MJHT")
    text = shown[0]
    assert "https://idp.example/device\n" in text and "WDJB-MJHT" in text
    assert "https://idp.example/device?user_code=WDJB-MJHT" in text and "valid for 10 min" in text
    assert DEVICE_CODE not in "".join(shown)


async def test_without_verification_uri_complete_only_the_code_is_shown(run):
    _, _, shown = await run([OK])
    assert "WDJB-MJHT" in shown[0] and "user_code=" not in shown[0] and "carries the code" not in shown[0]


async def test_an_idp_without_the_device_flow_says_use_the_browser(run):
    err, idp, shown = await run([OK], meta_overrides={"device_authorization_endpoint": None})
    assert isinstance(err, LoginError)
    assert err.message.startswith("this IdP does not offer the device flow; use the browser flow: run `tipctl login` "
                                  "without --device")
    assert idp.device_forms == [] and idp.polls == [] and shown == []


async def test_a_malformed_device_answer_is_a_sentence(run):
    err, idp, _ = await run([OK], user_code=None)
    assert isinstance(err, UpstreamError) and "lacks device_code, user_code" in err.message and idp.polls == []


def test_the_device_flows_id_token_has_no_nonce_and_verifies_without_one():
    """The device grant sends no nonce, so login verifies with nonce=None; a nonce expected by the browser
    flow is still required."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwks = {"keys": [dict(jwk, kid="k1", alg="RS256", use="sig")]}
    now = int(time.time())
    tok = jwt.encode({"iss": "http://i", "aud": "cid", "sub": "alice", "iat": now, "exp": now + 300}, key,
                     algorithm="RS256", headers={"kid": "k1"})
    assert verify_id_token(tok, jwks, issuer="http://i", client_id="cid", nonce=None)["sub"] == "alice"
    with pytest.raises(LoginError, match="nonce"):
        verify_id_token(tok, jwks, issuer="http://i", client_id="cid", nonce="n1")


def test_the_idps_strings_reach_the_terminal_without_control_characters():
    from tipd.idp.device import DeviceAuthorization
    from tipd.secret import Secret

    auth = DeviceAuthorization(Secret("dc"), "AB\x1b[2JCD", "https://idp/device\x07", None, 600, 5)
    text = auth.instructions()
    assert "\x1b" not in text and "\x07" not in text and "AB\ufffd[2JCD" in text


# -- what real IdPs do differently (issue 10 section 1) ------------------------------------------------------
async def test_googles_verification_url_is_taken_for_verification_uri(run):
    """https://developers.google.com/identity/protocols/oauth2/limited-input-device names it verification_url."""
    tokens, _, shown = await run([OK], verification_uri=None, verification_url="https://www.google.com/device")
    assert tokens.access_token.reveal() == "at-1" and "https://www.google.com/device\n" in shown[0]


async def test_numbers_sent_as_strings_are_numbers(run, clock):
    tokens, _idp, shown = await run([pending(), (200, {**OK[1], "expires_in": "3599"})], interval="3",
                                   expires_in="900")
    assert clock.sleeps == [3, 3] and "valid for 15 min" in shown[0] and tokens.expires_in == 3599


@pytest.mark.parametrize("error", ["access_denied", "authorization_declined"])
async def test_entras_authorization_declined_is_a_refusal_too(run, error):
    """https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-device-code#expected-errors"""
    err, idp, _ = await run([pending(), (400, {"error": error})])
    assert isinstance(err, LoginError) and err.message == f"the IdP refused the sign-in: {error}"
    assert len(idp.polls) == 2


async def test_bad_verification_code_stops_with_a_sentence(run):
    err, idp, _ = await run([(400, {"error": "bad_verification_code"})])
    assert isinstance(err, LoginError) and "does not recognise the device code" in err.message
    assert "run the command again" in err.message and len(idp.polls) == 1
