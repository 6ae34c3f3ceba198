"""Socket activation as systemd does it (sd_listen_fds(3)), for tests: the test owns the listening socket
and starts the program with it as fd 3, LISTEN_FDS=1 and LISTEN_PID = the pid that execs the program."""
from __future__ import annotations

import socket
import subprocess
import sys
from typing import Any

#: runs after the fork, in the child: the socket becomes fd 3, LISTEN_PID this pid, then exec
LAUNCHER = """import os, sys
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()))
os.execv(sys.argv[2], sys.argv[2:])
"""


def listen(address: tuple[str, int], backlog: int = 128) -> socket.socket:
    """What a .socket unit's ListenStream=HOST:PORT sets up."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(address)
    s.listen(backlog)
    return s


def activated(sock: socket.socket, argv: list[str], **kw: Any) -> subprocess.Popen[bytes]:
    """Start `argv` (an absolute program path first) with `sock` passed the way systemd passes it."""
    return subprocess.Popen([sys.executable, "-c", LAUNCHER, str(sock.fileno()), *argv], pass_fds=(sock.fileno(),),
                            **kw)
