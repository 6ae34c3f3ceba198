"""tipctl ssh's pieces that need no server: its argument split, grant names, and the remote script (run here by
/bin/sh exactly as sshd's shell would: it exports the endpoint, runs the command and removes the token directory)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tipd.cli.main import main
from tipd.consumers import NAME
from tipd.remote import SshError, grant_name, remote_command, split_ssh_args

ENV_PROBE = ("import json, os; print(json.dumps({k: v for k, v in os.environ.items() "
             "if k.startswith(('AWS_', 'TIPD_'))}))")


def test_split_puts_connection_options_on_the_master_and_tty_flags_on_the_session():
    options, session, command = split_ssh_args(["-p", "2222", "-i", "k", "-A", "-t", "-o", "User=x", "--", "ls", "-l"])
    assert options == ["-p", "2222", "-i", "k", "-A", "-o", "User=x"]
    assert session == ["-t"]
    assert command == ["ls", "-l"]
    assert split_ssh_args([]) == ([], [], [])


def test_split_refuses_a_command_without_the_double_dash_and_an_option_without_its_value():
    with pytest.raises(SshError, match="after `--`"):
        split_ssh_args(["uptime"])
    with pytest.raises(SshError, match="needs a value"):
        split_ssh_args(["-p"])


@pytest.mark.parametrize("host", ["build-box", "me@Build.Example.COM", "[::1]", "-evil", "a" * 300, "ü"])
def test_grant_names_fit_the_grant_alphabet(host):
    name = grant_name(host)
    assert NAME.fullmatch(name), name
    assert name.startswith("ssh-") and name != grant_name(host)


def run_remote(tmp: Path, command: list[str], env: dict[str, str] | None = None, region: str | None = "eu-west-1"):
    d = tmp / "tipd-ssh.abcdefghij"
    d.mkdir(mode=0o700)
    (d / "token").write_text("t0ken\n")
    line = remote_command(str(d), 40123, "work", region, command)
    base = {"PATH": os.environ["PATH"], "SHELL": "/bin/sh", "AWS_ACCESS_KEY_ID": "AKIASTATIC",
            "AWS_PROFILE": "other", "AWS_CONTAINER_AUTHORIZATION_TOKEN": "inline", **(env or {})}
    r = subprocess.run(["/bin/sh", "-c", line], env=base, capture_output=True, text=True, timeout=60)
    return d, r


def test_remote_script_exports_the_forwarded_endpoint_and_removes_the_token_directory(tmp_path):
    d, r = run_remote(tmp_path, [sys.executable, "-c", ENV_PROBE])
    assert r.returncode == 0, r.stderr
    env = json.loads(r.stdout)
    assert env == {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:40123/v1/credentials/work",
                   "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": f"{d}/token", "TIPD_SSH_PORT": "40123",
                   "AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-1"}
    assert not d.exists()


def test_remote_script_keeps_a_region_the_host_sets_and_passes_the_exit_status(tmp_path):
    d, r = run_remote(tmp_path, [sys.executable, "-c", ENV_PROBE + "; raise SystemExit(7)"],
                      env={"AWS_REGION": "ap-south-1"})
    assert r.returncode == 7
    assert json.loads(r.stdout)["AWS_REGION"] == "ap-south-1"
    assert not d.exists()


def test_remote_script_runs_the_words_as_they_are_not_through_a_shell(tmp_path):
    _, r = run_remote(tmp_path, ["printf", "%s|", "a b", "$HOME", "; rm -rf /"], region=None)
    assert r.stdout == "a b|$HOME|; rm -rf /|"


def test_remote_script_removes_the_token_directory_when_the_connection_hangs_up(tmp_path):
    d = tmp_path / "tipd-ssh.abcdefghij"
    d.mkdir(mode=0o700)
    ready = tmp_path / "ready"
    line = remote_command(str(d), 1, "work", None, ["sh", "-c", f"touch {ready}; exec sleep 300"])
    p = subprocess.Popen(["/bin/sh", "-c", line], start_new_session=True)
    try:
        deadline_wait(lambda: ready.exists())
        os.killpg(p.pid, signal.SIGHUP)  # sshd's hang-up reaches the session's process group
        assert p.wait(timeout=30) == 129
        assert not d.exists()
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def deadline_wait(predicate) -> None:
    from tests.support.stack import wait_for

    wait_for(predicate, timeout=30, what="the remote command started")


def test_ssh_help_explains_the_session(capsys):
    with pytest.raises(SystemExit):
        main(["ssh", "--help"])
    out = capsys.readouterr().out
    for words in ("consumer token", "ssh -R", "revoked", "SIGKILL", "127.0.0.1:PORT", "docs/remote.md"):
        assert words in " ".join(out.split()), words


def test_ssh_refuses_a_host_that_looks_like_an_option(capsys, monkeypatch):
    monkeypatch.setenv("TIPD_CONFIG", str(Path(tempfile.gettempdir()) / "tipd-no-such-config.toml"))
    assert main(["ssh", "build-box", "uptime"]) == 1
    assert "after `--`" in capsys.readouterr().err


def test_options_after_host_are_ssh_s_even_where_tipctl_has_the_same_name():
    from tipd.cli.main import parser

    argv = ["ssh", "--profile", "prod", "--ttl", "30m", "box", "-p", "2222", "--ttl", "x", "--", "ls", "-l"]
    args = parser(argv).parse_args(argv)
    assert (args.profile, args.ttl, args.host) == (["prod"], "30m", "box")
    assert args.ssh_args == ["-p", "2222", "--ttl", "x", "--", "ls", "-l"]


@pytest.mark.parametrize("flag", ["-f", "-N", "-M", "-S", "-O", "-W"])
def test_ssh_options_that_would_fight_tipctl_s_own_connection_are_refused(flag):
    with pytest.raises(SshError, match=f"{flag} cannot be used"):
        split_ssh_args([flag, "x", "--", "true"])
