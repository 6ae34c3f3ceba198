"""`tipctl aws-config sync` and `tipctl exec` end to end: the real tipd, IdP, moto and fake; boto3 and the aws CLI
as the clients."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.aws import ACCOUNT_ACCESS
from tests.support.stack import APP_ARN, BIN, ENHANCED_ROLE, ROOT, Home, Tipd, aws_cli, tipctl, wait_for

pytestmark = pytest.mark.acceptance
ALICE_ID = "9067e4a2-alice"
PROD = "111111111111"
ALICE_ARN_END = f"assumed-role/{ENHANCED_ROLE.split('/')[-1]}/tip-9067e4a2-alice"
WHOAMI = "import boto3, json, sys; print(json.dumps(boto3.Session(profile_name=sys.argv[1] if len(sys.argv) > 1 " \
         "else None).client('sts').get_caller_identity()))"
#: a user's own file: comments, odd spacing, other profiles, an sso-session, no newline at the end
USER_FILE = ("# my settings\n[default]\nregion=eu-west-1\n\n  ; hand-written\n[profile  static ]\n"
             "aws_access_key_id =  AKIAEXAMPLE\naws_secret_access_key = x\n\n[sso-session corp]\n"
             "sso_region = us-east-1\n[profile other]\noutput = json")


def test_aws_config_sync_serves_aws_profile_to_boto3_and_the_aws_cli(home: Home, tipd: Tipd) -> None:
    tipctl(home, "login")
    cfg = home.dir / "home" / "aws-config"
    cfg.write_text(USER_FILE)
    cfg.chmod(0o644)
    env = dict(home.env, AWS_CONFIG_FILE=str(cfg))
    out = tipctl(home, "aws-config", "sync", env=env).stdout
    assert "added work" in out and "aws --profile work" in out, out
    text = cfg.read_text()
    assert text.startswith(USER_FILE + "\n# BEGIN tipd profiles") and oct(cfg.stat().st_mode & 0o777) == "0o644"
    assert f"credential_process = {BIN / 'tipctl'} credential-process work\nregion = us-east-1\n" in text

    cli = subprocess.run([aws_cli(), "sts", "get-caller-identity", "--profile", "work", "--output", "json"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["Arn"].endswith(ALICE_ARN_END)
    boto = subprocess.run([sys.executable, "-c", WHOAMI], env=dict(env, AWS_PROFILE="work"), capture_output=True,
                          text=True, timeout=120)
    assert boto.returncode == 0, boto.stderr
    assert json.loads(boto.stdout)["Arn"].endswith(ALICE_ARN_END)

    again = json.loads(tipctl(home, "aws-config", "sync", "--json", env=env).stdout)
    assert again["unchanged"] == ["work"] and not again["written"]
    removed = tipctl(home, "aws-config", "sync", "--remove", env=env).stdout
    assert "removed work" in removed
    assert cfg.read_text() == USER_FILE + "\n"  # byte for byte, but for the newline that let the block start a line


def test_aws_config_sync_refuses_a_profile_the_user_already_has(home: Home) -> None:
    cfg = home.dir / "home" / "aws-config"
    cfg.write_text("[profile work]\nregion = eu-west-1\n")
    r = tipctl(home, "aws-config", "sync", env={"AWS_CONFIG_FILE": str(cfg)}, check=False)
    assert r.returncode == 1 and "already has profile work of its own" in r.stderr and "Traceback" not in r.stderr
    assert cfg.read_text() == "[profile work]\nregion = eu-west-1\n"


@pytest.mark.parametrize("code", [0, 3, 255])
def test_exec_passes_the_exit_status_through(home: Home, code: int) -> None:
    r = tipctl(home, "exec", "work", "--", "sh", "-c", f"exit {code}", check=False)
    assert r.returncode == code, r.stderr
    assert "tipd is not running" in r.stderr  # a warning, and the command ran all the same


def test_exec_is_the_command_so_a_signal_ends_it_as_its_own(home: Home) -> None:
    proc = subprocess.Popen([str(BIN / "tipctl"), "exec", "work", "--", "sleep", "300"], env=home.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # tipctl became `sleep` (execvpe): the same pid, so the signal reaches the command itself
        cmdline = Path(f"/proc/{proc.pid}/cmdline")
        wait_for(lambda: cmdline.read_bytes().startswith(b"sleep\0"), 60,
                 "tipctl to exec the command", proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == -signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    r = tipctl(home, "exec", "work", "--", "sh", "-c", "kill -INT $$", check=False)
    assert r.returncode == -signal.SIGINT


def test_exec_gives_the_command_the_profile_and_no_credentials(home: Home, tipd: Tipd) -> None:
    before = tipctl(home, "exec", "work", "--", "true", check=False)
    assert before.returncode == 0 and "profile work is signed-out: run `tipctl login work`" in before.stderr
    tipctl(home, "login")
    shadowing = {"AWS_ACCESS_KEY_ID": "AKIASHADOW", "AWS_SECRET_ACCESS_KEY": "shadow", "AWS_PROFILE": "nope",
                 "AWS_CONTAINER_AUTHORIZATION_TOKEN": "stale"}
    r = tipctl(home, "exec", "work", "--", sys.executable, "-c", WHOAMI, env=shadowing)
    assert json.loads(r.stdout)["Arn"].endswith(ALICE_ARN_END) and r.stderr == ""
    env = tipctl(home, "exec", "work", "--", "env", "-0", env=shadowing).stdout
    child = dict(kv.split("=", 1) for kv in env.split("\0") if kv)
    assert child["AWS_CONTAINER_CREDENTIALS_FULL_URI"] == f"http://127.0.0.1:{home.port}/v1/credentials/work"
    assert child["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] == str(home.token_file)
    assert not set(shadowing) & set(child)
    creds = json.loads(tipctl(home, "credential-process", "work").stdout)
    values = set(child.values())
    assert home.token() not in values and creds["SecretAccessKey"] not in env and creds["SessionToken"] not in env


def test_a_tipctl_path_with_spaces_is_quoted_so_botocore_the_aws_cli_and_node_all_run_it(home: Home,
                                                                                         tipd: Tipd) -> None:
    """botocore splits credential_process like a shell line (shlex), the Node SDK hands it to a shell: the double
    quotes of the AWS CLI guide's rule must work for both."""
    tipctl(home, "login")
    spaced = home.dir / "home" / "My Tools"
    spaced.mkdir()
    (spaced / "tipctl").symlink_to(BIN / "tipctl")
    cfg = home.dir / "home" / "aws-config"
    env = dict(home.env, AWS_CONFIG_FILE=str(cfg))
    r = subprocess.run([str(spaced / "tipctl"), "aws-config", "sync"], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert f'credential_process = "{spaced / "tipctl"}" credential-process work\n' in cfg.read_text()
    clients = {
        "aws CLI": [aws_cli(), "sts", "get-caller-identity", "--output", "json"],
        "boto3": [sys.executable, "-c", WHOAMI],
        "node": ["node", str(ROOT / "tests" / "node" / "whoami.mjs")],
    }
    for name, argv in clients.items():
        out = subprocess.run(argv, env=dict(env, AWS_PROFILE="work"), capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, f"{name}: {out.stderr}"
        assert json.loads(out.stdout)["Arn"].endswith(ALICE_ARN_END), name


def test_account_profiles_get_sections_and_exec_with_their_region(home: Home, fake: Any) -> None:
    """Account profiles (a role in an account through the source's sign-in) are tipd profiles like any other:
    a section each (the profile's region, else its source's), served to the aws CLI; exec sets the region."""
    app = fake.config.applications[APP_ARN]
    app.scopes.append(ACCOUNT_ACCESS)
    fake.portal.account(PROD, "prod")
    fake.portal.assign(ALICE_ID, PROD, "AdministratorAccess")
    fake.portal.assign(ALICE_ID, PROD, "ReadOnly")
    home.config_file.write_text(
        home.config_file.read_text()
        + f'\n[profiles.prod-admin]\nsource = "work"\naccount_id = "{PROD}"\nrole_name = "AdministratorAccess"\n'
          'region = "eu-west-1"\n'
        + f'\n[profiles.prod-read]\nsource = "work"\naccount_id = "{PROD}"\nrole_name = "ReadOnly"\n')
    daemon = Tipd(home).start()
    try:
        tipctl(home, "login", "work")
        cfg = home.dir / "home" / "aws-config"
        env = dict(home.env, AWS_CONFIG_FILE=str(cfg))
        assert "added work, prod-admin, prod-read" in tipctl(home, "aws-config", "sync", env=env).stdout
        text = cfg.read_text()
        assert f"[profile prod-admin]\ncredential_process = {BIN / 'tipctl'} credential-process prod-admin\n" \
               "region = eu-west-1\n" in text
        assert "credential-process prod-read\nregion = us-east-1\n" in text  # the source's region
        cli = subprocess.run([aws_cli(), "sts", "get-caller-identity", "--profile", "prod-admin", "--output", "json"],
                             env=env, capture_output=True, text=True, timeout=120)
        assert cli.returncode == 0, cli.stderr
        assert json.loads(cli.stdout)["Account"] == PROD and "AdministratorAccess" in json.loads(cli.stdout)["Arn"]

        bare = {k: v for k, v in home.env.items() if k not in ("AWS_REGION", "AWS_DEFAULT_REGION")}
        r = subprocess.run([str(BIN / "tipctl"), "exec", "prod-read", "--", sys.executable, "-c",
                            WHOAMI + "; import os; print(os.environ['AWS_REGION'])"],
                           env=bare, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        who, region = r.stdout.splitlines()
        assert json.loads(who)["Account"] == PROD and "ReadOnly" in json.loads(who)["Arn"] and region == "us-east-1"

        # a profile added later: tipctl says the AWS config is behind, and the next sync adds it
        added = tipctl(home, "accounts", "add", "prod-read-2", "--account-id", PROD, "--role-name", "ReadOnly",
                       "--source", "work", env=env).stdout
        assert "has tipd's profiles: run `tipctl aws-config sync`" in added, added
        assert "added prod-read-2" in tipctl(home, "aws-config", "sync", env=env).stdout
    finally:
        daemon.stop()
        app.scopes.remove(ACCOUNT_ACCESS)
        fake.portal.clear()


def test_attack_exec_command_runs_as_the_default_profile_of_the_aws_files(home: Home, tipd: Tipd) -> None:
    """Every SDK takes a `[default]` profile's credentials from ~/.aws/credentials or ~/.aws/config before the
    container endpoint (botocore's chain: shared-credentials-file, custom-process and config-file come before
    container-role). Unfixed, `tipctl exec work -- CMD` ran CMD with those keys, another identity, silently. Now
    the credentials file is hidden from the command, and a config whose default profile has a credential source is
    refused with a sentence (unless the profile is in tipd's own block: then the command gets AWS_PROFILE)."""
    tipctl(home, "login")
    aws = Path(home.env["HOME"]) / ".aws"
    aws.mkdir(parents=True, exist_ok=True)
    (aws / "credentials").write_text("[default]\naws_access_key_id = AKIADEFAULTKEYS\naws_secret_access_key = x\n")
    r = tipctl(home, "exec", "work", "--", sys.executable, "-c", WHOAMI)
    assert json.loads(r.stdout)["Arn"].endswith(ALICE_ARN_END)
    (aws / "credentials").unlink()
    (aws / "config").write_text("[default]\nregion = eu-west-1\ncredential_process = /bin/false\n")
    r = tipctl(home, "exec", "work", "--", "true", check=False)
    assert r.returncode != 0 and "default profile" in r.stderr and "credential_process" in r.stderr
    # tipd's own block with a profile named `default` (and `work`): the command gets AWS_PROFILE=work
    (aws / "config").write_text("")
    cfg = home.config_file.read_text()
    work = cfg[cfg.index("[profiles.work]"):]
    home.config_file.write_text(cfg + "\n" + work.replace("[profiles.work]", "[profiles.default]", 1))
    tipctl(home, "reload")
    tipctl(home, "aws-config", "sync")
    env = tipctl(home, "exec", "work", "--", "env", "-0").stdout
    child = dict(kv.split("=", 1) for kv in env.split("\0") if kv)
    assert child["AWS_PROFILE"] == "work"
