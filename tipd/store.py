"""Where the long-lived secrets live: the OS keyring, else a 0600 file.

Per profile, two records:
- the sign-in (`Grant`): the IdP refresh token, the scope the IdP granted, and the Identity Center refresh
  token, each bound to where it came from (the IdP's issuer and client id; the Identity Center application)
  so that a changed config never sends a stored token anywhere else (a config pointed at another issuer
  would otherwise receive it: see docs/security.md);
- the client secret (`ClientSecret`) of an IdP that requires one even for a desktop app, bound the same way.
AWS credentials and Identity Center access tokens are never stored: they live in the daemon's memory."""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from .errors import TipdError
from .fsutil import leftovers, pid_alive, private_dir, remove, sync_dir, write_private
from .secret import Secret

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend


log = logging.getLogger(__name__)
SERVICE = "tipd"
#: the keyring entry / file name suffix of a profile's client secret ('#' is not allowed in profile names,
#: and no grant file ends in `.client-secret`)
SECRET_KEY = "#client-secret"
SECRET_SUFFIX = ".client-secret"
#: a record's size limit: a damaged or hostile file must not be read whole into memory
MAX_RECORD = 64 * 1024


class StoredRecordError(ValueError):
    """A stored record that cannot be read (damaged)."""


def _json_object(text: str) -> dict[str, Any]:
    if len(text) > MAX_RECORD:
        raise StoredRecordError("too large")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested thousands deep (fits in MAX_RECORD)
        raise StoredRecordError("not JSON") from None
    if not isinstance(data, dict):
        raise StoredRecordError("not an object")
    return data


def _text(data: dict[str, Any], key: str) -> str | None:
    v = data.get(key)
    if v is not None and (not isinstance(v, str) or not v):
        raise StoredRecordError(key)
    return v


@dataclass(frozen=True)
class Grant:
    """A profile's sign-in as stored. `issuer`/`client_id` None: a record written before records were bound
    (tipd <= 0.x kept the bare refresh token); it is bound to the config's values at its next save."""

    refresh_token: Secret
    issuer: str | None
    client_id: str | None
    #: the scope the IdP granted (its token response's `scope`, else what was asked for), space-separated
    scope: str | None = None
    #: the Identity Center refresh token and the application (ARN) that issued it
    idc_refresh_token: Secret | None = None
    idc_application: str | None = None

    def __repr__(self) -> str:
        return (f"Grant(issuer={self.issuer!r}, client_id={self.client_id!r}, scope={self.scope!r}, "
                f"idc={'yes' if self.idc_refresh_token else 'no'})")

    @property
    def legacy(self) -> bool:
        return self.issuer is None or self.client_id is None

    def bound_to(self, issuer: str, client_id: str) -> bool:
        """Whether the refresh token may be sent to this issuer and client (a legacy record may: it holds the
        token the config of its time used, and is bound at its next save)."""
        return self.legacy or (self.issuer == issuer and self.client_id == client_id)

    def idc_for(self, application_arn: str) -> Secret | None:
        """The Identity Center refresh token, only for the application that issued it."""
        return self.idc_refresh_token if self.idc_application == application_arn else None

    def with_idc(self, token: Secret | None, application_arn: str | None) -> Grant:
        return replace(self, idc_refresh_token=token, idc_application=application_arn if token else None)

    def dumps(self) -> str:
        data: dict[str, Any] = {"version": 2, "issuer": self.issuer, "client_id": self.client_id,
                                "refresh_token": self.refresh_token.reveal(), "scope": self.scope}
        if self.idc_refresh_token is not None:
            data["idc_refresh_token"] = self.idc_refresh_token.reveal()
            data["idc_application"] = self.idc_application
        return json.dumps(data)

    @classmethod
    def loads(cls, text: str) -> Grant:
        """A stored record: this JSON object, the file format of before ({"refresh_token": ...}), or (in the
        keyring) the bare refresh token of before."""
        if len(text) > MAX_RECORD:
            raise StoredRecordError("too large")
        if not text.lstrip().startswith("{"):
            return cls(Secret(text.strip()), None, None)  # the keyring's value before version 2
        data = _json_object(text)
        if not isinstance(data.get("refresh_token"), str) or not data["refresh_token"]:
            raise StoredRecordError("no refresh_token")
        idc = _text(data, "idc_refresh_token")
        return cls(Secret(data["refresh_token"]), _text(data, "issuer"), _text(data, "client_id"),
                   _text(data, "scope"), Secret(idc) if idc else None,
                   _text(data, "idc_application") if idc else None)


@dataclass(frozen=True)
class ClientSecret:
    """A confidential client's secret, bound to the issuer and client id it was configured for."""

    secret: Secret
    issuer: str
    client_id: str

    def __repr__(self) -> str:
        return f"ClientSecret(issuer={self.issuer!r}, client_id={self.client_id!r})"

    def bound_to(self, issuer: str, client_id: str) -> bool:
        return self.issuer == issuer and self.client_id == client_id

    def dumps(self) -> str:
        return json.dumps({"issuer": self.issuer, "client_id": self.client_id, "client_secret": self.secret.reveal()})

    @classmethod
    def loads(cls, text: str) -> ClientSecret:
        data = _json_object(text)
        secret, issuer, client_id = (_text(data, k) for k in ("client_secret", "issuer", "client_id"))
        if not (secret and issuer and client_id):
            raise StoredRecordError("incomplete")
        return cls(Secret(secret), issuer, client_id)


class TokenStore(Protocol):
    name: str

    async def load(self, profile: str) -> Grant | None: ...
    async def save(self, profile: str, grant: Grant) -> None: ...
    async def delete(self, profile: str) -> None: ...
    async def load_secret(self, profile: str) -> ClientSecret | None: ...
    async def save_secret(self, profile: str, secret: ClientSecret) -> None: ...
    async def delete_secret(self, profile: str) -> None: ...


class _Stored(Protocol):
    def dumps(self) -> str: ...


_R = TypeVar("_R", bound=_Stored)


@dataclass(frozen=True)
class Kind(Generic[_R]):
    """One kind of record: how it is read back, where it lives in each store, and what it is called."""

    what: str  # in sentences: "the sign-in of profile work"
    parse: Callable[[str], _R]
    file_suffix: str
    keyring_suffix: str
    #: what a damaged record costs the user (said in the log)
    then: str
    #: the keyring refusing to delete it is an error (a stored sign-in would come back at the next start)
    must_delete: bool


SIGN_IN: Kind[Grant] = Kind("sign-in", Grant.loads, ".json", "", "a new login is needed", must_delete=True)
CLIENT_SECRET: Kind[ClientSecret] = Kind("client secret", ClientSecret.loads, SECRET_SUFFIX, SECRET_KEY,
                                         "set it again with `tipctl configure`", must_delete=False)


class _Records:
    """The store's API over three generic calls a store implements once for every kind of record."""

    name: str

    async def load_record(self, kind: Kind[_R], profile: str) -> _R | None:
        raise NotImplementedError

    async def save_record(self, kind: Kind[_R], profile: str, record: _R) -> None:
        raise NotImplementedError

    async def delete_record(self, kind: Kind[_R], profile: str) -> None:
        raise NotImplementedError

    async def load(self, profile: str) -> Grant | None:
        return await self.load_record(SIGN_IN, profile)

    async def save(self, profile: str, grant: Grant) -> None:
        await self.save_record(SIGN_IN, profile, grant)

    async def delete(self, profile: str) -> None:
        await self.delete_record(SIGN_IN, profile)

    async def load_secret(self, profile: str) -> ClientSecret | None:
        return await self.load_record(CLIENT_SECRET, profile)

    async def save_secret(self, profile: str, secret: ClientSecret) -> None:
        await self.save_record(CLIENT_SECRET, profile, secret)

    async def delete_secret(self, profile: str) -> None:
        await self.delete_record(CLIENT_SECRET, profile)


def _damaged(profile: str, kind: Kind[Any]) -> None:
    log.warning("the stored %s of profile %s is damaged; %s", kind.what, profile, kind.then)


class StoreError(TipdError):
    """A record could not be written (disk full, read-only, keyring refused)."""

    code = "StoreError"
    status = 503


class FileStore(_Records):
    """One JSON file per profile and record, 0600, in a 0700 directory, replaced atomically on every save.

    A crash mid-save can leave `.NAME.json.PID.tmp` beside the file, complete or partial. A complete one is
    newer than the file (it was written after it), and after a rotation it holds the only refresh token the
    IdP still accepts: loading takes the newest complete record and makes it the file again."""

    name = "file"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, profile: str, suffix: str) -> Path:
        return self.directory / f"{profile}{suffix}"  # profile names are validated: no separators

    def _read(self, path: Path) -> str | None:
        try:
            with path.open("rb") as f:
                raw = f.read(MAX_RECORD + 1)
        except FileNotFoundError:
            return None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return "\0"  # damaged: fails to parse below

    def _newest(self, path: Path, parse: Callable[[str], _R]) -> tuple[_R | None, bool]:
        """The newest complete record among `path` and the temp files an interrupted save left beside it
        (made the file again), and whether `path` itself was damaged."""
        best: tuple[int, Path, _R] | None = None
        damaged = False
        for candidate, pid in [(path, 0), *leftovers(path)]:
            if pid and pid != os.getpid() and pid_alive(pid):
                continue  # another process is writing it right now
            try:
                mtime = candidate.stat().st_mtime_ns
            except FileNotFoundError:
                continue
            text = self._read(candidate)
            if text is None:
                continue
            try:
                if not text.lstrip().startswith("{"):
                    raise StoredRecordError("not a JSON object")  # a file always held JSON
                record = parse(text)
            except (StoredRecordError, ValueError):
                damaged = damaged or candidate == path
                continue
            if best is None or mtime > best[0]:
                best = (mtime, candidate, record)
        if best is None:
            return None, damaged
        if best[1] != path:
            log.warning("recovered %s from the file an interrupted save left (%s)", path.name, best[1].name)
        self._tidy(path, keep=best[1])
        return best[2], False

    def _tidy(self, path: Path, keep: Path) -> None:
        """Make `keep` the record's file and drop the other leftovers (best effort: in a read-only directory
        they stay, and the next start decides again)."""
        try:
            if keep != path:
                os.replace(keep, path)
            stale = [p for p, pid in leftovers(path) if pid == os.getpid() or not pid_alive(pid)]
            for p in stale:
                p.unlink()
            if keep != path or stale:
                sync_dir(path.parent)
        except OSError as e:
            log.warning("cannot tidy %s (%s)", path.parent, e.strerror)

    def _write(self, path: Path, data: str, what: str) -> None:
        try:
            private_dir(self.directory)
            write_private(path, data.encode(), tag="token")
        except OSError as e:
            raise StoreError(f"cannot save the {what} in {self.directory} ({e.strerror or type(e).__name__})") from None

    def _remove(self, path: Path) -> None:
        remove(path)
        for leftover, pid in leftovers(path):
            if pid == os.getpid() or not pid_alive(pid):
                remove(leftover)

    async def load_record(self, kind: Kind[_R], profile: str) -> _R | None:
        record, damaged = self._newest(self._path(profile, kind.file_suffix), kind.parse)
        if damaged:
            _damaged(profile, kind)
        return record

    async def save_record(self, kind: Kind[_R], profile: str, record: _R) -> None:
        self._write(self._path(profile, kind.file_suffix), record.dumps(), f"{kind.what} of profile {profile}")

    async def delete_record(self, kind: Kind[_R], profile: str) -> None:
        self._remove(self._path(profile, kind.file_suffix))


class Keyring(Protocol):
    """What the keyring store needs of a keyring backend (keyring's KeyringBackend; unit tests pass an in-memory
    one)."""

    def get_password(self, service: str, username: str, /) -> str | None: ...
    def set_password(self, service: str, username: str, password: str, /) -> None: ...
    def delete_password(self, service: str, username: str, /) -> None: ...


class KeyringStore(_Records):
    """The OS keyring (Secret Service, macOS Keychain, ...). Its calls block, so they run in a thread."""

    name = "keyring"

    def __init__(self, backend: Keyring) -> None:
        self.backend = backend

    async def _get(self, key: str) -> str | None:
        return await asyncio.to_thread(self.backend.get_password, SERVICE, key)

    async def _set(self, key: str, value: str) -> None:
        await asyncio.to_thread(self.backend.set_password, SERVICE, key, value)

    async def _delete(self, key: str) -> None:
        import keyring.errors

        with contextlib.suppress(keyring.errors.PasswordDeleteError):
            await asyncio.to_thread(self.backend.delete_password, SERVICE, key)

    async def load_record(self, kind: Kind[_R], profile: str) -> _R | None:
        value = await self._get(profile + kind.keyring_suffix)
        if not value:
            return None
        try:
            return kind.parse(value)
        except (StoredRecordError, ValueError):
            _damaged(profile, kind)
            return None

    async def save_record(self, kind: Kind[_R], profile: str, record: _R) -> None:
        await self._set(profile + kind.keyring_suffix, record.dumps())

    async def delete_record(self, kind: Kind[_R], profile: str) -> None:
        await self._delete(profile + kind.keyring_suffix)


def usable_keyring() -> KeyringBackend | None:
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


class FallbackStore(_Records):
    """The keyring, with the file store behind it: a keyring that fails at runtime (locked, D-Bus gone)
    must never lose a rotated refresh token, because the old one is already dead at the IdP."""

    def __init__(self, primary: KeyringStore, fallback: FileStore) -> None:
        self.primary = primary
        self.fallback = fallback
        self.name = primary.name

    async def load_record(self, kind: Kind[_R], profile: str) -> _R | None:
        # A file exists only when the keyring refused the latest save, so it is the newer of the two.
        record = await self.fallback.load_record(kind, profile)
        if record is not None:
            return record
        try:
            return await self.primary.load_record(kind, profile)
        except Exception as e:
            log.warning("cannot read the OS keyring (%s)", type(e).__name__)
            return None

    async def save_record(self, kind: Kind[_R], profile: str, record: _R) -> None:
        try:
            await self.primary.save_record(kind, profile, record)
        except Exception as e:
            log.warning("cannot write the OS keyring (%s); keeping the %s of %s in a 0600 file in %s",
                        type(e).__name__, kind.what, profile, self.fallback.directory)
            await self.fallback.save_record(kind, profile, record)
        else:
            await self.fallback.delete_record(kind, profile)  # one place holds the live record

    async def delete_record(self, kind: Kind[_R], profile: str) -> None:
        try:
            await self.primary.delete_record(kind, profile)
        except Exception as e:
            log.warning("cannot delete from the OS keyring (%s)", type(e).__name__)
            await self.fallback.delete_record(kind, profile)
            if kind.must_delete:  # the record stays in the keyring and is read at the next start: say so
                raise StoreError(f"the OS keyring refused to delete it ({type(e).__name__}: unlock the keyring and "
                                 "sign out again)") from None
            return
        await self.fallback.delete_record(kind, profile)


class ProbingStore(_Records):
    """The daemon's store when a keyring may be used. Finding out whether it can be (`usable_keyring`: keyring's
    backend discovery, a D-Bus round trip, on a desktop perhaps an unlock prompt) costs 0.1-0.3 s or more, so it
    runs in a thread at the first call, not on tipd's way to listening; every call waits for the answer, then
    goes to the keyring (the file store behind it) or to the file store alone."""

    def __init__(self, tokens_dir: Path) -> None:
        self.files = FileStore(tokens_dir)
        self.name = "keyring"
        self._probe: asyncio.Future[KeyringBackend | None] | None = None
        self._store: FileStore | FallbackStore | None = None

    async def resolve(self) -> FileStore | FallbackStore:
        if self._store is None:
            if self._probe is None:
                self._probe = asyncio.get_running_loop().run_in_executor(None, usable_keyring)
            kr = await asyncio.shield(self._probe)
            if self._store is None:
                self._store = _chosen(kr, self.files)
                self.name = self._store.name
        return self._store

    async def load_record(self, kind: Kind[_R], profile: str) -> _R | None:
        return await (await self.resolve()).load_record(kind, profile)

    async def save_record(self, kind: Kind[_R], profile: str, record: _R) -> None:
        await (await self.resolve()).save_record(kind, profile, record)

    async def delete_record(self, kind: Kind[_R], profile: str) -> None:
        await (await self.resolve()).delete_record(kind, profile)


def _chosen(kr: KeyringBackend | None, files: FileStore, *, keeps: bool = True) -> FileStore | FallbackStore:
    if kr is not None:
        log.info("refresh tokens are kept in the OS keyring (%s)", type(kr).__name__)
        return FallbackStore(KeyringStore(kr), files)
    log.log(logging.WARNING if keeps else logging.DEBUG,
            "no usable OS keyring; refresh tokens are kept in 0600 files in %s instead", files.directory)
    return files


def open_store(backend: str, tokens_dir: Path, *, probe_later: bool = False, keeps: bool = True) -> TokenStore:
    """The store for `[store] backend`. `probe_later` (the daemon): the keyring probe runs in a thread at the
    first use instead of now (see ProbingStore). `keeps=False` (`tipctl logout`): the store only forgets, so
    where it would keep tokens is not worth a warning at every sign-out."""
    files = FileStore(tokens_dir)
    if backend == "file":
        log.info("refresh tokens are kept in 0600 files in %s (store backend = \"file\")", tokens_dir)
        return files
    if probe_later:
        return ProbingStore(tokens_dir)
    return _chosen(usable_keyring(), files, keeps=keeps)


async def client_secret(store: TokenStore, profile: str, settings: Any) -> Secret | None:
    """The client secret a profile's IdP requires (None when its client_auth is "none"). A missing one, or one
    stored for another issuer or client, is a sentence saying how to set it."""
    from .errors import ConfigError

    if settings.client_auth == "none":
        return None
    try:
        record = await store.load_secret(profile)
    except OSError as e:  # e.g. a directory or an unreadable file where the record belongs
        raise ConfigError(f"cannot read the stored client secret of profile {profile} ({e.strerror}): fix or "
                          f"remove {e.filename or 'it'}, then run "
                          f"`tipctl configure --profile {profile} --client-secret-stdin`") from None
    if record is None:
        raise ConfigError(f"profile {profile} needs the client secret of its IdP app (client_auth = "
                          f'"{settings.client_auth}"), and none is stored: run '
                          f"`tipctl configure --profile {profile} --client-secret-stdin` (or answer its prompt)")
    if not record.bound_to(settings.issuer, settings.client_id):
        raise ConfigError(f"the stored client secret of profile {profile} is for issuer {record.issuer} (client "
                          f"{record.client_id}), not {settings.issuer} ({settings.client_id}); tipd does not send "
                          f"it there: set it again with `tipctl configure --profile {profile} --client-secret-stdin`")
    return record.secret
