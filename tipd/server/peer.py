"""Who is at the other end of a connection: for loopback TCP (Linux), the client socket's owner uid and inode
from /proc/net/tcp, and the process holding that inode (other platforms cannot tell: None); for a unix socket,
the peer's uid (SO_PEERCRED / getpeereid)."""
from __future__ import annotations

import os
import socket
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web

PROC_NET_TCP = Path("/proc/net/tcp")
SUPPORTED = sys.platform.startswith("linux") and PROC_NET_TCP.exists()

# netlink sock_diag (linux/sock_diag.h, linux/inet_diag.h): ask the kernel about one exact socket
NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 1
NLMSG_ERROR = 2
INET_DIAG_NOCOOKIE = 0xFFFFFFFF


@dataclass(frozen=True, eq=False)
class Peer:
    """One per connection (cached by the guard), so identity is equality and hashing is free."""

    uid: int
    inode: int


def _hex_addr(ip: str, port: int) -> str:
    return f"{socket.inet_aton(ip)[::-1].hex().upper()}:{port:04X}"


def tcp_peer(peer: tuple[str, int], local: tuple[str, int]) -> Peer | None:
    """The owner of the client socket whose local address is `peer` and remote address is `local`:
    one netlink query for that exact socket (about 10 us), else a scan of /proc/net/tcp."""
    try:
        return netlink_peer(peer, local)
    except OSError:
        return proc_net_tcp_peer(peer, local)


def netlink_peer(peer: tuple[str, int], local: tuple[str, int]) -> Peer | None:
    src, dst = socket.inet_aton(peer[0]) + bytes(12), socket.inet_aton(local[0]) + bytes(12)
    req = (struct.pack("=BBBBI", socket.AF_INET, socket.IPPROTO_TCP, 0, 0, 0xFFFFFFFF)
           + struct.pack("!HH", peer[1], local[1]) + src + dst
           + struct.pack("=III", 0, INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE))
    msg = struct.pack("=IHHII", 16 + len(req), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, 1, 0) + req
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG) as nl:
        nl.settimeout(1.0)
        nl.send(msg)
        data = nl.recv(8192)
    length, kind = struct.unpack_from("=IH", data)
    if kind == NLMSG_ERROR or length < 88:
        return None  # no such socket (it closed), or an answer we do not understand
    uid, inode = struct.unpack_from("=II", data, 16 + 4 + 48 + 12)
    return Peer(uid=uid, inode=inode)


def proc_net_tcp_peer(peer: tuple[str, int], local: tuple[str, int], table: Path = PROC_NET_TCP) -> Peer | None:
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


def processes_of_inodes(inodes: set[int], proc: Path = Path("/proc")) -> dict[int, Process]:
    """The processes holding these socket inodes, found in one walk of /proc (only processes we may
    inspect: our own user's). A burst of new connections costs one walk, not one each."""
    targets = {f"socket:[{i}]": i for i in inodes}
    found: dict[int, Process] = {}
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            for fd in os.scandir(f"{entry.path}/fd"):
                inode = targets.get(os.readlink(fd.path))
                if inode is not None and inode not in found:
                    try:
                        exe = os.readlink(f"{entry.path}/exe")
                    except OSError:
                        exe = None
                    found[inode] = Process(int(entry.name), exe)
        except OSError:
            continue
        if len(found) == len(targets):
            break
    return found


def peer_uid(request: web.Request) -> int | None:
    """The uid of the process at the other end of a unix socket (SO_PEERCRED / getpeereid)."""
    sock: socket.socket | None = request.transport.get_extra_info("socket") if request.transport else None
    if sock is None:
        return None
    if hasattr(socket, "SO_PEERCRED"):
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        uid: int = struct.unpack("3i", creds)[1]
        return uid
    try:  # macOS / BSD
        # not in typeshed's os for Linux, where mypy checks
        return os.getpeereid(sock.fileno())  # type: ignore[attr-defined,no-any-return]
    except (AttributeError, OSError):
        return None
