"""The real test IdP (panva oidc-provider, tests/idp/server.mjs) as a subprocess.

    with IdP(refresh_ttl=60) as idp:
        idp.issuer            # http://127.0.0.1:<port> (plus the persona's path / trailing "/")
        idp.fault("/token", 500, count=2)
        idp.stats()           # {"/token": 3, ...}

    with IdP(persistent=True) as idp:   # keys + grants/tokens/sessions kept in a private dir
        idp.down()            # outage: the process is gone, the port refuses connections
        idp.up()              # back on the same port: same keys, every token still valid

    with IdP(persona="google", switches={"device_interval": 1}) as idp:
        idp.client_secret     # the persona requires one: pass it as the IdP wants
        idp.end_sessions()    # every IdP session ends (session-bound refresh tokens die)
        idp.rotate_keys()     # a new signing key signs from now on (old one kept in the JWKS)
        idp.advance_clock(90) # the IdP's clock jumps ahead: lifetimes pass without waiting

Personas and switches: tests/support/personas.py (its docstring lists the attributes a consumer
of a persona needs: issuer, client_id, client_secret, redirect_host/port/uri, device_flow, ...).

Needs ``npm ci --prefix tests/idp`` once (the harness never installs anything).
"""
from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import selectors
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from pathlib import Path
from typing import IO, Any

from .net import free_port
from .personas import PERSONAS, Persona

IDP_DIR = Path(__file__).resolve().parent.parent / "idp"
SERVER = IDP_DIR / "server.mjs"


class IdPError(RuntimeError):
    """The IdP could not be started or answered a control request with an error."""


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


class IdP:
    """Starts the IdP on a free 127.0.0.1 port in the constructor (``start=False`` to defer)."""

    def __init__(self, *, persona: str | Persona = "default", switches: dict[str, Any] | None = None,
                 client_id: str = "tipd-test", access_ttl: int | None = None,
                 id_ttl: int | None = None, refresh_ttl: int | None = None,
                 device_ttl: int | None = None, port: int | None = None,
                 startup_timeout: float = 60.0, env: dict[str, str] | None = None,
                 persistent: bool = False, start: bool = True):
        if isinstance(persona, str):
            if persona not in PERSONAS:
                raise IdPError(f"unknown persona {persona!r}; known: {', '.join(PERSONAS)}")
            persona = PERSONAS[persona]
        self.persona: Persona = persona
        # explicit switches override the persona's; the IdP fills in the defaults of the rest
        self._switches_given: dict[str, Any] = {**persona.switches, **(switches or {})}
        lifetimes = {"access_ttl": 3600, "id_ttl": 3600, "refresh_ttl": 86400, "device_ttl": 600,
                     **persona.lifetimes}
        self.client_id = client_id
        self.access_ttl = access_ttl if access_ttl is not None else lifetimes["access_ttl"]
        self.id_ttl = id_ttl if id_ttl is not None else lifetimes["id_ttl"]
        self.refresh_ttl = refresh_ttl if refresh_ttl is not None else lifetimes["refresh_ttl"]
        self.device_ttl = device_ttl if device_ttl is not None else lifetimes["device_ttl"]
        self.startup_timeout = startup_timeout
        self._requested_port = port
        self._extra_env = dict(env or {})
        # a secret (when the persona wants one) and a registered redirect port (exact-port
        # personas) are chosen once, so down()/up() keeps them
        auth = self._switches_given.get("client_auth", "none")
        self.client_secret: str | None = secrets.token_urlsafe(24) if auth != "none" else None
        self.redirect_port: int | None = (
            free_port() if self._switches_given.get("redirect_port") == "exact" else None)
        self.port: int | None = None
        self._issuer: str | None = None
        self._config: dict[str, Any] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr_file: IO[bytes] | None = None
        self._finalizer: weakref.finalize[[subprocess.Popen[bytes]], IdP] | None = None
        self._discovery: dict[str, Any] | None = None
        self._node: str | None = None
        self._stderr_prev = ""
        # persistent=True: IDP_STATE_DIR (signing keys, cookie keys, store.json) lives in a private
        # temp dir from start() to stop(), so down()/up() is an outage and not a new IdP.
        self.persistent = persistent
        self._state_dir: tempfile.TemporaryDirectory[str] | None = None
        if start:
            self.start()

    # ----- what a client of this IdP needs to know ---------------------------------------------
    @property
    def switches(self) -> dict[str, Any]:
        """Every switch as the running IdP has it (defaults filled in)."""
        if self._config is None:
            raise IdPError("the IdP has not been started")
        switches: dict[str, Any] = self._config["switches"]
        return switches

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:<port>: where the /__test/* endpoints are (the issuer may have a path)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        """The issuer URL the running IdP announces."""
        if self._issuer is None:
            raise IdPError("the IdP has not been started")
        return self._issuer

    @property
    def discovery_url(self) -> str:
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"

    @property
    def client_auth(self) -> str:
        return str(self.switches["client_auth"])

    @property
    def redirect_host(self) -> str:
        """The loopback host to redirect to: 127.0.0.1 unless the IdP takes localhost only."""
        return "localhost" if self.switches["redirect_host"] == "localhost" else "127.0.0.1"

    @property
    def redirect_uri(self) -> str | None:
        """The registered redirect URI of an exact-port IdP (None: any port on redirect_host)."""
        if self.redirect_port is None:
            return None
        return f"http://{self.redirect_host}:{self.redirect_port}/callback"

    @property
    def device_flow(self) -> bool:
        return bool(self.switches["device_flow"])

    @property
    def revocation(self) -> str:
        return str(self.switches["revocation"])

    def client_form(self) -> dict[str, str]:
        """The client's fields for a token / device / revocation request body: client_id, plus
        client_secret when the IdP takes it in the body (client_secret_post or _any)."""
        form = {"client_id": self.client_id}
        if self.client_secret is not None and self.client_auth != "client_secret_basic":
            form["client_secret"] = self.client_secret
        return form

    def client_headers(self) -> dict[str, str]:
        """HTTP Basic client authentication, when the IdP wants it (client_secret_basic)."""
        if self.client_secret is None or self.client_auth != "client_secret_basic":
            return {}
        quote = urllib.parse.quote_plus
        raw = f"{quote(self.client_id)}:{quote(self.client_secret)}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}

    # ----- lifecycle ------------------------------------------------------------------------
    def start(self) -> IdP:
        if self._proc is not None:
            return self
        if self._state_dir is not None and self.port is not None:
            return self.up()  # started before and down(): come back as the same IdP
        if not (IDP_DIR / "node_modules" / "oidc-provider").is_dir():
            raise IdPError(
                f"{IDP_DIR / 'node_modules'} is missing: run `npm ci --prefix tests/idp` "
                "(from the repository root) before running the tests")
        node = os.environ.get("NODE") or shutil.which("node")
        if not node:
            raise IdPError("node is not on PATH (Node 20+ is needed for the test IdP)")
        self._node = node
        self._stderr_prev = ""
        if self.persistent and self._state_dir is None:
            self._state_dir = tempfile.TemporaryDirectory(prefix="tipd-idp-state-")
        attempts = 1 if self._requested_port else 3
        last: Exception | None = None
        try:
            for _ in range(attempts):
                try:
                    self._launch(node, self._requested_port or free_port())
                    return self
                except IdPError as err:  # a port taken between free_port() and listen: retry
                    last = err
                    if "EADDRINUSE" not in str(err):
                        raise
            assert last is not None  # every attempt failed, and there was at least one
            raise last
        except BaseException:
            self._remove_state_dir()
            raise

    @property
    def state_dir(self) -> Path | None:
        """The IDP_STATE_DIR of a persistent IdP (None otherwise, or after stop())."""
        return Path(self._state_dir.name) if self._state_dir is not None else None

    def down(self) -> None:
        """Outage: stop the IdP process (SIGTERM, wait) but keep its state and port number;
        connections to the port are refused until up(). Needs persistent=True."""
        if not self.persistent:
            raise IdPError("down()/up() need IdP(persistent=True): a non-persistent IdP "
                           "would come back with new keys and no grants")
        if self._proc is None:
            return
        self._stderr_prev = self.stderr()
        self._end_process()

    def up(self) -> IdP:
        """End an outage: start the IdP again on the same port, with the same state dir and env
        (same signing keys, accounts, grants, refresh tokens, sessions); waits for ready.
        Raises IdPError if the port has been taken meanwhile (the issuer URL includes it)."""
        if self._proc is not None:
            return self
        if self.port is None or self._state_dir is None or self._node is None:
            raise IdPError("up() is for an IdP(persistent=True) that was started and then down()")
        try:
            self._launch(self._node, self.port)
        except IdPError as err:
            if "EADDRINUSE" in str(err):
                raise IdPError(
                    f"cannot bring the IdP back up: port {self.port} (issuer {self._issuer}) is "
                    f"in use by another process; not moving ports since the issuer would change"
                    f"\n{err}") from err
            raise
        return self

    def _launch(self, node: str, port: int) -> None:
        state = {"IDP_STATE_DIR": self._state_dir.name} if self._state_dir is not None else {}
        client = {"IDP_CLIENT_SECRET": self.client_secret} if self.client_secret else {}
        if self.redirect_port is not None:
            client["IDP_REDIRECT_PORT"] = str(self.redirect_port)
        env = {**os.environ, **self._extra_env, **state, **client,
               "IDP_SWITCHES": json.dumps(self._switches_given),
               "IDP_PORT": str(port), "IDP_CLIENT_ID": self.client_id,
               "IDP_ACCESS_TTL": str(self.access_ttl), "IDP_ID_TTL": str(self.id_ttl),
               "IDP_REFRESH_TTL": str(self.refresh_ttl), "IDP_DEVICE_TTL": str(self.device_ttl),
               "IDP_WATCH_STDIN": "1"}
        stderr_file = tempfile.TemporaryFile()
        proc = subprocess.Popen(
            [node, str(SERVER)], cwd=str(IDP_DIR), env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr_file)
        deadline = time.monotonic() + self.startup_timeout
        line = b""
        try:
            with selectors.DefaultSelector() as sel:
                assert proc.stdout is not None  # stdout=PIPE
                sel.register(proc.stdout, selectors.EVENT_READ)
                while b"\n" not in line:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise IdPError(f"IdP not ready after {self.startup_timeout}s"
                                       f"{self._stderr_tail(stderr_file)}")
                    if not sel.select(timeout=remaining):
                        continue
                    chunk = os.read(proc.stdout.fileno(), 4096)
                    if not chunk:  # EOF: the process died
                        proc.wait(timeout=5)
                        raise IdPError(f"IdP exited with {proc.returncode} before ready"
                                       f"{self._stderr_tail(stderr_file)}")
                    line += chunk
        except BaseException:
            _kill(proc)
            stderr_file.close()
            raise
        first = line.split(b"\n", 1)[0].decode()
        expected = f"ready http://127.0.0.1:{port}"
        if first != expected:
            _kill(proc)
            stderr_file.close()
            raise IdPError(f"unexpected first line from the IdP: {first!r}")
        # keep draining stdout so a chatty process can never block on a full pipe
        threading.Thread(target=self._drain, args=(proc.stdout,), daemon=True).start()
        self._proc, self._stderr_file = proc, stderr_file
        self.port = port
        self._finalizer = weakref.finalize(self, _kill, proc)
        try:
            self._config = self._control("GET", "/__test/config")
        except BaseException:
            self._end_process()
            raise
        self._issuer = self._config["issuer"]
        self._discovery = None

    @staticmethod
    def _drain(stream: IO[bytes]) -> None:
        try:
            while stream.read(65536):
                pass
        except (OSError, ValueError):
            pass

    @staticmethod
    def _stderr_tail(stderr_file: IO[bytes]) -> str:
        try:
            stderr_file.seek(0)
            text = stderr_file.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""
        return f"; stderr:\n{text[-4000:]}" if text else "; stderr empty"

    def stderr(self) -> str:
        """Everything the IdP wrote to stderr so far (for test diagnostics; across down()/up())."""
        if self._stderr_file is None:
            return self._stderr_prev
        self._stderr_file.seek(0)
        return self._stderr_prev + self._stderr_file.read().decode("utf-8", "replace")

    def stop(self) -> None:
        """End everything: the process (if up) and a persistent IdP's state dir."""
        try:
            self._end_process()
        finally:
            self._remove_state_dir()

    def _remove_state_dir(self) -> None:
        state, self._state_dir = self._state_dir, None
        if state is not None:
            state.cleanup()

    def _end_process(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                _kill(proc)
        for stream in (proc.stdin, proc.stdout):
            with contextlib.suppress(OSError):
                if stream is not None:  # both are pipes
                    stream.close()
        if self._finalizer is not None:
            self._finalizer.detach()
        if self._stderr_file is not None:
            self._stderr_file.close()
            self._stderr_file = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> IdP:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----- HTTP helpers -----------------------------------------------------------------------
    def url(self, path: str) -> str:
        """An absolute URL: an IdP endpoint path ("/token") under the issuer, or a /__test/ path
        at the root."""
        if path.startswith("/__test/"):
            return f"{self.base_url}{path}"
        return f"{(self._issuer or '').rstrip('/')}{path}"

    def _request(self, method: str, path_or_url: str, *, json_body: Any = None,
                 form: dict[str, str] | None = None,
                 headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        url = path_or_url if path_or_url.startswith("http") else self.url(path_or_url)
        data, headers = None, {"Accept": "application/json", **(headers or {})}
        if json_body is not None:
            data, headers["Content-Type"] = json.dumps(json_body).encode(), "application/json"
        elif form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(req, timeout=15) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            with err:
                return err.code, err.read()

    def _control(self, method: str, path: str, body: Any = None) -> Any:
        status, raw = self._request(method, path, json_body=body)
        if status != 200:
            raise IdPError(f"{method} {path} -> {status}: {raw[:300]!r}")
        return json.loads(raw)

    def discovery(self) -> dict[str, Any]:
        if self._discovery is None:
            status, raw = self._request("GET", self.discovery_url)
            if status != 200:
                raise IdPError(f"discovery -> {status}")
            self._discovery = json.loads(raw)
        return self._discovery

    # ----- test controls ------------------------------------------------------------------------
    def fault(self, path: str, status: int = 500, count: int = 1, *, error: str = "server_error",
              delay_ms: int = 0) -> None:
        """The next ``count`` requests whose path starts with ``path`` get ``status`` and
        ``{"error": error}`` (count -1: until clear_faults). Note "/token" also matches
        "/token/revocation" and "/token/introspection"."""
        self._control("POST", "/__test/fault", {"path": path, "status": status, "count": count,
                                                "error": error, "delay_ms": delay_ms})

    def clear_faults(self) -> None:
        self._control("DELETE", "/__test/fault")

    def stats(self) -> dict[str, int]:
        """Requests per path since start (or reset_stats), counted before fault handling."""
        stats: dict[str, int] = self._control("GET", "/__test/stats")
        return stats

    def reset_stats(self) -> None:
        self._control("DELETE", "/__test/stats")

    def revoke_all(self) -> int:
        """Revoke every grant: every refresh (and access) token of every account stops working.
        Returns the number of grants revoked."""
        return int(self._control("POST", "/__test/revoke-all")["grants"])

    def end_sessions(self) -> int:
        """End every IdP (browser) session: the next sign-in asks for the login again, and
        session-bound refresh tokens (switch refresh_dies_with_session) stop working.
        Returns the number of sessions ended."""
        return int(self._control("POST", "/__test/end-sessions")["sessions"])

    def advance_clock(self, seconds: float) -> None:
        """Move the IdP's clock ``seconds`` ahead: every lifetime it enforces (tokens, codes,
        idle / absolute / grace periods) sees the time pass at once. Only this IdP process's
        clock moves (a restart after down() is back on real time)."""
        self._control("POST", "/__test/clock", {"advance": seconds})

    def rotate_keys(self, keep_old: bool = True) -> str:
        """A new signing key signs every token from now on; the old keys stay in the JWKS
        (keep_old) or are dropped from it at once. Returns the new key id."""
        return str(self._control("POST", "/__test/rotate-keys", {"keep_old": keep_old})["kid"])

    def revoke(self, token: str, token_type_hint: str | None = None) -> None:
        """RFC 7009 revocation at the real revocation endpoint, as the client (with its secret
        when it has one). Revoking a refresh token revokes its whole grant."""
        form = {"token": token, **self.client_form()}
        if token_type_hint:
            form["token_type_hint"] = token_type_hint
        status, raw = self._request("POST", self.discovery()["revocation_endpoint"], form=form,
                                    headers=self.client_headers())
        if status != 200:
            raise IdPError(f"revocation -> {status}: {raw[:300]!r}")
