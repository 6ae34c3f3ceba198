"""`tipd`: load the config, start one session per profile, serve the endpoints, stop cleanly.

`Daemon.serve` runs the three phases, as uvicorn's Server does: `startup` (named steps, in order),
`main_loop` (until SIGTERM/SIGINT; SIGHUP and `tipctl reload` reload the config meanwhile) and `shutdown`."""
from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import errno
import logging
import os
import random
import re
import secrets
import signal
import socket
import stat
import sys
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, web

from . import __version__, limits, promptfile, sdnotify
from .accounts import AccountSchedule, AccountSession
from .activation import inherited_listener
from .broker import Broker, ReloadResult
from .clock import Clock, ClockLike
from .config import Config, Profile, RefreshConfig, load_config
from .consumers import Consumers, definitions
from .coredump import forbid_core_dumps
from .errors import ConfigError, TipdError
from .exchange import AwsChain
from .fsutil import private_dir, write_private
from .idp.oidc import IdpClient, new_session
from .instance import AlreadyRunning, InstanceLock
from .notify import desktop_notify
from .paths import Paths
from .portal import Portal
from .portowner import listener_uids
from .s3ag import GrantCache
from .server import container, control
from .server.conns import PER_UID, CappedRunner, Caps
from .server.guards import Guard
from .server.peer import SUPPORTED as PEER_UID_SUPPORTED
from .session import ProfileSession
from .store import TokenStore, client_secret, open_store
from .tasks import Tasks

log = logging.getLogger("tipd")
#: on SIGTERM, requests under way get this long to finish: a login hand-off, or a credential request waiting on
#: a refresh, may be waiting on the IdP and AWS, which take seconds on a loaded machine. Well inside the stop
#: timeouts of systemd (TimeoutStopSec, 90 s by default) and launchd (ExitTimeOut, 20 s by default).
SHUTDOWN_GRACE = 10.0
#: request size limits, and how long a connection may sit without completing a request: aiohttp's
#: keep-alive timer is not reset by partial data, so it also ends slow-loris connections
LIMITS: dict[str, float] = dict(max_line_size=4096, max_field_size=4096, max_headers=32, keepalive_timeout=15.0)
#: on shutdown, a connection accepted but with no request yet gets this long to send it
ACCEPTED_SETTLE = 2.0
#: how long a just-accepted connection may take to reach the server's list (a few loop iterations)
ACCEPT_REGISTER = 0.05
#: a reload lets a profile's refresh under way finish for this long before the profile is replaced
RELOAD_SETTLE = 30.0


TOKEN_LENGTH = 43  # 32 bytes, base64url without padding
TOKEN_FORMAT = re.compile(rb"[A-Za-z0-9_-]{%d}" % TOKEN_LENGTH)


def new_endpoint_token() -> bytes:
    """256 random bits, URL-safe text, written with no trailing newline (a newline crashes botocore)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=")


class Daemon:
    """Start-up (`startup`: named steps, in order), the main loop (`main_loop`, `reload`), shutdown
    (`shutdown`); `serve` runs the three."""

    def __init__(self, config: Config, paths: Paths, clock: ClockLike | None = None,
                 config_path: str | None = None) -> None:
        self.config = config
        self.paths = paths
        self.clock = clock or Clock()
        #: the --config it was started with (None: $TIPD_CONFIG or the default), for reloads
        self.config_path = config_path
        self.broker = Broker(config, tasks=Tasks(self.clock.time),
                             consumers=Consumers(paths.grants_file, self.clock.time))
        self.broker.rotate_token = self.rotate_token
        self.broker.reload = self.reload
        self.tasks = self.broker.tasks
        self.tasks.on_failure = self.broker.changes.signal  # a stopped task shows in open status streams
        self._lock = InstanceLock(paths.state_dir)
        self._runners: list[web.AppRunner] = []
        self._guard: Guard | None = None
        self._imds = False
        self._http: ClientSession | None = None
        self._store: TokenStore | None = None
        self._aws: AwsChain | None = None
        self._portal: Portal | None = None
        self._listener: socket.socket | None = None
        #: (st_dev, st_ino) of the control socket this process bound: shutdown removes only that one
        self._socket_id: tuple[int, int] | None = None
        self._relay_socket_id: tuple[int, int] | None = None
        self._stop = asyncio.Event()
        self._reloading = asyncio.Lock()
        #: start() has finished: only then may a reload compare configs (start is still adding sessions)
        self._started = False

    async def serve(self) -> None:
        """Start, serve until asked to stop, stop. A start-up that fails undoes what it did, then raises."""
        try:
            await self.startup()
        except TipdError:
            await self.shutdown()
            raise
        # both listeners are up: a Type=notify unit counts tipd as started only now
        sdnotify.notify("READY=1", f"STATUS=serving on 127.0.0.1:{self.config.server.port}, control socket "
                        f"{self.paths.control_socket}")
        try:
            await self.main_loop()
        finally:
            sdnotify.notify("STOPPING=1")
            await self.shutdown()

    # -- start-up ----------------------------------------------------------------------------
    async def startup(self) -> None:
        """Nothing shared (endpoint token, control socket) is touched before this process holds the
        instance lock and the port: a second tipd fails having changed nothing."""
        self._prepare_directories()
        self._lock.acquire()
        self._claim_port()
        self._check_control_socket()
        token = self._endpoint_token()
        await self._open_sessions()
        await self._serve_credentials(token)
        await self._serve_relay_socket()
        await self._sessions_loaded()
        await self._serve_control()
        self.tasks.spawn(self.broker.audit.run(), "audit")
        # what shell prompts read: kept current here, removed at stop
        self.tasks.spawn(promptfile.keep(self.broker, self.paths.prompt_dir, os.getpid()), "prompt-files")
        self._started = True
        self._say_ready()

    def _prepare_directories(self) -> None:
        for what, d in (("state", self.paths.state_dir), ("runtime", self.paths.runtime_dir)):
            try:
                private_dir(d)
            except OSError as e:
                raise ConfigError(f"cannot use the {what} directory {d}: {e.strerror}{_os_hint(e, d)}") from None

    def _claim_port(self) -> None:
        """The socket the service manager holds for us, else one bound here."""
        port = self.config.server.port
        sock = inherited_listener(port)
        if sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart while old connections linger
            try:
                sock.bind(("127.0.0.1", port))
                sock.listen(512)
            except OSError as e:
                sock.close()
                raise ConfigError(f"cannot listen on 127.0.0.1:{port}: {e.strerror}{_port_hint(e, port)}") from None
            sock.setblocking(False)
        self._listener = sock

    def _check_control_socket(self) -> None:
        sock_path = self.paths.control_socket
        if _socket_alive(str(sock_path)):  # a tipd with another state directory but this runtime directory
            raise AlreadyRunning(f"another tipd is already running (its control socket {sock_path} answers)")
        if sock_path.is_dir() and not sock_path.is_symlink():
            raise ConfigError(f"{sock_path} is a directory, where tipd puts its control socket: remove it")

    def _endpoint_token(self) -> bytes:
        """The endpoint token: the one a previous tipd left (so a request that read the file just before a
        restart is still accepted after it), else a new one. `tipctl rotate-token` replaces it."""
        path = self.paths.token_file
        if path.is_dir() and not path.is_symlink():
            raise ConfigError(f"{path} is a directory, where tipd writes the endpoint token: remove it")
        token = _read_endpoint_token(path)
        if token is not None:
            return token
        token = new_endpoint_token()
        try:
            write_private(path, token)
        except OSError as e:
            raise _os_error(f"cannot write the endpoint token file {path}", e, path) from None
        return token

    async def _open_sessions(self) -> None:
        self._store = open_store(self.config.store.backend, self.paths.tokens_dir, probe_later=True)
        self._http = new_session(headers={"User-Agent": f"tipd/{__version__}"})  # the IdPs' only client
        self._aws = AwsChain(self.clock)
        for name, profile in self.config.idp_profiles.items():
            await self._add_session(name, profile, self.config.refresh, load_later=True)
        self._open_accounts(list(self.config.accounts))
        self.tasks.spawn(AccountSchedule(self.broker.accounts, self.clock).run(), "accounts")

    def _open_accounts(self, names: list[str]) -> None:
        """Account profiles: a few objects each, nothing fetched until a client asks (tipd/accounts.py)."""
        assert self._aws is not None
        if self._portal is None:
            self._portal = self.broker.portal = Portal(self._aws)
        accounts, rng = self.config.accounts, random.Random()  # one jitter source for all: seeding costs 80 µs
        for name in names:
            acct = accounts[name]
            self.broker.accounts[name] = AccountSession(
                name, acct, self.broker.sessions[acct.source], self._portal, clock=self.clock,
                refresh=self.config.refresh, on_change=self.broker.changes.signal, rng=rng)

    def _close_accounts(self, names: list[str]) -> None:
        for name in names:
            a = self.broker.accounts.pop(name, None)
            if a is not None:
                a.close()

    async def _serve_credentials(self, token: bytes) -> None:
        server = self.config.server
        assert self.broker.consumers is not None
        self.broker.consumers.current = definitions(self.config)
        self.broker.consumers.load()
        guard = self._guard = Guard(token, server.port, allow_other_users=server.allow_other_users,
                                    consumers=self.broker.consumers)
        imds = server.imds_enabled
        runner = container.make_runner(self.broker, guard, imds=imds, access_log=None,
                                       handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE, **LIMITS)
        await runner.setup()
        self._runners.append(runner)
        assert self._listener is not None
        await web.SockSite(runner, self._listener).start()
        self._imds = imds

    async def _serve_relay_socket(self) -> None:
        """The credentials endpoint on a unix socket for consumer tokens only (tipd/relay.py, in a container, forwards
        to it), alone in its 0700 directory so that a container mounts it and nothing else of tipd's."""
        assert self._guard is not None
        limits: dict[str, Any] = dict(LIMITS)  # aiohttp's request limits, passed through to its server
        # Every client of this socket (containers, an ssh HOST's users through the forward: no token needed to
        # connect) counts as one other user, capped like one on TCP (oldest idle closed first): idle connections
        # held there can no longer take the descriptors the owner's SDKs and the control socket need.
        caps = Caps(_relay_client, per_uid=PER_UID)
        runner = CappedRunner(container.make_app(self.broker, self._guard, relay=True), caps, access_log=None,
                              handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE, **limits)
        await runner.setup()
        self._runners.append(runner)
        self._relay_socket_id = await _bind_private_socket(runner, self.paths.relay_socket, "relay socket")

    async def _sessions_loaded(self) -> None:
        """The stored sign-ins are read behind the listeners (the keyring probe is slow); the control socket,
        whose status people and tests read, comes up once they are."""
        loading = [t for s in self.broker.sessions.values() if (t := s.loading) is not None]
        if loading:
            await asyncio.wait(loading)

    async def _serve_control(self) -> None:
        runner = web.AppRunner(control.make_app(self.broker), access_log=None, handle_signals=False,
                               shutdown_timeout=SHUTDOWN_GRACE)
        await runner.setup()
        self._runners.append(runner)
        self._socket_id = await _bind_private_socket(runner, self.paths.control_socket, "control socket")

    def _say_ready(self) -> None:
        port = self.config.server.port
        log.info("tipd %s ready: credentials on http://127.0.0.1:%d/v1/credentials/<profile>%s, control socket %s, "
                 "profiles: %s", __version__, port,
                 f" and IMDSv2 on http://127.0.0.1:{port}/latest/" if self._imds else "",
                 self.paths.control_socket, ", ".join(self.broker.sessions) or "none")
        if not PEER_UID_SUPPORTED:
            log.warning("this platform cannot tell which user a TCP client runs as: the endpoint token is the "
                        "only barrier against other local users (see docs/security.md)")

    # -- sessions ----------------------------------------------------------------------------
    async def _add_session(self, name: str, profile: Profile, refresh: RefreshConfig, *,
                           load_later: bool = False) -> None:
        """Make a profile's session, read its stored sign-in, and put it (and its schedule) in service.
        `load_later` (start-up): in service at once, reading the store in the background (`s.loading`)."""
        assert self._http is not None and self._store is not None and self._aws is not None
        store = self._store
        idp = IdpClient(self._http, profile, None)
        s = ProfileSession(name, profile, refresh, store=store, aws=self._aws, idp=idp, clock=self.clock,
                           notify=desktop_notify, on_change=self.broker.changes.signal)

        async def load() -> None:
            problem: ConfigError | None
            try:
                idp.client_secret, problem = await client_secret(store, name, profile), None
            except ConfigError as e:  # this profile cannot renew until it is set; the others run
                problem = e
            await s.start()
            if problem is not None:
                s.login_required = problem
            s.on_change()

        if load_later:
            s.loading = self.tasks.spawn(load(), f"load-{name}", profile=name)
        else:
            await load()
        grants = GrantCache(s, self._aws, self.clock, refresh)
        self.broker.sessions[name] = s  # from here on the endpoints serve it
        self.broker.grants[name] = grants
        self.tasks.spawn(s.run(), f"schedule-{name}", profile=name)
        self.tasks.spawn(grants.run(), f"s3ag-{name}", profile=name)

    async def _remove_session(self, name: str) -> None:
        """Take a profile out of service: stop its schedule, then let a refresh under way finish (it may
        be saving a rotated refresh token: cancelling it could lose the sign-in). A sign-in under way finishes
        first: the replacement reads the store, which must hold that sign-in, not the one before it."""
        s = self.broker.sessions.get(name)
        if s is not None and not s.no_sign_in_running.is_set():
            log.info("profile %s: a sign-in is under way; it finishes before the profile is replaced", name)
            try:
                await asyncio.wait_for(s.no_sign_in_running.wait(), RELOAD_SETTLE)
            except TimeoutError:
                log.warning("profile %s: replaced while a sign-in was still under way", name)
        s = self.broker.sessions.pop(name, None)
        self.broker.grants.pop(name, None)
        await self.tasks.stop(name)
        if s is not None:
            inflight = [t for st in s.stages if (t := getattr(st, "_inflight", None)) is not None and not t.done()]
            if inflight:
                await asyncio.wait(inflight, timeout=RELOAD_SETTLE)
        self.broker.changes.signal()

    # -- the main loop -----------------------------------------------------------------------
    async def main_loop(self) -> None:
        await self._stop.wait()

    def request_stop(self) -> None:
        self._stop.set()

    async def reload(self) -> ReloadResult:
        """Re-read the config: new profiles start, removed ones stop, changed ones restart, unchanged ones
        are not touched (they keep serving). A config that does not load raises its ConfigError and
        changes nothing. [server] and [store] changes need a restart; they are reported, not applied."""
        if not self._started:
            log.warning("reload ignored: tipd is still starting (it reads the config as it starts)")
            raise TipdError("tipd is still starting and reads the config as it does; try again in a moment",
                            status=503)
        async with self._reloading:
            try:  # a missing file is an error here, not an empty config: it would stop every profile
                new, path = load_config(self.config_path)
            except TipdError as e:
                log.error("reload refused, the running config stays: %s", e.message)
                raise ConfigError(f"the config was not reloaded (tipd keeps running the one it has): {e.message}",
                                  status=400) from None
            old = self.config
            needs_restart = [key for key in ("server", "store") if getattr(new, key) != getattr(old, key)]
            new = new.model_copy(update={"server": old.server, "store": old.store})
            all_changed = new.refresh != old.refresh
            new_idp, old_idp = new.idp_profiles, old.idp_profiles
            added = [n for n in new_idp if n not in old_idp]
            removed = [n for n in old_idp if n not in new_idp]
            changed = [n for n in new_idp if n in old_idp and (all_changed or new_idp[n] != old_idp[n])]
            unchanged = [n for n in new_idp if n in old_idp and n not in changed]
            new_secret = [n for n in unchanged if await self._take_new_client_secret(n)]
            # account profiles: restarted with their source (they hold its session) or when their table changed
            a_added = [n for n in new.accounts if n not in old.accounts]
            a_removed = [n for n in old.accounts if n not in new.accounts]
            a_changed = [n for n in new.accounts if n in old.accounts and (
                all_changed or new.accounts[n] != old.accounts[n] or new.accounts[n].source in changed)]
            self.config = self.broker.config = new
            if self.broker.consumers is not None:  # a grant opens its profiles only as they were defined
                self.broker.consumers.current = definitions(new)
            self._close_accounts(a_removed + a_changed)
            replaced = {name: self.broker.sessions.get(name) for name in removed + changed}
            for name in removed + changed:
                await self._remove_session(name)
            for name in changed + added:
                await self._add_session(name, new_idp[name], new.refresh)
                old_session = replaced.get(name)
                if old_session is not None and self.broker.sessions[name].keep_unsaved(old_session):
                    log.warning("profile %s: the sign-in the store refused so far moves to the reloaded profile, "
                                "which keeps saving it", name)
            self._open_accounts(a_changed + a_added)
            for name in removed:
                s = replaced[name]
                if s is not None and not await s.flush():
                    log.error("profile %s was removed with a sign-in the store refused (%s); it is lost", name,
                              s.save_error.message if s.save_error else "store error")
            added, removed, changed = added + a_added, removed + a_removed, changed + a_changed
            unchanged += [n for n in new.accounts if n in old.accounts and n not in a_changed]
            self.broker.changes.signal()
            result = ReloadResult(config=str(path), added=added, removed=removed, restarted=changed,
                                  unchanged=unchanged, needs_restart=needs_restart, new_client_secret=new_secret)
            log.info("config reloaded from %s: added %s, removed %s, restarted %s, unchanged %s%s", path,
                     added or "none", removed or "none", changed or "none", unchanged or "none",
                     f"; [{'], ['.join(needs_restart)}] changed: restart tipd to apply" if needs_restart else "")
            return result

    async def _take_new_client_secret(self, name: str) -> bool:
        """`tipctl configure --client-secret-stdin` stores a new client secret without changing the config: a
        reload hands it to the unchanged profile's IdP client (it used to wait for the next `tipctl login`)."""
        s = self.broker.sessions.get(name)
        if s is None or s.profile.client_auth == "none" or self._store is None:
            return False
        try:
            secret = await client_secret(self._store, name, s.profile)
        except ConfigError as e:  # none stored now: the profile keeps the one it has
            log.warning("profile %s: %s", name, e.message)
            return False
        if secret == s.idp_client.client_secret:
            return False
        s.idp_client.client_secret = secret
        log.info("profile %s: uses the client secret stored since it was loaded", name)
        return True

    async def reload_from_signal(self) -> None:
        with contextlib.suppress(TipdError):  # logged by reload(); the running config stays
            await self.reload()

    def rotate_token(self) -> None:
        """A new endpoint token, written atomically; SDKs re-read the file on every fetch."""
        token = new_endpoint_token()
        try:
            write_private(self.paths.token_file, token)
        except OSError as e:  # a full or read-only disk: the old token stays in force, and says so
            err = _os_error("the endpoint token was not rotated (the old one stays in force): cannot write "
                            f"{self.paths.token_file}", e, self.paths.token_file)
            err.status = 503
            raise err from None
        assert self._guard is not None
        self._guard.rotate(token)
        log.info("the endpoint token was rotated")

    # -- shutdown ----------------------------------------------------------------------------
    async def shutdown(self) -> None:
        """Undo what startup did, and only that: a start that failed (another tipd holds the lock) leaves the
        running one's socket and token alone. Requests come first: no new connections, then those under way
        (one waiting on a refresh included) finish, and only then do the background tasks stop and the audit
        flush, so a restart drops no request and every handout is audited."""
        if self._started:
            log.info("stopping: requests under way get up to %g s to finish", SHUTDOWN_GRACE)
        self.broker.changes.close()  # open event streams end now, not at the shutdown timeout
        if self._runners:
            await _stop_accepting(self._runners[0])
        # together, so the wait is one grace at most, not one per listener
        await asyncio.gather(*(r.cleanup() for r in self._runners))
        await self.tasks.stop(everything=True)
        await self.broker.audit.flush()
        for s in self.broker.sessions.values():
            if not await s.flush():  # the store refused the newest refresh token until the end
                log.error("profile %s: the newest sign-in could not be saved (%s); tipd loses it when it stops, "
                          "so sign in again once the directory is writable", s.name,
                          s.save_error.message if s.save_error else "store error")
        if self._listener is not None:
            self._listener.close()  # under socket activation the manager keeps its own copy listening
        if self._http is not None:
            await self._http.close()
        for path, ident in ((self.paths.control_socket, self._socket_id),
                            (self.paths.relay_socket, self._relay_socket_id)):
            if ident is not None:
                try:
                    st = path.lstat()
                    if (st.st_dev, st.st_ino) == ident:
                        path.unlink()
                except FileNotFoundError:
                    pass
        if self.broker.consumers is not None and self._started:
            with contextlib.suppress(TipdError):  # last use of each grant: a full disk loses only that
                self.broker.consumers.save()
        if self._lock.held:
            self._lock.release()
            log.info("tipd stopped")


async def _stop_accepting(runner: web.AppRunner) -> None:
    """Stop taking connections, then give those already taken (an SDK that connected a moment ago, whose
    request is in the socket buffer) up to ACCEPTED_SETTLE to deliver their request before idle connections
    are closed: under socket activation the next tipd serves whatever connects later, so no client
    should see its connection dropped by a restart. (aiohttp's cleanup closes a connection that has not
    sent its first request as idle.)"""
    for site in list(runner.sites):
        await site.stop()
    # A connection accept()ed just before the listener stopped is registered with the server only a few
    # loop iterations later (asyncio makes its transport and protocol in a task): let those run first, or it
    # is missed below and closed unanswered (seen once in CI as a refused request across a restart).
    await asyncio.sleep(ACCEPT_REGISTER)
    server = runner.server
    deadline = asyncio.get_running_loop().time() + ACCEPTED_SETTLE
    while server is not None and asyncio.get_running_loop().time() < deadline:
        fresh = [c for c in server.connections
                 if not getattr(c, "_request_count", 1) and not getattr(c, "_request_in_progress", True)]
        if not fresh:
            return
        await asyncio.sleep(0.01)


#: the "user" every relay-socket connection counts as in the connection caps (never a real uid)
RELAY_CLIENT = -1


def _relay_client(transport: asyncio.BaseTransport) -> int:
    return RELAY_CLIENT


async def _bind_private_socket(runner: web.AppRunner, sock_path: Path, what: str) -> tuple[int, int]:
    """Serve `runner` on a unix socket created 0600 in a 0700 directory; returns the socket's (st_dev, st_ino)."""
    try:
        private_dir(sock_path.parent)
        if sock_path.exists() or sock_path.is_symlink():
            sock_path.unlink()  # stale: nothing answered on it, and the lock says no tipd owns it
        old = os.umask(0o177)  # the socket is created 0600 (no window where others could connect)
        try:
            await web.UnixSite(runner, str(sock_path)).start()
        finally:
            os.umask(old)
        os.chmod(sock_path, 0o600)
        st = sock_path.lstat()
    except OSError as e:
        raise _os_error(f"cannot create the {what} {sock_path}", e, sock_path) from None
    return (st.st_dev, st.st_ino)


def _read_endpoint_token(path: Path) -> bytes | None:
    """The token in `path` if it is one tipd wrote: a regular 0600 file of ours holding exactly a token."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
            return None
        data = os.read(fd, TOKEN_LENGTH + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data if TOKEN_FORMAT.fullmatch(data) else None


def _os_hint(e: OSError, path: Path) -> str:
    if e.errno == errno.EROFS:
        return " (a read-only file system)"
    if e.errno == errno.ENOSPC:
        return f" (the file system is full: free some space where {path.parent} is)"
    if e.errno == errno.EISDIR:
        return f" ({path} is a directory: remove it)"
    return ""


def _os_error(what: str, e: OSError, path: Path) -> TipdError:
    """A sentence for a file-system failure: a full disk may pass (exit 1, a service manager retries),
    the rest needs a person (a ConfigError, exit 2)."""
    message = f"{what}: {e.strerror or e}{_os_hint(e, path)}"
    return TipdError(message) if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO) else ConfigError(message)


def _port_hint(e: OSError, port: int) -> str:
    if e.errno != errno.EADDRINUSE:
        return ""
    others = listener_uids(port) - {os.getuid()}
    if others:
        return (f" (another user, uid {', '.join(map(str, sorted(others)))}, holds it: do not use this port; "
                "change [server] port in the config and run `tipctl service install` again)")
    return " (another program of yours holds it: stop it, or change [server] port in the config)"


def _socket_alive(path: str) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(0.5)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


async def _serve(config: Config, paths: Paths, config_path: str | None = None) -> int:
    daemon = Daemon(config, paths, config_path=config_path)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.request_stop)
    reloads: set[asyncio.Task[None]] = set()  # a strong reference until each is done

    def on_sighup() -> None:
        task = loop.create_task(daemon.reload_from_signal(), name="reload")
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, on_sighup)
    await daemon.serve()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="tipd",
        description="The tipd daemon (runs in the foreground). It keeps your IdP sign-in fresh and serves "
                    "identity-enhanced AWS credentials on 127.0.0.1 to every AWS SDK. Usually run as a user "
                    "service; see `tipctl service install`.")
    p.add_argument("--config", metavar="PATH", help="config file (default: $TIPD_CONFIG, else the per-user "
                   "config directory's tipd/config.toml)")
    p.add_argument("--log-level", default=os.environ.get("TIPD_LOG_LEVEL", "INFO"),
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="log verbosity (default INFO)")
    p.add_argument("--version", action="version", version=f"tipd {__version__}")
    args = p.parse_args(argv)
    # before anything is read: a crash must never write the refresh token or AWS keys to a core file
    undumpable = forbid_core_dumps()
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    limits.harden_process()  # request content never logged, floods rate-limited, descriptors raised
    # Libraries log request bodies and headers at DEBUG (tokens, assertions, signatures): whatever the
    # level asked for, they stay at WARNING so no secret can reach a log line through them.
    for noisy in ("botocore", "aiobotocore", "aiohttp", "urllib3", "asyncio", "keyring"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(args.log_level)))
    for problem in undumpable:
        log.warning("%s: a crash could write secrets to a core file", problem)
    try:
        config, path = load_config(args.config, missing_ok=True)
        if not config.profiles:
            log.warning("no profiles configured (config file: %s); add one with `tipctl configure` or by "
                        "editing the file (see docs/quickstart.md), then `tipctl reload`", path)
        return asyncio.run(_serve(config, Paths.default(), args.config))
    except TipdError as e:
        print(f"tipd: {e.message}", file=sys.stderr)
        return 2 if isinstance(e, ConfigError) else 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
