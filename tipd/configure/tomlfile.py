"""The file side of the TOML editor (tomledit.py edits the text): the config file as `tipctl configure` changes
it: read (through the one reader, tipd/config_file.py), plan the edit, validate the result before anything is
written, write atomically (keeping the file's mode)."""
from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..config import Config, Profile, parse_config, profile_defaults
from ..config_file import read_raw
from ..errors import ConfigError
from ..fsutil import private_dir, write_private
from . import tomledit
from .profile import Draft


@dataclass(frozen=True)
class ConfigFile:
    path: Path
    text: str    # "" when there is no file yet
    data: dict[str, Any]
    exists: bool

    @classmethod
    def read(cls, path: str | os.PathLike[str] | None = None) -> ConfigFile:
        """The file as it is now; a file that does not exist yet reads as empty (configure creates it)."""
        try:
            raw = read_raw(path, create=True)
        except ConfigError as e:
            raise ConfigError(f"{e.message}; fix it before configuring a profile") from None
        return cls(raw.path, raw.text, raw.data, raw.exists)

    @property
    def profiles(self) -> dict[str, Any]:
        p = self.data.get("profiles")
        return p if isinstance(p, dict) else {}

    def profile(self, name: str) -> dict[str, Any] | None:
        """An existing profile's settings with its defaults filled in (as written when it is not valid)."""
        raw = self.profiles.get(name)
        if not isinstance(raw, dict):
            return None
        try:
            return Profile.model_validate(raw).model_dump()
        except ValidationError:
            return dict(raw)

    def default_after(self, name: str, make_default: bool) -> str | None:
        """What `default_profile` must be set to once `name` is saved, or None to leave it alone. A file
        without one gets one; when it had a single profile (the default by itself), that one stays the default."""
        if make_default:
            return name
        if self.data.get("default_profile"):
            return None
        others = [n for n in self.profiles if n != name]
        return others[0] if len(others) == 1 else name

    def with_profile(self, draft: Draft, make_default: bool = False) -> str:
        """The whole new text, validated as tipd will read it."""
        absent = profile_defaults(draft.settings["provider"])
        raw = self.profiles.get(draft.name)
        written = raw if isinstance(raw, dict) else {}
        # the settings most profiles leave at their provider's default are written only when they differ
        # (or are in the file already), so a profile reads as what is special about it
        settings = {k: v for k, v in draft.settings.items()
                    if not (k in QUIET_KEYS and k not in written and v == absent.get(k))}
        text = tomledit.set_profile(self.text, draft.name, settings, absent,
                                    self.default_after(draft.name, make_default))
        self.validate(text, draft)
        return text

    def validate(self, text: str, draft: Draft) -> Config:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:  # the editor's fault, but never written
            raise ConfigError(f"{self.path}: the edit would not be valid TOML ({e}); nothing was saved") from None
        try:
            cfg = parse_config(data, str(self.path))
        except ConfigError as e:
            raise ConfigError(f"{e.message}\nNothing was saved: the file would not load.") from None
        saved = cfg.profiles[draft.name].model_dump()
        if {k: saved[k] for k in draft.settings} != draft.settings:
            raise ConfigError(f"{self.path}: the edit would not hold the profile as given; nothing was saved")
        return cfg

    def write(self, text: str) -> Path:
        """Atomically (temp file + rename), keeping an existing file's mode, through a symlink to its
        target; a new file is 0600 in a 0700 directory."""
        try:
            now: str | None = self.path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            now = None
        if now != (self.text if self.exists else None):  # e.g. edited by hand while the questions were asked
            raise ConfigError(f"{self.path} changed while tipctl configure ran; nothing was saved: run it again")
        target = self.path.resolve() if self.path.is_symlink() else self.path
        try:
            mode = stat.S_IMODE(target.stat().st_mode)
        except FileNotFoundError:
            mode = 0o600
            if not target.parent.exists():
                private_dir(target.parent)
        try:
            write_private(target, text.encode("utf-8"), mode)  # exactly the old mode, whatever the umask
        except OSError as e:
            raise ConfigError(f"{target}: cannot write it ({e.strerror})") from None
        return target


#: see ConfigFile.with_profile
QUIET_KEYS = ("redirect_host", "refresh_scope", "exchange_token", "client_auth", "auth_params")
