"""The prompt files: what a shell prompt shows (profile, state, minutes left), kept current by the daemon so a
prompt reads two tiny files with shell built-ins, starts no process and asks the daemon nothing.

They live in the runtime directory's `prompt/` (0700), each 0600, each replaced atomically, and only when what
it says changes: a state change, a sign-in, a sign-out, a renewal (new expiry), a reload. They hold expiry
*times*, not minutes left, so they need not change as time passes: the shell subtracts the current time. They
hold nothing secret: profile names, states, expiry times and the daemon's pid. Format (version 1), one line
each, fields separated by one space (profile names and states never contain spaces):

    prompt/_tipd       tipd-prompt 1 <pid of the tipd that wrote it> <default profile, or ->
    prompt/<profile>   <state> <credentials expiry, unix seconds; 0 when there are none>

One small file per profile, not one file with a line each: a prompt reads exactly two files however many
profiles there are (with 300 profiles in one file, zsh's and dash's byte-at-a-time `read` cost 20-40 ms a
prompt). `_tipd` cannot be a profile's name (names start with a letter or digit).

A tipd that stops removes them; one killed with SIGKILL leaves them behind, so a reader checks that the pid is
alive (`kill -0`) before believing them. docs/shell.md shows the readers (`tipctl prompt`)."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from .changes import Changes
from .errors import TipdError
from .fsutil import private_dir, write_private
from .profiles import PROFILE_NAME

log = logging.getLogger("tipd.prompt")

VERSION = 1
MAGIC = "tipd-prompt"
HEADER = "_tipd"


class _Session(Protocol):
    def status(self) -> Mapping[str, Any]: ...


class _Broker(Protocol):
    @property
    def changes(self) -> Changes: ...
    @property
    def sessions(self) -> Mapping[str, _Session]: ...
    @property
    def accounts(self) -> Mapping[str, _Session]: ...
    @property
    def default_profile(self) -> str | None: ...


def _epoch(iso: object) -> int:
    """The status's ISO 8601 expiry (`...Z`) as unix seconds; 0 when there is none."""
    if not isinstance(iso, str):
        return 0
    try:
        return max(0, int(datetime.fromisoformat(iso).timestamp()))
    except ValueError:
        return 0


def render(pid: int, default: str | None, profiles: list[tuple[str, str, int]]) -> dict[str, bytes]:
    """Each file's name and content; a name or state that could break a shell's `read` or a path is left out."""
    files = {name: f"{state} {max(0, expires)}\n".encode() for name, state, expires in profiles
             if PROFILE_NAME.fullmatch(name) and state.replace("-", "").isalpha()}
    shown = default if default and PROFILE_NAME.fullmatch(default) else "-"
    files[HEADER] = f"{MAGIC} {VERSION} {pid} {shown}\n".encode()
    return files


def snapshot(broker: _Broker, pid: int) -> dict[str, bytes]:
    profiles = []
    for name, s in [*broker.sessions.items(), *broker.accounts.items()]:  # sign-in and account profiles
        st = s.status()
        profiles.append((name, str(st["state"]), _epoch(st.get("credentials_expire"))))
    return render(pid, broker.default_profile, profiles)


def _clear(directory: Path) -> None:
    """Remove what a tipd killed before it could clean up left (the files, and temp files of a write)."""
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(directory):
            with contextlib.suppress(OSError):
                (directory / name).unlink()


def _sync(directory: Path, want: dict[str, bytes], written: dict[str, bytes]) -> None:
    """Make the directory say `want`: changed files replaced (the header last), files of removed profiles
    deleted. `written` is updated as each step succeeds, so a failure is retried at the next change."""
    for name in sorted(want, key=lambda n: n == HEADER):
        if written.get(name) != want[name]:
            write_private(directory / name, want[name], tag="prompt", durable=False)
            written[name] = want[name]
    for name in [n for n in written if n not in want]:
        with contextlib.suppress(FileNotFoundError):
            (directory / name).unlink()
        del written[name]


async def keep(broker: _Broker, directory: Path, pid: int) -> None:
    """Keep `directory` current until cancelled or the hub closes; then remove it. A write that fails (a full
    disk) is logged once and tried again at the next change."""
    hub, written, failed = broker.changes, dict[str, bytes](), ""
    try:
        if directory.is_file() or directory.is_symlink():
            directory.unlink()  # not a directory we made: nothing of ours to keep there
        private_dir(directory)
        _clear(directory)
    except (OSError, TipdError) as e:  # a prompt must never stop tipd from serving
        log.warning("no prompt files (shell prompts show nothing): cannot use %s: %s", directory, e)
        return
    try:
        while not hub.closed:
            seen = hub.version
            try:
                # in a thread: with hundreds of profiles (account profiles) the first write is hundreds of files,
                # which must not hold up the credential endpoint on the loop
                await asyncio.to_thread(_sync, directory, snapshot(broker, pid), written)
                failed = ""
            except OSError as e:
                if str(e) != failed:
                    log.warning("cannot write the prompt files in %s: %s (shell prompts may be stale)", directory,
                                e.strerror or e)
                failed = str(e)
            await hub.wait(seen)
    finally:
        with contextlib.suppress(OSError):  # a directory gone or read-only: the pid check makes leftovers harmless
            (directory / HEADER).unlink()  # first: a prompt reading now sees "not running", not half a directory
            _clear(directory)
            directory.rmdir()
