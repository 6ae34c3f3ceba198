"""Finding and reading the config file, and the few facts the quick commands need, with the standard library
only: importing pydantic and building the models (tipd/config.py) costs about 100 ms, most of what `tipctl env`
may take in all. The full validation stays in tipd/config.py; this module never decides anything it does not."""
from __future__ import annotations

import os
import re
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError, UnknownProfile

DEFAULT_PORT = 9911
#: a config file is a few KiB: a bigger one is the wrong file, and is not read whole into memory
MAX_CONFIG = 1024 * 1024
#: profile names end up in URLs, keyring entries and file names: keep them boring
PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # always .fullmatch: `$` would let a final newline in


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """--config PATH, else $TIPD_CONFIG, else the per-user config directory."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get("TIPD_CONFIG"):
        return Path(os.environ["TIPD_CONFIG"]).expanduser()
    from .paths import Paths

    return Paths.default().config_file


def read_config_file(path: str | os.PathLike[str] | None = None, *,
                     missing_ok: bool = False) -> tuple[dict[str, Any], Path]:
    """The config file's TOML as a dict; every problem is a ConfigError naming the file. With `missing_ok`, an
    absent file at the implicit location reads as empty (a fresh install)."""
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
        if missing_ok and not path and not os.environ.get("TIPD_CONFIG"):
            return {}, p
        raise ConfigError(f"{p}: no config file here; create it (see `tipctl configure --help` or the README)") from None
    except OSError as e:
        raise ConfigError(f"{p}: cannot read the config file: {e.strerror}") from None
    if len(raw) > MAX_CONFIG:
        raise ConfigError(f"{p}: the config file is larger than {MAX_CONFIG // 1024} KiB; is it the right file?")
    try:
        return tomllib.loads(raw.decode("utf-8")), p
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: the config file is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from None
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise ConfigError(f"{p}: not a usable config: its arrays or inline tables nest too deeply") from None


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


def pick_profile(asked: str | None, default: str | None, names: list[str] | tuple[str, ...]) -> str:
    """The profile a command means: the one named, the configured default, or the only one."""
    if asked is not None:
        if asked not in names:
            raise UnknownProfile(f"no profile named {asked!r} (configured: {', '.join(sorted(names)) or 'none'})")
        return asked
    if default:
        return default
    if len(names) == 1:
        return next(iter(names))
    if not names:
        raise UnknownProfile("no profiles are configured: add a [profiles.NAME] section to the config file")
    raise UnknownProfile("several profiles are configured and no default_profile is set: name one "
                         f"({', '.join(sorted(names))})")


@dataclass(frozen=True)
class Endpoint:
    """Where the credential endpoint listens and which profiles it serves."""

    port: int
    default_profile: str | None
    profiles: tuple[str, ...]

    def profile(self, asked: str | None) -> str:
        return pick_profile(asked, self.default_profile, self.profiles)


def endpoint_facts(path: str | os.PathLike[str] | None = None) -> Endpoint:
    """The endpoint's port and profiles. Read straight from the TOML when they are plainly valid; anything
    unusual goes through the full validation, so its error is the one the daemon would give. (The rest of the
    file is not checked here: `tipd` and `tipctl configure --show` do that.)"""
    raw, _ = read_config_file(path)
    quick = _quick(raw)
    if quick is not None:
        return quick
    from .config import load_config

    return load_config(path)[0].endpoint()


def _quick(raw: dict[str, Any]) -> Endpoint | None:
    server, profiles, default = raw.get("server", {}), raw.get("profiles", {}), raw.get("default_profile")
    if not isinstance(server, dict) or not isinstance(profiles, dict):
        return None
    port = server.get("port", DEFAULT_PORT)
    if type(port) is not int or not 1 <= port <= 65535:
        return None
    if not all(isinstance(v, dict) and PROFILE_NAME.fullmatch(k) for k, v in profiles.items()):
        return None
    if default is not None and default not in profiles:
        return None
    return Endpoint(port, default, tuple(profiles))
