"""One tipd per state directory: an exclusive lock taken before anything shared is touched.

Two tipds started together used to both find no live control socket, then each replace the endpoint
token and the other's socket. Now a start first takes flock(2) on `tipd.lock` in the state directory (the
endpoint token's directory): a second start fails at once, having written nothing. The kernel releases the
lock when the process ends, however it ends (kill -9 included), so a stale lock cannot exist; the file is
never removed (removing it would let a third start lock a new file while the second still holds the old)."""
from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path

from .errors import ConfigError

LOCK_NAME = "tipd.lock"


class AlreadyRunning(ConfigError):
    code = "AlreadyRunning"


class InstanceLock:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise AlreadyRunning; every other failure is a ConfigError sentence."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise ConfigError(f"cannot open the lock file {self.path}: {e.strerror}" + _hint(e, self.path)) from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
                raise ConfigError(f"{self.path} is not a regular file of yours; remove it and start tipd again")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_pid(fd)
                raise AlreadyRunning(f"another tipd{f' (pid {holder})' if holder else ''} is already running with "
                                     f"the state directory {self.path.parent}; this one exits and changes nothing "
                                     "(`tipctl status` shows the running one)") from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        try:  # for people and the message above; a full disk must not stop the start here
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def _hint(e: OSError, path: Path) -> str:
    if e.errno == errno.EROFS:
        return f"; {path.parent} is on a read-only file system"
    if e.errno == errno.ENOSPC:
        return f"; free some space on the file system of {path.parent}"
    if e.errno in (errno.EISDIR, errno.ELOOP):
        return f"; {path} is a directory or a symbolic link: remove it"
    return ""
