"""Keyring backends for tests, selected in the daemon through PYTHON_KEYRING_BACKEND."""
from __future__ import annotations

import json
import os
from pathlib import Path

from keyring.backend import KeyringBackend
from keyring.errors import KeyringLocked, PasswordDeleteError


class FileKeyring(KeyringBackend):
    """A working keyring whose contents a test can inspect: JSON at $TIPD_TEST_KEYRING_FILE."""

    priority = 10

    def _path(self) -> Path:
        return Path(os.environ["TIPD_TEST_KEYRING_FILE"])

    def _load(self) -> dict[str, str]:
        try:
            data: dict[str, str] = json.loads(self._path().read_text())
            return data
        except FileNotFoundError:
            return {}

    def get_password(self, service: str, username: str) -> str | None:
        return self._load().get(f"{service}/{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        data = self._load()
        data[f"{service}/{username}"] = password
        self._path().write_text(json.dumps(data))

    def delete_password(self, service: str, username: str) -> None:
        data = self._load()
        if data.pop(f"{service}/{username}", None) is None:
            raise PasswordDeleteError(username)
        self._path().write_text(json.dumps(data))


class LockedKeyring(FileKeyring):
    """A keyring that answers reads but refuses writes once $TIPD_TEST_KEYRING_LOCK exists (a session
    keyring that got locked while the daemon runs)."""

    def set_password(self, service: str, username: str, password: str) -> None:
        if os.path.exists(os.environ.get("TIPD_TEST_KEYRING_LOCK", "/nonexistent")):
            raise KeyringLocked("the keyring is locked")
        super().set_password(service, username, password)
