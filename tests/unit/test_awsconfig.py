"""tipd's block in the AWS config file: everything outside it stays byte for byte, the block follows the profiles,
a name the user already has is refused, and the file is replaced atomically with its mode kept."""
from __future__ import annotations

import configparser
import os
import stat
import sys
from pathlib import Path

import pytest

from tipd import awsconfig
from tipd.awsconfig import BEGIN, END, AwsProfile, Changes, edit, profile_name, sections, sync
from tipd.errors import ConfigError

EXE = "/opt/tipd/bin/tipctl"
P = Path("/x/config")
#: a user's file as people write them: comments of both kinds, odd spacing, blank lines, no newline at the end
USER = ("# my AWS config\n"
        "[default]\nregion=eu-west-1\n\n"
        "  ; indented comment\n"
        "[profile  dev ]\naws_access_key_id =  AKIAOLD\n   output = json\n\n"
        "[sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\n"
        "[profile \"with space\"]\nregion = us-east-2\n"
        "[services local]\ns3 =\n  endpoint_url = http://localhost:9000")


def prof(name: str, region: str | None = "us-east-1") -> AwsProfile:
    settings = [("credential_process", f"{EXE} credential-process {name}")]
    if region:
        settings.append(("region", region))
    return AwsProfile(name, tuple(settings))


def outside(text: str) -> str:
    before, _, after = awsconfig.split(text, P)
    return before + after


def test_a_new_block_goes_at_the_end_and_nothing_else_changes() -> None:
    new, ch = edit(USER, [prof("work"), prof("acct-dev", None)], P)
    assert ch.added == ["work", "acct-dev"] and not ch.updated and not ch.removed
    assert new.startswith(USER + "\n" + BEGIN + "\n")  # only a final newline was added, so the block has its line
    assert outside(new) == USER + "\n"
    assert new.endswith(f"[profile acct-dev]\ncredential_process = {EXE} credential-process acct-dev\n{END}\n")
    # botocore's reader (configparser, as botocore.configloader.raw_config_parse) takes the result
    cp = configparser.RawConfigParser()
    cp.read_string(new)
    assert cp["profile work"]["credential_process"] == f"{EXE} credential-process work"
    assert cp["profile work"]["region"] == "us-east-1" and "region" not in cp["profile acct-dev"]
    assert cp["profile  dev "]["aws_access_key_id"].startswith("AKIAOLD")


def test_botocore_reads_the_result(tmp_path: Path) -> None:
    from botocore.configloader import load_config

    path = tmp_path / "config"
    path.write_text(edit(USER, [prof("work")], P)[0])
    profiles = load_config(str(path))["profiles"]
    assert profiles["work"] == {"credential_process": f"{EXE} credential-process work", "region": "us-east-1"}
    assert set(profiles) == {"default", "dev", "with space", "work"}


def test_updating_replaces_the_block_in_place_byte_for_byte_around_it() -> None:
    first, _ = edit(USER + "\n", [prof("work"), prof("old")], P)
    tail = "\n# after the block, by hand\n[profile mine]\nregion = ap-south-1\n"
    text = first + tail
    new, ch = edit(text, [prof("work", "eu-central-1"), prof("added")], P)
    assert ch.updated == ["work"] and ch.added == ["added"] and ch.removed == ["old"] and not ch.unchanged
    assert outside(new) == USER + "\n" + tail
    assert new.index(BEGIN) == len(USER) + 1  # the block stayed where it was
    again, ch2 = edit(new, [prof("work", "eu-central-1"), prof("added")], P)
    assert again == new and ch2.unchanged == ["work", "added"] and not ch2.changed


def test_remove_takes_out_the_block_and_only_it() -> None:
    text = "[profile a]\nregion = x\n"
    added, _ = edit(text, [prof("work")], P)
    gone, ch = edit(added + "[profile z]\n", [], P, remove=True)
    assert gone == text + "[profile z]\n" and ch.removed == ["work"]
    assert edit(text, [], P, remove=True)[0] == text  # no block: nothing to do


def test_crlf_files_get_crlf_lines() -> None:
    text = "[profile a]\r\nregion = x\r\n"
    new, _ = edit(text, [prof("w")], P)
    assert new.startswith(text) and "\n" not in new[len(text):].replace("\r\n", "")


@pytest.mark.parametrize("existing", ["[profile work]\n", "[profile   work]\n", '[profile "work"]\n',
                                      "  [profile work]  \n"])
def test_a_profile_the_user_has_is_refused_whatever_its_spelling(existing: str) -> None:
    with pytest.raises(ConfigError) as e:
        edit("# mine\n" + existing + "region = x\n", [prof("work"), prof("other")], P)
    assert "profile work of its own" in e.value.message and "rename" in e.value.message


def test_default_collides_with_the_default_section() -> None:
    with pytest.raises(ConfigError):
        edit("[default]\nregion = x\n", [prof("default")], P)
    assert edit("[defaults]\n", [prof("default")], P)[1].added == ["default"]


def test_a_section_that_is_no_profile_is_no_clash() -> None:
    _, ch = edit("[sso-session work]\n[services work]\n[preview]\ncloudfront = true\n", [prof("work")], P)
    assert ch.added == ["work"]


def test_names_are_read_as_botocore_reads_them() -> None:
    assert profile_name("default") == "default"
    assert profile_name("profile work") == "work"
    assert profile_name('profile "a b"') == "a b"
    assert profile_name("profile") is None and profile_name("profile a b") is None
    assert profile_name("sso-session x") is None and profile_name('profile "unclosed') is None
    assert set(sections(USER)) == {"default", "dev", "with space"}


@pytest.mark.parametrize("damage", [f"{BEGIN}\n[profile w]\n", f"[profile w]\n{END}\n",
                                    f"{BEGIN}\n{END}\n{BEGIN}\n{END}\n", f"{END}\n{BEGIN}\n"])
def test_a_damaged_block_is_a_sentence_not_a_guess(damage: str) -> None:
    with pytest.raises(ConfigError) as e:
        edit("[profile mine]\n" + damage, [prof("w")], P)
    assert "damaged" in e.value.message


def test_sync_writes_atomically_keeps_the_mode_and_follows_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "aws-config"
    real.parent.mkdir()
    real.write_text(USER)
    real.chmod(0o640)
    link = tmp_path / "config"
    link.symlink_to(real)
    ch = sync(link, [prof("work")])
    assert ch.written and ch.added == ["work"]
    assert link.is_symlink() and stat.S_IMODE(real.stat().st_mode) == 0o640
    assert outside(real.read_text()) == USER + "\n"
    assert [n for n in os.listdir(real.parent) if n.endswith(".tmp")] == []
    before = real.stat().st_mtime_ns
    assert not sync(link, [prof("work")]).written and real.stat().st_mtime_ns == before  # unchanged: no write


def test_sync_creates_a_private_file_and_dry_run_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / ".aws" / "config"
    ch = sync(path, [prof("work")], dry_run=True)
    assert ch.added == ["work"] and not ch.written and not path.exists()
    sync(path, [prof("work")])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.read_text().startswith(BEGIN)


def test_a_file_changed_meanwhile_is_not_overwritten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config"
    path.write_text("[profile a]\n")
    real_edit = awsconfig.edit

    def racing_edit(text: str, profiles: list[AwsProfile], p: Path, *, remove: bool = False) -> tuple[str, Changes]:
        path.write_text("[profile a]\n[profile b]\n")  # another program saves while tipd computes
        return real_edit(text, profiles, p, remove=remove)

    monkeypatch.setattr(awsconfig, "edit", racing_edit)
    with pytest.raises(ConfigError) as e:
        sync(path, [prof("work")])
    assert "changed while" in e.value.message and path.read_text() == "[profile a]\n[profile b]\n"


def test_config_file_honours_aws_config_file() -> None:
    assert awsconfig.config_file({"AWS_CONFIG_FILE": "~/elsewhere"}) == Path(os.path.expanduser("~/elsewhere"))
    assert awsconfig.config_file({}) == Path(os.path.expanduser("~/.aws/config"))


@pytest.mark.parametrize(("argv0", "expected"), [
    ("/usr/local/bin/tipctl", "/usr/local/bin/tipctl"),
    ("/Users/Jane Doe/.local/bin/tipctl", '"/Users/Jane Doe/.local/bin/tipctl"'),
])
def test_the_command_is_an_absolute_path_quoted_as_the_aws_cli_guide_says(monkeypatch: pytest.MonkeyPatch, argv0: str,
                                                                           expected: str) -> None:
    monkeypatch.setattr(sys, "argv", [argv0])
    monkeypatch.setattr(os.path, "isfile", lambda _p: True)
    assert awsconfig.tipctl_command() == expected


def test_a_path_no_config_can_carry_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["/home/a$b/bin/tipctl"])
    monkeypatch.setattr(os.path, "isfile", lambda _p: True)
    with pytest.raises(ConfigError) as e:
        awsconfig.tipctl_command()
    assert "plainer path" in e.value.message


def test_a_file_tipd_cannot_read_or_write_is_a_sentence(tmp_path: Path) -> None:
    from tipd.fsutil import temp_name

    path = tmp_path / "config"
    path.write_text("[profile a]\n")
    temp_name(path).mkdir()  # the temp file cannot be created (works as root too, unlike a read-only directory)
    with pytest.raises(ConfigError) as e:
        sync(path, [prof("work")])
    assert "cannot write the AWS config file" in e.value.message and path.read_text() == "[profile a]\n"
    with pytest.raises(ConfigError) as e:
        sync(path / "below-a-file", [prof("work")])
    assert "cannot read the AWS config file" in e.value.message


def test_the_hint_to_sync_comes_only_to_who_synced_before(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config"
    monkeypatch.setenv("AWS_CONFIG_FILE", str(path))
    assert awsconfig.stale_hint() is None  # no file
    path.write_text("[profile mine]\n")
    assert awsconfig.stale_hint() is None  # never synced
    sync(path, [prof("work")])
    assert "run `tipctl aws-config sync`" in (awsconfig.stale_hint() or "")


@pytest.mark.skipif(os.getuid() != 0, reason="making a file another user's takes root")
@pytest.mark.parametrize("attack", ["symlink to another user's file", "world-writable file",
                                    "world-writable directory"])
def test_attack_sync_writes_no_profile_into_a_file_others_control(tmp_path: Path, attack: str) -> None:
    """~/.aws/config a symlink to another user's file, or a file or directory anyone can change: whoever controls
    the file controls its `credential_process` commands (run as you by every SDK), so tipd's profiles are not
    written there (unfixed: written, the symlink followed into the other user's file)."""
    tmp_path.chmod(0o755)
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    target = theirs / "config"
    target.write_text(USER)
    config = tmp_path / "config"
    if attack == "symlink to another user's file":
        os.chown(target, 65534, 65534)
        config.symlink_to(target)
    elif attack == "world-writable file":
        target.chmod(0o666)
        config.symlink_to(target)
    else:
        theirs.chmod(0o777)
        config = target
    with pytest.raises(ConfigError, match="another user or anyone can change"):
        sync(config, [prof("work")])
    assert target.read_text() == USER
