from typing import Any

import pytest

from tests.support.profiles import GOOD_CONFIG
from tipd.config import load_config, parse_config
from tipd.errors import ConfigError, UnknownProfile


def write(tmp_path, text):
    p = tmp_path / "config.toml"
    p.write_text(text)
    return p


def refused_with(tmp_path, line: str) -> str:
    """The sentence load_config refuses GOOD_CONFIG with once `line` is added to its profile."""
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, GOOD_CONFIG.replace('client_id = "0oa1"', f'client_id = "0oa1"\n{line}')))
    return e.value.message


def test_minimal_config_loads_with_defaults(tmp_path):
    cfg, _path = load_config(write(tmp_path, GOOD_CONFIG))
    p = cfg.idp_profile("work")
    assert p.scopes == ["openid", "email", "offline_access"]
    assert p.redirect_port == 0
    assert cfg.server.port == 9911
    assert cfg.profile_name(None) == "work"  # a single profile is the default by itself


def test_config_path_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("TIPD_CONFIG", str(write(tmp_path, GOOD_CONFIG)))
    cfg, path = load_config(None)
    assert path == tmp_path / "config.toml" and "work" in cfg.profiles


def test_missing_file_is_a_sentence(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path / "nope.toml")
    assert "nope.toml" in e.value.message and "no config file" in e.value.message


def test_toml_syntax_error_names_the_file(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, "[server\nport = 1"))
    assert str(tmp_path / "config.toml") in e.value.message and "not valid TOML" in e.value.message


@pytest.mark.parametrize("old,new,key,words", [
    ('issuer = "https://dev-123.okta.com/oauth2/default"', 'issuer = "http://idp.example.com"',
     "profiles.work.issuer", "https"),
    ('region = "eu-west-1"', 'region = "Europe"', "profiles.work.region", "eu-west-1"),
    ('oidc_role_arn = "arn:aws:iam::111122223333:role/tip-oidc"', 'oidc_role_arn = "role/x"',
     "profiles.work.oidc_role_arn", "arn:aws:iam"),
    ('client_id = "0oa1"\n', '', "profiles.work.client_id", "is required"),
    ('port = 9911', 'port = 99999', "server.port", "less than or equal"),
    ('port = 9911', 'port = 9911\nprot = 1', "server.prot", "unknown key"),
])
def test_bad_values_name_key_and_problem(tmp_path, old, new, key, words):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, GOOD_CONFIG.replace(old, new)))
    msg = e.value.message
    assert str(tmp_path / "config.toml") in msg and key in msg and words in msg, msg
    assert "Traceback" not in msg


def test_http_issuer_allowed_on_loopback(tmp_path):
    for host in ("127.0.0.1:8080", "localhost:1", "[::1]:9"):
        cfg, _ = load_config(write(tmp_path, GOOD_CONFIG.replace("https://dev-123.okta.com/oauth2/default", f"http://{host}")))
        assert cfg.idp_profile("work").issuer.startswith("http://")


def test_scopes_need_openid_and_offline_access(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, GOOD_CONFIG.replace('region = "eu-west-1"',
                                                        'region = "eu-west-1"\nscopes = ["openid"]')))
    assert "offline_access" in e.value.message


def test_profile_names_cannot_traverse_paths():
    data: dict[str, Any] = {"profiles": {"../../etc": {}}}
    with pytest.raises(ConfigError) as e:
        parse_config(data, "x.toml")
    assert "profile name" in e.value.message


def test_default_profile_rules(tmp_path):
    two = GOOD_CONFIG + GOOD_CONFIG.split("[profiles.work]")[1].join(["\n[profiles.home]", ""])
    cfg, _ = load_config(write(tmp_path, two))
    with pytest.raises(UnknownProfile) as e:
        cfg.profile_name(None)
    assert "default_profile" in e.value.message
    cfg, _ = load_config(write(tmp_path, 'default_profile = "home"\n' + two))
    assert cfg.profile_name(None) == "home"
    with pytest.raises(ConfigError):
        load_config(write(tmp_path, 'default_profile = "nope"\n' + two))
    with pytest.raises(UnknownProfile):
        cfg.profile_name("other")


def test_refresh_settings_are_validated_against_each_other(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, GOOD_CONFIG + "[refresh]\nmin_remaining = 1800\nrotate_remaining = 1200\n"))
    assert "rotate_remaining must be greater than min_remaining" in e.value.message
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, GOOD_CONFIG + "[refresh]\nsession_duration = 1800\n"))
    assert "session_duration must be greater" in e.value.message
    with pytest.raises(ConfigError):
        load_config(write(tmp_path, GOOD_CONFIG + "[refresh]\nsession_duration = 7200\n"))


def test_missing_implicit_config_is_empty_but_explicit_one_is_an_error(tmp_path, monkeypatch):
    monkeypatch.delenv("TIPD_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    cfg, path = load_config(None, missing_ok=True)
    assert cfg.profiles == {} and path == tmp_path / "tipd" / "config.toml"
    with pytest.raises(ConfigError):
        load_config(tmp_path / "explicit.toml", missing_ok=True)


def test_provider_defaults_to_oidc_and_is_checked(tmp_path):
    cfg, _ = load_config(write(tmp_path, GOOD_CONFIG))
    assert cfg.idp_profile("work").provider == "oidc"
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, GOOD_CONFIG.replace('client_id = "0oa1"', 'client_id = "0oa1"\nprovider = "ping"')))
    assert "profiles.work.provider" in e.value.message and "okta" in e.value.message


@pytest.mark.parametrize("provider,scopes", [
    ("okta", ["openid", "email", "offline_access"]),
    ("entra", ["openid", "profile", "email", "offline_access"]),
    ("cognito", ["openid", "email"]),
    ("google", ["openid", "email"]),
    ("keycloak", ["openid", "email", "offline_access"]),
])
def test_default_scopes_follow_the_provider(tmp_path, provider, scopes):
    cfg, _ = load_config(write(tmp_path, GOOD_CONFIG.replace('client_id = "0oa1"',
                                                             f'client_id = "0oa1"\nprovider = "{provider}"')))
    assert cfg.idp_profile("work").scopes == scopes


def test_cognito_needs_no_offline_access_and_refuses_it(tmp_path):
    cognito = GOOD_CONFIG.replace('client_id = "0oa1"', 'client_id = "0oa1"\nprovider = "cognito"')
    cfg, _ = load_config(write(tmp_path, cognito.replace('region = "eu-west-1"',
                                                         'region = "eu-west-1"\nscopes = ["openid", "profile"]')))
    assert cfg.idp_profile("work").scopes == ["openid", "profile"]
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, cognito.replace('region = "eu-west-1"',
                                                    'region = "eu-west-1"\nscopes = ["openid", "offline_access"]')))
    assert "profiles.work.scopes" in e.value.message and "Cognito" in e.value.message


def test_a_refresh_never_asks_for_more_than_the_grant(tmp_path):
    cfg, _ = load_config(write(tmp_path, GOOD_CONFIG))
    p = cfg.idp_profile("work")
    assert p.refresh_scope == "omit" and p.refresh_scope_for("openid email") is None  # RFC 6749 section 6
    granted = GOOD_CONFIG.replace('client_id = "0oa1"', 'client_id = "0oa1"\nrefresh_scope = "granted"')
    p = load_config(write(tmp_path, granted))[0].idp_profile("work")
    assert p.refresh_scope_for("openid email") == "openid email"  # what was granted, not what was asked
    assert p.refresh_scope_for(None) == "openid email offline_access"  # the IdP did not say: what was asked
    entra = GOOD_CONFIG.replace('client_id = "0oa1"', 'client_id = "0oa1"\nprovider = "entra"')
    assert load_config(write(tmp_path, entra))[0].idp_profile("work").refresh_scope == "granted"  # Entra requires one


def test_provider_defaults_fill_only_what_the_profile_leaves_out(tmp_path):
    google = GOOD_CONFIG.replace('client_id = "0oa1"', 'client_id = "0oa1"\nprovider = "google"')
    p = load_config(write(tmp_path, google))[0].idp_profile("work")
    assert p.auth_params == {"access_type": "offline", "prompt": "consent"} and p.client_auth == "client_secret_post"
    own = google.replace('provider = "google"', 'provider = "google"\nauth_params = { access_type = "offline" }\n'
                         'client_auth = "client_secret_basic"')
    p = load_config(write(tmp_path, own))[0].idp_profile("work")
    assert p.auth_params == {"access_type": "offline"} and p.client_auth == "client_secret_basic"
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, google.replace('provider = "google"', 'provider = "google"\nclient_auth = "none"')))
    assert "client secret" in e.value.message
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, google.replace('region = "eu-west-1"',
                                                   'region = "eu-west-1"\nscopes = ["openid", "offline_access"]')))
    assert "Google" in e.value.message and "access_type" in e.value.message


@pytest.mark.parametrize("line,words", [
    ('exchange_token = "refresh_token"', "exchange_token"),
    ('redirect_host = "[::1]"', "redirect_host"),
    ('auth_params = { redirect_uri = "http://evil" }', "set by tipd itself"),
    ('auth_params = { "a b" = "x" }', "not a parameter name"),
    ('scopes = ["openid", "offline_access", "a\\"b"]', "profiles.work.scopes"),
])
def test_the_new_profile_settings_are_checked(tmp_path, line, words):
    assert words in refused_with(tmp_path, line)


def test_a_config_others_can_write_is_refused(tmp_path):
    """Issue 11 #7: with the config at 0666 another user pointed the issuer at its own listener."""
    from tipd.quickconfig import endpoint_facts

    p = write(tmp_path, GOOD_CONFIG)
    p.chmod(0o666)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert "writable by other users" in e.value.message and "chmod go-w" in e.value.message
    with pytest.raises(ConfigError):  # the quick commands' reading (tipctl env) too
        endpoint_facts(p)
    p.chmod(0o644)
    tmp_path.chmod(0o777)
    try:
        with pytest.raises(ConfigError) as e:
            load_config(p)
        assert "its directory" in e.value.message
        tmp_path.chmod(0o1777)  # sticky, as /tmp: others cannot replace the file
        assert load_config(p)[0].profiles["work"]
    finally:
        tmp_path.chmod(0o700)


# -- the quick commands' reading (tipd/quickconfig.py, tipd/profiles.py): no pydantic, same answers ---------
TWO = GOOD_CONFIG.replace("port = 9911", "port = 9922") + GOOD_CONFIG.replace("[server]\nport = 9911\n", "").replace(
    "[profiles.work]", "[profiles.home]")


@pytest.mark.parametrize("text", [GOOD_CONFIG, TWO, 'default_profile = "home"\n' + TWO, "",
                                  GOOD_CONFIG.replace("port = 9911", 'port = "9933"')])  # the slow path coerces it
def test_endpoint_facts_agree_with_the_full_validation(tmp_path, text):
    from tipd.quickconfig import endpoint_facts

    path = write(tmp_path, text)
    assert endpoint_facts(path) == load_config(path)[0].endpoint()


@pytest.mark.parametrize("bad, key", [
    ('port = "ninety"', "server.port"), ("port = 0", "server.port"), ("port = 70000", "server.port"),
])
def test_endpoint_facts_give_the_full_error_on_anything_unusual(tmp_path, bad, key):
    from tipd.quickconfig import endpoint_facts

    with pytest.raises(ConfigError) as e:
        endpoint_facts(write(tmp_path, GOOD_CONFIG.replace("port = 9911", bad)))
    assert key in e.value.message and str(tmp_path) in e.value.message


def test_endpoint_facts_refuse_a_default_that_is_not_a_profile(tmp_path):
    from tipd.quickconfig import endpoint_facts

    with pytest.raises(ConfigError) as e:
        endpoint_facts(write(tmp_path, 'default_profile = "nope"\n' + GOOD_CONFIG))
    assert "default_profile" in e.value.message


def test_tipctl_env_does_not_import_pydantic(tmp_path):
    """`tipctl env` runs in shell start-up files: it must not pay for the models (about 100 ms)."""
    import subprocess
    import sys

    code = ("import sys; from tipd.cli.env import variables; v = variables(None, sys.argv[1]); "
            "assert v['AWS_CONTAINER_CREDENTIALS_FULL_URI'].endswith(':9911/v1/credentials/work'), v; "
            "print('pydantic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(write(tmp_path, GOOD_CONFIG))], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_the_quick_key_lists_are_the_models_fields():
    """tipd/profiles.py names each kind's keys without pydantic (for `tipctl env`); they must not drift."""
    from tipd.config import PROFILE_MODELS, Config
    from tipd.profiles import PROFILE_KEYS, TOP_KEYS

    assert {k: set(m.model_fields) for k, m in PROFILE_MODELS.items()} == {k: set(v) for k, v in PROFILE_KEYS.items()}
    assert set(Config.model_fields) == TOP_KEYS


def test_a_profile_name_with_a_final_newline_is_refused(tmp_path):
    from tipd.quickconfig import endpoint_facts

    text = GOOD_CONFIG.replace("[profiles.work]", '[profiles."work\\n"]')
    with pytest.raises(ConfigError, match="profile name"):
        load_config(write(tmp_path, text))
    with pytest.raises(ConfigError, match="profile name"):  # the quick path hands it to the full check
        endpoint_facts(write(tmp_path, text))


def test_offline_access_may_be_left_out_where_the_grant_type_gives_the_refresh_token(tmp_path):
    for provider in ("pingfederate", "jumpcloud"):
        text = GOOD_CONFIG.replace('client_id = "0oa1"',
                                   f'client_id = "0oa1"\nprovider = "{provider}"\nscopes = ["openid", "email"]')
        assert load_config(write(tmp_path, text))[0].idp_profile("work").scopes == ["openid", "email"]
    with pytest.raises(ConfigError):  # where offline_access is what brings the refresh token, it stays required
        load_config(write(tmp_path, GOOD_CONFIG.replace('client_id = "0oa1"', 'client_id = "0oa1"\nprovider = "okta"\n'
                                                 'scopes = ["openid", "email"]')))


def test_a_fifo_in_place_of_the_config_is_a_sentence_not_a_hang(tmp_path):
    """A FIFO at the config path held every reader (tipd's start, tipctl) until something wrote to it."""
    import os

    from tipd.config_file import read_config_file
    from tipd.errors import ConfigError

    fifo = tmp_path / "config.toml"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(ConfigError, match="not a regular file"):
        read_config_file(fifo)


def test_the_config_modules_import_each_other_one_way_only():
    """config.py <-> config_file.py was a cycle: the light modules (reading, the profile rules) import nothing
    of the models, and the models import nothing of the quick path."""
    import ast
    from pathlib import Path

    import tipd

    root = Path(tipd.__file__).parent

    def imports(module: str) -> set[str]:
        tree = ast.parse((root / f"{module}.py").read_text())
        return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 1 and n.module}

    assert imports("profiles") == {"errors"}
    assert "config" not in imports("config_file") and "quickconfig" not in imports("config_file")
    assert {"quickconfig"}.isdisjoint(imports("config"))


@pytest.mark.parametrize("line, words", [
    ('clinet_id = "x"', "profiles.work.clinet_id: unknown key; did you mean 'client_id'?"),
    ("acount_id = \"444455556666\"", "did you mean 'account_id'?"),
    ("zzz = 1", "profiles.work.zzz: unknown key (check the spelling)"),
])
def test_an_unknown_key_names_the_nearest_one(tmp_path, line, words):
    assert words in refused_with(tmp_path, line)


def test_an_unknown_key_of_a_section_or_the_top_names_the_nearest_one(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, GOOD_CONFIG.replace("port = 9911", "prot = 9911")))
    assert "server.prot: unknown key; did you mean 'port'?" in e.value.message
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, 'defualt_profile = "work"\n' + GOOD_CONFIG))
    assert "defualt_profile: unknown key; did you mean 'default_profile'?" in e.value.message


def test_one_rule_says_which_profile_is_meant(tmp_path):
    """The daemon's view (tipctl login, logout), the file's (tipd, diag) and the quick path's (tipctl env) all
    go through tipd.profiles.pick_profile: same answers, same sentences."""
    from tipd.profiles import pick_profile
    from tipd.quickconfig import endpoint_facts

    path = write(tmp_path, TWO)
    cfg = load_config(path)[0]
    quick = endpoint_facts(path)
    for asked in (None, "home", "wokr"):
        answers = set()
        for pick in (cfg.profile_name, quick.profile, lambda a: pick_profile(a, None, ("work", "home"))):
            try:
                answers.add(pick(asked))
            except UnknownProfile as e:
                answers.add(e.message)
        assert len(answers) == 1, answers
    with pytest.raises(UnknownProfile, match="did you mean 'work'"):
        quick.profile("wokr")
