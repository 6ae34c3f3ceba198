"""The client secret of an IdP that requires one (Google, confidential clients): read without echo or from
stdin, kept where tipd keeps refresh tokens (the OS keyring, else a 0600 file; tipd/store.py), bound to the
issuer and client id it is for. Never in the config file, never printed, never in an argument list."""
from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from ..store import ClientSecret, TokenStore

from ..errors import ConfigError
from ..secret import Secret

#: a client secret is a few dozen characters; anything longer is not one
MAX_SECRET = 4096


def read_stdin(stream: TextIO | None = None) -> Secret:
    """One line from stdin (a pipe, or pasted), the line break stripped."""
    line = (stream or sys.stdin).readline(MAX_SECRET + 2)
    value = line.rstrip("\r\n")
    if len(value) > MAX_SECRET:
        raise ConfigError(f"the client secret on stdin is longer than {MAX_SECRET} characters; is it the right value?")
    if not value.strip() or value != value.strip() or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ConfigError("--client-secret-stdin: give the client secret as one line on stdin, without spaces "
                          "around it")
    return Secret(value)


def _store(data: dict[str, Any]) -> TokenStore:
    """The store of the file's [store] backend (as tipd reads it; "auto" when the section is not valid)."""
    from pydantic import ValidationError

    from ..config import StoreConfig
    from ..paths import Paths
    from ..store import open_store

    try:
        backend = StoreConfig.model_validate(data.get("store") or {}).backend
    except ValidationError:
        backend = "auto"
    return open_store(backend, Paths.default().tokens_dir)


def has_secret(data: dict[str, Any], profile: str, issuer: str, client_id: str) -> bool:
    """Whether a client secret for exactly this issuer and client is stored for the profile."""
    async def load() -> ClientSecret | None:
        return await _store(data).load_secret(profile)

    record = asyncio.run(load())
    return record is not None and record.bound_to(issuer, client_id)


def save_secret(data: dict[str, Any], profile: str, issuer: str, client_id: str, secret: Secret) -> str:
    """Store it; returns where (for the report: "the OS keyring" or the directory)."""
    from ..store import ClientSecret

    async def save() -> str:
        store = _store(data)
        await store.save_secret(profile, ClientSecret(secret, issuer, client_id))
        return "the OS keyring" if store.name == "keyring" else f"a 0600 file in {getattr(store, 'directory', '')}"

    try:
        return asyncio.run(save())
    except ConfigError:
        raise
    except OSError as e:
        raise ConfigError(f"cannot store the client secret: {e.strerror or type(e).__name__}; "
                          "nothing was saved") from None
