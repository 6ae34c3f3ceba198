"""tipd.configure: the presets, the validation of values as typed, --from files, the TOML editor (which must
keep every other byte of the file), the config file's validation and atomic write, and --show's redaction."""
from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import tomllib
from typing import get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, Field, SecretStr

from tipd.config import Profile, load_config
from tipd.configure import presets, tomledit
from tipd.configure.presets import FieldError
from tipd.configure.profile import PROFILE_KEYS, build, check_field, parse_text, read_from_file
from tipd.configure.prompt import Prompter
from tipd.configure.show import redacted, render
from tipd.configure.tomlfile import ConfigFile
from tipd.errors import ConfigError
from tipd.profiles import PROVIDERS

APP = "arn:aws:sso::111122223333:application/ssoins-1111222233334444/apl-aaaabbbbccccdddd"
OIDC_ROLE = "arn:aws:iam::111122223333:role/tip-oidc"
ENHANCED = "arn:aws:iam::111122223333:role/tip-enhanced"
AWS = {"application_arn": APP, "oidc_role_arn": OIDC_ROLE, "identity_enhanced_role_arn": ENHANCED,
       "region": "eu-west-1"}
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


# -- presets ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("org,server,issuer", [
    ("dev-123", None, "https://dev-123.okta.com/oauth2/default"),
    ("dev-123.okta.com", "default", "https://dev-123.okta.com/oauth2/default"),
    ("https://Dev-123.okta.com/", "aus1a2b3c4d5e6f7g8h9", "https://dev-123.okta.com/oauth2/aus1a2b3c4d5e6f7g8h9"),
    ("https://dev-123.okta.com", "org", "https://dev-123.okta.com"),
    ("https://login.example.com", None, "https://login.example.com/oauth2/default"),  # a custom domain
])
def test_okta_issuer(org, server, issuer):
    assert presets.okta_issuer(org, server) == issuer


@pytest.mark.parametrize("org,server,field,words", [
    ("https://dev-123-admin.okta.com", None, "org_url", "https://dev-123.okta.com"),
    ("https://dev-123.okta.com/oauth2/default", None, "org_url", "org URL alone"),
    ("http://dev-123.okta.com", None, "org_url", "https://"),
    ("dev-123", "not/an/id", "authorization_server", "'org'"),
])
def test_okta_mistakes_are_explained(org, server, field, words):
    with pytest.raises(FieldError) as e:
        presets.okta_issuer(org, server)
    assert e.value.field == field and words in e.value.reason


def test_entra_issuer_is_the_tenant_ids_v2_issuer():
    assert presets.entra_issuer(TENANT.upper()) == f"https://login.microsoftonline.com/{TENANT}/v2.0"
    for bad, words in [("common", "many tenants"), ("organizations", "many tenants"),
                       ("contoso.onmicrosoft.com", "Directory (tenant) ID")]:
        with pytest.raises(FieldError) as e:
            presets.entra_issuer(bad)
        assert words in e.value.reason


def test_cognito_issuer_and_region_checks():
    assert presets.cognito_issuer("eu-west-1_AbC123") == "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123"
    assert presets.cognito_issuer("AbC123", "us-east-2") == "https://cognito-idp.us-east-2.amazonaws.com/us-east-2_AbC123"
    with pytest.raises(FieldError) as e:
        presets.cognito_issuer("eu-west-1_AbC123", "us-east-1")
    assert "in eu-west-1, not in us-east-1" in e.value.reason
    with pytest.raises(FieldError) as e:
        presets.cognito_issuer("AbC123")
    assert "eu-west-1_AbCdEf123" in e.value.reason


def test_cognito_domain_forms():
    host = "me.auth.eu-west-1.amazoncognito.com"
    assert presets.cognito_domain("me", "eu-west-1") == host
    assert presets.cognito_domain(f"https://{host}/", "eu-west-1") == host
    assert presets.cognito_domain("Auth.Example.com", "eu-west-1") == "auth.example.com"
    with pytest.raises(FieldError) as e:
        presets.cognito_domain("me.auth.us-east-1.amazoncognito.com", "eu-west-1")
    assert "us-east-1" in e.value.reason and "eu-west-1" in e.value.reason


@pytest.mark.parametrize("provider,inputs", [
    ("okta", {"org_url": "https://dev-1.okta.com", "authorization_server": "aus9"}),
    ("okta", {"org_url": "https://dev-1.okta.com", "authorization_server": "org"}),
    ("entra", {"tenant": TENANT}),
    ("cognito", {"user_pool_id": "eu-west-1_AbC123"}),
    ("oidc", {"issuer": "https://idp.example.com/realms/x"}),
    ("keycloak", {"keycloak_url": "https://sso.example.com/auth", "realm": "acme"}),
    ("auth0", {"auth0_domain": "acme.eu.auth0.com"}),
    ("pingfederate", {"pingfederate_url": "https://sso.example.com:9031"}),
    ("pingone", {"pingone_region": "eu", "environment_id": "a1b2c3d4-5e6f-4a0b-9c8d-7e6f5a4b3c2d"}),
    ("onelogin", {"onelogin_subdomain": "acme"}),
])
def test_an_issuer_gives_back_the_inputs_it_was_made_from(provider, inputs):
    issuer = presets.derive_issuer(provider, inputs)
    assert presets.preset_inputs(provider, issuer) == inputs


def test_presets_name_the_providers_of_the_config_model():
    assert get_args(Profile.model_fields["provider"].annotation) == PROVIDERS
    assert set(presets.PRESET_INPUTS) == set(presets.REQUIRED_PRESET) == set(PROVIDERS)


def test_configure_can_set_every_key_of_an_idp_profile():
    # the key list once drifted from the model: account_id could not be set with `tipctl configure`
    assert set(PROFILE_KEYS) == set(Profile.model_fields) <= set(presets.BY_NAME) | {"provider"}  # --provider
    d = build("w", {"provider": "okta", "org_url": "dev-9", "client_id": "0oa1", "account_id": "444455556666", **AWS})
    assert d.settings["account_id"] == "444455556666"
    with pytest.raises(ConfigError, match="account_id: does not look right"):
        build("w", {"provider": "okta", "org_url": "dev-9", "client_id": "0oa1", "account_id": "4444", **AWS})


@pytest.mark.parametrize("provider,inputs,issuer", [
    ("keycloak", {"keycloak_url": "sso.example.com/", "realm": "acme"}, "https://sso.example.com/realms/acme"),
    ("auth0", {"auth0_domain": "https://acme.us.auth0.com"}, "https://acme.us.auth0.com/"),  # trailing slash
    ("pingone", {"environment_id": "A1B2C3D4-5E6F-4A0B-9C8D-7E6F5A4B3C2D"},
     "https://auth.pingone.com/a1b2c3d4-5e6f-4a0b-9c8d-7e6f5a4b3c2d/as"),
    ("onelogin", {"onelogin_subdomain": "acme.onelogin.com"}, "https://acme.onelogin.com/oidc/2"),
    ("google", {}, "https://accounts.google.com"),
    ("jumpcloud", {}, "https://oauth.id.jumpcloud.com/"),
])
def test_each_preset_makes_its_idps_issuer(provider, inputs, issuer):
    assert presets.derive_issuer(provider, inputs) == issuer


@pytest.mark.parametrize("provider,inputs,field", [
    ("keycloak", {"keycloak_url": "https://sso.example.com/realms/acme", "realm": "acme"}, "keycloak_url"),
    ("keycloak", {"keycloak_url": "http://sso.example.com", "realm": "acme"}, "keycloak_url"),
    ("pingone", {"pingone_region": "us", "environment_id": "a1b2c3d4-5e6f-4a0b-9c8d-7e6f5a4b3c2d"}, "pingone_region"),
    ("pingone", {"environment_id": "env-1"}, "environment_id"),
    ("onelogin", {"onelogin_subdomain": "a/b"}, "onelogin_subdomain"),
    ("auth0", {"auth0_domain": "not a host"}, "auth0_domain"),
])
def test_a_wrong_preset_value_names_itself(provider, inputs, field):
    with pytest.raises(FieldError) as e:
        presets.derive_issuer(provider, inputs)
    assert e.value.field == field


def test_the_google_preset_carries_what_google_needs():
    d = build("g", {"provider": "google", "client_id": "1.apps.googleusercontent.com", **AWS})
    s = d.settings
    assert s["issuer"] == "https://accounts.google.com" and s["scopes"] == ["openid", "email"]
    assert s["client_auth"] == "client_secret_post" and s["auth_params"] == {"access_type": "offline",
                                                                             "prompt": "consent"}
    # another provider for the same profile takes that provider's defaults, not Google's
    o = build("g", {"provider": "okta", "org_url": "dev-9"}, s).settings
    assert o["client_auth"] == "none" and o["auth_params"] == {} and "offline_access" in o["scopes"]


def test_auth_params_are_typed_as_key_value_pairs():
    assert parse_text("auth_params", "access_type=offline, prompt=consent") == {"access_type": "offline",
                                                                                 "prompt": "consent"}
    with pytest.raises(FieldError):
        parse_text("auth_params", "access_type")
    with pytest.raises(FieldError) as e:
        check_field("auth_params", parse_text("auth_params", "state=x"))
    assert "set by tipd itself" in e.value.reason


def test_a_new_profile_is_written_without_its_providers_defaults(tmp_path):
    cf = ConfigFile.read(tmp_path / "c.toml")
    text = cf.with_profile(build("e", {"provider": "entra", "tenant": TENANT, "client_id": "c", **AWS}))
    table = tomllib.loads(text)["profiles"]["e"]
    assert "refresh_scope" not in table and "redirect_host" not in table and "auth_params" not in table
    p = load_config(_write(tmp_path / "c.toml", text))[0].idp_profile("e")
    assert p.refresh_scope == "granted" and p.redirect_host == "localhost"
    text = cf.with_profile(build("e", {"provider": "entra", "tenant": TENANT, "client_id": "c",
                                       "refresh_scope": "omit", "auth_params": {"domain_hint": "x.com"}, **AWS}))
    table = tomllib.loads(text)["profiles"]["e"]
    assert table["refresh_scope"] == "omit" and table["auth_params"] == {"domain_hint": "x.com"}


def _write(p, text):
    p.write_text(text)
    return p


def test_a_client_secret_is_read_from_stdin_and_stored_bound_to_its_client(tmp_path, monkeypatch):
    from tipd.configure import secret as cs

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    s = cs.read_stdin(io.StringIO("GOCSPX-abc\n"))
    data = {"store": {"backend": "file"}}
    where = cs.save_secret(data, "g", "https://accounts.google.com", "c1", s)
    assert "0600 file" in where
    assert cs.has_secret(data, "g", "https://accounts.google.com", "c1")
    assert not cs.has_secret(data, "g", "https://accounts.google.com", "c2")  # another client: not that secret
    for bad in ("\n", " padded \n", "x" * 5000 + "\n"):
        with pytest.raises(ConfigError) as e:
            cs.read_stdin(io.StringIO(bad))
        assert "GOCSPX" not in e.value.message


# -- values as typed -------------------------------------------------------------------------------------
@pytest.mark.parametrize("field,text,provider,words", [
    ("region", "Europe", "oidc", "expected a region such as eu-west-1"),
    ("oidc_role_arn", "role/x", "oidc", "arn:aws:iam::<account>:role/<name>"),
    ("application_arn", "arn:aws:sso::1:application/x", "oidc", "ssoins-"),
    ("issuer", "http://idp.example.com", "oidc", "https://"),
    ("redirect_port", "99999", "oidc", "less than or equal to 65535"),
    ("redirect_port", "eighty", "oidc", "port number"),
    ("scopes", "openid email", "okta", "offline_access"),
    ("scopes", "openid email offline_access", "cognito", 'must not include "offline_access"'),
    ("scopes", "email, offline_access", "entra", '"openid"'),
    ("client_id", "", "oidc", "at least 1 character"),
])
def test_a_wrong_value_gets_the_reason_the_config_file_would(field, text, provider, words):
    with pytest.raises(FieldError) as e:
        check_field(field, parse_text(field, text), provider)
    assert words in e.value.reason, e.value.reason
    assert e.value.field == field


def test_good_values_pass_as_typed():
    assert check_field("scopes", parse_text("scopes", "openid, email  offline_access"), "okta") == \
        ["openid", "email", "offline_access"]
    assert check_field("scopes", parse_text("scopes", "openid email"), "cognito") == ["openid", "email"]
    assert check_field("redirect_port", parse_text("redirect_port", " 8400 ")) == 8400
    assert check_field("region", "ap-southeast-2") == "ap-southeast-2"


def test_cognito_profiles_do_without_offline_access_and_default_to_scopes_cognito_accepts(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[profiles.c]\nprovider = "cognito"\nissuer = "https://cognito-idp.eu-west-1.amazonaws.com/'
                 'eu-west-1_A"\nclient_id = "x"\n' + "".join(f'{k} = "{v}"\n' for k, v in AWS.items()))
    cfg, _ = load_config(p)
    assert cfg.idp_profile("c").scopes == ["openid", "email"]


# -- building a profile ----------------------------------------------------------------------------------
def test_every_missing_value_is_named_in_one_error():
    with pytest.raises(ConfigError) as e:
        build("work", {"provider": "okta", "region": "Europe"})
    msg = e.value.message
    for flag in ("--org-url", "--client-id", "--application-arn", "--oidc-role-arn", "--identity-enhanced-role-arn"):
        assert flag in msg, msg
    assert "region: does not look right" in msg  # the wrong value given, in the same error


def test_presets_make_the_issuer_and_the_scopes():
    d = build("w", {"provider": "okta", "org_url": "dev-9", "client_id": "0oa1", **AWS})
    assert d.settings["issuer"] == "https://dev-9.okta.com/oauth2/default"
    assert d.settings["scopes"] == ["openid", "email", "offline_access"]
    d = build("e", {"provider": "entra", "tenant": TENANT, "client_id": "c", **AWS})
    assert d.settings["scopes"] == ["openid", "profile", "email", "offline_access"]
    d = build("c", {"provider": "cognito", "user_pool_id": "eu-west-1_AbC", "cognito_domain": "me", "client_id": "c",
                    **AWS})
    assert d.settings["scopes"] == ["openid", "email"] and d.cognito_domain == "me.auth.eu-west-1.amazoncognito.com"
    assert list(d.settings) == [k for k in PROFILE_KEYS if k != "account_id"]  # not set: not written


def test_an_existing_profile_keeps_what_is_not_given():
    old = build("w", {"provider": "okta", "org_url": "dev-9", "client_id": "0oa1", "redirect_port": 8400,
                      "scopes": ["openid", "offline_access", "groups"], **AWS}).settings
    d = build("w", {"client_id": "0oa2"}, old)
    assert d.settings == dict(old, client_id="0oa2")
    d = build("w", {"authorization_server": "aus7"}, old)  # one preset value: the rest from the old issuer
    assert d.settings["issuer"] == "https://dev-9.okta.com/oauth2/aus7"
    d = build("w", {"provider": "entra", "tenant": TENANT}, old)  # another provider: its default scopes
    assert d.settings["scopes"] == ["openid", "profile", "email", "offline_access"]
    assert d.settings["redirect_port"] == 8400


def test_conflicting_or_misplaced_values_are_refused():
    with pytest.raises(ConfigError) as e:
        build("w", {"provider": "okta", "org_url": "dev-9", "issuer": "https://other.example.com", "client_id": "c",
                    **AWS})
    assert "give one or the other" in e.value.message
    with pytest.raises(FieldError) as e:
        build("w", {"provider": "okta", "tenant": TENANT})
    assert "--tenant is for --provider entra" in e.value.message
    with pytest.raises(FieldError):
        build("../x", {})


def test_from_file_json_and_toml(tmp_path):
    j = tmp_path / "p.json"
    j.write_text(json.dumps({"profile": "w", "provider": "entra", "tenant": TENANT, "client-id": "c",
                             "scopes": "openid email offline_access", "redirect_port": 8400, "default": True, **AWS}))
    t = tmp_path / "p.toml"
    t.write_text(f'profile = "w"\nprovider = "entra"\ntenant = "{TENANT}"\nclient_id = "c"\n'
                 f'scopes = ["openid", "email", "offline_access"]\nredirect_port = 8400\ndefault = true\n'
                 + "".join(f'{k} = "{v}"\n' for k, v in AWS.items()))
    assert read_from_file(str(j)) == read_from_file(str(t))
    got = read_from_file(str(t))
    assert got["default"] is True and got["redirect_port"] == 8400
    d = build(got.pop("profile"), {k: v for k, v in got.items() if k != "default"})
    assert d.settings["issuer"] == f"https://login.microsoftonline.com/{TENANT}/v2.0"


@pytest.mark.parametrize("body,words", [
    ('{"client_idd": "x"}', "unknown keys client_idd"),
    ('{"client_id": 5}', "client_id must be a string"),
    ("[profiles\n", "neither valid JSON nor valid TOML"),
    ('{"client_id": ' + "[" * 100_000 + "]" * 100_000 + "}", "nest too deeply"),  # was a RecursionError traceback
    ("client_id = " + "[" * 100_000 + "]" * 100_000, "nest too deeply"),
])
def test_from_file_mistakes(tmp_path, body, words):
    f = tmp_path / "p.conf"
    f.write_text(body)
    with pytest.raises(ConfigError) as e:
        read_from_file(str(f))
    assert words in e.value.message


# -- the TOML editor -------------------------------------------------------------------------------------
SETTINGS = {"provider": "oidc", "issuer": "https://new.example.com", "client_id": "c2",
            "scopes": ["openid", "email", "offline_access"], "redirect_port": 0, **AWS}
ABSENT = {"provider": "oidc", "redirect_port": 0, "scopes": ["openid", "email", "offline_access"]}

TRICKY = '''# tipd's config; [profiles.work] is edited by tipctl configure
# default_profile = "home"

# the server
[server]
port = 9911   # fixed: the env var is set once

[profiles.work]
issuer = "https://old.example.com"  # as published
client_id = 'c1'
application_arn = "APP"
oidc_role_arn = "OIDC"
identity_enhanced_role_arn = "ENH"
region = "eu-west-1"
scopes = [
  "openid",         # for the id_token
  "email", "offline_access",
]

# the home profile; not [profiles.work]
[profiles.home]
issuer = "https://home.example.com"
client_id = """
[profiles.work]
client_id = "not this one"
"""
note = \'\'\'
[profiles.work]\'\'\'
application_arn = "APP"
oidc_role_arn = "OIDC"
identity_enhanced_role_arn = "ENH"
region = "eu-west-1"

[refresh]   # [profiles.work] mentioned in a comment after a header
min_remaining = 1200
'''.replace('"APP"', f'"{APP}"').replace('"OIDC"', f'"{OIDC_ROLE}"').replace('"ENH"', f'"{ENHANCED}"')


def test_editing_a_profile_changes_only_its_changed_values():
    new = tomledit.set_profile(TRICKY, "work", SETTINGS, ABSENT)
    expected = (TRICKY.replace('issuer = "https://old.example.com"  # as published',
                               'issuer = "https://new.example.com"  # as published')
                .replace("client_id = 'c1'", 'client_id = "c2"'))
    assert new == expected  # comments, formatting, the multi-line scopes, the other profile: all as they were
    data = tomllib.loads(new)
    assert data["profiles"]["home"]["client_id"].startswith("[profiles.work]")


def test_a_new_profile_is_appended_and_everything_before_it_kept():
    new = tomledit.set_profile(TRICKY, "dev.eu", SETTINGS, ABSENT)
    assert new.startswith(TRICKY)
    assert new[len(TRICKY):] == "\n" + tomledit.table(("profiles", "dev.eu"), SETTINGS)
    assert '[profiles."dev.eu"]' in new and tomllib.loads(new)["profiles"]["dev.eu"] == SETTINGS


def test_keys_a_table_lacks_are_added_after_its_last_key_unless_their_default_says_the_same():
    text = '[profiles.work]\nissuer = "https://old"\nclient_id = "c1"\n# trailing comment\n\n[server]\nport = 1\n'
    new = tomledit.set_profile(text, "work", SETTINGS, ABSENT)
    assert new.startswith('[profiles.work]\nissuer = "https://new.example.com"\nclient_id = "c2"\n'
                          f'application_arn = "{APP}"\n')
    assert new.endswith('region = "eu-west-1"\n# trailing comment\n\n[server]\nport = 1\n')
    assert "provider" not in new and "scopes" not in new and "redirect_port" not in new  # the defaults already


def test_header_spellings_crlf_and_no_final_newline():
    text = "[ profiles . 'work' ]\r\nclient_id = \"c1\"\r\nissuer = \"https://old\""
    new = tomledit.set_profile(text, "work", {"client_id": "c1", "issuer": "https://new", "region": "eu-west-1"})
    assert new == ("[ profiles . 'work' ]\r\nclient_id = \"c1\"\r\nissuer = \"https://new\"\r\n"
                   "region = \"eu-west-1\"\r\n")
    assert tomledit.set_profile("a = 1", "x", {"b": 2}) == "a = 1\n\n[profiles.x]\nb = 2\n"


@pytest.mark.parametrize("text", [
    'profiles = { work = { issuer = "x" } }\n',
    '[profiles]\nwork = { issuer = "x" }\n',
    '[profiles]\nwork.issuer = "x"\n',
    'profiles.work.issuer = "x"\n',
    '[profiles.work]\nissuer = "x"\n[profiles.work.sub]\na = 1\n',
])
def test_forms_it_does_not_rewrite_are_refused(text):
    with pytest.raises(tomledit.TomlEditError) as e:
        tomledit.set_profile(text, "work", SETTINGS)
    assert "edit it by hand" in e.value.message


def test_a_refused_form_names_its_line_in_the_file_as_it_is():
    with pytest.raises(tomledit.TomlEditError) as e:  # setting default_profile too must not shift the count
        tomledit.set_profile('[profiles]\n dev . client_id = "a"\n', "dev", SETTINGS, default_profile="dev")
    assert e.value.message.startswith("line 2:")


def test_default_profile_is_set_where_a_person_would_put_it():
    # before the first table and the comment that leads into it
    text = "# my config\n\n# the server\n[server]\nport = 1\n"
    assert tomledit.set_default_profile(text, "w") == ('# my config\n\ndefault_profile = "w"\n\n'
                                                      '# the server\n[server]\nport = 1\n')
    # replaced in place, its comment kept
    text = 'default_profile = "a"  # the usual one\n[server]\n'
    assert tomledit.set_default_profile(text, "b") == 'default_profile = "b"  # the usual one\n[server]\n'
    assert tomledit.set_default_profile(text, "a") == text
    # after the other root keys; and not fooled by a key of the same name in a table
    text = 'x = 1\n[t]\ndefault_profile = "q"\n'
    assert tomledit.set_default_profile(text, "w") == 'x = 1\ndefault_profile = "w"\n[t]\ndefault_profile = "q"\n'


@given(st.text())
def test_strings_are_written_so_that_toml_reads_them_back(s):
    assert tomllib.loads("v = " + tomledit.toml_string(s))["v"] == s


@given(st.lists(st.text(), max_size=4), st.integers(0, 2**40), st.booleans())
def test_values_round_trip(strings, n, b):
    for v in (strings, n, b):
        assert tomllib.loads("v = " + tomledit.toml_value(v))["v"] == v


@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1))
def test_any_string_value_survives_an_edit_of_another_key(s):
    text = f"[profiles.work]\nnote = {tomledit.toml_string(s)}\nclient_id = \"a\"\n"
    new = tomledit.set_profile(text, "work", {"client_id": "b"})
    assert tomllib.loads(new)["profiles"]["work"] == {"note": s, "client_id": "b"}


# -- the config file -------------------------------------------------------------------------------------
def _draft(name="work", **kw):
    return build(name, {"provider": "oidc", "issuer": "https://idp.example.com", "client_id": "c", **AWS, **kw})


def test_the_default_profile_rules(tmp_path):
    p = tmp_path / "c.toml"
    cf = ConfigFile.read(p)
    assert cf.default_after("a", False) == "a"  # the first profile
    p.write_text(tomledit.set_table("", "a", _draft("a").settings, {}))
    cf = ConfigFile.read(p)
    assert cf.default_after("b", False) == "a"  # the only one so far stays the default it was by itself
    assert cf.default_after("b", True) == "b"
    p.write_text('default_profile = "a"\n' + p.read_text())
    assert ConfigFile.read(p).default_after("b", False) is None  # one is set: left alone


def test_the_result_is_validated_before_anything_is_written(tmp_path):
    p = tmp_path / "c.toml"
    bad = '[server]\nport = 99999\n'
    p.write_text(bad)
    cf = ConfigFile.read(p)
    with pytest.raises(ConfigError) as e:
        cf.with_profile(_draft())
    assert "server.port" in e.value.message and "Nothing was saved" in e.value.message
    assert p.read_text() == bad


def test_write_keeps_the_mode_and_a_symlink_and_makes_new_files_private(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("# mine\n")
    os.chmod(p, 0o640)
    cf = ConfigFile.read(p)
    cf.write(cf.with_profile(_draft()))
    assert stat.S_IMODE(p.stat().st_mode) == 0o640 and p.read_text().startswith("# mine\n")
    assert load_config(p)[0].idp_profile("work").client_id == "c"

    link = tmp_path / "link.toml"
    link.symlink_to(p)
    cf = ConfigFile.read(link)
    cf.write(cf.with_profile(_draft(client_id="c9")))
    assert link.is_symlink() and load_config(p)[0].idp_profile("work").client_id == "c9"

    fresh = tmp_path / "new" / "dir" / "config.toml"
    cf = ConfigFile.read(fresh)
    cf.write(cf.with_profile(_draft()))
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600 and stat.S_IMODE(fresh.parent.stat().st_mode) == 0o700
    assert [f.name for f in fresh.parent.iterdir()] == ["config.toml"]  # no temp file left
    cfg, _ = load_config(fresh)
    assert cfg.default_profile == "work"


def test_a_file_changed_meanwhile_is_not_overwritten(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("# v1\n")
    cf = ConfigFile.read(p)
    text = cf.with_profile(_draft())
    p.write_text("# v2, edited by hand meanwhile\n")
    with pytest.raises(ConfigError) as e:
        cf.write(text)
    assert "changed while" in e.value.message and p.read_text() == "# v2, edited by hand meanwhile\n"
    fresh = ConfigFile.read(tmp_path / "new.toml")
    (tmp_path / "new.toml").write_text("# made meanwhile\n")
    with pytest.raises(ConfigError):
        fresh.write(fresh.with_profile(_draft()))


def test_an_invalid_toml_file_is_not_edited(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[server\n")
    with pytest.raises(ConfigError) as e:
        ConfigFile.read(p)
    assert "not valid TOML" in e.value.message


# -- --show ----------------------------------------------------------------------------------------------
class _Inner(BaseModel):
    password: SecretStr
    name: str = "n"


class _Outer(BaseModel):
    api_key: str = Field("k-123", json_schema_extra={"secret": True})
    unset_key: str | None = Field(None, json_schema_extra={"secret": True})
    inner: dict[str, _Inner] = {}
    port: int = 1


def test_secrets_are_redacted_by_structure_not_by_name():
    data = redacted(_Outer(inner={"a": _Inner(password=SecretStr("hunter2"))}))
    assert data == {"api_key": "***", "unset_key": None, "inner": {"a": {"password": "***", "name": "n"}}, "port": 1}
    assert "hunter2" not in render(data) and "k-123" not in render(data)


def test_show_renders_the_effective_config_as_toml(tmp_path):
    p = tmp_path / "c.toml"
    cf = ConfigFile.read(p)
    cf.write(cf.with_profile(_draft()))
    cfg, _ = load_config(p)
    text = render(redacted(cfg))
    back = tomllib.loads(text)
    assert back["profiles"]["work"]["scopes"] == ["openid", "email", "offline_access"]  # defaults filled in
    assert back["server"]["port"] == 9911 and back["default_profile"] == "work"
    assert "# imds: not set" in text


# -- prompting -------------------------------------------------------------------------------------------
def test_the_prompter_asks_again_with_the_reason_and_takes_the_default():
    out = io.StringIO()
    p = Prompter(io.StringIO("\nEurope\neu-west-1\n\n"), out)
    assert p.ask("Region", None, lambda s: check_field("region", s)) == "eu-west-1"
    assert out.getvalue().count("Region: ") == 3
    assert "a value is needed" in out.getvalue() and "expected a region such as eu-west-1" in out.getvalue()
    assert p.ask("Port", "0", lambda s: parse_text("redirect_port", s)) == 0
    with pytest.raises(EOFError):
        p.ask("More", None)


def test_profiles_does_not_import_aiohttp(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(tomledit.set_table("", "work", _draft().settings, {}))
    code = ("import sys; from tipd.cli.main import main; rc = main(['profiles']); "
            "assert 'aiohttp' not in sys.modules, 'aiohttp imported'; sys.exit(rc)")
    env = dict(os.environ, TIPD_CONFIG=str(cfg), XDG_RUNTIME_DIR=str(tmp_path))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "work" in r.stdout and "https://idp.example.com" in r.stdout


def test_a_from_file_of_megabytes_is_refused_without_reading_it_all(tmp_path):
    """`tipctl configure --from /dev/zero` read until memory ran out (a MemoryError traceback)."""
    from tipd.configure.profile import MAX_FROM_FILE

    big = tmp_path / "big.json"
    big.write_text("{" + " " * (2 * MAX_FROM_FILE) + "}")
    with pytest.raises(ConfigError, match="larger than"):
        read_from_file(str(big))


def test_configure_reads_the_file_through_the_one_reader(tmp_path):
    """`tipctl configure` had a reader of its own, without the bounds and refusals of tipd's."""
    fifo = tmp_path / "config.toml"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(ConfigError, match="not a regular file"):
        ConfigFile.read(fifo)
    fifo.unlink()
    fifo.write_text("")
    fifo.chmod(0o666)
    with pytest.raises(ConfigError, match="writable by other users"):
        ConfigFile.read(fifo)
    assert not ConfigFile.read(tmp_path / "new.toml").exists  # a file configure is about to create
