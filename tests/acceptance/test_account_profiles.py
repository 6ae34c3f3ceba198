"""Account profiles end to end: the real tipd and tipctl, the real IdP, moto and the fake's portal API; boto3,
the aws CLI and Node as the clients."""
from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.aws import ACCOUNT_ACCESS
from tests.support.stack import APP_ARN, ROOT, Home, Tipd, aws_cli, status, tipctl, wait_for

pytestmark = pytest.mark.acceptance
ALICE_ID = "9067e4a2-alice"
PROD, DEV = "111111111111", "222222222222"
#: two identities in one process: the container provider reads the variable when a session is made
TWO_IN_ONE = """
import boto3, json, os
out = {}
for name in ("prod-admin", "dev-read"):
    os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = os.environ["BASE_URI"] + name
    out[name] = boto3.Session().client("sts").get_caller_identity()["Arn"]
print(json.dumps(out))
"""


def account_tables(n_extra: int = 0) -> str:
    text = (f'\n[profiles.prod-admin]\nsource = "work"\naccount_id = "{PROD}"\nrole_name = "AdministratorAccess"\n'
            f'\n[profiles.dev-read]\nsource = "work"\naccount_id = "{DEV}"\nrole_name = "ReadOnly"\n'
            'region = "eu-west-1"\n')
    for i in range(n_extra):
        text += f'\n[profiles.spare{i}]\nsource = "work"\naccount_id = "{300000000000 + i}"\nrole_name = "ReadOnly"\n'
    return text


@pytest.fixture
def portal(fake: Any) -> Iterator[Any]:
    """Alice is assigned two roles in two accounts; the application has the account access scope."""
    app = fake.config.applications[APP_ARN]
    app.scopes.append(ACCOUNT_ACCESS)
    fake.portal.account(PROD, "prod")
    fake.portal.account(DEV, "dev")
    fake.portal.assign(ALICE_ID, PROD, "AdministratorAccess")
    fake.portal.assign(ALICE_ID, DEV, "ReadOnly")
    yield fake.portal
    app.scopes.remove(ACCOUNT_ACCESS)
    fake.portal.clear()


@pytest.fixture
def daemon(home: Home, portal: Any) -> Iterator[Tipd]:
    home.config_file.write_text(home.config_file.read_text() + account_tables(n_extra=298))
    d = Tipd(home).start()
    yield d
    d.stop()


def env_for(home: Home, profile: str, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", f'set -e; eval "$(tipctl env {profile})"; {command}'], env=home.env,
                          capture_output=True, text=True, timeout=120)


def test_300_account_profiles_are_served_to_every_sdk_and_cost_nothing_until_used(
        home: Home, daemon: Tipd, fake: Any, portal: Any) -> None:
    tipctl(home, "login", "work")
    fake.clear_calls()
    st = status(home)
    work = next(p for p in st["profiles"] if p["profile"] == "work")
    assert len(work["accounts"]) == 300 and {a["state"] for a in work["accounts"]} == {"cold"}
    assert fake.count("GetRoleCredentials") == 0  # 300 configured, none used: no upstream call

    boto = env_for(home, "prod-admin", "python -c 'import boto3, json; "
                   "print(json.dumps(boto3.client(\"sts\").get_caller_identity()))'")
    assert boto.returncode == 0, boto.stderr
    assert "tipctl:" not in boto.stderr  # a cold account profile of a signed-in source: nothing to warn about
    prod_arn = json.loads(boto.stdout)["Arn"]
    assert prod_arn.startswith(f"arn:aws:sts::{PROD}:assumed-role/AWSReservedSSO_AdministratorAccess_"), prod_arn
    assert fake.count("GetRoleCredentials") == 1

    cli = env_for(home, "prod-admin", f"{aws_cli()} sts get-caller-identity --output json")
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["Arn"] == prod_arn
    node = env_for(home, "dev-read", f"node {ROOT / 'tests' / 'node' / 'whoami.mjs'}")
    assert node.returncode == 0, node.stderr
    assert json.loads(node.stdout)["Arn"].startswith(f"arn:aws:sts::{DEV}:assumed-role/AWSReservedSSO_ReadOnly_")
    # served from memory: one GetRoleCredentials per profile used, whatever the number of clients
    assert fake.count("GetRoleCredentials") == 2

    st = status(home)
    work = next(p for p in st["profiles"] if p["profile"] == "work")
    states = {a["profile"]: a["state"] for a in work["accounts"]}
    assert states["prod-admin"] == states["dev-read"] == "fresh"
    assert sum(s == "cold" for s in states.values()) == 298
    text = tipctl(home, "status", check=False).stdout
    assert "  prod-admin" in text and "AdministratorAccess @ 111111111111" in text
    assert "+ 298 account profiles not used yet" in text


def test_two_account_profiles_in_one_process_are_two_identities(home: Home, daemon: Tipd) -> None:
    tipctl(home, "login", "work")
    base = f"http://127.0.0.1:{home.port}/v1/credentials/"
    r = subprocess.run([sys.executable, "-c", TWO_IN_ONE], capture_output=True, text=True, timeout=120,
                       env=dict(home.env, BASE_URI=base, AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=str(home.token_file)))
    assert r.returncode == 0, r.stderr
    arns = json.loads(r.stdout)
    assert arns["prod-admin"].startswith(f"arn:aws:sts::{PROD}:assumed-role/AWSReservedSSO_AdministratorAccess_")
    assert arns["dev-read"].startswith(f"arn:aws:sts::{DEV}:assumed-role/AWSReservedSSO_ReadOnly_")


def test_credential_process_serves_an_account_profile(home: Home, daemon: Tipd, fake: Any) -> None:
    tipctl(home, "login", "work")
    out = json.loads(tipctl(home, "credential-process", "dev-read").stdout)
    assert out["Version"] == 1 and out["AccessKeyId"] and out["SessionToken"] and out["Expiration"].endswith("Z")
    assert any(key == out["AccessKeyId"] for _, _, key in fake.portal.vended)


def test_logout_of_the_source_ends_its_account_profiles(home: Home, daemon: Tipd, fake: Any) -> None:
    tipctl(home, "login", "work")
    assert env_for(home, "prod-admin", f"{aws_cli()} sts get-caller-identity").returncode == 0
    tipctl(home, "logout", "work")
    env = tipctl(home, "env", "prod-admin")
    assert ("account profile prod-admin signs in through work, which is signed-out, so AWS SDKs will get no "
            "credentials: run `tipctl login work`") in env.stderr
    work = next(p for p in status(home)["profiles"] if p["profile"] == "work")
    prod = next(a for a in work["accounts"] if a["profile"] == "prod-admin")
    assert prod["state"] == "signed-out" and prod["credentials_expire"] is None
    r = tipctl(home, "credential-process", "prod-admin", check=False)
    assert r.returncode != 0 and "tipctl login work" in r.stderr and "Traceback" not in r.stderr
    calls = fake.count("GetRoleCredentials")
    cli = env_for(home, "prod-admin", f"{aws_cli()} sts get-caller-identity")
    assert cli.returncode != 0
    assert fake.count("GetRoleCredentials") == calls  # nothing fetched for a signed-out source


def test_login_to_an_account_profile_signs_in_to_its_source(home: Home, daemon: Tipd) -> None:
    r = tipctl(home, "login", "prod-admin")
    assert "prod-admin is an account profile of work: that sign-in is meant" in r.stderr
    assert "Signed in to work" in r.stdout
    tipctl(home, "logout")  # several profiles, no default: the only one that signs in is meant
    assert next(p for p in status(home)["profiles"] if p["profile"] == "work")["state"] == "signed-out"


def test_a_reload_that_removes_an_account_profile_stops_serving_it(home: Home, daemon: Tipd) -> None:
    tipctl(home, "login", "work")
    assert json.loads(tipctl(home, "credential-process", "dev-read").stdout)["AccessKeyId"]
    text = home.config_file.read_text()
    home.config_file.write_text(text.replace("[profiles.dev-read]", "[profiles.gone]"))
    out = json.loads(tipctl(home, "reload", "--json").stdout)
    assert "dev-read" in out["removed"] and "gone" in out["added"], out
    wait_for(lambda: tipctl(home, "credential-process", "dev-read", check=False).returncode != 0,
             what="dev-read no longer served")


def test_accounts_sync_adds_and_removes_and_says_what_it_changed(home: Home, fake: Any, portal: Any) -> None:
    home.config_file.write_text("# my tipd config\n" + home.config_file.read_text())
    d = Tipd(home).start()
    try:
        tipctl(home, "login", "work")
        before = home.config_file.read_text()
        dry = json.loads(tipctl(home, "accounts", "sync", "--dry-run", "--json").stdout)
        assert sorted(dry["added"]) == ["dev-ReadOnly", "prod-AdministratorAccess"] and dry["dry_run"]
        assert home.config_file.read_text() == before  # a dry run writes nothing

        out = tipctl(home, "accounts", "sync").stdout
        assert "added prod-AdministratorAccess, dev-ReadOnly" in out or "added dev-ReadOnly, prod-Admin" in out, out
        text = home.config_file.read_text()
        assert text.startswith(before)  # appended: everything that was there stays byte for byte
        assert '[profiles.dev-ReadOnly]\nsource = "work"\naccount_id = "222222222222"\nrole_name = "ReadOnly"\n' \
               'synced = true\n' in text
        # reloaded: served at once
        creds = json.loads(tipctl(home, "credential-process", "prod-AdministratorAccess").stdout)
        assert creds["AccessKeyId"]
        # a profile added by hand is never removed by a sync, even once no longer assigned
        tipctl(home, "accounts", "add", "mine", "--account-id", DEV, "--role-name", "Billing")
        assert '[profiles.mine]\nsource = "work"\naccount_id = "222222222222"\nrole_name = "Billing"\n' in \
            home.config_file.read_text()

        portal.unassign(ALICE_ID, DEV)
        portal.assign(ALICE_ID, PROD, "ReadOnly")
        again = json.loads(tipctl(home, "accounts", "sync", "--json").stdout)
        assert again["added"] == ["prod-ReadOnly"] and again["removed"] == ["dev-ReadOnly"], again
        assert again["unchanged"] == ["prod-AdministratorAccess"] and again["kept"] == ["mine"] and again["reloaded"]
        text = home.config_file.read_text()
        assert "[profiles.dev-ReadOnly]" not in text and "[profiles.prod-ReadOnly]" in text
        assert "[profiles.mine]" in text and text.startswith("# my tipd config\n")
        st = status(home)
        names = {a["profile"] for p in st["profiles"] for a in p["accounts"]}
        assert names == {"prod-AdministratorAccess", "prod-ReadOnly", "mine"}
        wait_for(lambda: tipctl(home, "credential-process", "dev-ReadOnly", check=False).returncode != 0,
                 what="the removed profile is no longer served")
        # nothing changed since: up to date, nothing written
        same = home.config_file.read_text()
        assert "up to date (2 unchanged)" in tipctl(home, "accounts", "sync").stdout
        assert home.config_file.read_text() == same
    finally:
        d.stop()


def test_accounts_sync_refuses_a_bad_template_and_names_by_a_good_one(home: Home, fake: Any, portal: Any) -> None:
    d = Tipd(home).start()
    try:
        tipctl(home, "login", "work")
        r = tipctl(home, "accounts", "sync", "--template", "{account}-{role_name}", check=False)
        assert r.returncode == 1 and "not {account}" in r.stderr and "Traceback" not in r.stderr
        out = json.loads(tipctl(home, "accounts", "sync", "--template", "{account_id}/{role_name}", "--json").stdout)
        assert sorted(out["added"]) == [f"{PROD}-AdministratorAccess", f"{DEV}-ReadOnly"]
    finally:
        d.stop()


def test_configure_account_and_accounts_add_write_an_account_profile(home: Home) -> None:
    before = home.config_file.read_text()
    r = tipctl(home, "configure", "--account", "--profile", "prod", "--account-id", PROD, "--role-name", "Admin")
    assert "Added account profile prod (Admin in 111111111111, through work)" in r.stdout
    assert "tipd is not running: it reads the new profiles when it starts" in r.stderr
    text = home.config_file.read_text()
    assert text.startswith(before)
    assert text.endswith(f'\n\n[profiles.prod]\nsource = "work"\naccount_id = "{PROD}"\nrole_name = "Admin"\n')
    out = json.loads(tipctl(home, "accounts", "add", "dev", "--account-id", DEV, "--role-name", "ReadOnly",
                            "--region", "eu-west-1", "--json").stdout)
    assert out["profile"] == {"source": "work", "account_id": DEV, "role_name": "ReadOnly", "region": "eu-west-1"}
    for bad, says in ((["prod", "--account-id", DEV, "--role-name", "R"], "already has a profile 'prod'"),
                      (["x", "--account-id", "12", "--role-name", "R"], "account_id: does not look right"),
                      (["x", "--account-id", DEV, "--role-name", "R", "--source", "dev"], "dev is an account profile")):
        r = tipctl(home, "accounts", "add", *bad, check=False)
        assert r.returncode == 1 and says in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = tipctl(home, "configure", "--account", "--profile", "y", check=False)
    assert r.returncode == 1 and "needs --account-id, --role-name" in r.stderr


def test_a_role_not_assigned_is_a_sentence_on_every_path(home: Home, daemon: Tipd, fake: Any) -> None:
    tipctl(home, "login", "work")
    r = tipctl(home, "credential-process", "spare0", check=False)  # configured, but Alice has no such role
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "you have no role 'ReadOnly' in account 300000000000" in r.stderr, r.stderr
    boto = env_for(home, "spare0", "python -c 'import boto3; boto3.client(\"sts\").get_caller_identity()'")
    assert boto.returncode != 0 and "AKIA" not in boto.stderr
    work = next(p for p in status(home)["profiles"] if p["profile"] == "work")
    spare = next(a for a in work["accounts"] if a["profile"] == "spare0")
    assert spare["state"] == "degraded" and "no role 'ReadOnly'" in spare["last_error"]
    assert work["state"] == "fresh"  # the sign-in itself is fine


def test_without_the_account_access_scope_an_account_profile_names_what_the_administrator_enables(
        home: Home, daemon: Tipd, fake: Any) -> None:
    scopes = fake.config.applications[APP_ARN].scopes
    scopes.remove(ACCOUNT_ACCESS)  # the administrator has not enabled it
    calls = fake.count("GetRoleCredentials")
    try:
        tipctl(home, "login", "work")
        r = tipctl(home, "credential-process", "prod-admin", check=False)
    finally:
        scopes.append(ACCOUNT_ACCESS)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "must enable the sso:account:access scope on application" in r.stderr and APP_ARN in r.stderr, r.stderr
    assert fake.count("GetRoleCredentials") == calls  # refused before any call


def test_imds_serves_an_account_profile_that_is_the_default(home: Home, portal: Any) -> None:
    home.config_file.write_text('default_profile = "prod-admin"\n' + home.config_file.read_text() + account_tables())
    d = Tipd(home).start()
    try:
        tipctl(home, "login", "work")
        r = subprocess.run(["bash", "-c", 'set -e; eval "$(tipctl env --imds)"; python -c \'import boto3, json; '
                            'print(json.dumps(boto3.client("sts").get_caller_identity()))\''],
                           env=home.env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["Arn"].startswith(f"arn:aws:sts::{PROD}:assumed-role/AWSReservedSSO_Admin")
    finally:
        d.stop()
