"""Change notification for status readers (the control API's event stream, hence tipctl status --watch and
the tray): sessions signal when something a reader would see changes; readers wait for a newer version.

A version counter, not a queue per subscriber: a slow reader skips the versions it missed and reads the
current status once, so a burst of changes costs it one wake-up and no memory, however long it lags."""
from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from .errors import TipdError

#: open event streams at most (each is a connection and a waiting task); more are refused with 503
MAX_SUBSCRIBERS = 64

#: a comment line this often on an idle stream: a client that went away is noticed by the failed write,
#: and a client sees a silent (hung) daemon as a read timeout
KEEPALIVE = 15.0
#: after a change, wait this long for the rest of its burst (a refresh touches several stages)
COALESCE = 0.05

#: states from least to most in need of attention; a profile nobody signed in to needs none
SEVERITY = ("signed-out", "fresh", "refreshing", "signing-in", "degraded", "login-required")


def worst_state(states: Iterable[str]) -> str:
    """The state of the profile most in need of attention ("signed-out" when there are none)."""
    rank = {s: i for i, s in enumerate(SEVERITY)}
    return max(states, key=lambda s: rank.get(s, len(SEVERITY)), default=SEVERITY[0])


class TooManySubscribers(TipdError):
    code = "TooManyStreams"
    status = 503


class Changes:
    """The hub: `signal()` from the event loop whenever a status reader would see something new; readers
    `await wait(seen)`. Not thread-safe: signal from the loop's thread only."""

    def __init__(self, max_subscribers: int = MAX_SUBSCRIBERS) -> None:
        self.version = 0
        self.closed = False
        self.subscribers = 0
        self.max_subscribers = max_subscribers
        self._event = asyncio.Event()

    def signal(self) -> None:
        """Cheap and synchronous: bump the version and wake every waiter once."""
        self.version += 1
        event, self._event = self._event, asyncio.Event()
        event.set()

    def close(self) -> None:
        """The daemon is stopping: wake every waiter for good, so open streams end at once."""
        self.closed = True
        self.signal()

    async def wait(self, seen: int, timeout: float | None = None) -> int:
        """The current version as soon as it is newer than `seen` (at once if it already is), or after
        `timeout` seconds whatever it is."""
        if self.version == seen and not self.closed:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), timeout)
        return self.version

    @contextmanager
    def subscribe(self) -> Iterator[Changes]:
        """Count an open stream for as long as it lives; refuse one beyond the bound."""
        if self.subscribers >= self.max_subscribers:
            raise TooManySubscribers(f"too many open status streams ({self.max_subscribers}); close one")
        self.subscribers += 1
        try:
            yield self
        finally:
            self.subscribers -= 1


def sse(event: str, data: Any, event_id: int) -> bytes:
    """One server-sent event (the JSON has no newlines, so it is a single data line)."""
    return f"id: {event_id}\nevent: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def follow(hub: Changes, snapshot: Callable[[], dict[str, Any]], send: Callable[[bytes], Awaitable[Any]], *,
                 keepalive: float = KEEPALIVE, coalesce: float = COALESCE) -> None:
    """Send `snapshot()` as a `status` event now and again after every change that alters its profiles,
    a keep-alive comment when idle, until the hub closes. A failed `send` (the client went away) raises
    out of here; the caller's subscription ends with it."""
    seen = hub.version
    last = None
    while not hub.closed:
        data = snapshot()
        if data["profiles"] != last:  # a change a reader cannot see (or already saw) is no event
            last = data["profiles"]
            await send(sse("status", data, seen))
        version = await hub.wait(seen, keepalive)
        if hub.closed:
            return
        if version == seen:
            await send(b": keep-alive\n\n")
            continue
        await asyncio.sleep(coalesce)
        seen = hub.version
