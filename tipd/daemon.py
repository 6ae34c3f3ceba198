"""`tipd`: load the config, start one session per profile, serve the endpoints, stop cleanly."""
from __future__ import annotations

import argparse
import asyncio
import base64
import errno
import logging
import os
import secrets
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from . import __version__, sdnotify
from .audit import Audit
from .changes import Changes
from .clock import Clock
from .config import Config, load_config
from .errors import ConfigError, TipdError
from .paths import Paths

log = logging.getLogger("tipd")
#: on SIGTERM, in-flight requests get this long to finish (a login hand-off may be waiting on AWS)
SHUTDOWN_GRACE = 3.0
#: request size limits, and how long a connection may sit without completing a request: aiohttp's
#: keep-alive timer is not reset by partial data, so it also ends slow-loris connections
LIMITS = dict(max_line_size=4096, max_field_size=4096, max_headers=32, keepalive_timeout=15.0)


def new_endpoint_token() -> bytes:
    """256 random bits, URL-safe text, written with no trailing newline (a newline crashes botocore)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=")


@dataclass
class Broker:
    """What the listeners share: the config and the live sessions."""

    config: Config
    sessions: dict = field(default_factory=dict)
    #: per profile, its S3 Access Grants (tipd.s3ag.GrantCache)
    grants: dict = field(default_factory=dict)
    audit: Audit = field(default_factory=Audit)
    changes: Changes = field(default_factory=Changes)
    guard: "Guard | None" = None
    rotate_token: "Callable[[], None] | None" = None

    @property
    def default_profile(self) -> str | None:
        try:
            return self.config.profile_name(None)
        except TipdError:
            return None


class Daemon:
    def __init__(self, config: Config, paths: Paths, clock: Clock | None = None) -> None:
        self.config = config
        self.paths = paths
        self.clock = clock or Clock()
        self.broker = Broker(config)
        self.broker.rotate_token = self.rotate_token
        self._runners: list = []
        self._tasks: list[asyncio.Task] = []
        self._http = None
        self._stop = asyncio.Event()

    async def start(self) -> None:
        import aiohttp
        from aiohttp import web

        from .exchange import AwsChain
        from .idp.oidc import IdpClient
        from .s3ag import GrantCache
        from .notify import desktop_notify
        from .fsutil import private_dir, write_private
        from .server import container, control
        from .server.guards import Guard
        from .server.peer import SUPPORTED as PEER_UID_SUPPORTED
        from .session import ProfileSession
        from .store import client_secret, open_store

        private_dir(self.paths.state_dir)
        private_dir(self.paths.runtime_dir)
        sock_path = self.paths.control_socket
        if _socket_alive(str(sock_path)):
            raise ConfigError(f"another tipd is already running (its control socket {sock_path} answers)")
        token = new_endpoint_token()
        write_private(self.paths.token_file, token)

        store = open_store(self.config.store.backend, self.paths.tokens_dir)
        self._http = aiohttp.ClientSession(headers={"User-Agent": f"tipd/{__version__}"})
        aws = AwsChain(self.clock)
        for name, profile in self.config.profiles.items():
            try:
                secret, problem = await client_secret(store, name, profile), None
            except ConfigError as e:  # this profile cannot renew until it is set; the others run
                secret, problem = None, e
            idp = IdpClient(self._http, profile, secret)
            s = ProfileSession(name, profile, self.config.refresh, store=store, aws=aws, idp=idp, clock=self.clock,
                               notify=desktop_notify, on_change=self.broker.changes.signal)
            await s.start()
            if problem is not None:
                s.login_required = problem
            self.broker.sessions[name] = s
            self.broker.grants[name] = GrantCache(s, aws, self.clock, self.config.refresh)

        server = self.config.server
        port = server.port
        guard = self.broker.guard = Guard(token, port, allow_other_users=server.allow_other_users)
        imds = server.imds if server.imds is not None else PEER_UID_SUPPORTED
        cred_runner = web.AppRunner(container.make_app(self.broker, guard, imds=imds), access_log=None,
                                    handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE, **LIMITS)
        await cred_runner.setup()
        self._runners.append(cred_runner)
        try:
            await web.TCPSite(cred_runner, "127.0.0.1", port, backlog=512).start()
        except OSError as e:
            hint = " (is another tipd running?)" if e.errno == errno.EADDRINUSE else ""
            raise ConfigError(f"cannot listen on 127.0.0.1:{port}: {e.strerror}{hint}; "
                              "change [server] port in the config") from None

        ctl_runner = web.AppRunner(control.make_app(self.broker), access_log=None, handle_signals=False,
                                   shutdown_timeout=SHUTDOWN_GRACE)
        await ctl_runner.setup()
        self._runners.append(ctl_runner)
        if sock_path.exists() or sock_path.is_symlink():
            sock_path.unlink()  # stale: nothing answered on it above
        old = os.umask(0o177)  # the socket is created 0600 (no window where others could connect)
        try:
            await web.UnixSite(ctl_runner, str(sock_path)).start()
        finally:
            os.umask(old)
        os.chmod(sock_path, 0o600)

        for s in self.broker.sessions.values():
            self._tasks.append(asyncio.create_task(s.run(), name=f"schedule-{s.name}"))
            self._tasks.append(asyncio.create_task(self.broker.grants[s.name].run(), name=f"s3ag-{s.name}"))
        self._tasks.append(asyncio.create_task(self.broker.audit.run(), name="audit"))
        log.info("tipd %s ready: credentials on http://127.0.0.1:%d/v1/credentials/<profile>%s, control socket %s, "
                 "profiles: %s", __version__, port, f" and IMDSv2 on http://127.0.0.1:{port}/latest/" if imds else "",
                 sock_path, ", ".join(self.broker.sessions) or "none")
        if not PEER_UID_SUPPORTED:
            log.warning("this platform cannot tell which user a TCP client runs as: the endpoint token is the "
                        "only barrier against other local users (see docs/security.md)")

    def rotate_token(self) -> None:
        """A new endpoint token, written atomically; SDKs re-read the file on every fetch."""
        from .fsutil import write_private

        token = new_endpoint_token()
        write_private(self.paths.token_file, token)
        assert self.broker.guard is not None
        self.broker.guard.rotate(token)
        log.info("the endpoint token was rotated")

    def request_stop(self) -> None:
        self._stop.set()

    async def wait(self) -> None:
        await self._stop.wait()

    async def stop(self) -> None:
        self.broker.changes.close()  # open event streams end now, not at the shutdown timeout
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except BaseException:
                pass
        await self.broker.audit.flush()
        for r in reversed(self._runners):
            await r.cleanup()  # stops accepting, lets in-flight requests finish (aiohttp's shutdown timeout)
        if self._http is not None:
            await self._http.close()
        try:
            self.paths.control_socket.unlink()
        except FileNotFoundError:
            pass
        log.info("tipd stopped")


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


async def _serve(config: Config, paths: Paths) -> int:
    daemon = Daemon(config, paths)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.request_stop)
    try:
        await daemon.start()
    except TipdError:
        await daemon.stop()
        raise
    # both listeners are up: a Type=notify unit counts tipd as started only now
    sdnotify.notify("READY=1", f"STATUS=serving on 127.0.0.1:{config.server.port}, control socket "
                    f"{paths.control_socket}")
    try:
        await daemon.wait()
    finally:
        sdnotify.notify("STOPPING=1")
        await daemon.stop()
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
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Libraries log request bodies and headers at DEBUG (tokens, assertions, signatures): whatever the
    # level asked for, they stay at WARNING so no secret can reach a log line through them.
    for noisy in ("botocore", "aiobotocore", "aiohttp", "urllib3", "asyncio", "keyring"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(args.log_level)))
    try:
        config, path = load_config(args.config, missing_ok=True)
        if not config.profiles:
            log.warning("no profiles configured (config file: %s); add one with `tipctl configure` or by "
                        "editing the file (see docs/quickstart.md), then restart tipd", path)
        return asyncio.run(_serve(config, Paths.default()))
    except TipdError as e:
        print(f"tipd: {e.message}", file=sys.stderr)
        return 2 if isinstance(e, ConfigError) else 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
