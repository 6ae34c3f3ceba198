"""An audit trail of every credential handed out, kept off the hot path: the handler appends a tuple to
a deque; a background task resolves the client process and writes one line per client, profile and second."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from .clock import iso_utc
from .server.peer import Peer, Process, processes_of_inodes

log = logging.getLogger("tipd.audit")
FLUSH_EVERY = 1.0
RECENT = 20


class _Tally:
    """Requests of one client for one profile since the last flush, and when the last one came."""

    __slots__ = ("count", "last")

    def __init__(self, last: float) -> None:
        self.count = 1
        self.last = last


@dataclass
class Client:
    last_seen: float
    profile: str
    endpoint: str
    pid: int | None
    exe: str | None
    uid: int | None
    count: int


class Audit:
    def __init__(self) -> None:
        #: (profile, endpoint, peer, grant) -> its tally: counted as they happen, so a flush costs one
        #: entry per client, not one per request
        self._pending: dict[tuple[str, str, Peer | None, str | None], _Tally] = {}
        #: the client process of each connection (by socket inode), looked up in a worker thread as soon
        #: as the connection is first seen, while the client still holds it; one /proc walk serves every
        #: connection that arrived meanwhile
        self._processes: dict[int, Process | None] = {}
        self._unresolved: set[int] = set()
        self._walk: asyncio.Future[dict[int, Process]] | None = None
        self.recent: dict[tuple[int | None, str | None, str, str], Client] = {}
        self._wake = asyncio.Event()  # the writer sleeps until there is something to write

    def record(self, profile: str, endpoint: str, peer: Peer | None, grant: str | None = None) -> None:
        """Hot path: a couple of dict operations; the process lookup runs in a thread. `grant`: the consumer
        token's grant (`tipctl grant`) that authorised the request, named in the audit line."""
        key = (profile, endpoint, peer, grant)
        entry = self._pending.get(key)
        if entry is not None:
            entry.count += 1
            entry.last = time.time()
            return
        self._pending[key] = _Tally(time.time())
        self._wake.set()
        # a connection's first request since the last flush: name its client process if not done yet
        if peer is not None and peer.inode not in self._processes and peer.inode not in self._unresolved:
            self._unresolved.add(peer.inode)
            if self._walk is None:
                self._start_walk()

    def _start_walk(self) -> None:
        batch, self._unresolved = self._unresolved, set()
        self._walk = asyncio.get_running_loop().run_in_executor(None, processes_of_inodes, batch)
        self._walk.add_done_callback(lambda f: self._walked(batch, f))

    def _walked(self, batch: set[int], fut: asyncio.Future[dict[int, Process]]) -> None:
        found = fut.result() if not fut.cancelled() and fut.exception() is None else {}
        for inode in batch:
            self._processes[inode] = found.get(inode)
        self._walk = None
        if self._unresolved:
            self._start_walk()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(FLUSH_EVERY)  # batch a second's worth into one line per client
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, {}
        try:  # the processes first, the lines after with no await between: a flush cut short logs nothing twice
            procs = [await self._process(peer) for (_, _, peer, _) in batch]
        except asyncio.CancelledError:  # stopping: the batch goes back for the final flush to log
            for key, tally in batch.items():
                if (newer := self._pending.get(key)) is not None:
                    tally.count, tally.last = tally.count + newer.count, newer.last
                self._pending[key] = tally
            raise
        # one line per client process, however many connections it used (an SDK's pool, a tool run per file)
        lines: dict[tuple[str, str, int | None, str | None, int | None, str | None], _Tally] = {}
        for ((profile, endpoint, peer, grant), tally), proc in zip(batch.items(), procs, strict=True):
            pid, exe = (proc.pid, proc.exe) if proc else (None, None)
            line = (profile, endpoint, pid, exe, peer.uid if peer else None, grant)
            if (seen := lines.get(line)) is None:
                lines[line] = tally
            else:
                seen.count, seen.last = seen.count + tally.count, max(seen.last, tally.last)
        for (profile, endpoint, pid, exe, uid, grant), tally in lines.items():
            n, last = tally.count, tally.last
            log.info("handed out %d credential%s: profile=%s endpoint=%s client_pid=%s exe=%s uid=%s%s", n,
                     "" if n == 1 else "s", profile, endpoint, pid if pid is not None else "unknown",
                     exe or "unknown", uid if uid is not None else "unknown",
                     f" grant={grant}" if grant is not None else "")
            c = self.recent.get((pid, exe, profile, endpoint))
            if c is None:
                c = self.recent[(pid, exe, profile, endpoint)] = Client(0, profile, endpoint, pid, exe, uid, 0)
            c.last_seen, c.count = last, c.count + n
        if len(self.recent) > RECENT:
            for k, _ in sorted(self.recent.items(), key=lambda kv: kv[1].last_seen)[:-RECENT]:
                del self.recent[k]
        if len(self._processes) > 4096:
            self._processes.clear()

    async def _process(self, peer: Peer | None) -> Process | None:
        if peer is None:
            return None
        while self._walk is not None and peer.inode not in self._processes:
            await asyncio.wait({self._walk})
        return self._processes.get(peer.inode)

    def clients(self) -> list[dict[str, str | int | None]]:
        return [{"time": iso_utc(c.last_seen), "profile": c.profile, "endpoint": c.endpoint, "pid": c.pid,
                 "exe": c.exe, "uid": c.uid, "count": c.count}
                for c in sorted(self.recent.values(), key=lambda c: -c.last_seen)]
