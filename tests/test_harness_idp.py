"""The test harness itself, against the real IdP: discovery, auth code + PKCE via the headless
browser, refresh-token rotation and reuse detection, fault injection, revocation, device flow."""
from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import queue
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import jwt
import pytest

from tests.support.browser import complete_login
from tests.support.device import approve_device_code, deny_device_code
from tests.support.idp import IdP, IdPError
from tests.support.net import free_port
from tests.support.personas import PERSONAS

BROWSER_SCRIPT = Path(__file__).resolve().parent / "support" / "browser.py"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.fixture(scope="module")
def idp():
    with IdP() as server:
        yield server


# ----- small OAuth client helpers --------------------------------------------------------------
def post_form(url: str, form: dict[str, str], headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, data=urllib.parse.urlencode(form).encode(), method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded",
                                          "Accept": "application/json", **(headers or {})})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=15) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read() or b"{}")


def token_request(idp: IdP, form: dict[str, str], endpoint: str = "token_endpoint") -> tuple[int, dict[str, Any]]:
    """POST to one of the IdP's endpoints as its client (with the secret, where it has one)."""
    return post_form(idp.discovery()[endpoint], {**idp.client_form(), **form}, idp.client_headers())


def get_json(url: str) -> dict[str, Any]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=15) as resp:
        doc: dict[str, Any] = json.loads(resp.read())
        return doc


class LoopbackReceiver:
    """A one-shot http.server on 127.0.0.1 that records every request's path and query.
    ``host`` is the name put in redirect_uri (localhost reaches 127.0.0.1 too)."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self.requests: queue.Queue[tuple[str, dict[str, str]]] = queue.Queue()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                parts = urllib.parse.urlsplit(self.path)
                outer.requests.put((parts.path, dict(urllib.parse.parse_qsl(parts.query))))
                status = 200 if parts.path == "/callback" else 404
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"not found")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.redirect_uri = f"http://{host}:{self.port}/callback"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def next(self, timeout: float = 10.0) -> tuple[str, dict[str, str]]:
        return self.requests.get(timeout=timeout)


def receiver_for(idp: IdP) -> LoopbackReceiver:
    """A receiver on the redirect URI the IdP accepts (its registered port when exact)."""
    return LoopbackReceiver(port=idp.redirect_port or 0, host=idp.redirect_host)


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    return verifier, challenge.decode()


def authorize_url(idp: IdP, redirect_uri: str, state: str, challenge: str,
                  scope: str = "openid email profile offline_access", **extra: str) -> str:
    query = {"client_id": idp.client_id, "response_type": "code", "redirect_uri": redirect_uri,
             "scope": scope, "state": state, "code_challenge": challenge,
             "code_challenge_method": "S256", "nonce": secrets.token_urlsafe(8), **extra}
    return str(idp.discovery()["authorization_endpoint"]) + "?" + urllib.parse.urlencode(query)


def sign_in(idp: IdP, login: str = "alice", scope: str = "openid email profile offline_access",
            **extra: str) -> dict[str, Any]:
    """Full auth code + PKCE flow through the headless browser; returns the token response."""
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)
    with receiver_for(idp) as rx:
        complete_login(authorize_url(idp, rx.redirect_uri, state, challenge, scope, **extra), login=login)
        path, params = rx.next()
        assert path == "/callback"
        assert params["state"] == state
        assert params.get("iss") == (idp.issuer if idp.switches["authorization_response_iss"] else None)
        assert "code" in params, params
        status, tokens = token_request(idp, {
            "grant_type": "authorization_code", "code": params["code"],
            "redirect_uri": rx.redirect_uri, "code_verifier": verifier})
    assert status == 200, tokens
    return tokens


def refresh(idp: IdP, refresh_token: str, scope: str | None = None) -> tuple[int, dict[str, Any]]:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if scope is not None:
        form["scope"] = scope
    return token_request(idp, form)


def jwt_key(idp: IdP, token: str):
    keys = jwt.PyJWKSet.from_dict(get_json(idp.discovery()["jwks_uri"]))
    kid = jwt.get_unverified_header(token)["kid"]
    return next(k for k in keys.keys if k.key_id == kid).key


def verify_id_token(idp: IdP, id_token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(id_token, jwt_key(idp, id_token), algorithms=["RS256", "ES256"],
                                        audience=idp.client_id, issuer=idp.issuer)
    return claims


# ----- tests -----------------------------------------------------------------------------------
def test_discovery_has_endpoints(idp):
    doc = idp.discovery()
    assert doc["issuer"] == idp.issuer == f"http://127.0.0.1:{idp.port}"
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri", "revocation_endpoint",
                 "device_authorization_endpoint"):
        assert doc[name].startswith(idp.issuer), name
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert {"openid", "email", "profile", "offline_access"} <= set(doc["scopes_supported"])


def test_auth_code_pkce_yields_tokens_with_email(idp):
    tokens = sign_in(idp, login="carol")
    assert {"access_token", "id_token", "refresh_token"} <= tokens.keys()
    assert tokens["expires_in"] <= idp.access_ttl
    claims = verify_id_token(idp, tokens["id_token"])
    assert claims["sub"] == "carol"
    assert claims["email"] == "carol@example.com"
    assert claims["email_verified"] is True
    assert "jti" not in claims and claims["aud"] == idp.client_id and "azp" not in claims
    assert jwt.get_unverified_header(tokens["id_token"])["alg"] == "RS256"
    assert "." not in tokens["access_token"]  # opaque, not a JWT


def test_pkce_is_required(idp):
    with LoopbackReceiver() as rx:
        url = authorize_url(idp, rx.redirect_uri, "s", "x")
        url = url.replace("&code_challenge=x&code_challenge_method=S256", "")
        assert "code_challenge" not in url
        complete_login(url)
        _path, params = rx.next()
    assert params["error"] == "invalid_request"
    assert "PKCE" in params.get("error_description", "")


def test_refresh_rotates_and_reuse_is_invalid_grant(idp):
    first = sign_in(idp)["refresh_token"]
    status, second = refresh(idp, first)
    assert status == 200, second
    assert second["refresh_token"] != first
    assert "id_token" in second
    status, body = refresh(idp, first)  # reuse of a rotated token: grant revoked
    assert status == 400 and body["error"] == "invalid_grant"
    status, body = refresh(idp, second["refresh_token"])  # ... so the newest one is dead too
    assert status == 400 and body["error"] == "invalid_grant"


def test_revoke_and_revoke_all(idp):
    one, two = sign_in(idp, "dave")["refresh_token"], sign_in(idp, "erin")["refresh_token"]
    idp.revoke(one, "refresh_token")
    assert refresh(idp, one)[1]["error"] == "invalid_grant"
    status, rotated = refresh(idp, two)
    assert status == 200
    assert idp.revoke_all() >= 1
    assert refresh(idp, rotated["refresh_token"])[1]["error"] == "invalid_grant"


def test_fault_injection_and_stats(idp):
    idp.reset_stats()
    jwks = idp.discovery()["jwks_uri"]
    idp.fault("/jwks", 500, count=2)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    for _ in range(2):
        with pytest.raises(urllib.error.HTTPError) as info:
            opener.open(jwks, timeout=5)
        assert info.value.code == 500
        assert json.loads(info.value.read()) == {"error": "server_error"}
        info.value.close()
    assert "keys" in get_json(jwks)  # the third one passes
    idp.fault("/token", 503, count=-1)
    for _ in range(3):
        assert refresh(idp, "whatever") == (503, {"error": "server_error"})
    idp.clear_faults()
    assert refresh(idp, "whatever")[1]["error"] == "invalid_grant"
    stats = idp.stats()
    assert stats["/jwks"] == 3
    assert stats["/token"] == 4


def test_device_flow_approved(idp):
    status, start = post_form(idp.discovery()["device_authorization_endpoint"],
                              {"client_id": idp.client_id, "scope": "openid email offline_access"})
    assert status == 200, start
    assert start["expires_in"] == idp.device_ttl
    token_form = {"grant_type": DEVICE_GRANT, "device_code": start["device_code"],
                  "client_id": idp.client_id}
    status, pending = post_form(idp.discovery()["token_endpoint"], token_form)
    assert status == 400 and pending["error"] == "authorization_pending"
    approve_device_code(idp.issuer, start["user_code"], login="frank")
    status, tokens = post_form(idp.discovery()["token_endpoint"], token_form)
    assert status == 200, tokens
    assert {"access_token", "id_token", "refresh_token"} <= tokens.keys()
    assert verify_id_token(idp, tokens["id_token"])["email"] == "frank@example.com"


def test_device_flow_denied(idp):
    status, start = post_form(idp.discovery()["device_authorization_endpoint"],
                              {"client_id": idp.client_id, "scope": "openid"})
    assert status == 200
    deny_device_code(idp.issuer, start["user_code"])
    status, body = post_form(idp.discovery()["token_endpoint"], {
        "grant_type": DEVICE_GRANT, "device_code": start["device_code"], "client_id": idp.client_id})
    assert status == 400 and body["error"] == "access_denied"


@pytest.mark.parametrize("mode", ["deny", "bad-state", "favicon-first", "nothing"])
def test_browser_script_modes(idp, tmp_path, mode):
    """browser.py run the way webbrowser runs $BROWSER: a subprocess that must finish the job."""
    log = tmp_path / "browser.log"
    _verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)
    env = {**os.environ, "TIPD_TEST_BROWSER_MODE": mode, "TIPD_TEST_BROWSER_LOG": str(log),
           "TIPD_TEST_LOGIN": "gina"}
    with LoopbackReceiver() as rx:
        url = authorize_url(idp, rx.redirect_uri, state, challenge)
        done = subprocess.run([sys.executable, str(BROWSER_SCRIPT), url], env=env, timeout=60,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        seen = []
        while not rx.requests.empty():
            seen.append(rx.requests.get_nowait())
    record = json.loads(log.read_text())
    assert record["mode"] == mode
    if mode == "nothing":
        assert seen == [] and record["outcome"] == "nothing"
        return
    assert record["outcome"] == "delivered"
    *before, (path, params) = seen
    assert path == "/callback"
    if mode == "deny":
        assert params["error"] == "access_denied" and params["state"] == state
        assert "code" not in params
    elif mode == "bad-state":
        assert params["state"] != state and "code" in params
    elif mode == "favicon-first":
        assert [p for p, _ in before] == ["/favicon.ico"]
        assert params["state"] == state and "code" in params
    for name in ("code", "state"):  # the log has parameter names and paths, never values
        if name in params:
            assert params[name] not in log.read_text()


def test_browser_env_var_with_webbrowser_module(idp, tmp_path):
    """The real path: webbrowser.open() in a fresh process with BROWSER=<browser.py>."""
    log = tmp_path / "browser.log"
    _verifier, challenge = pkce_pair()
    env = {**os.environ, "BROWSER": str(BROWSER_SCRIPT), "TIPD_TEST_BROWSER_LOG": str(log)}
    env.pop("TIPD_TEST_BROWSER_MODE", None)
    with LoopbackReceiver() as rx:
        url = authorize_url(idp, rx.redirect_uri, "st", challenge)
        opener = "import sys, webbrowser; sys.exit(0 if webbrowser.open(sys.argv[1]) else 3)"
        done = subprocess.run([sys.executable, "-c", opener, url], env=env, timeout=60,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        path, params = rx.next()
    assert path == "/callback" and params["state"] == "st" and "code" in params
    assert json.loads(log.read_text())["outcome"] == "delivered"


def test_any_loopback_port_is_accepted_but_not_other_hosts(idp):
    _verifier, challenge = pkce_pair()
    with LoopbackReceiver() as rx:
        complete_login(authorize_url(idp, rx.redirect_uri, "st", challenge))
        assert "code" in rx.next()[1]
    bad = authorize_url(idp, f"http://localhost:{free_port()}/callback", "st", challenge)
    with pytest.raises(Exception, match="redirect_uri"):
        complete_login(bad)


def test_kwargs_and_stop():
    with IdP(access_ttl=2, id_ttl=3, refresh_ttl=5, client_id="other-client") as short:
        assert short.client_id == "other-client"
        tokens = sign_in(short)
        assert tokens["expires_in"] <= 2
        claims = verify_id_token(short, tokens["id_token"])
        assert claims["exp"] - claims["iat"] == 3
    assert not short.running


def test_startup_failure_reports_stderr():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(IdPError, match="EADDRINUSE"):
            IdP(port=busy.getsockname()[1])


def test_missing_node_modules_is_a_clear_error(monkeypatch, tmp_path):
    import tests.support.idp as idp_module
    monkeypatch.setattr(idp_module, "IDP_DIR", tmp_path)
    with pytest.raises(IdPError, match="npm ci --prefix tests/idp"):
        IdP()


# ----- persistent mode: down() / up() is an outage, not a new IdP --------------------------------
def assert_refused(port: int) -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_non_persistent_has_no_state_and_no_outage():
    with IdP() as plain:
        assert plain.state_dir is None
        with pytest.raises(IdPError, match="persistent=True"):
            plain.down()
        assert plain.running


def test_persistent_outage_keeps_keys_grants_and_reuse_detection():
    with IdP(persistent=True) as idp:
        state_dir = idp.state_dir
        assert state_dir is not None and (state_dir / "jwks.json").is_file()
        port, issuer = idp.port, idp.issuer
        assert port is not None
        tokens = sign_in(idp, login="olga")
        jwks_before = get_json(idp.discovery()["jwks_uri"])
        kid_before = jwt.get_unverified_header(tokens["id_token"])["kid"]
        assert [k["kid"] for k in jwks_before["keys"]] == [kid_before]
        assert (state_dir / "store.json").is_file()

        idp.down()
        assert not idp.running
        assert_refused(port)
        idp.up()
        assert idp.running and (idp.port, idp.issuer) == (port, issuer)

        status, rotated = refresh(idp, tokens["refresh_token"])
        assert status == 200, rotated
        assert rotated["refresh_token"] != tokens["refresh_token"]
        # the new id_token verifies against the JWKS fetched before the outage (same kid)
        assert jwt.get_unverified_header(rotated["id_token"])["kid"] == kid_before
        key = jwt.PyJWKSet.from_dict(jwks_before)[kid_before]
        claims = jwt.decode(rotated["id_token"], key.key, algorithms=["RS256"],
                            audience=idp.client_id, issuer=issuer)
        assert claims["sub"] == "olga"
        # a second outage after the rotation: reuse of the pre-rotation token is still detected
        idp.down()
        assert_refused(port)
        idp.start()  # start() after down() is up()
        assert idp.port == port
        status, body = refresh(idp, tokens["refresh_token"])
        assert status == 400 and body["error"] == "invalid_grant"
        status, body = refresh(idp, rotated["refresh_token"])  # the whole grant is revoked
        assert status == 400 and body["error"] == "invalid_grant"
    assert not idp.running and idp.state_dir is None and not state_dir.exists()
    assert_refused(port)


def test_persistent_sessions_device_codes_and_revoke_all_survive_up():
    with IdP(persistent=True, refresh_ttl=600) as idp:
        one, two = sign_in(idp, "paul")["refresh_token"], sign_in(idp, "quinn")["refresh_token"]
        status, start = post_form(idp.discovery()["device_authorization_endpoint"],
                                  {"client_id": idp.client_id, "scope": "openid offline_access"})
        assert status == 200, start
        idp.fault("/token", 503, count=-1)  # faults and stats are per process, not state
        idp.down()
        idp.up()
        assert idp.stats() == {}
        approve_device_code(idp.issuer, start["user_code"], login="rita")  # pre-outage user code
        status, device = post_form(idp.discovery()["token_endpoint"], {
            "grant_type": DEVICE_GRANT, "device_code": start["device_code"],
            "client_id": idp.client_id})
        assert status == 200, device
        assert verify_id_token(idp, device["id_token"])["sub"] == "rita"
        assert idp.revoke_all() >= 3  # grants from before the restart are found too
        for token in (one, two, device["refresh_token"]):
            assert refresh(idp, token)[1]["error"] == "invalid_grant"


def test_persistent_browser_session_survives_up():
    """The IdP session cookie from before the outage still signs the user in (no login page,
    only the consent page every native client gets): sessions and cookie keys persist."""
    from tests.support.browser import Session, drive_interactions
    with IdP(persistent=True) as idp:
        browser = Session()
        redirect_uri = f"http://127.0.0.1:{free_port()}/callback"
        at_callback = lambda url: url.startswith(redirect_uri)  # noqa: E731
        _verifier, challenge = pkce_pair()
        first, steps = drive_interactions(
            browser, browser.get(authorize_url(idp, redirect_uri, "one", challenge)), "sara",
            stop_at=at_callback)
        assert any("(login)" in step for step in steps)
        assert first.location is not None and "code=" in first.location
        idp.down()
        idp.up()
        verifier, challenge = pkce_pair()
        url = authorize_url(idp, redirect_uri, "two", challenge, scope="openid email")
        again, steps = drive_interactions(browser, browser.get(url), "nobody", stop_at=at_callback)
        assert not any("(login)" in step for step in steps), steps
        assert any("(consent)" in step for step in steps), steps
        assert again.location is not None
        params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(again.location).query))
        assert params["state"] == "two" and "code" in params, params
        status, tokens = post_form(idp.discovery()["token_endpoint"], {
            "grant_type": "authorization_code", "code": params["code"],
            "client_id": idp.client_id, "redirect_uri": redirect_uri, "code_verifier": verifier})
        assert status == 200, tokens
        assert verify_id_token(idp, tokens["id_token"])["sub"] == "sara"


def test_up_refuses_to_move_when_port_is_taken():
    with IdP(persistent=True) as idp:
        port = idp.port
        idp.down()
        with socket.socket() as squatter:
            # the IdP's own closed connections may leave the port in TIME_WAIT
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind(("127.0.0.1", port))
            squatter.listen()
            with pytest.raises(IdPError, match=f"port {port} .*in use"):
                idp.up()
            assert not idp.running and idp.port == port
        idp.up()
        assert idp.running and idp.discovery()["issuer"] == f"http://127.0.0.1:{port}"


# ----- switches: each documented IdP behaviour, against the real node IdP ------------------------
# (tests/idp/switches.mjs says which vendor does what; tests/support/personas.py groups them)
def device_start(idp: IdP, scope: str = "openid email offline_access") -> tuple[int, dict[str, Any]]:
    return token_request(idp, {"scope": scope}, endpoint="device_authorization_endpoint")


def device_poll(idp: IdP, device_code: str) -> tuple[int, dict[str, Any]]:
    return token_request(idp, {"grant_type": DEVICE_GRANT, "device_code": device_code})


def test_unknown_switch_or_bad_value_is_a_clear_startup_error():
    with pytest.raises(IdPError, match='unknown switch "refresh_mode"'):
        IdP(switches={"refresh_mode": "x"})
    with pytest.raises(IdPError, match="bad value for switch refresh_rotation"):
        IdP(switches={"refresh_rotation": "sometimes"})
    with pytest.raises(IdPError, match="unknown persona 'nope'"):
        IdP(persona="nope")


def test_drop_scopes_with_refresh_token_always():
    """Keycloak/Ping in some setups: offline_access left out of the grant, a refresh token anyway;
    a refresh that asks for the configured scopes then fails with invalid_scope (subset rule)."""
    with IdP(switches={"drop_scopes": ["offline_access"], "refresh_token_issue": "always"}) as idp:
        tokens = sign_in(idp)
        assert "refresh_token" in tokens
        assert set(tokens["scope"].split()) == {"openid", "email", "profile"}
        status, body = refresh(idp, tokens["refresh_token"], scope="openid email profile offline_access")
        assert status == 400 and body["error"] == "invalid_scope", body
        status, body = refresh(idp, tokens["refresh_token"])  # no scope: the grant as it is
        assert status == 200 and "refresh_token" in body
        assert "refresh_token" in sign_in(idp, scope="openid")  # "always": even without asking


def test_refuse_scopes_at_authorization_and_device_endpoints():
    with IdP(switches={"refuse_scopes": ["offline_access"]}) as idp:
        _verifier, challenge = pkce_pair()
        with receiver_for(idp) as rx:
            complete_login(authorize_url(idp, rx.redirect_uri, "st", challenge))
            _path, params = rx.next()
        assert params["error"] == "invalid_scope" and params["state"] == "st"
        assert params["iss"] == idp.issuer and "code" not in params
    with IdP(switches={"refuse_scopes": ["offline_access"], "authorization_response_iss": False}) as idp:
        with receiver_for(idp) as rx:
            complete_login(authorize_url(idp, rx.redirect_uri, "st", challenge))
            _path, params = rx.next()
        assert params["error"] == "invalid_scope" and "iss" not in params
        status, body = device_start(idp)
        assert status == 400 and body["error"] == "invalid_scope"
        tokens = sign_in(idp, scope="openid email")  # without it: fine, and no refresh token
        assert "refresh_token" not in tokens


def test_refresh_token_only_with_access_type_offline():
    """Google: offline access is asked for with access_type=offline, never as a scope."""
    with IdP(switches={"refresh_token_issue": "access_type_offline"}) as idp:
        assert "refresh_token" not in sign_in(idp, scope="openid email offline_access")
        tokens = sign_in(idp, scope="openid email", access_type="offline")
        assert "refresh_token" in tokens
        assert "offline_access" not in tokens["scope"].split()
        status, body = refresh(idp, tokens["refresh_token"], scope="openid email")
        assert status == 200, body
        status, _start = device_start(idp, scope="openid email")
        assert status == 200  # the device flow is always offline


@pytest.mark.parametrize("rule", ["ignored", "required", "rejected"])
def test_refresh_scope_rules(rule):
    with IdP(switches={"refresh_scope": rule}) as idp:
        token = sign_in(idp, scope="openid email offline_access")["refresh_token"]
        status, body = refresh(idp, token, scope="openid email profile offline_access")
        if rule == "ignored":  # a scope beyond the grant is not even looked at
            assert status == 200, body
            assert "profile" not in body["scope"].split()
            return
        expected = "invalid_scope" if rule == "required" else "invalid_request"
        assert (status, body["error"]) == (400, expected)  # required: the subset rule still holds
        status, body = refresh(idp, token)  # no scope
        if rule == "required":
            assert (status, body["error"]) == (400, "invalid_request")
            status, body = refresh(idp, token, scope="openid email")
        assert status == 200, body  # the refused requests did not consume the token


@pytest.mark.parametrize("rotation", ["same", "none"])
def test_refresh_rotation_same_or_none(rotation):
    with IdP(switches={"refresh_rotation": rotation}) as idp:
        token = sign_in(idp)["refresh_token"]
        for _ in range(3):  # the one token keeps working
            status, body = refresh(idp, token)
            assert status == 200, body
            if rotation == "same":
                assert body["refresh_token"] == token
            else:
                assert "refresh_token" not in body
            assert "id_token" in body


def test_refresh_token_returned_only_with_offline_access_in_refresh_scope():
    """Okta: refresh_token + offline_access -> a refresh token; without offline_access none."""
    with IdP(switches={"refresh_needs_offline_scope": True}) as idp:
        token = sign_in(idp)["refresh_token"]
        status, body = refresh(idp, token, scope="openid email")
        assert status == 200 and "refresh_token" not in body and "access_token" in body
        status, body = refresh(idp, token, scope="openid offline_access")  # token not consumed
        assert status == 200 and body["refresh_token"] != token
        status, body = refresh(idp, body["refresh_token"])  # no scope: the grant has it
        assert status == 200 and "refresh_token" in body


def test_refresh_reuse_allowed():
    """Entra: old refresh tokens are not revoked when a new one is issued."""
    with IdP(switches={"refresh_reuse": "allowed"}) as idp:
        first = sign_in(idp)["refresh_token"]
        status, second = refresh(idp, first)
        assert status == 200 and second["refresh_token"] != first
        for token in (first, first, second["refresh_token"]):
            status, body = refresh(idp, token)
            assert status == 200, body


def test_refresh_reuse_grace_period_then_reuse_revokes_the_grant():
    # (clock jumps leave ample room for a slow machine's own seconds)
    with IdP(switches={"refresh_reuse_grace": 300}) as idp:
        first = sign_in(idp)["refresh_token"]
        status, second = refresh(idp, first)
        assert status == 200
        idp.advance_clock(200)
        status, again = refresh(idp, first)  # within the grace period: as if unused
        assert status == 200, again
        idp.advance_clock(150)  # 350 s after the first use: reuse is reuse, the grant is revoked
        status, body = refresh(idp, first)
        assert status == 400 and body["error"] == "invalid_grant"
        for token in (second["refresh_token"], again["refresh_token"]):
            assert refresh(idp, token)[1]["error"] == "invalid_grant"


@pytest.mark.parametrize("rotation", ["rotate", "same"])
def test_refresh_absolute_lifetime_holds_across_use(rotation):
    with IdP(switches={"refresh_absolute_ttl": 1000, "refresh_rotation": rotation}) as idp:
        token = sign_in(idp)["refresh_token"]
        for _ in range(3):  # used every 300 s: fine for 900 s
            idp.advance_clock(300)
            status, body = refresh(idp, token)
            assert status == 200, body
            token = body["refresh_token"]
        idp.advance_clock(150)  # 1050 s after the sign-in, though used 150 s ago
        status, body = refresh(idp, token)
        assert status == 400 and body["error"] == "invalid_grant"


@pytest.mark.parametrize("rotation", ["rotate", "same"])
def test_refresh_idle_lifetime(rotation):
    """A token used within the idle lifetime lives on past it; one left alone for longer dies."""
    with IdP(switches={"refresh_idle_ttl": 600, "refresh_rotation": rotation}) as idp:
        active = sign_in(idp, "ivy")["refresh_token"]
        idle = sign_in(idp, "jack")["refresh_token"]
        for _ in range(3):  # 1500 s in all, never 600 s unused
            idp.advance_clock(500)
            status, body = refresh(idp, active)
            assert status == 200, body
            active = body["refresh_token"]
        status, body = refresh(idp, idle)
        assert status == 400 and body["error"] == "invalid_grant"
        idp.advance_clock(601)
        assert refresh(idp, active)[1]["error"] == "invalid_grant"


@pytest.mark.parametrize("rule", [True, "without_offline_access"])
def test_refresh_token_dies_with_the_idp_session(rule):
    switches = {"refresh_dies_with_session": rule, "refresh_token_issue": "always"}
    with IdP(switches=switches) as idp:
        bound = refresh(idp, sign_in(idp, "kim", scope="openid email")["refresh_token"])[1]
        offline = refresh(idp, sign_in(idp, "lea")["refresh_token"])[1]
        bound, offline = bound["refresh_token"], offline["refresh_token"]  # both work before
        assert idp.end_sessions() >= 2
        status, body = refresh(idp, bound)
        assert status == 400 and body["error"] == "invalid_grant"
        status, body = refresh(idp, offline)
        assert status == (400 if rule is True else 200), body


def test_end_sessions_keeps_other_refresh_tokens_and_asks_for_login_again():
    with IdP() as idp:
        token = sign_in(idp)["refresh_token"]
        assert idp.end_sessions() == 1
        assert refresh(idp, token)[0] == 200  # not session-bound by default


def test_refresh_without_id_token():
    """PingFederate: no id_token on a refresh unless "Return ID Token On Refresh Grant"."""
    with IdP(switches={"refresh_id_token": False}, id_ttl=300) as idp:
        tokens = sign_in(idp)
        claims = verify_id_token(idp, tokens["id_token"])
        assert claims["exp"] - claims["iat"] == 300
        status, body = refresh(idp, tokens["refresh_token"])
        assert status == 200 and "id_token" not in body and "access_token" in body


def test_jwt_access_tokens():
    with IdP(switches={"access_token_format": "jwt", "access_token_audience": "api://default"}) as idp:
        tokens = sign_in(idp, "mia")
        access = tokens["access_token"]
        claims = jwt.decode(access, jwt_key(idp, access), algorithms=["RS256"],
                            audience="api://default", issuer=idp.issuer)
        assert claims["sub"] == "mia" and claims["client_id"] == idp.client_id
        assert "offline_access" in claims["scope"].split()
        assert claims["exp"] - claims["iat"] == idp.access_ttl and claims["jti"]
        # the id_token's at_hash is for the JWT the client got
        id_claims = verify_id_token(idp, tokens["id_token"])
        digest = hashlib.sha256(access.encode()).digest()[:16]
        assert id_claims["at_hash"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        status, body = refresh(idp, tokens["refresh_token"])
        assert status == 200 and jwt.decode(body["access_token"], options={"verify_signature": False})["sub"] == "mia"


def test_id_token_claim_switches():
    switches = {"id_token_jti": True, "id_token_email": False, "id_token_aud": "array"}
    with IdP(switches=switches) as idp:
        tokens = sign_in(idp, "noa")
        for id_token in (tokens["id_token"], refresh(idp, tokens["refresh_token"])[1]["id_token"]):
            claims = verify_id_token(idp, id_token)
            assert claims["jti"] and "email" not in claims and "email_verified" not in claims
            assert claims["aud"] == [idp.client_id, "urn:tipd-test:api"]
            assert claims["azp"] == idp.client_id and claims["sub"] == "noa"


@pytest.mark.parametrize("switches, issuer_tail", [
    ({"issuer_path": "/oauth2/default"}, "/oauth2/default"),
    ({"issuer_trailing_slash": True}, "/"),
    ({"issuer_path": "/realms/tipd", "issuer_trailing_slash": True}, "/realms/tipd/"),
])
def test_issuer_path_and_trailing_slash(switches, issuer_tail):
    with IdP(switches=switches) as idp:
        assert idp.issuer == f"http://127.0.0.1:{idp.port}{issuer_tail}"
        doc = idp.discovery()
        assert doc["issuer"] == idp.issuer
        assert doc["token_endpoint"] == idp.issuer.rstrip("/") + "/token"
        tokens = sign_in(idp)  # asserts iss in the authorization response
        assert verify_id_token(idp, tokens["id_token"])["iss"] == idp.issuer
        approve = device_start(idp)[1]
        approve_device_code(idp.issuer, approve["user_code"])
        assert device_poll(idp, approve["device_code"])[0] == 200
        if switches.get("issuer_path"):  # nothing at the root but the test endpoints
            status, _ = post_form(f"{idp.base_url}/token", {"grant_type": "refresh_token"})
            assert status == 404


def test_es256_signing():
    with IdP(switches={"signing_alg": "ES256", "access_token_format": "jwt"}) as idp:
        tokens = sign_in(idp)
        for token in (tokens["id_token"], tokens["access_token"]):
            assert jwt.get_unverified_header(token)["alg"] == "ES256"
        assert verify_id_token(idp, tokens["id_token"])["sub"] == "alice"
        assert get_json(idp.discovery()["jwks_uri"])["keys"][0]["kty"] == "EC"
        assert idp.discovery()["id_token_signing_alg_values_supported"] == ["ES256"]


@pytest.mark.parametrize("keep_old", [True, False])
def test_signing_key_rotation_mid_session(keep_old):
    with IdP(switches={"access_token_format": "jwt"}) as idp:
        tokens = sign_in(idp)
        old_kid = jwt.get_unverified_header(tokens["id_token"])["kid"]
        new_kid = idp.rotate_keys(keep_old=keep_old)
        assert new_kid != old_kid
        kids = [k["kid"] for k in get_json(idp.discovery()["jwks_uri"])["keys"]]
        assert kids == ([new_kid, old_kid] if keep_old else [new_kid])
        status, body = refresh(idp, tokens["refresh_token"])
        assert status == 200
        for token in (body["id_token"], body["access_token"]):
            assert jwt.get_unverified_header(token)["kid"] == new_kid
        assert verify_id_token(idp, body["id_token"])["sub"] == "alice"
        if not keep_old:  # a client that kept the old token cannot verify it any more
            with pytest.raises(StopIteration):
                jwt_key(idp, tokens["id_token"])


def test_signing_key_rotation_survives_a_restart():
    with IdP(persistent=True) as idp:
        token = sign_in(idp)["refresh_token"]
        new_kid = idp.rotate_keys(keep_old=False)
        idp.down()
        idp.up()
        status, body = refresh(idp, token)
        assert status == 200
        assert jwt.get_unverified_header(body["id_token"])["kid"] == new_kid
        assert [k["kid"] for k in get_json(idp.discovery()["jwks_uri"])["keys"]] == [new_kid]


def redirect_accepted(idp: IdP, redirect_uri: str) -> bool:
    _verifier, challenge = pkce_pair()
    url = authorize_url(idp, redirect_uri, "st", challenge)
    resp = browser_session().get(url)
    return resp.status in (302, 303) and "/interaction/" in (resp.location or "")


def browser_session():
    from tests.support.browser import Session
    return Session()


@pytest.mark.parametrize("host, port, accepted", [
    ("127.0.0.1", "any", {"127.0.0.1:any"}),
    ("localhost", "any", {"localhost:any"}),
    ("loopback", "any", {"127.0.0.1:any", "localhost:any"}),
    ("127.0.0.1", "exact", {"127.0.0.1:exact"}),
    ("localhost", "exact", {"localhost:exact"}),
])
def test_loopback_redirect_rules(host, port, accepted):
    with IdP(switches={"redirect_host": host, "redirect_port": port}) as idp:
        assert (idp.redirect_port is not None) == (port == "exact")
        registered = idp.redirect_port or free_port()
        other = free_port()
        while other == registered:
            other = free_port()
        for name in ("127.0.0.1", "localhost"):
            assert redirect_accepted(idp, f"http://{name}:{registered}/callback") == (
                f"{name}:exact" in accepted or f"{name}:any" in accepted), name
            assert redirect_accepted(idp, f"http://{name}:{other}/callback") == (
                f"{name}:any" in accepted), name
            assert not redirect_accepted(idp, f"http://{name}:{registered}/other")
        assert not redirect_accepted(idp, f"http://[::1]:{registered}/callback")
        sign_in(idp)  # the harness's own receiver_for() gets it right


@pytest.mark.parametrize("method", ["client_secret_post", "client_secret_basic", "client_secret_any"])
def test_client_secret_required(method):
    with IdP(switches={"client_auth": method}) as idp:
        assert idp.client_secret and idp.client_auth == method
        tokens = sign_in(idp)  # with the secret the way the IdP wants it
        rt = tokens["refresh_token"]
        form = {"grant_type": "refresh_token", "refresh_token": rt, "client_id": idp.client_id}
        token_url = idp.discovery()["token_endpoint"]
        assert post_form(token_url, form)[1]["error"] == "invalid_client"  # no secret
        wrong = {**form, "client_secret": "x" * 32}
        assert post_form(token_url, wrong)[1]["error"] == "invalid_client"
        raw = base64.b64encode(f"{idp.client_id}:{idp.client_secret}".encode()).decode()
        status, body = post_form(token_url, form, {"Authorization": f"Basic {raw}"})
        assert (status == 200) == (method != "client_secret_post"), body
        if status == 200:
            form["refresh_token"] = body["refresh_token"]
        status, body = post_form(token_url, {**form, "client_secret": idp.client_secret})
        assert (status == 200) == (method != "client_secret_basic"), body
        status, start = device_start(idp)  # the device endpoint wants it too
        assert status == 200, start
        idp.revoke(tokens["access_token"])  # and revocation


def test_device_flow_absent():
    with IdP(switches={"device_flow": False}) as idp:
        assert not idp.device_flow
        assert "device_authorization_endpoint" not in idp.discovery()
        assert DEVICE_GRANT not in idp.discovery()["grant_types_supported"]
        status, _ = post_form(idp.url("/device/auth"), {"client_id": idp.client_id, "scope": "openid"})
        assert status == 404


def test_device_response_shape_switches():
    """Google says verification_url; Entra has no verification_uri_complete; interval; strings."""
    switches = {"device_verification_url": True, "device_uri_complete": False, "device_interval": 7,
                "numbers_as_strings": True}
    with IdP(switches=switches, device_ttl=900) as idp:
        status, start = device_start(idp)
        assert status == 200
        assert start["verification_url"] == idp.issuer + "/device" and "verification_uri" not in start
        assert "verification_uri_complete" not in start
        assert start["expires_in"] == "900" and start["interval"] == "7"
        approve_device_code(idp.issuer, start["user_code"])
        status, tokens = device_poll(idp, start["device_code"])
        assert status == 200 and tokens["expires_in"] == str(idp.access_ttl)
    with IdP(switches={"device_interval": 3}) as idp:  # and as numbers without the switch
        start = device_start(idp)[1]
        assert start["interval"] == 3 and isinstance(start["expires_in"], int)
        assert start["verification_uri_complete"].startswith(start["verification_uri"])


def test_device_errors_entra_style():
    switches = {"device_denied_error": "authorization_declined",
                "device_unknown_code_error": "bad_verification_code"}
    with IdP(switches=switches) as idp:
        start = device_start(idp, scope="openid")[1]
        deny_device_code(idp.issuer, start["user_code"])
        assert device_poll(idp, start["device_code"]) [1]["error"] == "authorization_declined"
        assert device_poll(idp, "no-such-code")[1]["error"] == "bad_verification_code"
        start = device_start(idp, scope="openid")[1]
        assert device_poll(idp, start["device_code"])[1]["error"] == "authorization_pending"


def test_device_slow_down():
    with IdP(switches={"device_slow_down": True, "device_interval": 30}) as idp:
        start = device_start(idp, scope="openid")[1]
        code = start["device_code"]
        assert device_poll(idp, code)[1]["error"] == "authorization_pending"
        assert device_poll(idp, code)[1]["error"] == "slow_down"  # at once: too soon (now 35 s)
        assert device_poll(idp, code)[1]["error"] == "slow_down"  # still too soon (now 40 s)
        idp.advance_clock(41)  # waited long enough: pending again
        assert device_poll(idp, code)[1]["error"] == "authorization_pending"
        other = device_start(idp, scope="openid")[1]["device_code"]  # per device code
        assert device_poll(idp, other)[1]["error"] == "authorization_pending"


@pytest.mark.parametrize("mode", ["absent", "error"])
def test_revocation_absent_or_failing(mode):
    with IdP(switches={"revocation": mode}) as idp:
        tokens = sign_in(idp)
        assert idp.revocation == mode
        assert ("revocation_endpoint" in idp.discovery()) == (mode == "error")
        status, body = post_form(idp.url("/token/revocation"),
                                 {"token": tokens["refresh_token"], "client_id": idp.client_id})
        assert status == (404 if mode == "absent" else 400)
        if mode == "error":
            assert body["error"] == "unsupported_token_type"
        assert refresh(idp, tokens["refresh_token"])[0] == 200  # nothing was revoked


# ----- personas -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(PERSONAS))
def test_persona_signs_in_and_refreshes(name):
    """Every persona is coherent: a client that follows what the persona exposes signs in
    (browser; device flow where there is one) and refreshes."""
    persona = PERSONAS[name]
    assert persona.name == name and persona.notes
    assert name == "default" or persona.sources or "unconfirmed" in persona.notes
    with IdP(persona=name) as idp:
        doc = idp.discovery()
        assert doc["issuer"] == idp.issuer
        assert idp.device_flow == ("device_authorization_endpoint" in doc)
        offline = idp.switches["refresh_token_issue"]
        scope = "openid email" if "offline_access" in idp.switches["refuse_scopes"] else \
            "openid email offline_access"
        extra = {"access_type": "offline"} if offline == "access_type_offline" else {}
        tokens = sign_in(idp, scope=scope, **extra)
        claims = verify_id_token(idp, tokens["id_token"])
        assert claims["iss"] == idp.issuer and claims["sub"] == "alice"
        # a refresh sends the granted scope only where the IdP requires a scope
        granted = tokens["scope"] if idp.switches["refresh_scope"] == "required" else None
        status, body = refresh(idp, tokens["refresh_token"], scope=granted)
        assert status == 200, body
        if idp.device_flow:
            start = device_start(idp, scope=scope)[1]
            uri = start.get("verification_uri") or start["verification_url"]
            assert uri == idp.issuer.rstrip("/") + "/device"
            approve_device_code(idp.issuer, start["user_code"])
            status, device = device_poll(idp, start["device_code"])
            assert status == 200 and "refresh_token" in device, device


def test_refresh_token_only_at_the_first_grant_unless_prompt_consent():
    """Google: a user's second sign-in gets no refresh token unless it asks for prompt=consent."""
    switches = {"refresh_token_issue": "access_type_offline", "refresh_token_first_grant_only": True}
    with IdP(switches=switches) as idp:
        assert "refresh_token" in sign_in(idp, "olaf", scope="openid", access_type="offline")
        assert "refresh_token" not in sign_in(idp, "olaf", scope="openid", access_type="offline")
        again = sign_in(idp, "olaf", scope="openid", access_type="offline", prompt="consent")
        assert "refresh_token" in again
        assert "refresh_token" in sign_in(idp, "pia", scope="openid", access_type="offline")


def test_authorization_response_without_iss():
    """Keycloak: no RFC 9207 iss parameter on the redirect, nor the flag in discovery."""
    with IdP(switches={"authorization_response_iss": False}) as idp:
        assert "authorization_response_iss_parameter_supported" not in idp.discovery()
        tokens = sign_in(idp)  # asserts there is no iss
        assert verify_id_token(idp, tokens["id_token"])["iss"] == idp.issuer
        with receiver_for(idp) as rx:  # denied: an error redirect, without iss too
            url = authorize_url(idp, rx.redirect_uri, "st", pkce_pair()[1])
            complete_login(url, mode="deny")
            _path, params = rx.next()
        assert params["error"] == "access_denied" and "iss" not in params
    with IdP() as idp:
        assert idp.discovery()["authorization_response_iss_parameter_supported"] is True


def test_expired_device_code_is_expired_token():
    """RFC 8628 3.5 (and every IdP of the matrix): a poll after the code expired says so."""
    with IdP(device_ttl=60) as idp:
        start = device_start(idp, scope="openid")[1]
        idp.advance_clock(61)
        assert device_poll(idp, start["device_code"])[1]["error"] == "expired_token"
        assert device_poll(idp, "no-such-code")[1]["error"] == "invalid_grant"


# ----- docs/test-idp.md: its tables are rendered from switches.mjs and personas.py ----------------
DOC = Path(__file__).resolve().parent.parent / "docs" / "test-idp.md"
BEGIN, END = "<!-- BEGIN generated tables -->", "<!-- END generated tables -->"


def switch_defaults() -> dict[str, Any]:
    script = ("import('./switches.mjs').then((m) => process.stdout.write(JSON.stringify("
              "Object.fromEntries(Object.entries(m.SWITCHES).map(([k, v]) => [k, v.default])))))")
    done = subprocess.run([os.environ.get("NODE") or "node", "-e", script], cwd=Path(__file__).resolve().parent / "idp",
                          capture_output=True, text=True, timeout=60, check=True)
    defaults: dict[str, Any] = json.loads(done.stdout)
    return defaults


def render_tables() -> str:
    lines = ["| switch | default |", "|---|---|"]
    lines += [f"| `{name}` | `{json.dumps(value)}` |" for name, value in switch_defaults().items()]
    lines += ["", "| persona | switches (beside the defaults) | lifetimes |", "|---|---|---|"]
    for p in PERSONAS.values():
        switches = ", ".join(f"`{k}={json.dumps(v)}`" for k, v in p.switches.items()) or "(none)"
        lifetimes = ", ".join(f"`{k}={v}`" for k, v in p.lifetimes.items())
        lines.append(f"| `{p.name}` | {switches} | {lifetimes} |")
    return "\n".join(lines)


def test_docs_tables_are_current():
    """TIPD_WRITE_DOCS=1 rewrites the generated part of docs/test-idp.md."""
    text = DOC.read_text()
    head, rest = text.split(BEGIN, 1)
    _old, tail = rest.split(END, 1)
    fresh = f"{head}{BEGIN}\n{render_tables()}\n{END}{tail}"
    if os.environ.get("TIPD_WRITE_DOCS") == "1":
        DOC.write_text(fresh)
    assert text == fresh, "docs/test-idp.md is stale: run this test with TIPD_WRITE_DOCS=1"


def test_advance_clock_moves_the_idps_time():
    with IdP(access_ttl=60, id_ttl=60) as idp:
        tokens = sign_in(idp)
        idp.advance_clock(120)
        claims = jwt.decode(refresh(idp, tokens["refresh_token"])[1]["id_token"],
                            options={"verify_signature": False})
        assert claims["iat"] >= time.time() + 110  # the IdP's time, two minutes ahead
        with pytest.raises(IdPError, match="advance"):
            idp.advance_clock(-1)


def test_idle_keep_alive_connection_is_kept_like_a_real_idp(idp):
    """Node's default closes idle keep-alive connections after 5 s, and a client reusing one just
    then gets a reset on its token POST; IdPs behind load balancers keep them a minute or more."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", idp.port, timeout=15)
    try:
        conn.request("GET", "/.well-known/openid-configuration")
        assert conn.getresponse().read()
        time.sleep(6)  # the idle time itself is what is tested: longer than Node's 5 s default
        conn.request("GET", "/.well-known/openid-configuration")  # the same socket, reused
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read()
    finally:
        conn.close()
