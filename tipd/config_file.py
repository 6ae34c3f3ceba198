"""Finding and reading the config file, with the standard library only: importing pydantic and building the
models (tipd/config.py) costs about 100 ms, most of what `tipctl env` may take in all. This is the one reader
of the file: tipd, the quick commands (tipd/quickconfig.py) and `tipctl configure` (which edits the text it
returns) all read through it, with the same bounds and the same refusals."""
from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError

#: a config file is a few KiB: a bigger one is the wrong file, and is not read whole into memory
MAX_CONFIG = 1024 * 1024


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """--config PATH, else $TIPD_CONFIG, else the per-user config directory."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get("TIPD_CONFIG"):
        return Path(os.environ["TIPD_CONFIG"]).expanduser()
    from .paths import Paths

    return Paths.default().config_file


@dataclass(frozen=True)
class RawConfig:
    """The config file as read: its text (for an editor), its TOML, and whether it exists at all."""

    path: Path
    text: str
    data: dict[str, Any]
    exists: bool


def read_raw(path: str | os.PathLike[str] | None = None, *, missing_ok: bool = False,
             create: bool = False) -> RawConfig:
    """The config file's text and TOML; every problem is a ConfigError naming the file. An absent file reads as
    empty with `create` (an editor about to make it), or with `missing_ok` at the implicit location (a fresh
    install), and is an error otherwise."""
    p = config_path(path)
    try:
        # O_NONBLOCK: a FIFO in the file's place would otherwise hold the open until someone writes to it
        with open(os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)), "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise ConfigError(f"{p}: not a regular file; point --config (or TIPD_CONFIG) at the config file")
            check_not_writable_by_others(p, st)
            raw = f.read(MAX_CONFIG + 1)
    except FileNotFoundError:
        if create or (missing_ok and not path and not os.environ.get("TIPD_CONFIG")):
            return RawConfig(p, "", {}, False)
        raise ConfigError(f"{p}: no config file here; create it (see `tipctl configure --help` or the README)"
                          ) from None
    except OSError as e:
        raise ConfigError(f"{p}: cannot read the config file: {e.strerror}") from None
    if len(raw) > MAX_CONFIG:
        raise ConfigError(f"{p}: the config file is larger than {MAX_CONFIG // 1024} KiB; is it the right file?")
    try:
        text = raw.decode("utf-8")
        return RawConfig(p, text, tomllib.loads(text), True)
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: the config file is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from None
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise ConfigError(f"{p}: not a usable config: its arrays or inline tables nest too deeply") from None


def read_config_file(path: str | os.PathLike[str] | None = None, *,
                     missing_ok: bool = False) -> tuple[dict[str, Any], Path]:
    """The config file's TOML as a dict (see read_raw)."""
    raw = read_raw(path, missing_ok=missing_ok)
    return raw.data, raw.path


def check_not_writable_by_others(p: Path, st: os.stat_result) -> None:
    """Refuse a config that another user could change, as ssh does: whoever can change it can point a profile's
    issuer at a listener of their own, and the stored refresh token would go there (tipd also binds stored
    tokens to their issuer: tipd/store.py). The file and its directory must belong to this user (or root) and
    not be writable by group or others; a sticky directory such as /tmp protects a file it holds."""
    me = os.getuid()
    if st.st_uid not in (me, 0):
        raise ConfigError(f"{p}: the config file belongs to another user (uid {st.st_uid}); tipd reads only "
                          "a config that you own")
    if st.st_mode & 0o022:
        raise ConfigError(f"{p}: the config file is writable by other users (mode {stat.S_IMODE(st.st_mode):o}); "
                          f"tipd refuses it, since whoever can change it can redirect your sign-in: run "
                          f"`chmod go-w {p}`")
    d = p.resolve().parent
    try:
        dst = d.stat()
    except OSError:
        return
    if dst.st_uid not in (me, 0) or (dst.st_mode & 0o022 and not dst.st_mode & stat.S_ISVTX):
        raise ConfigError(f"{p}: its directory {d} can be changed by other users (mode "
                          f"{stat.S_IMODE(dst.st_mode):o}, uid {dst.st_uid}), so they could replace the config; "
                          f"tipd refuses it: run `chmod go-w {d}` or keep the config elsewhere")
