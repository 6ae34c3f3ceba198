"""`tipctl configure` and `tipctl profiles` as processes, against the real test IdP (its discovery document),
with the real tipd loading what configure saved, and a sign-in to the configured profile end to end."""
from __future__ import annotations

import io
import json
import signal
import subprocess
import tomllib

import pytest

from tests.support.net import free_port
from tests.support.stack import APP_ARN, BIN, ENHANCED_ROLE, OIDC_ROLE, REGION, Tipd, tipctl

pytestmark = pytest.mark.acceptance


def aws_flags() -> list[str]:
    return ["--application-arn", APP_ARN, "--oidc-role-arn", OIDC_ROLE, "--identity-enhanced-role-arn", ENHANCED_ROLE,
            "--region", REGION]


def configure(home, name: str, issuer: str, client_id: str, *extra: str, check: bool = True):
    return tipctl(home, "configure", "--profile", name, "--provider", "oidc", "--issuer", issuer,
                  "--client-id", client_id, *aws_flags(), *extra, check=check)


def piped(home, answers: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    """`tipctl configure -i` with its answers on stdin, one per line (a person at a terminal, as a pipe)."""
    return subprocess.run([str(BIN / "tipctl"), "configure", "-i", *args], input="".join(a + "\n" for a in answers),
                          env=home.env, capture_output=True, text=True, timeout=60)


def test_a_configured_profile_is_loaded_by_tipd_and_signs_in(home, idp, fake):
    home.config_file.write_text("# my notes about this file: keep them\n" + home.config_file.read_text())
    before = home.config_file.read_text()
    r = configure(home, "second", idp.issuer, idp.client_id)
    assert f"Saved profile second to {home.config_file}." in r.stdout
    assert "start tipd" in r.stdout and "`tipctl login second`" in r.stdout
    after = home.config_file.read_text()
    # `work`, the only profile, was the default by itself: it stays so, now written down
    assert after.replace('default_profile = "work"\n\n', "", 1).startswith(before)
    data = tomllib.loads(after)
    assert data["default_profile"] == "work"
    assert data["profiles"]["second"] == {
        "provider": "oidc", "issuer": idp.issuer, "client_id": idp.client_id,
        "scopes": ["openid", "email", "offline_access"], "redirect_port": 0, "application_arn": APP_ARN,
        "oidc_role_arn": OIDC_ROLE, "identity_enhanced_role_arn": ENHANCED_ROLE, "region": REGION}

    tipd = Tipd(home).start()
    try:
        listed = json.loads(tipctl(home, "profiles", "--json").stdout)
        assert listed["tipd_running"] and listed["default_profile"] == "work"
        assert [(p["profile"], p["default"], p["state"]) for p in listed["profiles"]] == [
            ("work", True, "signed-out"), ("second", False, "signed-out")]
        r = tipctl(home, "login", "second")
        assert "Signed in to second as alice@example.com" in r.stdout, r.stdout + r.stderr
        row = [p for p in json.loads(tipctl(home, "profiles", "--json").stdout)["profiles"] if p["profile"] == "second"]
        assert row[0]["state"] == "fresh" and row[0]["user"] == "alice@example.com"
        text = tipctl(home, "profiles").stdout
        assert "STATE" in text and "alice@example.com" in text
    finally:
        assert tipd.stop() == 0


def test_configure_while_tipd_runs_says_what_to_restart(home, tipd, idp):
    r = configure(home, "second", idp.issuer, idp.client_id)
    assert "tipd is running without the profile as saved: run `tipctl reload` to load it" in r.stdout
    r = configure(home, "second", idp.issuer, idp.client_id, "--redirect-port", "8400")
    assert "`tipctl reload`" in r.stdout and "`tipctl login second`" in r.stdout
    out = json.loads(configure(home, "second", idp.issuer, idp.client_id, "--json").stdout)
    assert out["tipd_running"] and out["restart_needed"] and out["settings"]["redirect_port"] == 8400
    # a profile saved just as the running tipd has it: nothing to restart
    r = tipctl(home, "configure", "--profile", "work", "--client-id", idp.client_id)
    assert r.stdout.splitlines()[-1] == "Next: `tipctl login work`."
    assert json.loads(tipctl(home, "configure", "--profile", "work", "--json").stdout)["restart_needed"] is False


def test_interactive_asks_again_with_the_reason_and_checks_the_issuer(home, idp):
    closed = f"http://127.0.0.1:{free_port()}"
    before = home.config_file.read_text()
    r = piped(home, ["piped", "",        # profile name, provider (Enter: oidc)
                     closed, idp.issuer,  # an issuer nothing answers at, then the real one
                     idp.client_id, "", "",  # client id, scopes and redirect port as proposed
                     APP_ARN, OIDC_ROLE, ENHANCED_ROLE,
                     "Europe", REGION,    # a wrong region, asked again
                     "", ""])             # not the default; save (Enter: yes)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert f"discovery at {closed}/.well-known/openid-configuration: cannot reach the IdP" in r.stderr
    assert "found its discovery document" in r.stderr
    assert r.stderr.count("Identity Center region: ") == 2
    assert "does not look right (expected a region such as eu-west-1)" in r.stderr
    assert "Scopes [openid email offline_access]: " in r.stderr and "Make piped the default profile" in r.stderr
    assert f"Saved profile piped to {home.config_file}." in r.stdout
    after = home.config_file.read_text()
    assert after.replace('default_profile = "work"\n\n', "", 1).startswith(before)
    prof = tomllib.loads(after)["profiles"]["piped"]
    assert prof["issuer"] == idp.issuer and prof["region"] == REGION and prof["client_id"] == idp.client_id

    # again: the existing values are the defaults, Enter keeps them
    r = piped(home, ["piped"] + [""] * 9 + ["y", ""])
    assert r.returncode == 0, r.stderr
    assert f"Issuer URL [{idp.issuer}]: " in r.stderr and f"Identity Center region [{REGION}]: " in r.stderr
    data = tomllib.loads(home.config_file.read_text())
    assert data["profiles"]["piped"] == prof and data["default_profile"] == "piped"


def test_end_of_input_or_ctrl_c_cancels_and_writes_nothing(home, idp):
    before = home.config_file.read_bytes()
    r = piped(home, ["piped", "oidc"])  # the input ends at the issuer question
    assert r.returncode == 130 and "cancelled; nothing was saved" in r.stderr and "Traceback" not in r.stderr
    r = piped(home, ["piped", "oidc", idp.issuer, idp.client_id, "", "", APP_ARN, OIDC_ROLE, ENHANCED_ROLE, REGION,
                     "", "n"])  # all given, then "no" to saving
    assert r.returncode == 130 and "cancelled; nothing was saved" in r.stderr
    assert home.config_file.read_bytes() == before

    proc = subprocess.Popen([str(BIN / "tipctl"), "configure", "-i"], env=home.env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        seen = b""
        while b"Profile name" not in seen:  # blocks until the question is written: no sleep needed
            assert isinstance(proc.stderr, io.BufferedReader)  # a pipe, buffered (read1: what is there)
            chunk = proc.stderr.read1(4096)
            assert chunk, "tipctl exited before asking"
            seen += chunk
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130 and b"cancelled; nothing was saved" in err and b"Traceback" not in err
    assert home.config_file.read_bytes() == before


def test_a_failed_discovery_names_the_url_and_why_and_writes_nothing(home, idp):
    before = home.config_file.read_bytes()
    closed = f"http://127.0.0.1:{free_port()}"
    r = configure(home, "second", closed, idp.client_id, check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"tipctl: the issuer check failed: discovery at {closed}/.well-known/"
                               "openid-configuration: cannot reach the IdP (")
    assert "Nothing was saved" in r.stderr and "--no-check" in r.stderr
    # an IdP that publishes another issuer than the one given
    r = configure(home, "second", idp.issuer + "/", idp.client_id, check=False)
    assert r.returncode == 1 and f"the document names issuer '{idp.issuer}'" in r.stderr
    assert home.config_file.read_bytes() == before
    # offline setup: saved without the check
    r = configure(home, "second", closed, idp.client_id, "--no-check")
    assert tomllib.loads(home.config_file.read_text())["profiles"]["second"]["issuer"] == closed


def test_missing_values_from_files_and_dry_run(home, idp, tmp_path):
    before = home.config_file.read_bytes()
    r = tipctl(home, "configure", "--profile", "x", "--provider", "okta", "--region", "Europe", check=False)
    assert r.returncode == 1 and r.stderr.count("tipctl:") == 1
    for flag in ("--org-url", "--client-id", "--application-arn", "--oidc-role-arn", "--identity-enhanced-role-arn"):
        assert flag in r.stderr
    assert "region: does not look right" in r.stderr

    r = subprocess.run([str(BIN / "tipctl"), "configure"], env=home.env, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "--profile NAME" in r.stderr  # no terminal to ask in

    spec = {"profile": "fromfile", "provider": "oidc", "issuer": idp.issuer, "client_id": idp.client_id,
            "application_arn": APP_ARN, "oidc_role_arn": OIDC_ROLE, "identity_enhanced_role_arn": ENHANCED_ROLE,
            "region": REGION, "scopes": "openid email offline_access", "default": True}
    f = tmp_path / "fromfile.json"
    f.write_text(json.dumps(spec))
    r = tipctl(home, "configure", "--from", str(f), "--dry-run")
    assert r.stdout.startswith('default_profile = "fromfile"\n\n[profiles.fromfile]\n')
    assert tomllib.loads(r.stdout)["profiles"]["fromfile"]["issuer"] == idp.issuer
    assert home.config_file.read_bytes() == before

    t = tmp_path / "fromfile.toml"
    t.write_text("".join(f'{k} = {json.dumps(v)}\n' for k, v in spec.items() if k != "default"))
    r = tipctl(home, "configure", "--from", str(t), "--redirect-port", "8400")  # a flag overrides the file
    saved = tomllib.loads(home.config_file.read_text())
    assert saved["profiles"]["fromfile"]["redirect_port"] == 8400 and saved["default_profile"] == "work"


def test_profiles_and_show_work_without_the_daemon(home, idp):
    r = tipctl(home, "profiles")
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["PROFILE", "PROVIDER", "ISSUER", "REGION"]
    assert lines[1].split() == ["*", "work", "oidc", idp.issuer, REGION]
    assert "tipd is not running" in r.stdout
    listed = json.loads(tipctl(home, "profiles", "--json").stdout)
    assert listed["tipd_running"] is False and listed["config_file"] == str(home.config_file)
    assert listed["profiles"] == [{"profile": "work", "default": True, "provider": "oidc", "issuer": idp.issuer,
                                   "region": REGION, "client_id": idp.client_id, "state": None, "user": None}]

    shown = tipctl(home, "configure", "--show").stdout
    assert shown.startswith(f"# {home.config_file}\n")
    cfg = tomllib.loads(shown)  # TOML, with the defaults filled in
    assert cfg["server"]["port"] == home.port and cfg["refresh"]["min_remaining"] == 1200
    assert cfg["profiles"]["work"]["scopes"] == ["openid", "email", "offline_access"]
    assert cfg["profiles"]["work"]["provider"] == "oidc"
    data = json.loads(tipctl(home, "configure", "--show", "--json").stdout)
    assert data["config"]["profiles"]["work"]["issuer"] == idp.issuer and data["exists"] is True


def test_a_client_secret_is_asked_without_showing_it_stored_apart_and_read_by_tipd(home):
    """Google's desktop apps have a secret its token endpoint requires: asked for (a pipe here; no echo in a
    terminal) or read from stdin, kept in the store (a 0600 file: the test home has no keyring), never in the
    config file or any output; tipd reads it, and a profile without one says how to set it."""
    secret = "GOCSPX-not-a-real-secret-1234"
    r = piped(home, ["g", "google", "1234-abc.apps.googleusercontent.com", "", "",  # client id, scopes, port
                     APP_ARN, OIDC_ROLE, ENHANCED_ROLE, REGION,
                     secret, "", ""], "--no-check")  # the secret; not the default; save
    assert r.returncode == 0, r.stderr
    assert "Client secret of 1234-abc.apps.googleusercontent.com" in r.stderr
    stored = home.state_dir / "tokens" / "g.client-secret"
    assert json.loads(stored.read_text())["client_secret"] == secret and stored.stat().st_mode & 0o777 == 0o600
    assert secret not in home.config_file.read_text() + r.stdout + r.stderr.replace(f"{secret}\n", "")
    prof = tomllib.loads(home.config_file.read_text())["profiles"]["g"]
    assert prof["issuer"] == "https://accounts.google.com" and "client_auth" not in prof  # the preset's default

    # flags: a new client id needs its own secret; it comes on stdin
    r = tipctl(home, "configure", "--profile", "g", "--client-id", "5678-def.apps.googleusercontent.com",
               "--no-check", check=False)
    assert r.returncode != 0 and "--client-secret-stdin" in r.stderr
    r = subprocess.run([str(BIN / "tipctl"), "configure", "--profile", "g", "--client-id",
                        "5678-def.apps.googleusercontent.com", "--no-check", "--client-secret-stdin"],
                       input=secret + "-2\n", env=home.env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(stored.read_text())["client_id"] == "5678-def.apps.googleusercontent.com"

    tipd = Tipd(home).start()
    try:
        rows = {p["profile"]: p for p in json.loads(tipctl(home, "status", "--json", check=False).stdout)["profiles"]}
        assert rows["g"]["state"] == "signed-out", rows["g"]  # the secret was found: nothing to fix
        stored.unlink()
    finally:
        tipd.stop()
    tipd = Tipd(home).start()
    try:
        rows = {p["profile"]: p for p in json.loads(tipctl(home, "status", "--json", check=False).stdout)["profiles"]}
        assert rows["g"]["state"] == "login-required" and "--client-secret-stdin" in rows["g"]["last_error"]
        assert rows["work"]["state"] == "signed-out"  # the other profile is not held up
        assert secret not in tipd.output()
    finally:
        tipd.stop()
