"""Private files and directories: 0700 dirs, 0600 files, atomic replacement."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import ConfigError


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


def write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write `data` to `path` atomically (temp file + rename) with `mode` (0600 unless said) from the first
    byte, whatever the umask."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode & 0o600)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
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
