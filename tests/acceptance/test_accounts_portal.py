"""Identity Center account access end to end: the real tipd signed in through the real IdP lists the accounts
and roles of the sign-in with the fake's portal API (`tipctl accounts`), says in one sentence what the
administrator must enable when the application lacks sso:account:access or the instance is an account instance,
and opens the console (`tipctl console --print`) with the fake federation endpoint's sign-in token, which
reaches no log."""
from __future__ import annotations

import json
import re
import urllib.parse

import pytest

from tests.support.aws import ACCOUNT_ACCESS
from tests.support.stack import APP_ARN, Tipd, tipctl

pytestmark = pytest.mark.acceptance
ALICE_ID = "9067e4a2-alice"
PROD, DEV = "111111111111", "222222222222"
#: an Identity Center access token as the fake mints them (aoa + urlsafe base64)
ACCESS_TOKEN = re.compile(r"aoa[A-Za-z0-9_-]{40,}")


@pytest.fixture
def portal(fake):
    app = fake.config.applications[APP_ARN]
    scopes = list(app.scopes)
    fake.portal.clear()
    fake.portal.account(PROD, "prod", "prod@example.com")
    fake.portal.account(DEV, "dev", "dev@example.com")
    fake.portal.assign(ALICE_ID, PROD, "AdministratorAccess", "ReadOnly")
    fake.portal.assign(ALICE_ID, DEV, "Developer")
    app.scopes.append(ACCOUNT_ACCESS)
    yield fake.portal
    app.scopes[:] = scopes
    fake.config.instance_kind = "organization"
    fake.portal.clear()


def _logs(home, daemon: Tipd) -> str:
    return daemon.output() + (home.browser_log.read_text() if home.browser_log.exists() else "")


def test_accounts_lists_the_sign_ins_accounts_and_roles(home, tipd, fake, portal):
    tipctl(home, "login")
    listed = json.loads(tipctl(home, "accounts", "--json").stdout)
    assert listed == {"profile": "work", "accounts": [
        {"account_id": DEV, "name": "dev", "email": "dev@example.com", "roles": ["Developer"]},
        {"account_id": PROD, "name": "prod", "email": "prod@example.com",
         "roles": ["AdministratorAccess", "ReadOnly"]}]}
    calls = fake.count("ListAccountRoles")
    text = tipctl(home, "accounts", "work").stdout.splitlines()
    assert text[0].split() == ["ACCOUNT", "ID", "NAME", "E-MAIL", "ROLES"]
    assert text[2].split() == [PROD, "prod", "prod@example.com", "AdministratorAccess,", "ReadOnly"]
    assert fake.count("ListAccountRoles") == calls  # the minute-old listing
    tipctl(home, "accounts", "--fresh")
    assert fake.count("ListAccountRoles") == calls + 2
    assert not ACCESS_TOKEN.search(_logs(home, tipd))


def test_an_application_without_the_scope_is_one_sentence(home, tipd, fake, portal):
    fake.config.applications[APP_ARN].scopes.remove(ACCOUNT_ACCESS)
    tipctl(home, "login")
    before = fake.count("ListAccounts")
    r = tipctl(home, "accounts", check=False)
    assert r.returncode == 1 and r.stdout == ""
    line = r.stderr.strip()
    assert line.count("\n") == 0 and "Traceback" not in line
    assert f"must enable the {ACCOUNT_ACCESS} scope on application {APP_ARN}" in line
    assert "organization instance" in line
    assert fake.count("ListAccounts") == before  # the token's scope said so: no call made


def test_an_account_instance_is_one_sentence(home, tipd, fake, portal):
    fake.config.instance_kind = "account"
    tipctl(home, "login")
    r = tipctl(home, "accounts", "--json", check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"enable the {ACCOUNT_ACCESS} scope" in r.stderr and "an account instance cannot" in r.stderr


def test_the_console_is_refused_for_the_identity_enhanced_session(home, tipd, portal):
    tipctl(home, "login")
    r = tipctl(home, "console", "work", "--print", check=False)
    assert r.returncode == 1 and r.stdout == ""
    assert "identity-enhanced session" in r.stderr and "account profile" in r.stderr


def test_console_print_gives_the_fake_federation_url_and_no_log_has_it(home, fake, portal):
    home.config_file.write_text(home.config_file.read_text() + f"""
[profiles.prod-admin]
source = "work"
account_id = "{PROD}"
role_name = "AdministratorAccess"
region = "ap-southeast-2"
""")
    daemon = Tipd(home).start()
    try:
        tipctl(home, "login", "work")
        env = {"TIPD_FEDERATION_URL": fake.url + "/federation"}
        home_url = tipctl(home, "console", "prod-admin", "--print", env=env).stdout.strip()
        home_q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(home_url).query))
        assert home_q["Destination"] == "https://console.aws.amazon.com/console/home?region=ap-southeast-2"
        r = tipctl(home, "console", "prod-admin", "--print", "--service", "s3", "--region", "eu-west-1", env=env)
        url = r.stdout.strip()
        assert r.stderr == "" and "\n" not in url
        split = urllib.parse.urlsplit(url)
        assert split.scheme + "://" + split.netloc + split.path == fake.url + "/federation"
        q = dict(urllib.parse.parse_qsl(split.query))
        assert q["Action"] == "login" and q["Issuer"] == "tipd"
        assert q["Destination"] == "https://console.aws.amazon.com/s3/home?region=eu-west-1"
        assert q["SigninToken"] in fake.portal.issued_signin_tokens
        assert q["SigninToken"] not in _logs(home, daemon)
        assert q["SigninToken"] not in json.dumps([c.params for c in fake.calls])
    finally:
        daemon.stop()


def test_accounts_before_sign_in_and_for_an_unknown_profile_are_sentences(home, tipd, portal):
    r = tipctl(home, "accounts", check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip() == "tipctl: not signed in: run `tipctl login work`"
    r = tipctl(home, "accounts", "nope", check=False)
    assert r.returncode == 1 and "no profile named 'nope'" in r.stderr


def test_an_account_profile_without_the_scope_is_one_sentence(home, fake, portal):
    fake.config.applications[APP_ARN].scopes.remove(ACCOUNT_ACCESS)
    home.config_file.write_text(home.config_file.read_text() + f"""
[profiles.prod-admin]
source = "work"
account_id = "{PROD}"
role_name = "AdministratorAccess"
""")
    daemon = Tipd(home).start()
    try:
        tipctl(home, "login", "work")
        before = fake.count("GetRoleCredentials")
        for command in (("credential-process", "prod-admin"), ("console", "prod-admin", "--print")):
            r = tipctl(home, *command, check=False)
            assert r.returncode == 1 and r.stdout == "" and "Traceback" not in r.stderr, r
            assert f"must enable the {ACCOUNT_ACCESS} scope on application {APP_ARN}" in r.stderr
            assert r.stderr.strip().count("\n") == 0
        assert fake.count("GetRoleCredentials") == before
    finally:
        daemon.stop()
