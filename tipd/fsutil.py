"""Private files and directories: 0700 dirs, 0600 files, atomic replacement, and what a crash leaves."""
from __future__ import annotations

import contextlib
import os
import signal
import stat
from pathlib import Path

from .errors import ConfigError

#: Fault injection for the crash tests (tests/acceptance/test_durability.py): `TIPD_TEST_CRASH_AT=<point>[@<n>]`
#: makes the process kill itself with SIGKILL the n-th time (default: first) it reaches `<point>`. Read
#: once; when unset, `crash_point` is a dictionary lookup.
_CRASH_AT: dict[str, int] = {}
if (_spec := os.environ.get("TIPD_TEST_CRASH_AT")):
    _point, _, _nth = _spec.partition("@")
    _CRASH_AT[_point] = int(_nth or 1)


def crash_point(name: str) -> None:
    """A named step of a durability-critical path, where a test may simulate `kill -9`."""
    if name in _CRASH_AT:
        _CRASH_AT[name] -= 1
        if _CRASH_AT[name] == 0:
            os.kill(os.getpid(), signal.SIGKILL)


def private_dir(path: Path) -> Path:
    """Create `path` (0700) if needed; refuse one that others could write into or that is not ours."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"{path} is not a directory")
    if st.st_uid != os.getuid():
        raise ConfigError(f"{path} belongs to another user; refusing to keep secrets there")
    if st.st_mode & 0o022:
        raise ConfigError(f"{path} is writable by group or others (mode {stat.S_IMODE(st.st_mode):o}); "
                          f"fix it with `chmod 700 {path}`")
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)  # readable by others but not writable: tighten quietly
    return path


def temp_name(path: Path, pid: int | None = None) -> Path:
    """The temporary file `write_private` fills before renaming it over `path`."""
    return path.with_name(f".{path.name}.{os.getpid() if pid is None else pid}.tmp")


def leftovers(path: Path) -> list[tuple[Path, int]]:
    """Temporary files of `write_private(path, ...)` that a crash left behind, with the pid that wrote each
    (a writer still alive may be mid-write: callers leave its file alone)."""
    prefix, found = f".{path.name}.", []
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    for n in names:
        pid = n[len(prefix):-len(".tmp")] if n.startswith(prefix) and n.endswith(".tmp") else ""
        if pid.isdigit():
            found.append((path.parent / n, int(pid)))
    return found


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def write_private(path: Path, data: bytes, mode: int = 0o600, *, tag: str = "file", durable: bool = True) -> None:
    """Write `data` to `path` atomically (temp file + rename) with `mode` (0600 unless said) from the first
    byte, whatever the umask. A crash leaves either the old file or the new one, and perhaps a complete or
    partial temp file beside it (see `leftovers`). `tag` names its crash points (`<tag>:opened`, ...).
    `durable=False` skips the fsyncs, for files derived from memory that are rewritten anyway (prompt files)."""
    tmp = temp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode & 0o600)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            crash_point(f"{tag}:opened")
            f.write(data)
            f.flush()
            crash_point(f"{tag}:written")
            if durable:
                os.fsync(f.fileno())
        crash_point(f"{tag}:synced")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    crash_point(f"{tag}:renamed")
    if durable:
        sync_dir(path.parent)


def sync_dir(path: Path) -> None:
    """Make a rename in `path` durable."""
    dfd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def remove(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False
