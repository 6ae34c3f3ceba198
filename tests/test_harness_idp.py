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
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import jwt
import pytest

from tests.support.browser import complete_login
from tests.support.device import approve_device_code, deny_device_code
from tests.support.idp import IdP, IdPError
from tests.support.net import free_port

BROWSER_SCRIPT = Path(__file__).resolve().parent / "support" / "browser.py"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.fixture(scope="module")
def idp():
    with IdP() as server:
        yield server


# ----- small OAuth client helpers --------------------------------------------------------------
def post_form(url: str, form: dict[str, str]) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=urllib.parse.urlencode(form).encode(), method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded",
                                          "Accept": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=15) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read() or b"{}")


def get_json(url: str) -> dict:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=15) as resp:
        return json.loads(resp.read())


class LoopbackReceiver:
    """A one-shot http.server on 127.0.0.1 that records every request's path and query."""

    def __init__(self) -> None:
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

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.redirect_uri = f"http://127.0.0.1:{self.port}/callback"
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


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    return verifier, challenge.decode()


def authorize_url(idp: IdP, redirect_uri: str, state: str, challenge: str,
                  scope: str = "openid email profile offline_access") -> str:
    query = {"client_id": idp.client_id, "response_type": "code", "redirect_uri": redirect_uri,
             "scope": scope, "state": state, "code_challenge": challenge,
             "code_challenge_method": "S256", "nonce": secrets.token_urlsafe(8)}
    return idp.discovery()["authorization_endpoint"] + "?" + urllib.parse.urlencode(query)


def sign_in(idp: IdP, login: str = "alice") -> dict:
    """Full auth code + PKCE flow through the headless browser; returns the token response."""
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)
    with LoopbackReceiver() as rx:
        complete_login(authorize_url(idp, rx.redirect_uri, state, challenge), login=login)
        path, params = rx.next()
        assert path == "/callback"
        assert params["state"] == state
        assert params["iss"] == idp.issuer
        status, tokens = post_form(idp.discovery()["token_endpoint"], {
            "grant_type": "authorization_code", "code": params["code"], "client_id": idp.client_id,
            "redirect_uri": rx.redirect_uri, "code_verifier": verifier})
    assert status == 200, tokens
    return tokens


def refresh(idp: IdP, refresh_token: str) -> tuple[int, dict]:
    return post_form(idp.discovery()["token_endpoint"], {
        "grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": idp.client_id})


def verify_id_token(idp: IdP, id_token: str) -> dict:
    keys = jwt.PyJWKSet.from_dict(get_json(idp.discovery()["jwks_uri"]))
    kid = jwt.get_unverified_header(id_token)["kid"]
    key = next(k for k in keys.keys if k.key_id == kid)
    return jwt.decode(id_token, key.key, algorithms=["RS256"], audience=idp.client_id,
                      issuer=idp.issuer)


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
        assert "code=" in first.location
        idp.down()
        idp.up()
        verifier, challenge = pkce_pair()
        url = authorize_url(idp, redirect_uri, "two", challenge, scope="openid email")
        again, steps = drive_interactions(browser, browser.get(url), "nobody", stop_at=at_callback)
        assert not any("(login)" in step for step in steps), steps
        assert any("(consent)" in step for step in steps), steps
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
            squatter.bind(("127.0.0.1", port))
            squatter.listen()
            with pytest.raises(IdPError, match=f"port {port} .*in use"):
                idp.up()
            assert not idp.running and idp.port == port
        idp.up()
        assert idp.running and idp.discovery()["issuer"] == f"http://127.0.0.1:{port}"
