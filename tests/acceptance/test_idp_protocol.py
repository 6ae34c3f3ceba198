"""The IdP client against the real test IdP (npm oidc-provider) switched to behave as real IdPs do
(tests/support/personas.py, tests/idp/switches.mjs): ES256 and array audiences, issuers with a trailing
slash, signing-key rotation mid-session, client secrets, Google's access_type=offline, Entra's and Cognito's
device flow variants; and through the real tipd/tipctl: a slow IdP under `tipctl login --timeout`, and what
logout says when the IdP revokes, refuses, offers no revocation, or there is nothing to revoke."""
from __future__ import annotations

import asyncio
import base64
import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from tests.support.browser import complete_login
from tests.support.device import approve_device_code, deny_device_code
from tests.support.idp import IdP
from tests.support.profiles import profile
from tests.support.stack import Home, Tipd, tipctl
from tipd.clock import Clock
from tipd.errors import ConfigError, LoginError
from tipd.idp.browser import browser_login
from tipd.idp.device import NO_DEVICE_FLOW, device_login
from tipd.idp.oidc import IdpClient
from tipd.secret import Secret

pytestmark = pytest.mark.acceptance


def settings_for(idp: IdP, **over) -> dict[str, Any]:
    """The profile settings that fit this running IdP (as `tipctl configure` would choose them)."""
    s = dict(issuer=idp.issuer, client_id=idp.client_id, redirect_host=idp.redirect_host,
             redirect_port=idp.redirect_port or 0)
    if idp.client_auth != "none":
        s["client_auth"] = "client_secret_basic" if idp.client_auth == "client_secret_basic" else "client_secret_post"
    return {**s, **over}


def person_at_the_device_page(idp: IdP, answer: Callable[[str, str], None]) -> tuple[list[str], Callable[[str], None]]:
    """What tipd shows for a device sign-in (kept), and the `show` that has a person answer the code it names
    (`approve_device_code` or `deny_device_code`, in another thread)."""
    shown: list[str] = []

    def show(text: str) -> None:
        shown.append(text)
        found = re.search(r"enter the code:\s+(\S+)", text)
        assert found is not None, text
        code = found.group(1)
        threading.Thread(target=answer, args=(idp.issuer, code), daemon=True).start()

    return shown, show


async def sign_in(idp: IdP, *, secret: str | None = None, http: aiohttp.ClientSession | None = None, **over):
    """A browser sign-in through tipd's IdP layer; the headless browser (another thread) plays the person.
    Without `http`, the client's session is closed on return (use the tokens, not the client)."""
    shown: list[threading.Thread] = []

    def show(text: str) -> None:
        found = re.search(r"(http://\S+/auth\S*)", text)
        assert found is not None, text
        url = found.group(1)
        t = threading.Thread(target=complete_login, args=(url,), daemon=True)
        t.start()
        shown.append(t)

    if http is None:
        async with aiohttp.ClientSession() as own:
            return await sign_in(idp, secret=secret, http=own, **over)
    client = IdpClient(http, profile(**settings_for(idp, **over)), Secret(secret) if secret else None)
    tokens, req = await browser_login(client, timeout=60, open_browser=False, show=show)
    assert tokens.id_token is not None
    claims = await client.verify_id_token(tokens.id_token.reveal(), req.nonce)
    return client, tokens, claims


def run(coro):
    return asyncio.run(coro)


def test_es256_array_audience_no_email_and_a_trailing_slash_issuer():
    switches = {"signing_alg": "ES256", "id_token_aud": "array", "id_token_email": False,
                "issuer_trailing_slash": True}
    with IdP(switches=switches) as idp:
        assert idp.issuer.endswith("/")
        _, tokens, claims = run(sign_in(idp))
    assert isinstance(claims["aud"], list) and idp.client_id in claims["aud"] and claims["azp"] == idp.client_id
    assert claims["iss"] == idp.issuer and "email" not in claims and "jti" not in claims
    assert json.loads(base64.urlsafe_b64decode(tokens.id_token.reveal().split(".")[0] + "=="))[
        "alg"] == "ES256"


def test_a_signing_key_rotated_mid_session_is_fetched_once():
    with IdP() as idp:
        async def go():
            async with aiohttp.ClientSession() as http:
                return await rotated(http)

        async def rotated(http):
            client, tokens, _ = await sign_in(idp, http=http)
            idp.reset_stats()
            new_kid = idp.rotate_keys(keep_old=False)
            fresh = await client.refresh(tokens.refresh_token)
            assert json.loads(base64.urlsafe_b64decode(
                fresh.id_token.reveal().split(".")[0] + "=="))["kid"] == new_kid
            claims = await client.verify_id_token(fresh.id_token.reveal(), None)
            again = await client.refresh(fresh.refresh_token)
            await client.verify_id_token(again.id_token.reveal(), None)
            return claims

        claims = run(go())
        assert claims["sub"] and idp.stats().get("/jwks", 0) == 1  # one refetch for the new key, then cached


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_a_confidential_client_signs_in_refreshes_and_revokes_with_its_secret(method):
    with IdP(switches={"client_auth": method}) as idp:
        async def go():
            async with aiohttp.ClientSession() as http:
                return await with_secret(http)

        async def with_secret(http):
            client, tokens, _ = await sign_in(idp, secret=idp.client_secret, http=http)
            fresh = await client.refresh(tokens.refresh_token)
            revocation = await client.revoke(fresh.refresh_token)
            return fresh, revocation

        fresh, revocation = run(go())
        assert fresh.id_token is not None and revocation.outcome == "revoked"
        with pytest.raises(ConfigError, match="client secret"):  # without it: a sentence before any browser
            run(sign_in(idp))


def test_google_gives_a_refresh_token_only_with_access_type_offline():
    with IdP(persona="google") as idp:
        base: dict[str, Any] = dict(provider="google", scopes=["openid", "email"], secret=idp.client_secret)
        _, with_offline, _ = run(sign_in(idp, **base))  # the preset: access_type=offline, prompt=consent
        _, without, _ = run(sign_in(idp, auth_params={}, **base))
    assert with_offline.refresh_token is not None and without.refresh_token is None


def test_entra_device_flow_without_a_complete_uri_and_declined():
    with IdP(persona="entra") as idp:
        async def go():
            shown, show = person_at_the_device_page(idp, deny_device_code)

            async with aiohttp.ClientSession() as http:
                client = IdpClient(http, profile(provider="entra", **settings_for(idp)))
                with pytest.raises(LoginError) as e:
                    await device_login(client, timeout=60, clock=Clock(), show=show)
            return shown, e.value

        shown, err = run(go())
    assert "carries the code" not in shown[0]  # no verification_uri_complete
    assert err.message.startswith("the IdP refused the sign-in: authorization_declined")


@pytest.mark.parametrize("persona", ["cognito", "onelogin"])
def test_an_idp_without_the_device_flow_says_use_the_browser(persona):
    with IdP(persona=persona) as idp:
        async def go():
            async with aiohttp.ClientSession() as http:
                client = IdpClient(http, profile(**settings_for(idp)), Secret(idp.client_secret)
                                   if idp.client_secret else None)
                with pytest.raises(LoginError) as e:
                    await device_login(client, show=lambda s: None)
                return e.value

        err = run(go())
        assert err.message == NO_DEVICE_FLOW and idp.stats().get("/device/auth", 0) == 0


# -- through tipd and tipctl -------------------------------------------------------------------------------
def test_login_timeout_against_a_slow_idp_is_a_sentence(fake):
    """Issue 11 #11: `tipctl login --timeout 5` against an IdP that does not answer was a TimeoutError traceback."""
    with IdP() as idp:
        home = Home(idp.issuer, idp.client_id, fake.url)
        d = Tipd(home).start()
        try:
            idp.fault("/.well-known", status=0, count=-1, delay_ms=120_000)
            started = time.monotonic()
            r = tipctl(home, "login", "--timeout", "5", check=False, timeout=120)
            took = time.monotonic() - started
        finally:
            idp.clear_faults()
            d.stop()
            home.cleanup()
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith("tipctl: the sign-in did not complete within 5 s (still reading the IdP's "
                               f"discovery document at {idp.issuer})"), r.stderr
    assert took < 60


def test_a_second_logout_blames_no_one(home, tipd):
    assert tipctl(home, "login").returncode == 0
    first = tipctl(home, "logout")
    assert first.stdout == "Signed out of work. The refresh token was revoked at the IdP.\n"
    second = tipctl(home, "logout")
    assert second.stdout == "work was not signed in; there was nothing to sign out of.\n"
    assert json.loads(tipctl(home, "logout", "--json").stdout)["revocation"] == "not-signed-in"


@pytest.mark.parametrize("revocation,expected", [
    ("absent", "Signed out of work: the tokens are forgotten on this machine. The IdP offers no revocation "
               "endpoint, so the refresh token stays valid there until it expires or you sign out at the IdP.\n"),
    ("error", "Signed out of work: the tokens are forgotten on this machine. The IdP did not accept the "
              "revocation (HTTP 400 unsupported_token_type), so the refresh token may stay valid there until it "
              "expires.\n"),
])
def test_logout_where_the_idp_cannot_revoke_still_forgets_and_says_so(fake, revocation, expected):
    from tests.support.aws import AppConfig

    app = ("arn:aws:sso::123456789012:application/ssoins-1111222233334444/apl-00000000000000"
           + ("ab" if revocation == "absent" else "e0"))
    with IdP(switches={"revocation": revocation}) as idp:
        fake.config.applications[app] = AppConfig(issuer_url=idp.issuer, audiences=[idp.client_id], claim="email")
        home = Home(idp.issuer, idp.client_id, fake.url, app_arn=app)
        d = Tipd(home).start()
        try:
            assert tipctl(home, "login").returncode == 0
            r = tipctl(home, "logout")
            st = json.loads(tipctl(home, "status", "--json", check=False).stdout)
            assert r.returncode == 0 and r.stdout == expected, r.stdout + r.stderr
            assert st["profiles"][0]["state"] == "signed-out"
            assert not (home.state_dir / "tokens" / "work.json").exists()
        finally:
            d.stop()
            home.cleanup()



def test_device_flow_numbers_sent_as_strings():
    with IdP(switches={"numbers_as_strings": True, "device_interval": 1}) as idp:
        async def go():
            shown, show = person_at_the_device_page(idp, approve_device_code)

            async with aiohttp.ClientSession() as http:
                client = IdpClient(http, profile(**settings_for(idp)))
                return shown, await device_login(client, timeout=60, clock=Clock(), show=show)

        shown, tokens = run(go())
    assert "valid for 10 min" in shown[0]  # expires_in "600"
    assert tokens.expires_in == 3600 and tokens.refresh_token is not None  # expires_in "3600"


def test_login_without_the_client_secret_the_idp_needs_is_a_sentence_before_any_browser(home, idp):
    home.write_config(idp.issuer, idp.client_id, profile_extra='client_auth = "client_secret_post"')
    d = Tipd(home).start()
    try:
        r = tipctl(home, "login", check=False)
    finally:
        d.stop()
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "needs the client secret" in r.stderr and "--client-secret-stdin" in r.stderr, r.stderr
    assert not home.browser_log.exists()  # no browser was opened
