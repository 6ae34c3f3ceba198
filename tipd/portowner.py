"""Who listens on a loopback TCP port (Linux: /proc/net/tcp{,6}), for `tipctl status` to warn when the
credential port is held by another user: SDKs would send that user the endpoint token. Standard library
only (a quick command imports it)."""
from __future__ import annotations

from pathlib import Path

LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's `st` column
PROC_NET = Path("/proc/net")


def listener_uids(port: int, proc_net: Path = PROC_NET) -> set[int]:
    """The uids of the sockets that take connections to 127.0.0.1:`port` (listening on a loopback or the
    wildcard address, IPv4 or IPv6). Empty when none does or /proc cannot say (not Linux)."""
    uids: set[int] = set()
    for name, wildcard, loopback in (("tcp", "00000000", "7F"), ("tcp6", "0" * 32, None)):
        try:
            lines = (proc_net / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) < 8 or f[3] != LISTEN:
                continue
            address, _, hexport = f[1].partition(":")
            if int(hexport, 16) != port:
                continue
            if name == "tcp":  # the address is a little-endian hex word: 127.x.y.z ends in 7F
                local = address == wildcard or address.endswith(loopback or "")
            else:  # :: or ::1, or an IPv4-mapped 127.x (::ffff:127.x)
                local = (address == wildcard or address == "0" * 24 + "01000000"
                         or (address[:24] == "0" * 16 + "FFFF0000" and address[30:32] == "7F"))
            if local:
                uids.add(int(f[7]))
    return uids
