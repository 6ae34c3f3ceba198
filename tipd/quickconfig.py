"""The facts of the config the quick commands need (the endpoint's port, the profiles and the default), read
straight from the TOML when they are plainly valid, so that `tipctl env` does not pay for pydantic; anything
unusual goes through the full validation (tipd/config.py), so its error is the one the daemon would give."""
from __future__ import annotations

import os
from typing import Any

from .config_file import read_config_file
from .profiles import DEFAULT_PORT, PROFILE_KEYS, PROFILE_NAME, TOP_KEYS, Endpoint, profile_kind


def endpoint_facts(path: str | os.PathLike[str] | None = None) -> Endpoint:
    """The endpoint's port and profiles. (Beyond the keys, the rest of the file is not checked here: `tipd` and
    `tipctl configure --show` do that.)"""
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
    if not raw.keys() <= TOP_KEYS or not all(v.keys() <= PROFILE_KEYS[profile_kind(v)] for v in profiles.values()):
        return None  # an unknown key: tipd refuses the file, so `tipctl env` must not hand out variables for it
    if default is not None and default not in profiles:
        return None
    return Endpoint(port, default, tuple(profiles))
