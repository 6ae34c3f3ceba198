"""A stand-in for a container: a network namespace of the test's own (`ip netns`), with only `lo` up, sharing the
file system (so a unix socket is reachable by path, as a bind mount makes it in a container). `bridge` makes one
host loopback port (the AWS fake's) reachable on the namespace's loopback, so SDKs inside can call STS.
Needs root (the tests run as root; they skip otherwise)."""
from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def available() -> bool:
    return os.geteuid() == 0 and any(Path(p).exists() for p in ("/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip"))


class Netns:
    def __init__(self) -> None:
        self.name = f"tipd-{secrets.token_hex(4)}"
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True)
        self._closers: list[socket.socket] = []

    def cmd(self, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *args]

    def run(self, *args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.cmd(*args), env=env, capture_output=True, text=True, timeout=timeout)

    @contextlib.contextmanager
    def _inside(self) -> Iterator[None]:
        """This thread in the namespace for the block (setns is per thread)."""
        here = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        there = os.open(f"/var/run/netns/{self.name}", os.O_RDONLY)
        try:
            if _libc.setns(there, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
            try:
                yield
            finally:
                if _libc.setns(here, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns back")
        finally:
            os.close(here)
            os.close(there)

    def bridge(self, port: int) -> None:
        """127.0.0.1:port inside the namespace forwards to 127.0.0.1:port on the host."""
        result: list[socket.socket] = []

        def make() -> None:
            with self._inside():
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.bind(("127.0.0.1", port))
                s.listen(64)
                result.append(s)

        t = threading.Thread(target=make)
        t.start()
        t.join()
        listener = result[0]
        self._closers.append(listener)

        def pump(a: socket.socket, b: socket.socket) -> None:
            with contextlib.suppress(OSError):
                while data := a.recv(65536):
                    b.sendall(data)
            with contextlib.suppress(OSError):
                b.shutdown(socket.SHUT_WR)

        def accept() -> None:
            while True:
                try:
                    inner, _ = listener.accept()
                except OSError:
                    return
                outer = socket.create_connection(("127.0.0.1", port))
                for a, b in ((inner, outer), (outer, inner)):
                    threading.Thread(target=pump, args=(a, b), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()

    def close(self) -> None:
        for s in self._closers:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        subprocess.run(["ip", "netns", "del", self.name], check=False)
