"""The prompt file: what a shell prompt shows (profile, state, minutes left), kept current by the daemon so
a prompt reads one small file with shell built-ins and starts no process and asks the daemon nothing.

The file is rewritten (atomically, 0600 in the 0700 runtime directory) only when what it says changes: a
state change, a sign-in, a sign-out, a renewal (new expiry), a reload. It holds expiry *times*, not minutes
left, so it need not change as time passes: the shell subtracts the current time itself. It holds nothing
secret: profile names, states, expiry times and the daemon's pid. Format (version 1), one record a line,
fields separated by one space, profile names and states never contain spaces:

    tipd-prompt 1 <pid of the tipd that wrote it>
    default <default profile, or ->
    profile <name> <state> <credentials expiry, unix seconds, 0 when none>
    ...

A tipd that stops removes the file; one killed with SIGKILL leaves it behind, so a reader checks that the pid
is alive (`kill -0`) before believing it. docs/shell.md shows the readers (`tipctl prompt`)."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from .changes import Changes
from .fsutil import remove, write_private
from .profiles import PROFILE_NAME

log = logging.getLogger("tipd.prompt")

VERSION = 1
MAGIC = "tipd-prompt"


class _Session(Protocol):
    def status(self) -> Mapping[str, Any]: ...


class _Broker(Protocol):
    @property
    def changes(self) -> Changes: ...
    @property
    def sessions(self) -> Mapping[str, _Session]: ...
    @property
    def default_profile(self) -> str | None: ...


def _epoch(iso: object) -> int:
    """The status's ISO 8601 expiry (`...Z`) as unix seconds; 0 when there is none."""
    if not isinstance(iso, str):
        return 0
    try:
        return int(datetime.fromisoformat(iso).timestamp())
    except ValueError:
        return 0


def render(pid: int, default: str | None, profiles: list[tuple[str, str, int]]) -> bytes:
    """The file's content; names and states that could break a shell's `read` are left out."""
    lines = [f"{MAGIC} {VERSION} {pid}", f"default {default if default and PROFILE_NAME.fullmatch(default) else '-'}"]
    for name, state, expires in profiles:
        if PROFILE_NAME.fullmatch(name) and state.replace("-", "").isalpha():
            lines.append(f"profile {name} {state} {max(0, expires)}")
    return ("\n".join(lines) + "\n").encode()


def snapshot(broker: _Broker, pid: int) -> bytes:
    profiles = []
    for name, s in list(broker.sessions.items()):
        st = s.status()
        profiles.append((name, str(st["state"]), _epoch(st.get("credentials_expire"))))
    return render(pid, broker.default_profile, profiles)


async def keep(broker: _Broker, path: Path, pid: int) -> None:
    """Write the file now and again after every change that alters it, until cancelled or the hub closes;
    then remove it. A write that fails (a full disk) is logged once and tried again at the next change."""
    hub, last, failed = broker.changes, b"", ""
    try:
        while not hub.closed:
            seen = hub.version
            data = snapshot(broker, pid)
            if data != last:
                try:
                    write_private(path, data, tag="prompt")
                    last, failed = data, ""
                except OSError as e:
                    if str(e) != failed:
                        log.warning("cannot write the prompt file %s: %s (shell prompts show stale or nothing)",
                                    path, e.strerror or e)
                    failed = str(e)
            await hub.wait(seen)
    finally:
        with contextlib.suppress(OSError):  # a directory gone or read-only: the pid check makes a leftover harmless
            remove(path)


def start(broker: _Broker, path: Path, pid: int) -> asyncio.Task[None]:
    return asyncio.create_task(keep(broker, path, pid), name="prompt-file")
