"""The credential port handed over by the service manager (socket activation), so that it is never free.

While tipd restarts, a port it binds itself is free for a moment, and another local user can bind it and
receive the endpoint token from every SDK. With socket activation the service manager owns the listening
socket for as long as the service is installed and passes it to each tipd it starts:
- systemd: a `tipd.socket` unit (ListenStream=127.0.0.1:PORT); the fds start at 3, announced by
  LISTEN_FDS and LISTEN_PID (sd_listen_fds(3): "LISTEN_PID ... must match the PID of the process").
- launchd: the agent's `Sockets` entry "Listeners", fetched with launch_activate_socket(3).
Connections that arrive between two tipds wait in the socket's backlog instead of being refused."""
from __future__ import annotations

import errno
import logging
import os
import socket
import sys
from collections.abc import Callable, MutableMapping
from typing import Any

from .errors import ConfigError

log = logging.getLogger(__name__)
SD_LISTEN_FDS_START = 3
#: the name of the socket in the launchd agent's `Sockets` dictionary (tipd/templates/tipd.plist.in)
LAUNCHD_NAME = "Listeners"


def systemd_fds(environ: MutableMapping[str, str] | None = None, pid: int | None = None) -> list[int]:
    """The fds systemd passed to this process, as sd_listen_fds(unset_environment=1) finds them: the
    variables are removed either way, so no child of tipd mistakes them for its own."""
    env = os.environ if environ is None else environ
    listen_pid, listen_fds = env.pop("LISTEN_PID", None), env.pop("LISTEN_FDS", None)
    env.pop("LISTEN_FDNAMES", None)
    if not listen_pid or not listen_fds:
        return []
    if not listen_pid.isdigit() or int(listen_pid) != (os.getpid() if pid is None else pid):
        return []  # meant for another process (inherited through a fork)
    if not listen_fds.isdigit() or not 0 < int(listen_fds) <= 64:
        raise ConfigError(f"LISTEN_FDS={listen_fds!r} from the service manager is not a small number")
    return list(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + int(listen_fds)))


def launchd_fds(name: str = LAUNCHD_NAME, activate: Callable[..., int] | None = None,
                free: Callable[[Any], None] | None = None) -> list[int]:
    """The fds of the launchd agent's socket `name` (macOS; [] elsewhere or when not started by launchd).
    `activate` and `free` stand in for libSystem's launch_activate_socket and free in tests."""
    import ctypes

    if activate is None:
        if sys.platform != "darwin":
            return []
        libsystem = ctypes.CDLL(None, use_errno=True)
        activate, free = libsystem.launch_activate_socket, libsystem.free
        activate.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.POINTER(ctypes.c_int)),
                             ctypes.POINTER(ctypes.c_size_t)]
        activate.restype = ctypes.c_int
    fds = ctypes.POINTER(ctypes.c_int)()
    count = ctypes.c_size_t(0)
    rc = activate(name.encode(), ctypes.byref(fds), ctypes.byref(count))
    if rc in (errno.ESRCH, errno.ENOENT):  # not a launchd job / no socket by that name: tipd binds itself
        return []
    if rc != 0:
        raise ConfigError(f"launchd did not hand over the {name!r} socket: {os.strerror(rc)}")
    try:
        return [fds[i] for i in range(count.value)]
    finally:
        if free is not None:
            free(fds)


def inherited_listener(port: int, fds: list[int] | None = None) -> socket.socket | None:
    """The listening TCP socket the service manager passed (None: none was passed, tipd binds itself).
    It must be a listening IPv4 stream socket on a loopback address and the configured port, or SDKs
    pointed at the config's port would find nothing, or others could connect."""
    if fds is None:
        fds = systemd_fds() or launchd_fds()
    if not fds:
        return None
    sockets = []
    for fd in fds:
        try:
            sockets.append(socket.socket(fileno=fd))
        except OSError as e:
            raise ConfigError(f"the service manager passed fd {fd}, which is not a socket ({e.strerror})") from None
    chosen = None
    for s in sockets:
        os.set_inheritable(s.fileno(), False)
        if s.family == socket.AF_INET and s.type == socket.SOCK_STREAM and chosen is None:
            chosen = s
        else:
            s.close()  # not ours to use (tipd asks for one socket)
    if chosen is None:
        raise ConfigError("the service manager passed no IPv4 stream socket; the socket unit must say "
                          "ListenStream=127.0.0.1:PORT (run `tipctl service install` again)")
    host, bound = chosen.getsockname()[:2]
    if not host.startswith("127."):
        chosen.close()
        raise ConfigError(f"the service manager's socket listens on {host}:{bound}, not on a loopback address: "
                          "refusing to serve credentials there (run `tipctl service install` again)")
    if bound != port:
        chosen.close()
        raise ConfigError(f"the service manager's socket listens on port {bound} but the config says {port}: "
                          "run `tipctl service install` again so the socket unit follows the config")
    if not chosen.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        chosen.listen(512)
    chosen.setblocking(False)
    log.info("serving on the socket the service manager holds (127.0.0.1:%d): the port stays ours across restarts",
             port)
    return chosen
