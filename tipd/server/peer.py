"""Who is at the other end of a loopback TCP connection (Linux): the client socket's owner uid and inode
from /proc/net/tcp, and the process holding that inode. Other platforms cannot tell: None."""
from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

PROC_NET_TCP = Path("/proc/net/tcp")
SUPPORTED = sys.platform.startswith("linux") and PROC_NET_TCP.exists()


@dataclass(frozen=True, eq=False)
class Peer:
    """One per connection (cached by the guard), so identity is equality and hashing is free."""

    uid: int
    inode: int


def _hex_addr(ip: str, port: int) -> str:
    return f"{socket.inet_aton(ip)[::-1].hex().upper()}:{port:04X}"


def tcp_peer(peer: tuple[str, int], local: tuple[str, int], table: Path = PROC_NET_TCP) -> Peer | None:
    """The owner of the client socket whose local address is `peer` and remote address is `local`."""
    want_local, want_remote = _hex_addr(*peer[:2]), _hex_addr(*local[:2])
    try:
        with open(table) as f:
            next(f, None)
            for line in f:
                fields = line.split()
                if len(fields) > 9 and fields[1] == want_local and fields[2] == want_remote:
                    return Peer(uid=int(fields[7]), inode=int(fields[9]))
    except OSError:
        return None
    return None


@dataclass(frozen=True)
class Process:
    pid: int
    exe: str | None


def process_of_inode(inode: int, proc: Path = Path("/proc")) -> Process | None:
    """The process that holds socket `inode` (only processes we may inspect: our own user's)."""
    target = f"socket:[{inode}]"
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            for fd in os.scandir(f"{entry.path}/fd"):
                if os.readlink(fd.path) == target:
                    try:
                        exe = os.readlink(f"{entry.path}/exe")
                    except OSError:
                        exe = None
                    return Process(int(entry.name), exe)
        except OSError:
            continue
    return None
