"""`tipctl` agrees with itself: --config on every command (before it or after it), "did you mean" for a
mistyped command or option, --version, `status PROFILE`, `configure --show --profile`, `cfn-template
--profile`. Through `tipd.cli.main.main`, as a user's command line; the daemon is not running."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from tipd import __version__
from tipd.cli.main import COMMANDS, main, parser

APP = "arn:aws:sso::111122223333:application/ssoins-1111222233334444/apl-aaaabbbbccccdddd"
CONFIG = f"""
default_profile = "work"
[server]
port = 9944
[profiles.work]
issuer = "https://dev-123.okta.com/oauth2/default"
client_id = "0oa1"
application_arn = "{APP}"
oidc_role_arn = "arn:aws:iam::111122223333:role/tip-oidc"
identity_enhanced_role_arn = "arn:aws:iam::111122223333:role/tip-enhanced"
region = "eu-west-1"
[profiles.home]
issuer = "https://home.example.com"
client_id = "home-client"
exchange_token = "access_token"
application_arn = "{APP}"
oidc_role_arn = "arn:aws:iam::111122223333:role/tip-oidc"
identity_enhanced_role_arn = "arn:aws:iam::111122223333:role/tip-enhanced"
region = "eu-west-1"
"""


@pytest.fixture
def user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user with no tipd running and no config at the usual place; returns a config file elsewhere."""
    for d in ("config", "state", "run"):
        (tmp_path / d).mkdir(mode=0o700)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.delenv("TIPD_CONFIG", raising=False)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))  # none yet: not this machine's own
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    path = tmp_path / "elsewhere.toml"
    path.write_text(CONFIG)
    path.chmod(0o600)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as e:  # argparse's usage errors and --version
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


Parsers = list[tuple[tuple[str, ...], argparse.ArgumentParser]]


def every_parser(p: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Parsers:
    out = [(path, p)]
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                out += every_parser(child, (*path, name))
    return out


def test_every_command_takes_config():
    """Today login, status, logout and credential-process did not: `tipctl login --config X` was an error."""
    parsers = every_parser(parser([]))
    assert {path[0] for path, _ in parsers if path} == {c.replace("_", "-") for c in COMMANDS}
    for path, p in parsers:
        assert any("--config" in a.option_strings for a in p._actions), path


@pytest.mark.parametrize("argv", [["--config", "{path}", "env", "--json"], ["env", "--config", "{path}", "--json"],
                                  ["env", "--json", "--config={path}"]])
def test_config_before_or_after_the_command_is_honoured(user, capsys, argv):
    code, out, err = run(capsys, *[a.format(path=user) for a in argv])
    assert code == 0, err
    assert json.loads(out)["AWS_CONTAINER_CREDENTIALS_FULL_URI"] == "http://127.0.0.1:9944/v1/credentials/work"


def test_status_reads_the_port_from_the_config_it_is_given(user, capsys, monkeypatch):
    """`tipctl status --config X` looks at X's port for a squatter (it used the default config only)."""
    import tipd.portowner

    asked: list[int] = []
    def listener_uids(port: int) -> set[int]:
        asked.append(port)
        return set()

    monkeypatch.setattr(tipd.portowner, "listener_uids", listener_uids)
    code, _, _ = run(capsys, "status", "--config", str(user))
    assert code == 3 and asked == [9944]


@pytest.mark.parametrize("argv, words", [
    (["stauts"], "did you mean 'status'?"),
    (["lgoin"], "did you mean 'login'?"),
    (["service", "instal"], "did you mean 'install'?"),
    (["status", "--jsn"], "unrecognized arguments: --jsn; did you mean --json?"),
    (["--config", "x", "env", "--imsd"], "did you mean --imds?"),
    (["login", "--no-browsr"], "did you mean --no-browser?"),
])
def test_a_mistyped_command_or_option_names_the_nearest_one(user, capsys, argv, words):
    code, _, err = run(capsys, *argv)
    assert code == 2 and words in err and "Traceback" not in err, err


@pytest.mark.parametrize("command", [["credential-process"], ["env", "--json"], ["status", "--json"], ["login"],
                                     ["logout", "--json"], ["diag"], ["console"]])
def test_profile_is_also_an_option_where_a_command_takes_it(user, capsys, command):
    """`credential-process --profile work` was a usage error while configure, cfn-template and s3ag spell it so:
    `--profile NAME` is the positional PROFILE by another name, on every command that takes one."""
    code, out, err = run(capsys, *command, "home", "--config", str(user))
    code_opt, out_opt, err_opt = run(capsys, *command, "--profile", "home", "--config", str(user))
    assert code_opt != 2 and "unrecognized" not in err_opt, err_opt
    assert (code_opt, out_opt) == (code, out)
    code, _, err = run(capsys, *command, "work", "--profile", "home", "--config", str(user))
    assert code == 2 and "name it once" in err


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out == f"tipctl {__version__}\n"


def test_env_with_a_config_tipd_would_refuse_prints_no_exports(user, capsys):
    """An unknown key in a profile: tipd refuses the file, so `tipctl env` says so (with the nearest key) and exits
    non-zero instead of printing exports for a daemon that will not start."""
    user.write_text(CONFIG.replace('client_id = "0oa1"', 'client_id = "0oa1"\nisuer = "x"'))
    code, out, err = run(capsys, "env", "--config", str(user))
    assert code != 0 and out == "", out
    assert "invalid configuration" in err and "did you mean 'issuer'?" in err and "Traceback" not in err, err


def test_env_notes_a_default_profile_of_the_aws_files_that_has_credentials_of_its_own(user, capsys, monkeypatch):
    """Every SDK takes `[default]`'s credentials (credentials file, then config) before the container endpoint:
    `tipctl env` says so on stderr, naming the file and the key (never a value); a default with only a region
    falls through to tipd and gets no note."""
    import os

    creds, config = Path(os.environ["AWS_SHARED_CREDENTIALS_FILE"]), Path(os.environ["AWS_CONFIG_FILE"])
    config.write_text("[default]\nregion = eu-west-1\n[profile dev]\nrole_arn = arn:aws:iam::1:role/x\n")
    code, out, err = run(capsys, "env", "--shell", "bash", "--config", str(user))
    assert code == 0 and "AWS_CONTAINER_CREDENTIALS_FULL_URI" in out and "default profile" not in err, err
    creds.write_text("[default]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = s3cr3t\n")
    code, out, err = run(capsys, "env", "--shell", "bash", "--config", str(user))
    assert code == 0 and "AWS_CONTAINER_CREDENTIALS_FULL_URI" in out
    assert f"the default profile in {creds} has credentials of its own (aws_access_key_id)" in err, err
    assert "AKIAEXAMPLE" not in err + out and "s3cr3t" not in err + out
    creds.unlink()
    config.write_text("[default]\nregion = eu-west-1\ncredential_process = /bin/other\n")
    _, _, err = run(capsys, "env", "--shell", "bash", "--config", str(user))
    assert f"the default profile in {config} has credentials of its own (credential_process)" in err, err


def test_status_json_of_an_unknown_profile_prints_a_json_error(user, capsys, monkeypatch):
    """`tipctl status NAME --json` for a profile tipd does not have: an object on stdout (as when tipd is down),
    the sentence on stderr, exit 1."""
    import tipd.cli.common

    class Client:
        def request(self, method: str, path: str) -> dict[str, object]:
            return {"state": "fresh", "profiles": [{"profile": "work", "state": "fresh"}]}

    monkeypatch.setattr(tipd.cli.common, "client", lambda **kw: Client())
    code, out, err = run(capsys, "status", "wrok", "--json", "--config", str(user))
    assert code == 1 and "did you mean 'work'" in err, (out, err)
    body = json.loads(out)
    assert body["code"] == "UnknownProfile" and "did you mean 'work'" in body["message"] and body["running"] is True


def test_status_of_a_profile_shows_only_that_one():
    from tipd.cli.status import only
    from tipd.errors import UnknownProfile

    status: dict[str, Any] = {"state": "login-required", "profiles": [{"profile": "work", "state": "fresh"},
                                                      {"profile": "home", "state": "login-required"}],
              "recent_clients": [{"profile": "home"}, {"profile": "work"}]}
    mine = only(status, "work")
    assert mine["profiles"] == [{"profile": "work", "state": "fresh"}] and mine["state"] == "fresh"
    assert mine["recent_clients"] == [{"profile": "work"}]
    assert only(status, None) is status
    with pytest.raises(UnknownProfile, match="did you mean 'work'"):
        only(status, "wrok")
    # an account profile: under its source, alone
    status["profiles"][0]["accounts"] = [{"profile": "prod", "state": "degraded"}, {"profile": "dev", "state": "fresh"}]
    mine = only(status, "prod")
    assert [p["profile"] for p in mine["profiles"]] == ["work"] and mine["state"] == "degraded"
    assert mine["profiles"][0]["accounts"] == [{"profile": "prod", "state": "degraded"}]


def test_configure_show_of_one_profile_and_the_effective_imds(user, capsys):
    code, out, err = run(capsys, "configure", "--show", "--profile", "home", "--config", str(user), "--json")
    assert code == 0, err
    assert list(json.loads(out)["config"]) == ["profiles"]
    assert list(json.loads(out)["config"]["profiles"]) == ["home"]
    code, out, _ = run(capsys, "configure", "--show", "--profile", "home", "--config", str(user))
    assert "[profiles.home]" in out and "[profiles.work]" not in out and "[server]" not in out
    code, out, _ = run(capsys, "configure", "--show", "--config", str(user))
    from tipd.server.peer import SUPPORTED

    assert f"imds = {'true' if SUPPORTED else 'false'}" in out and "imds: not set" not in out
    code, _, err = run(capsys, "configure", "--show", "--profile", "hom", "--config", str(user))
    assert code == 1 and "did you mean 'home'?" in err


def test_cfn_template_takes_issuer_and_audience_from_a_profile(user, capsys):
    code, out, err = run(capsys, "cfn-template", "--profile", "work", "--config", str(user), "--json")
    assert code == 0, err
    text = json.dumps(json.loads(out))
    assert "dev-123.okta.com/oauth2/default" in text and '"0oa1"' in text and APP in text
    # the access token's aud is the IdP's choice: it must be given
    code, _, err = run(capsys, "cfn-template", "--profile", "home", "--config", str(user))
    assert code == 1 and "give AUDIENCE" in err
    code, out, err = run(capsys, "cfn-template", "--profile", "home", "--config", str(user), "--json",
                         "https://home.example.com", "api://tipd")
    assert code == 0 and '"api://tipd"' in json.dumps(json.loads(out)), err
    code, _, err = run(capsys, "cfn-template")
    assert code == 1 and "give ISSUER and AUDIENCE, or take them from a tipd profile with --profile" in err


def test_login_reads_the_store_backend_from_the_config_it_is_given(user, tmp_path, monkeypatch):
    """The client secret is read from the [store] of --config: it was read from the default config's."""
    import asyncio

    import tipd.store
    from tests.support.keyrings import FileKeyring
    from tipd.cli.login import _stored_secret
    from tipd.config import load_config
    from tipd.configure.secret import save_secret
    from tipd.secret import Secret

    monkeypatch.setenv("TIPD_TEST_KEYRING_FILE", str(tmp_path / "keyring.json"))
    monkeypatch.setattr(tipd.store, "usable_keyring", FileKeyring)
    default = tmp_path / "config" / "tipd" / "config.toml"  # the usual place says "file", --config the keyring
    default.parent.mkdir(mode=0o700)
    default.write_text('[store]\nbackend = "file"\n')
    user.write_text(CONFIG.replace('exchange_token = "access_token"', 'client_auth = "client_secret_post"'))
    home = load_config(user)[0].idp_profile("home")
    save_secret({}, "home", home.issuer, home.client_id, Secret("s3cret"))
    assert "tipd/home#client-secret" in (tmp_path / "keyring.json").read_text()  # in the keyring only
    got = asyncio.run(_stored_secret("home", home, str(user)))
    assert got is not None and got.reveal() == "s3cret"


def test_logout_without_tipd_does_not_repeat_the_keyring_note(user, capsys, caplog, monkeypatch):
    """With no usable keyring, every `tipctl logout` (tipd down) warned that tokens are kept in files; logout
    keeps nothing, so it says nothing of it. Login and tipd still say it (tests/acceptance/test_keyring.py)."""
    import tipd.store

    monkeypatch.setattr(tipd.store, "usable_keyring", lambda: None)
    for _ in range(2):
        code, _, err = run(capsys, "logout", "--all", "--config", str(user))
        assert code == 0, err
    warned = [r for r in caplog.records if "no usable OS keyring" in r.getMessage() and r.levelno >= 30]
    assert not warned and "no usable OS keyring" not in err
    tipd.store.open_store("keyring", user.parent / "tokens")  # where tokens are kept, it is still said
    assert any("no usable OS keyring" in r.getMessage() and r.levelno >= 30 for r in caplog.records)


def test_profiles_lists_account_profiles_too(user, capsys):
    """`tipctl profiles` read `provider` and `issuer` of every profile: an account profile has neither."""
    user.write_text(CONFIG + '[profiles.prod]\nsource = "work"\naccount_id = "444455556666"\nrole_name = "ReadOnly"\n')
    code, out, err = run(capsys, "profiles", "--config", str(user))
    assert code == 0, err
    assert "account of work" in out and "444455556666/ReadOnly" in out
    code, out, _ = run(capsys, "profiles", "--config", str(user), "--json")
    rows = {r["profile"]: r for r in json.loads(out)["profiles"]}
    assert rows["prod"]["provider"] == "account of work" and rows["work"]["default"]


@pytest.mark.parametrize(("argv", "code"), [(["configure", "--show", "--json"], 0), (["profiles", "--json"], 0),
                                            (["status", "--json"], 3)])
def test_a_reader_that_stops_reading_is_no_traceback(user, argv, code):
    """`tipctl configure --show --json | head -1`: the pipe's reader is gone before tipctl writes (its read end
    closed before tipctl starts, so the case does not depend on timing)."""
    import os
    import subprocess
    import sys

    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "-m", "tipd.cli.main", "--config", str(user), *argv],
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)
    # the command's own exit code when the output was all written before the reader was found gone, else 0
    assert proc.stderr == "" and proc.returncode in (0, code)


@pytest.mark.parametrize("argv", [["status"], ["login"], ["logout", "--all", "--json"], ["reload"], ["rotate-token"],
                                  ["grant", "list"], ["credential-process"], ["accounts"]])
def test_tipd_not_running_is_exit_code_3_on_every_command(user, capsys, argv):
    """The same condition, the same exit code (only `tipctl status` said 3; the others said 1, as for any
    failure). logout forgets the stored sign-ins without tipd, so it is not an error there."""
    code, out, err = run(capsys, "--config", str(user), *argv)
    assert code == (0 if argv[0] == "logout" else 3), (out, err)
    assert "Traceback" not in err


def test_config_has_one_help_except_where_it_means_something_else():
    """--config is added by tipctl's parser in one place; a command keeps its own only to say another thing
    (the service's: the file the installed tipd is to use / is compared with)."""
    from tipd.cli.main import CONFIG_HELP

    own = {path for path, p in every_parser(parser([])) for a in p._actions
           if "--config" in a.option_strings and a.help != CONFIG_HELP}
    assert own == {("service", "install"), ("service", "status")}


def test_env_imds_warns_about_the_default_profile_tipd_serves(monkeypatch):
    """`tipctl env --imds` names no profile: IMDS serves tipd's default (the configured default_profile among
    several, by the one rule); the warning is about that profile, not 'the only one' (there are two)."""
    from tipd.cli import common, env

    summary = {"default_profile": "home", "accounts": [],
               "profiles": [{"profile": "work", "state": "fresh"}, {"profile": "home", "state": "signed-out"}]}

    class Client:
        def request(self, method: str, path: str) -> dict[str, Any]:
            assert (method, path) == ("GET", "/v1/summary")
            return summary

    monkeypatch.setattr(common, "client", lambda timeout: Client())
    assert "profile home is signed-out" in (env.serving_warning(None) or "")


def test_configure_show_gives_the_effective_default_profile(user, capsys):
    """A file with one profile and no default_profile: that profile is the default (status, env, IMDS use it),
    so --show says so rather than 'not set'; with several and none, it is not set."""
    one = user.with_name("one.toml")
    one.write_text(CONFIG.replace('default_profile = "work"\n', "").split("[profiles.home]")[0])
    one.chmod(0o600)
    code, out, err = run(capsys, "configure", "--show", "--json", "--config", str(one))
    assert code == 0, err
    assert json.loads(out)["config"]["default_profile"] == "work"
    two = user.with_name("two.toml")
    two.write_text(CONFIG.replace('default_profile = "work"\n', ""))
    two.chmod(0o600)
    code, out, err = run(capsys, "configure", "--show", "--config", str(two))
    assert code == 0 and "# default_profile: not set" in out, err
