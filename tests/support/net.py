"""Loopback helpers shared by every harness: free ports and readiness waits."""
from __future__ import annotations

import itertools
import random
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

_lock = threading.Lock()
_ports: Iterator[int] | None = None


def _unassigned_range() -> range:
    """Ports below the kernel's ephemeral range (Linux: /proc/sys/net/ipv4/ip_local_port_range, 32768-60999 by
    default; BSD and macOS: 49152-65535). The kernel hands out ephemeral ports for bind(0) and for every
    outgoing connection's source port, so a port picked there may be taken by any process's connection before
    the server it was picked for binds it: that race failed a CI run (the IdP matrix's fixed redirect port, bound
    by tipctl minutes after it was picked, while a dozen personas were connecting). Below the range only an
    explicit bind takes a port, and explicit binds in the test stack come from here."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 49152
    return range(max(1024, low - 16384), low)


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free and that nothing but another free_port() caller will take: picked
    below the ephemeral range, each port handed out once per process (from a random start, so two test
    processes rarely walk the same ports), and skipped when something holds it now."""
    global _ports
    with _lock:
        if _ports is None:
            span = _unassigned_range()
            start = random.randrange(len(span))
            _ports = itertools.cycle([*span[start:], *span[:start]])
        for _ in range(4096):
            port = next(_ports)
            if _bindable(port):
                return port
    raise RuntimeError("no free TCP port on 127.0.0.1 below the ephemeral range")


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 20.0) -> None:
    """Block until something accepts connections on host:port (polling a connect, not sleeping blind)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s") from None
            time.sleep(0.02)
