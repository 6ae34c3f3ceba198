"""Where the long-lived secret (the IdP refresh token) lives: the OS keyring, else a 0600 file.

AWS credentials and Identity Center tokens are never stored: they live in the daemon's memory."""
from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Protocol

from .fsutil import private_dir, remove, write_private
from .secret import Secret

log = logging.getLogger(__name__)
SERVICE = "tipd"


class TokenStore(Protocol):
    name: str

    async def load(self, profile: str) -> Secret | None: ...
    async def save(self, profile: str, token: Secret) -> None: ...
    async def delete(self, profile: str) -> None: ...


class FileStore:
    """One JSON file per profile, 0600, in a 0700 directory, replaced atomically on every save."""

    name = "file"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, profile: str) -> Path:
        return self.directory / f"{profile}.json"  # profile names are validated: no separators

    async def load(self, profile: str) -> Secret | None:
        try:
            data = json.loads(self._path(profile).read_text())
            return Secret(data["refresh_token"])
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            log.warning("the stored token file for profile %s is damaged; a new login is needed", profile)
            return None

    async def save(self, profile: str, token: Secret) -> None:
        private_dir(self.directory)
        write_private(self._path(profile), json.dumps({"refresh_token": token.reveal()}).encode())

    async def delete(self, profile: str) -> None:
        remove(self._path(profile))


class KeyringStore:
    """The OS keyring (Secret Service, macOS Keychain, ...). Its calls block, so they run in a thread."""

    name = "keyring"

    def __init__(self, backend) -> None:
        self.backend = backend

    async def load(self, profile: str) -> Secret | None:
        value = await asyncio.to_thread(self.backend.get_password, SERVICE, profile)
        return Secret(value) if value else None

    async def save(self, profile: str, token: Secret) -> None:
        await asyncio.to_thread(self.backend.set_password, SERVICE, profile, token.reveal())

    async def delete(self, profile: str) -> None:
        import keyring.errors

        try:
            await asyncio.to_thread(self.backend.delete_password, SERVICE, profile)
        except keyring.errors.PasswordDeleteError:
            pass


def usable_keyring():
    """The keyring backend if a real one is available, else None (headless Linux often has none)."""
    try:
        import keyring
        from keyring.backends import chainer, fail
    except Exception:  # keyring missing or broken: the file store works everywhere
        return None
    try:
        backend = keyring.get_keyring()
    except Exception:
        return None
    if isinstance(backend, fail.Keyring) or getattr(backend, "priority", 0) <= 0:
        return None
    if isinstance(backend, chainer.ChainerBackend) and not backend.backends:
        return None
    try:  # a backend can be present yet unusable (locked, no D-Bus session): probe it once
        backend.get_password(SERVICE, "__probe__")
    except Exception as e:
        log.info("the OS keyring is present but not usable (%s)", type(e).__name__)
        return None
    return backend


class FallbackStore:
    """The keyring, with the file store behind it: a keyring that fails at runtime (locked, D-Bus gone)
    must never lose a rotated refresh token, because the old one is already dead at the IdP."""

    def __init__(self, primary: TokenStore, fallback: FileStore) -> None:
        self.primary = primary
        self.fallback = fallback
        self.name = primary.name

    async def load(self, profile: str) -> Secret | None:
        # A file exists only when the keyring refused the latest save, so it is the newer of the two.
        token = await self.fallback.load(profile)
        if token is not None:
            return token
        try:
            return await self.primary.load(profile)
        except Exception as e:
            log.warning("cannot read the OS keyring (%s)", type(e).__name__)
            return None

    async def save(self, profile: str, token: Secret) -> None:
        try:
            await self.primary.save(profile, token)
        except Exception as e:
            log.warning("cannot write the OS keyring (%s); keeping the refresh token of %s in a 0600 file in %s",
                        type(e).__name__, profile, self.fallback.directory)
            await self.fallback.save(profile, token)
        else:
            await self.fallback.delete(profile)  # one place holds the live token

    async def delete(self, profile: str) -> None:
        try:
            await self.primary.delete(profile)
        except Exception as e:
            log.warning("cannot delete from the OS keyring (%s)", type(e).__name__)
        await self.fallback.delete(profile)


def open_store(backend: str, tokens_dir: Path) -> TokenStore:
    files = FileStore(tokens_dir)
    if backend == "file":
        log.info("refresh tokens are kept in 0600 files in %s (store backend = \"file\")", tokens_dir)
        return files
    kr = usable_keyring()
    if kr is not None:
        log.info("refresh tokens are kept in the OS keyring (%s)", type(kr).__name__)
        return FallbackStore(KeyringStore(kr), files)
    log.warning("no usable OS keyring; refresh tokens are kept in 0600 files in %s instead", tokens_dir)
    return files
