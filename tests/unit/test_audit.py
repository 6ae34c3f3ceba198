"""The audit log (tipd/audit.py): one line per client and profile per flush, none lost when the writer is
stopped in the middle of a flush (tipd stopping while a client's process is still being looked up)."""
from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from tipd import audit as audit_mod
from tipd.audit import Audit
from tipd.server.peer import Peer, Process


async def test_a_flush_cut_short_leaves_its_lines_for_the_final_flush(monkeypatch, caplog):
    walking = threading.Event()
    done = threading.Event()

    def slow_walk(inodes: set[int]) -> dict[int, Process]:
        walking.set()
        done.wait(30)  # the /proc walk of a busy machine, still running when tipd stops
        return {}

    monkeypatch.setattr(audit_mod, "processes_of_inodes", slow_walk)
    caplog.set_level(logging.INFO, logger="tipd.audit")
    a = Audit()
    peer = Peer(uid=1000, inode=42)
    a.record("work", "container", peer)
    writer = asyncio.create_task(a.flush())
    while not walking.is_set():  # the lookup has started in its thread
        await asyncio.sleep(0.01)
    await asyncio.sleep(0)  # the flush is now waiting on the lookup
    writer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writer
    a.record("work", "container", peer)  # one more while stopping
    done.set()
    await a.flush()
    lines = [r.getMessage() for r in caplog.records if "handed out" in r.getMessage()]
    assert lines == [
        "handed out 2 credentials: profile=work endpoint=container client_pid=unknown exe=unknown uid=1000"]


async def test_one_line_per_client_process_however_many_connections_it_used(monkeypatch, caplog):
    """An SDK's connection pool, or a client opening a connection per request, is one client: one line a flush
    with the total, not one line per connection (the fuzz test's 2,000 connections grew the log past its bound)."""
    me = Process(pid=4242, exe="/usr/bin/python3")
    monkeypatch.setattr(audit_mod, "processes_of_inodes",
                        lambda inodes: {i: (me if i < 100 else Process(pid=7, exe="/usr/bin/aws")) for i in inodes})
    caplog.set_level(logging.INFO, logger="tipd.audit")
    a = Audit()
    for inode in range(1, 51):  # 50 connections of one process, 2 requests each
        a.record("work", "container", Peer(uid=1000, inode=inode))
        a.record("work", "container", Peer(uid=1000, inode=inode))
    a.record("work", "container", Peer(uid=1000, inode=100))  # another process
    a.record("work", "container", Peer(uid=1000, inode=101))
    a.record("dev", "container", Peer(uid=1000, inode=1))  # another profile
    await a.flush()
    lines = sorted(r.getMessage() for r in caplog.records if "handed out" in r.getMessage())
    assert lines == [
        "handed out 1 credential: profile=dev endpoint=container client_pid=4242 exe=/usr/bin/python3 uid=1000",
        "handed out 100 credentials: profile=work endpoint=container client_pid=4242 exe=/usr/bin/python3 uid=1000",
        "handed out 2 credentials: profile=work endpoint=container client_pid=7 exe=/usr/bin/aws uid=1000",
    ]
    assert {(c["pid"], c["profile"], c["count"]) for c in a.clients()} == {(4242, "work", 100), (4242, "dev", 1),
                                                                           (7, "work", 2)}
