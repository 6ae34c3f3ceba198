"""The IdP conformance matrix: one scenario per persona of the test IdP, through the real tipd and tipctl.

For a persona (a named set of switches of tests/idp/server.mjs, see tests/support/personas.py) the scenario
is what a new user does and what the days after bring:

  configure  `tipctl configure --provider <preset>` with non-interactive flags
  browser    `tipctl login` through the BROWSER hook (tests/support/browser.py); boto3 gets identity-enhanced
             credentials
  renewals   short lifetimes everywhere (IdP tokens, Identity Center token, both STS sessions): every stage of
             the chain renews twice by itself (the second round outlives the sign-in's own tokens), and
             boto3 still gets credentials after that
  restart    tipd stops and starts again: boto3 gets credentials again with no sign-in (no browser, no code)
  device     where the IdP has a device flow: `tipctl login --device`, the code approved headlessly
  logout     `tipctl logout`: the refresh token is revoked where the IdP can (checked at the IdP's token
             endpoint), forgotten everywhere

Where an IdP cannot work in some setting, a persona's `Expect.sentence` is the sentence tipd must say (it
names the setting to change at the IdP); the scenario then ends there, and must end there.

`run_matrix()` runs every persona's scenario at once, in threads, each with its own IdP process, home and
tipd; `render_table()` turns the results into the table of docs/idp-matrix.md.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from base64 import b64encode
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from .stack import ACCOUNT, BIN, ENHANCED_ROLE, OIDC_ROLE, REGION, ROOT, Home, Tipd, tipctl, wait_for

if TYPE_CHECKING:
    from .aws import FakeAWS
    from .idp import IdP

_T = TypeVar("_T")

DOC = ROOT / "docs" / "idp-matrix.md"
BEGIN = "<!-- matrix:begin (generated: TIPD_WRITE_MATRIX=1 pytest tests/acceptance/test_idp_matrix.py) -->"
END = "<!-- matrix:end -->"

#: the lifetime of everything upstream (IdP access and id tokens, the Identity Center token, both STS
#: sessions): each stage is due for renewal LIFETIME - min(ROTATE, LIFETIME / 2) seconds after it was made
LIFETIME = 30
REFRESH = f"""
[refresh]
min_remaining = 8
rotate_remaining = 14
session_duration = {LIFETIME}
"""
#: how many IdP processes start at once (the scenarios themselves all run at the same time)
STARTING = threading.BoundedSemaphore(4)
USER = "alice"
USER_EMAIL = "alice@example.com"
USER_ID = "9067e4a2-alice"
STAGES = ("idp-tokens", "bootstrap-session", "identity-center-token", "identity-enhanced-session")
BOTO3_WHOAMI = ("python -c 'import boto3, json; "
                "print(json.dumps(boto3.client(\"sts\").get_caller_identity()))'")
USER_CODE = re.compile(r"enter the code:\s+(\S+)")
OK = "ok"


def app_arn(index: int) -> str:
    """One Identity Center application per persona, so each has its own trusted token issuer."""
    return f"arn:aws:sso::{ACCOUNT}:application/ssoins-1111222233334444/apl-{index + 0xa000:016x}"


# ------------------------------------------------------------------------------------------------------
# what the matrix expects of each persona
# ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Expect:
    """The matrix's expectations of one row: a persona (tests/support/personas.py), perhaps with switches
    changed to another setting of the same IdP. What the IdP offers (device flow, revocation, a client secret,
    a fixed redirect port) comes from the running persona itself; this says what tipd must make of it."""

    #: the persona; the row's name when empty
    persona: str = ""
    #: switches that differ from the persona's (another setting at the same IdP)
    switches: dict[str, Any] = field(default_factory=dict)
    #: the `tipctl configure --provider` preset; "oidc" when the tree has no preset of that name
    preset: str = "oidc"
    #: the trusted token issuer's ClaimAttributePath, and the value of that claim for the user
    claim: str = "email"
    claim_value: str = USER_EMAIL
    #: where the IdP cannot work in the setting the row emulates: the words tipd's sentence must hold (the
    #: setting to change at the IdP)
    sentence: str | None = None
    #: the Notes column
    note: str = ""
    #: extra `tipctl configure` flags
    configure: tuple[str, ...] = ()


RETURN_ID_TOKEN = "'Return ID Token On Refresh Grant'"
#: every row of the table, in its order: each persona of the issue, and a setting of an IdP that cannot
#: work (the persona's default) next to the one that does
EXPECT: dict[str, Expect] = {
    "default": Expect(note="npm oidc-provider as tests/idp always ran it: public client, any 127.0.0.1 port, "
                           "rotating refresh tokens whose reuse revokes the grant"),
    "default+aud-array": Expect(
        persona="default", switches={"id_token_aud": "array"},
        note="id_tokens with aud as an array and azp (OIDC Core 2 allows it): tipd checks azp, the trusted token "
             "issuer finds its audience in the array"),
    "okta": Expect(preset="okta", note="custom authorization server: persistent refresh tokens (returned only "
                                       "with offline_access), JWT access tokens, exact redirect port"),
    "okta+no-refresh-token-grant": Expect(
        persona="okta", switches={"drop_scopes": ["offline_access"]}, preset="okta",
        sentence="the app must allow the refresh_token grant",
        note="an app without the Refresh Token grant type: offline_access left out of the grant, no refresh token"),
    "okta-org": Expect(preset="okta", note="org authorization server: 90-day refresh tokens, exact redirect port"),
    "entra": Expect(preset="entra", claim="sub", claim_value=USER,
                    note="refresh scope required; no email claim (the trusted token issuer maps `sub`); "
                         "http://localhost redirect; old refresh tokens stay valid; no revocation endpoint"),
    "cognito": Expect(preset="cognito", note="offline_access refused (a refresh token comes anyway); refresh "
                                             "returns no new refresh token; http://localhost, exact port"),
    "keycloak": Expect(preset="keycloak", note="a refresh token with every grant, a new one on every refresh "
                                               "(old ones stay valid)"),
    "keycloak+es256": Expect(
        persona="keycloak", switches={"signing_alg": "ES256"}, preset="keycloak",
        note="a realm whose active signing key is ES256: tipd and the trusted token issuer verify it"),
    "auth0": Expect(preset="auth0", note="issuer with a trailing slash, compared byte for byte; non-rotating "
                                         "refresh tokens; exact redirect port"),
    "pingfederate": Expect(preset="pingfederate", sentence=RETURN_ID_TOKEN,
                           note="its default: no id_token on a refresh grant, opaque access tokens"),
    "pingfederate+id-token-on-refresh": Expect(
        persona="pingfederate", switches={"refresh_id_token": True}, preset="pingfederate",
        note="with 'Return ID Token On Refresh Grant' set on the OpenID Connect policy"),
    "pingfederate+jwt-access-token": Expect(
        persona="pingfederate", switches={"access_token_format": "jwt"}, preset="pingfederate",
        configure=("--exchange-token", "access_token"), claim="sub", claim_value=USER,
        note="JWT access tokens (a JWT access token manager) exchanged instead (exchange_token = \"access_token\"; "
             "the trusted token issuer maps `sub`): no id_token needed on a refresh"),
    "pingone": Expect(preset="pingone", note="refresh tokens bound to the IdP session; JWT access tokens"),
    "google": Expect(preset="google", note="client secret (stored like the refresh token); refresh token only "
                                           "with access_type=offline; device flow says verification_url"),
    "onelogin": Expect(preset="onelogin", note="rotating refresh tokens; exact redirect port"),
    "jumpcloud": Expect(preset="jumpcloud", note="issuer with a trailing slash; exact redirect port; no "
                                                 "revocation endpoint"),
}
PERSONAS = tuple(EXPECT)


# ------------------------------------------------------------------------------------------------------
# results
# ------------------------------------------------------------------------------------------------------
@dataclass
class Result:
    persona: str
    preset: str = ""
    browser: str = "not run"
    device: str = "not run"
    renewals: str = "not run"
    restart: str = "not run"
    logout: str = "not run"
    notes: str = ""
    #: why the scenario stopped early (a failure), with the evidence; empty when it ran to its end
    failure: str = ""
    skipped: str = ""
    seconds: float = 0.0
    log: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failure and not self.skipped


class StepFailed(Exception):
    """A step did not do what the matrix expects: the message says what happened instead; `sentence` is
    what tipd said when it asked for a sign-in."""

    def __init__(self, message: str, sentence: str | None = None) -> None:
        super().__init__(message)
        self.sentence = sentence


def render_table(results: list[Result]) -> str:
    """The markdown table of docs/idp-matrix.md (stable from run to run: no timings, no ports)."""
    head = ["Persona", "Preset", "Sign-in: browser", "Sign-in: device", "Renewals (every stage)", "Restart",
            "Logout", "Notes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in results:
        cells = [f"`{r.persona}`", f"`{r.preset}`" if r.preset else "", r.browser, r.device, r.renewals, r.restart,
                 r.logout, r.notes]
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def splice(page: str, table: str) -> str:
    """The page with the text between the markers replaced by `table`."""
    start, end = page.index(BEGIN) + len(BEGIN), page.index(END)
    return page[:start] + "\n" + table + page[end:]


def documented_table(page: str) -> str:
    start, end = page.index(BEGIN) + len(BEGIN), page.index(END)
    return page[start:end].strip("\n") + "\n"


# ------------------------------------------------------------------------------------------------------
# the persona's IdP
# ------------------------------------------------------------------------------------------------------
@dataclass
class PersonaInfo:
    """What the scenario needs to know of the running persona (tests/support/idp.py has it all; the default
    IdP of a tree without personas has none of it)."""

    issuer: str
    client_id: str
    client_secret: str | None = None
    client_auth: str = "none"
    redirect_port: int | None = None
    redirect_host: str = "127.0.0.1"
    device: bool = True
    revocation: str = "enabled"

    @classmethod
    def of(cls, idp: IdP) -> PersonaInfo:
        info = cls(idp.issuer, idp.client_id)
        for attr, name in (("client_secret", "client_secret"), ("client_auth", "client_auth"),
                           ("redirect_port", "redirect_port"), ("redirect_host", "redirect_host"),
                           ("device", "device_flow"), ("revocation", "revocation")):
            value = getattr(idp, name, None)
            if value is not None:
                setattr(info, attr, value)
        return info


def start_idp(row: str, expect: Expect) -> IdP:
    """The row's IdP, started with short lifetimes. LookupError: this tree has no such persona yet."""
    from .idp import IdP

    # a generous start-up deadline: a dozen node processes load oidc-provider at once on a loaded machine
    persona = expect.persona or row
    if persona == "default" and not expect.switches:
        return IdP(access_ttl=LIFETIME, id_ttl=LIFETIME, startup_timeout=120.0)
    try:
        from .personas import PERSONAS as KNOWN  # the "personas" helper's module
    except ImportError:
        raise LookupError("tests/support/personas.py is not in this tree yet") from None
    if persona not in KNOWN:
        raise LookupError(f"tests/support/personas.py has no persona {persona!r} yet")
    return IdP(persona=persona, switches=dict(expect.switches), access_ttl=LIFETIME, id_ttl=LIFETIME,
               startup_timeout=120.0)


# ------------------------------------------------------------------------------------------------------
# one persona's scenario
# ------------------------------------------------------------------------------------------------------
class MatrixTipd(Tipd):
    """tipd, waited for through its control socket in-process (twelve of these start at once: spawning a
    tipctl per readiness poll would cost more than the daemons)."""

    def start(self, timeout: float = 60) -> MatrixTipd:
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([str(BIN / "tipd"), "--config", str(self.home.config_file), "--log-level",
                                      "DEBUG"], env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait(lambda: _try_status(self.home) is not None, timeout, "tipd to answer on its control socket",
                 self.proc)
        except StepFailed as e:
            raise StepFailed(f"{e}; tipd said: {self.output()[-1500:]}") from None
        return self

    def stop(self, timeout: float = 60) -> int:  # a loaded machine: a clean shutdown may take a while
        return super().stop(timeout)


def _try_status(home: Home) -> dict[str, Any] | None:
    from tipd.cli.control import ControlClient
    from tipd.errors import TipdError

    try:
        status: dict[str, Any] = ControlClient(home.socket, timeout=10).request("GET", "/v1/status")
        return status
    except TipdError:
        return None


def wait(predicate: Callable[[], _T | None], timeout: float, what: str, proc: subprocess.Popen[Any] | None = None,
         interval: float = 0.2) -> _T:
    """stack.wait_for, failing the scenario's step (so its row says what it waited for) rather than the test."""
    try:
        return wait_for(predicate, timeout, what, proc, interval)
    except (TimeoutError, RuntimeError) as e:
        raise StepFailed(f"waiting for {what}: {e}") from None


class Scenario:
    def __init__(self, name: str, index: int, fake: FakeAWS, expect: Expect) -> None:
        self.name = name
        self.index = index
        self.fake = fake
        self.expect = expect
        self.result = Result(name)
        self.idp: IdP | None = None
        self._home: Home | None = None
        self._tipd: MatrixTipd | None = None
        self._info: PersonaInfo | None = None
        self.app = app_arn(index)

    # what `setup` makes (and `browser_login` starts), for the steps after it; `teardown` cleans up what exists
    @property
    def home(self) -> Home:
        if self._home is None:
            raise RuntimeError("the scenario is not set up")
        return self._home

    @property
    def info(self) -> PersonaInfo:
        if self._info is None:
            raise RuntimeError("the scenario is not set up")
        return self._info

    @property
    def tipd(self) -> MatrixTipd:
        if self._tipd is None:
            raise RuntimeError("tipd is not started")
        return self._tipd

    # -- helpers --------------------------------------------------------------------------------
    def note(self, text: str) -> None:
        self.result.log.append(f"{time.strftime('%H:%M:%S')} {text}")

    def profile(self) -> dict[str, Any]:
        st = _try_status(self.home)
        if st is None:
            raise StepFailed("tipd does not answer on its control socket")
        profile: dict[str, Any] = st["profiles"][0]
        return profile

    def state_is(self, *states: str) -> dict[str, Any] | None:
        """The profile's status when its state is one of `states`; a login-required state that was not
        asked for fails the step at once, with tipd's sentence."""
        p = self.profile()
        if p["state"] in states:
            return p
        if p["state"] == "login-required":
            raise StepFailed(f"tipd asks for a sign-in: {p['last_error']}", sentence=p["last_error"])
        return None

    def whoami(self) -> None:
        r = subprocess.run(["bash", "-c", f'set -e; eval "$(tipctl env)"; {BOTO3_WHOAMI}'], env=self.home.env,
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise StepFailed(f"boto3 got no credentials: {r.stderr.strip()[-600:]}")
        arn = json.loads(r.stdout)["Arn"]
        want = f"assumed-role/{ENHANCED_ROLE.split('/')[-1]}/tip-{USER_ID}"
        if not arn.endswith(want):
            raise StepFailed(f"boto3 got credentials of {arn}, not of the identity-enhanced role of {USER}")

    def start_tipd(self) -> MatrixTipd:
        """tipd on the home's port; on another one when something took that port meanwhile (free_port picks
        below the kernel's ephemeral range, so only a process outside the test stack could have)."""
        from .net import free_port

        for _ in range(3):
            tipd = MatrixTipd(self.home)
            try:
                return tipd.start()
            except StepFailed:
                if "Address already in use" not in tipd.output() and "address already in use" not in tipd.output():
                    raise
                self.note(f"port {self.home.port} was taken meanwhile: another one")
                self.home.port = free_port()
                text = self.home.config_file.read_text()
                self.home.config_file.write_text(re.sub(r"(?m)^port = \d+$", f"port = {self.home.port}", text, count=1))
        raise StepFailed("tipd found its port taken three times")

    def browser_visits(self) -> int:
        log = self.home.browser_log
        return len(log.read_text().splitlines()) if log.exists() else 0

    def stored_refresh_token(self) -> str | None:
        f = self.home.state_dir / "tokens" / "work.json"
        try:
            token: str | None = json.loads(f.read_text()).get("refresh_token")
            return token
        except (OSError, ValueError):
            return None

    # -- the steps ------------------------------------------------------------------------------
    def setup(self) -> None:
        from .aws import AppConfig

        with STARTING:  # a few at a time: each start-up is a burst of CPU
            self.idp = start_idp(self.name, self.expect)
        self._info = PersonaInfo.of(self.idp)
        self.fake.config.applications[self.app] = AppConfig(
            issuer_url=self.info.issuer, audiences=[self.info.client_id], claim=self.expect.claim,
            access_token_ttl=LIFETIME)
        self._home = Home(self.info.issuer, self.info.client_id, self.fake.url, app_arn=self.app)
        self.home.config_file.write_text(f"[server]\nport = {self.home.port}\n{REFRESH}")

    def configure(self) -> None:
        from tipd.profiles import PROVIDERS

        preset = self.expect.preset if self.expect.preset in PROVIDERS else "oidc"
        self.result.preset = preset
        args = ["configure", "--profile", "work", "--default", "--provider", preset, "--issuer", self.info.issuer,
                "--client-id", self.info.client_id, "--application-arn", self.app, "--oidc-role-arn", OIDC_ROLE,
                "--identity-enhanced-role-arn", ENHANCED_ROLE, "--region", REGION, *self.expect.configure]
        if self.info.redirect_port:
            args += ["--redirect-port", str(self.info.redirect_port)]
        if self.info.redirect_host != "127.0.0.1":
            args += ["--redirect-host", self.info.redirect_host]
        secret = None
        if self.info.client_secret:  # as a person would paste it: on stdin, never in argv
            args.append("--client-secret-stdin")
            secret = self.info.client_secret + "\n"
        r = subprocess.run([str(BIN / "tipctl"), *args], env=self.home.env, input=secret, capture_output=True,
                           text=True, timeout=120)
        if r.returncode != 0:
            raise StepFailed(f"tipctl configure --provider {preset} failed: {r.stderr.strip()}")
        if secret and self.info.client_secret and self.info.client_secret in self.home.config_file.read_text():
            raise StepFailed("the client secret was written to the config file")
        self.note(f"configured: {self.home.config_file.read_text()}")

    def browser_login(self) -> None:
        self._tipd = self.start_tipd()
        r = tipctl(self.home, "login", "--force", "--json", "--timeout", "90", check=False, timeout=180)
        if r.returncode != 0:
            said = [line.removeprefix("tipctl: ") for line in r.stderr.splitlines() if line.startswith("tipctl: ")]
            raise StepFailed(f"tipctl login failed: {r.stderr.strip()[-600:]}", sentence=said[-1] if said else None)
        p = self.state_is("fresh")
        if p is None:
            raise StepFailed(f"after the sign-in the profile is {self.profile()['state']}, not fresh")
        self.whoami()

    def renewals(self) -> None:
        """Every stage renews by itself twice; no state on the way is login-required. Twice, because the first
        round can still run on the sign-in's own JWT (it lives one LIFETIME): only the second needs what the
        IdP's refresh grant returns, which is where IdPs differ (PingFederate's default sends no id_token)."""
        base = {k: v["refreshes"] for k, v in self.profile()["stages"].items()}
        creds_before = self.profile()["credentials_expire"]

        def renewed() -> bool:
            p = self.state_is("fresh", "refreshing", "degraded")
            if p is None:
                return False
            return all(p["stages"][k]["refreshes"] >= base[k] + 2 for k in STAGES) and \
                p["credentials_expire"] != creds_before and p["state"] == "fresh"

        wait(renewed, LIFETIME * 4, "every stage to renew itself", self.tipd.proc, interval=0.5)
        self.whoami()

    def restart(self) -> None:
        visits = self.browser_visits()
        rc = self.tipd.stop()
        if rc != 0:
            raise StepFailed(f"tipd exited with {rc} on SIGTERM")
        self._tipd = self.start_tipd()
        wait(lambda: self.state_is("fresh"), LIFETIME * 2, "fresh credentials after the restart", self.tipd.proc)
        self.whoami()
        if self.browser_visits() != visits:
            raise StepFailed("the restart needed a browser sign-in")

    def device_login(self) -> None:
        from .device import approve_device_code

        out, err = self.home.dir / "device.out", self.home.dir / "device.err"
        with open(out, "wb") as o, open(err, "wb") as e:
            proc = subprocess.Popen([str(BIN / "tipctl"), "login", "--force", "--device", "--json"], env=self.home.env,
                                    stdout=o, stderr=e)
        try:
            code = wait(lambda: (m := USER_CODE.search(err.read_text())) and str(m.group(1)), 60,
                        "the user code on tipctl's stderr", proc)
            # the verification page tipctl shows (…/device), as a person would open it
            shown = re.search(r"(https?://\S+?)/device\b", err.read_text())
            approve_device_code(shown.group(1) if shown else self.info.issuer.rstrip("/"), code, login=USER)
            rc = proc.wait(120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if rc != 0:
            raise StepFailed(f"tipctl login --device exited {rc}: {err.read_text().strip()[-600:]}")
        if self.state_is("fresh") is None:
            raise StepFailed(f"after the device sign-in the profile is {self.profile()['state']}")
        self.whoami()

    def logout(self) -> str:
        token = self.stored_refresh_token()
        r = tipctl(self.home, "logout", "--json", check=False)
        if r.returncode != 0:
            raise StepFailed(f"tipctl logout failed: {r.stderr.strip()}")
        answer = json.loads(r.stdout)
        revocation = answer.get("revocation") or ("revoked" if answer.get("revoked_at_idp") else "unsupported")
        if self.profile()["state"] != "signed-out":
            raise StepFailed(f"after logout the profile is {self.profile()['state']}")
        if (self.home.state_dir / "tokens" / "work.json").exists():
            raise StepFailed("the refresh token is still in the store after logout")
        expected = {"enabled": "revoked", "absent": "unsupported", "error": "refused"}[self.info.revocation]
        if revocation != expected:
            raise StepFailed(f"logout says revocation {revocation!r}; the IdP's revocation is "
                             f"{self.info.revocation}, so {expected!r} was expected")
        if revocation == "unsupported":
            return "forgotten; the IdP has no revocation endpoint (tipd says so)"
        if revocation == "refused":
            return "forgotten; the IdP refused the revocation (tipd says so)"
        if token is None:
            raise StepFailed("no refresh token was in the file store to check its revocation")
        error = self.refresh_error(token)
        if error != "invalid_grant":
            raise StepFailed(f"the revoked refresh token still refreshes at the IdP (answer: {error})")
        return "revoked"

    def refresh_error(self, token: str) -> str | None:
        """Try the refresh token at the IdP's token endpoint, as the client; the OAuth error, or None if it works."""
        doc = json.loads(urllib.request.urlopen(
            self.info.issuer.rstrip("/") + "/.well-known/openid-configuration", timeout=15).read())
        form = {"grant_type": "refresh_token", "refresh_token": token, "client_id": self.info.client_id}
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if self.info.client_secret and self.info.client_auth != "client_secret_basic":
            form["client_secret"] = self.info.client_secret
        elif self.info.client_secret:
            basic = b64encode(f"{urllib.parse.quote(self.info.client_id)}:"
                              f"{urllib.parse.quote(self.info.client_secret)}".encode()).decode()
            headers["Authorization"] = f"Basic {basic}"
        req = urllib.request.Request(doc["token_endpoint"], urllib.parse.urlencode(form).encode(), headers)
        try:
            urllib.request.urlopen(req, timeout=15).read()
            return None
        except urllib.error.HTTPError as e:
            with e:
                try:
                    error: str | None = json.loads(e.read()).get("error")
                    return error
                except ValueError:
                    return f"HTTP {e.code}"

    # -- the whole thing ------------------------------------------------------------------------
    def run(self) -> Result:
        started = time.monotonic()
        r = self.result
        r.preset = self.expect.preset
        try:
            try:
                self.setup()
            except LookupError as e:
                r.skipped = str(e)
                r.notes = "not in the test IdP yet"
                return r
            self.configure()
            steps: list[tuple[str, Callable[[], Any]]] = [
                ("browser", self.browser_login), ("renewals", self.renewals), ("restart", self.restart)]
            if self.info.device:
                steps.append(("device", self.device_login))
            else:
                r.device = "— (the IdP has no device flow)"
            steps.append(("logout", self.logout))
            for column, step in steps:
                self.note(f"step {column}")
                try:
                    outcome = step()
                except StepFailed as e:
                    if self.expect.sentence and e.sentence and self.expect.sentence in e.sentence:
                        setattr(r, column, "stops: tipd names the IdP setting")
                        for later in steps[[c for c, _ in steps].index(column) + 1:]:
                            setattr(r, later[0], "—")
                        r.notes = f"{self.expect.note}. tipd: “{e.sentence}”"
                        return r
                    setattr(r, column, "FAILED")
                    r.failure = f"{column}: {e}"
                    return r
                setattr(r, column, outcome if isinstance(outcome, str) else OK)
            if self.expect.sentence:
                r.failure = f"the scenario ran to its end; the matrix expected the sentence {self.expect.sentence!r}"
                return r
            r.notes = self.expect.note
        except Exception as e:  # a harness error: report it against the persona, keep the others running
            r.failure = f"harness error: {type(e).__name__}: {e}\n{traceback.format_exc()}"
        finally:
            self.teardown()
            r.seconds = round(time.monotonic() - started, 1)
        return r

    def teardown(self) -> None:
        r = self.result
        if self._home is not None and r.failure and self._home.browser_log.exists():
            r.log.append("browser log:\n" + self._home.browser_log.read_text()[-3000:])
        if self._tipd is not None:
            if r.failure:
                r.log.append("tipd log (tail):\n" + self._tipd.output()[-6000:])
            with contextlib.suppress(Exception):  # cleanup must go on
                self._tipd.stop()
        if self.idp is not None:
            if r.failure:
                r.log.append("IdP stderr (tail):\n" + self.idp.stderr()[-3000:])
            self.idp.stop()
        if self._home is not None:
            self._home.cleanup()
        self.fake.config.applications.pop(self.app, None)


def run_matrix(fake: FakeAWS, names: tuple[str, ...] = PERSONAS) -> dict[str, Result]:
    """Every persona's scenario at once, one thread each; the results by persona."""
    users = {EXPECT[n].claim_value for n in names} - set(fake.config.users)
    fake.config.users.update({u: USER_ID for u in users})  # the claim values the rows' issuers map
    try:
        with ThreadPoolExecutor(max_workers=len(names), thread_name_prefix="matrix") as pool:
            futures = {n: pool.submit(Scenario(n, i, fake, EXPECT[n]).run) for i, n in enumerate(names)}
            return {n: f.result() for n, f in futures.items()}
    finally:
        for u in users:
            fake.config.users.pop(u, None)


def selected() -> tuple[str, ...]:
    """TIPD_MATRIX=okta,entra runs only those personas (while working on one; the docs check is then skipped)."""
    only = [n.strip() for n in os.environ.get("TIPD_MATRIX", "").split(",") if n.strip()]
    unknown = sorted(set(only) - set(PERSONAS))
    if unknown:
        raise ValueError(f"TIPD_MATRIX names unknown personas: {', '.join(unknown)}")
    return tuple(n for n in PERSONAS if not only or n in only)


