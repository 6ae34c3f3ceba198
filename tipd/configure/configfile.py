"""The config file as `tipctl configure` changes it: read, plan the edit, validate the result before anything
is written, write atomically (keeping the file's mode); and the effective config `--show` prints."""
from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretBytes, SecretStr, ValidationError

from ..config import Config, Profile, config_path, parse_config
from ..errors import ConfigError
from ..fsutil import private_dir, write_private
from ..secret import Secret
from . import tomledit
from .profile import Draft, provider_defaults


@dataclass(frozen=True)
class ConfigFile:
    path: Path
    text: str    # "" when there is no file yet
    data: dict[str, Any]
    exists: bool

    @classmethod
    def read(cls, path: str | os.PathLike[str] | None = None) -> ConfigFile:
        p = config_path(path)
        try:
            text = p.read_bytes().decode("utf-8")
        except FileNotFoundError:
            return cls(p, "", {}, False)
        except OSError as e:
            raise ConfigError(f"{p}: cannot read the config file: {e.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{p}: the config file is not UTF-8 text") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{p}: not valid TOML ({e}); fix it before configuring a profile") from None
        return cls(p, text, data, True)

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
        absent = provider_defaults(draft.settings["provider"])
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


# -- --show ----------------------------------------------------------------------------------------------
REDACTED = "***"


def redacted(model: BaseModel) -> dict[str, Any]:
    """A model as plain data, with every secret shown as "***": a field whose type is a secret, or that is
    marked `Field(json_schema_extra={"secret": True})`."""
    out: dict[str, Any] = {}
    for name, field in type(model).model_fields.items():
        v = getattr(model, name)
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if v is not None and (extra.get("secret") or isinstance(v, (Secret, SecretStr, SecretBytes))):
            out[name] = REDACTED
        else:
            out[name] = _plain(v)
    return out


def _plain(v: Any) -> Any:
    if isinstance(v, BaseModel):
        return redacted(v)
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def render(data: dict[str, Any], keys: tuple[str, ...] = ()) -> str:
    """Plain data as TOML-like text: values that are not set are shown as comments."""
    lines = []
    values = {k: v for k, v in data.items() if not isinstance(v, dict)}
    if keys and (values or not data):
        lines.append("[" + ".".join(tomledit.toml_key(k) for k in keys) + "]")
    for k, v in values.items():
        lines.append(f"# {tomledit.toml_key(k)}: not set" if v is None else
                     f"{tomledit.toml_key(k)} = {tomledit.toml_value(v)}")
    for k, v in data.items():
        if isinstance(v, dict):
            if lines:
                lines.append("")
            lines.append(render(v, keys + (k,)))
    return "\n".join(lines)
