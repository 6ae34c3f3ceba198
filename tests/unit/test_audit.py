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
