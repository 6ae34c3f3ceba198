"""tipd's block of profiles in the AWS shared config file (`~/.aws/config`, or `AWS_CONFIG_FILE`), so that
`aws --profile NAME`, `AWS_PROFILE=NAME` and every SDK reach tipd's profiles through `credential_process`.

The block is the text between two marker lines; everything outside it stays byte for byte as it was. The
file is read the way botocore reads it (configparser sections, `[profile NAME]` and `[default]`), so a
profile name that the user already has outside the block is seen and refused: botocore's configparser
fails on a duplicate section, and another SDK would take whichever comes first. Standard library only."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError
from .fsutil import write_private

BEGIN = "# BEGIN tipd profiles (written by `tipctl aws-config sync`; edits inside this block are replaced)"
END = "# END tipd profiles"
#: a config file is a few KiB; a bigger one is the wrong file, and is not read whole into memory
MAX_FILE = 4 * 1024 * 1024
#: configparser's section header (Lib/configparser.py SECTCRE), matched on the stripped line
_SECTION = re.compile(r"\[(?P<header>.+)\]")
#: a path that needs no quotes for botocore (shlex.split), the Node and Go SDKs (a shell) alike
_BARE = re.compile(r"[A-Za-z0-9_./+:@%,=-]+")
#: characters that change meaning inside double quotes for a shell, or cut a value short for an SDK's INI
#: reader (inline comments): a path with one of them cannot be written portably
_UNQUOTABLE = set('"\\$`#;!') | {chr(c) for c in range(0x20)} | {"\x7f"}


@dataclass(frozen=True)
class AwsProfile:
    """One `[profile NAME]` section tipd writes: its settings in order."""

    name: str
    settings: tuple[tuple[str, str], ...]

    def render(self, nl: str = "\n") -> str:
        return f"[profile {self.name}]{nl}" + "".join(f"{k} = {v}{nl}" for k, v in self.settings)


@dataclass
class Changes:
    """What a sync did (or would do) to the file."""

    path: Path
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    written: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def as_json(self) -> dict[str, object]:
        return {"file": str(self.path), "added": self.added, "updated": self.updated, "removed": self.removed,
                "unchanged": self.unchanged, "written": self.written}


def config_file(env: Mapping[str, str] | None = None) -> Path:
    """The file the SDKs read: AWS_CONFIG_FILE (with `~` expanded, as botocore does), else ~/.aws/config."""
    given = (os.environ if env is None else env).get("AWS_CONFIG_FILE")
    return Path(os.path.expanduser(given or "~/.aws/config"))


def profile_name(header: str) -> str | None:
    """The profile a section header names, as botocore reads it (configloader.build_profile_map): `default`, or
    the second word of a header that starts with `profile` (split like a shell line), else None."""
    if header == "default":
        return "default"
    if not header.startswith("profile"):
        return None
    try:
        parts = shlex.split(header)
    except ValueError:
        return None
    return parts[1] if len(parts) == 2 else None


#: what gives a profile of the AWS config files credentials of its own (botocore: static keys, credential_process,
#: assume-role, web identity, SSO, console login)
CREDENTIAL_KEYS = ("aws_access_key_id", "credential_process", "role_arn", "web_identity_token_file", "sso_session",
                   "sso_start_url", "login_session")


def default_credentials(text: str) -> str | None:
    """The first key of CREDENTIAL_KEYS the `[default]` profile of an AWS config or credentials file sets, or None:
    every SDK takes that profile's credentials before the container endpoint."""
    import configparser

    default = sections(text).get("default")
    if default is None:
        return None
    parser = configparser.RawConfigParser(strict=False)
    try:
        parser.read_string("[default]\n" + (default.split("\n", 1)[1] if "\n" in default else ""))
    except configparser.Error:
        return None  # a file no SDK can read either
    return next((k for k in CREDENTIAL_KEYS if parser.has_option("default", k)), None)


def shadowing_default(env: Mapping[str, str]) -> str | None:
    """A sentence when the AWS files' default profile has credentials of its own (the credentials file first, as
    the SDKs read them), which the SDKs take before tipd's endpoint; None otherwise or when a file is unreadable."""
    creds = Path(os.path.expanduser(env.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials"))
    for path in (creds, config_file(env)):
        try:
            found = default_credentials(read(path))
        except ConfigError:
            continue
        if found is not None:
            return (f"the default profile in {path} has credentials of its own ({found}), which every AWS SDK "
                    "uses before tipd's endpoint: move them to a named profile, or run commands with "
                    "`tipctl exec PROFILE -- CMD`")
    return None


def split(text: str, path: Path) -> tuple[str, str | None, str]:
    """(before, block, after): the file around tipd's block, which includes its marker lines. No block: the
    whole text is `before`. A broken block (a BEGIN without its END, two of either) is an error, since
    guessing where it ends could cut into the user's own profiles."""
    lines = text.splitlines(keepends=True)
    begins = [i for i, ln in enumerate(lines) if ln.rstrip() == BEGIN]
    ends = [i for i, ln in enumerate(lines) if ln.rstrip() == END]
    if not begins and not ends:
        return text, None, ""
    if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
        raise ConfigError(f"{path}: tipd's block of profiles is damaged (its BEGIN and END lines do not pair up); "
                          f"remove the lines from `{BEGIN[:16]}...` to `{END}` by hand, then sync again")
    b, e = begins[0], ends[0]
    return "".join(lines[:b]), "".join(lines[b:e + 1]), "".join(lines[e + 1:])


def sections(text: str) -> dict[str, str]:
    """{profile name: its text} for every profile section in `text` (later duplicates replace earlier ones)."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines(keepends=True):
        m = _SECTION.match(line.strip())
        if m:
            name = profile_name(m.group("header"))
            current = found.setdefault(name, []) if name is not None else None
            if current is not None:
                current.clear()
        if current is not None and line.rstrip() not in (BEGIN, END):
            current.append(line)
    return {n: "".join(body).strip() for n, body in found.items()}


def edit(text: str, profiles: list[AwsProfile], path: Path, *, remove: bool = False) -> tuple[str, Changes]:
    """The file's new text with tipd's block holding exactly `profiles` (none and no block with `remove`), and
    what changed. The block stays where it is; a new one goes at the end. Nothing else changes, except a
    final newline added to a file that lacked one so the block starts on a line of its own."""
    before, block, after = split(text, path)
    old = sections(block) if block is not None else {}
    changes = Changes(path)
    if remove or not profiles:
        changes.removed = sorted(old)
        return before + after, changes
    clash = sorted(p.name for p in profiles if p.name in sections(before + after))
    if clash:
        raise ConfigError(f"{path} already has {_names(clash)} of its own, outside tipd's block; rename the "
                          "tipd profile or remove that section, then sync again (tipd does not change profiles "
                          "it did not write)")
    nl = "\r\n" if "\r\n" in text else "\n"
    new = {p.name: p.render(nl) for p in profiles}
    for name, body in new.items():
        if name not in old:
            changes.added.append(name)
        elif old[name] != body.strip():
            changes.updated.append(name)
        else:
            changes.unchanged.append(name)
    changes.removed = sorted(set(old) - set(new))
    rendered = BEGIN + nl + "".join(new.values()) + END + nl
    if block is None and before and not before.endswith("\n"):
        before += nl
    return before + rendered + after, changes


def _names(names: list[str]) -> str:
    return ("profile " if len(names) == 1 else "profiles ") + ", ".join(names)


def read(path: Path) -> str:
    """The file's text ('' when it does not exist yet)."""
    try:
        with open(path, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ConfigError(f"{path}: not a regular file; point AWS_CONFIG_FILE at the AWS config file")
            raw = f.read(MAX_FILE + 1)
    except FileNotFoundError:
        return ""
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the AWS config file: {e.strerror}") from None
    if len(raw) > MAX_FILE:
        raise ConfigError(f"{path}: larger than {MAX_FILE // 1024 // 1024} MiB; is it the AWS config file?")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; tipd edits only a UTF-8 AWS config file") from None


def write(path: Path, old: str, new: str) -> None:
    """Replace the file atomically (same-directory temp file, fsync, rename), keeping its mode; a symlink is
    followed, so a config kept in a dotfiles repository stays there. Refuses when the file changed since it
    was read (another program was editing it)."""
    target = Path(os.path.realpath(path))
    refuse_others(path, target)
    if read(target) != old:
        raise ConfigError(f"{path} changed while tipd was editing it; run the command again")
    try:
        try:
            mode = stat.S_IMODE(target.stat().st_mode)
        except FileNotFoundError:
            mode = 0o600
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private(target, new.encode("utf-8"), mode, tag="aws-config")
    except OSError as e:
        raise ConfigError(f"{path}: cannot write the AWS config file: {e.strerror}") from None


def refuse_others(path: Path, target: Path) -> None:
    """Refuse a file (symlinks followed) that another user controls: whoever can change it can replace a
    `credential_process` with a command of theirs, which every SDK then runs as you. The file and its directory must
    be yours (or root's) and not writable by everyone (a sticky directory such as /tmp protects its files); group
    write is allowed (a user-private group is the default on many systems)."""
    me = os.getuid()
    for p in (target, target.parent):
        try:
            st = os.stat(p)
        except FileNotFoundError:
            continue
        except OSError as e:
            raise ConfigError(f"{path}: cannot inspect {p}: {e.strerror}") from None
        sticky_dir = stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX
        if st.st_uid not in (me, 0) or (st.st_mode & 0o002 and not sticky_dir):
            raise ConfigError(f"{path}: {p} belongs to another user or anyone can change it (uid {st.st_uid}, mode "
                              f"{stat.S_IMODE(st.st_mode):o}), so they could replace its credential_process commands "
                              "with their own; tipd does not write its profiles there: `chmod o-w` it, or point "
                              "AWS_CONFIG_FILE at a file of your own")


def tipctl_command() -> str:
    """This tipctl as a `credential_process` command word: an absolute path (a GUI program or an IDE has no
    ~/.local/bin in its PATH), quoted as the AWS CLI guide says for paths with spaces (double quotes), which
    botocore's shlex split, the Node SDK's child_process.exec and the Go SDK v2's `sh -c` read alike
    (https://docs.aws.amazon.com/cli/latest/userguide/cli-configure-sourcing-external.html)."""
    argv0 = sys.argv[0]
    if os.path.basename(argv0) == "tipctl" and os.path.isfile(argv0):
        exe = os.path.abspath(argv0)
    else:
        found = shutil.which("tipctl")
        if found is None:
            raise ConfigError("cannot find the tipctl program to write into the AWS config; run this command "
                              "as `tipctl aws-config sync` from the installation the AWS tools should use")
        exe = os.path.abspath(found)
    if _BARE.fullmatch(exe):
        return exe
    if _UNQUOTABLE.intersection(exe):
        raise ConfigError(f"the path of tipctl ({exe!r}) has characters that an AWS config cannot carry "
                          "portably (quotes, backslashes, $, `, # or ;); install tipctl under a plainer path")
    return f'"{exe}"'


def stale_hint() -> str | None:
    """After tipd's profiles changed: a sentence saying to sync the AWS config when it has tipd's block (a user
    who never synced is not told about it), else None."""
    path = config_file()
    try:
        has_block = split(read(path), path)[1] is not None
    except ConfigError:
        has_block = False
    return f"{path} has tipd's profiles: run `tipctl aws-config sync` to bring it along" if has_block else None


def sync(path: Path, profiles: list[AwsProfile], *, remove: bool = False, dry_run: bool = False) -> Changes:
    """Bring `path`'s tipd block in line with `profiles` (or remove it), writing only when something changed."""
    old = read(path)
    new, changes = edit(old, profiles, path, remove=remove)
    if new != old and not dry_run:
        write(path, old, new)
        changes.written = True
    return changes
