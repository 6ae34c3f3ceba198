"""The harness's free ports: a port picked for a server that binds it later (tipd, the IdP, a registered redirect
port bound by tipctl minutes on) must not be taken by the kernel for anybody's outgoing connection meanwhile."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.support.net import free_port

RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


@pytest.mark.skipif(not RANGE_FILE.exists(), reason="Linux publishes its ephemeral port range in /proc")
def test_free_ports_lie_below_the_kernels_ephemeral_range_and_are_not_handed_out_twice() -> None:
    low = int(RANGE_FILE.read_text().split()[0])
    ports = [free_port() for _ in range(200)]
    assert all(1024 <= p < low for p in ports), [p for p in ports if not 1024 <= p < low]
    assert len(set(ports)) == len(ports)


def test_a_port_someone_holds_is_skipped() -> None:
    first = free_port()
    # hold the next few ports the picker would hand out; it must step over them
    held = []
    try:
        for port in range(first + 1, first + 4):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            held.append(s)
        taken = {s.getsockname()[1] for s in held}
        assert taken, "could not hold any port next to the picked one"
        picked = free_port()
        assert picked not in taken
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", picked))
    finally:
        for s in held:
            s.close()
