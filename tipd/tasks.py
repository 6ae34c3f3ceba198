"""The daemon's background tasks (each profile's schedule and grant cache, the audit writer), started in one
place so none can end unnoticed: a task that stops with an exception is logged (its class and a sentence
that holds no secret) and kept for `tipctl status` until its profile is restarted or tipd stops."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .clock import iso_utc
from .errors import TipdError

log = logging.getLogger("tipd")

#: failures kept for the status, at most (the oldest go first)
MAX_FAILURES = 32


@dataclass(frozen=True)
class TaskFailure:
    task: str
    #: the profile whose task it was (None: the daemon's own, such as the audit writer)
    profile: str | None
    error: str  # the exception's class
    message: str
    at: float

    def sentence(self) -> str:
        return f"the background task {self.task} stopped ({self.error}: {self.message}); restart tipd to start it again"

    def to_json(self) -> dict[str, str | None]:
        return {"task": self.task, "profile": self.profile, "error": self.error, "message": self.message,
                "at": iso_utc(self.at), "detail": self.sentence()}


def describe(e: BaseException) -> str:
    """What went wrong, in words that cannot hold a secret: a TipdError's message is written for users (and
    never holds one); for anything else, where it was raised, not its text (a library's exception may quote a
    token or a request body)."""
    if isinstance(e, TipdError):
        return e.message
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    frames = traceback.extract_tb(e.__traceback__)
    if not frames:
        return "no detail"
    last = frames[-1]
    return f"raised in {last.name} ({Path(last.filename).name}:{last.lineno}); details withheld, they may hold secrets"


class Tasks:
    """Starts named tasks, keeps them referenced, and records the ones that die."""

    def __init__(self, now: Callable[[], float], on_failure: Callable[[], None] | None = None) -> None:
        self._now = now
        #: told when a task has stopped with an exception (the status changed)
        self.on_failure = on_failure
        self._tasks: dict[asyncio.Task[None], str | None] = {}
        self.failures: list[TaskFailure] = []

    def spawn(self, coro: Coroutine[Any, Any, None], name: str, profile: str | None = None) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks[task] = profile
        task.add_done_callback(self._ended)
        return task

    def _ended(self, task: asyncio.Task[None]) -> None:
        profile = self._tasks.pop(task, None)
        if task.cancelled():
            return
        e = task.exception()
        if e is None:
            return
        failure = TaskFailure(task.get_name(), profile, type(e).__name__, describe(e), self._now())
        sentence = failure.sentence()
        log.error("%s", sentence[0].upper() + sentence[1:])
        self.failures = [*self.failures[-(MAX_FAILURES - 1):], failure]
        if self.on_failure is not None:
            self.on_failure()

    def of(self, profile: str | None) -> list[asyncio.Task[None]]:
        return [t for t, p in self._tasks.items() if p == profile]

    def failed(self, profile: str) -> TaskFailure | None:
        return next((f for f in reversed(self.failures) if f.profile == profile), None)

    async def stop(self, profile: str | None = None, *, everything: bool = False) -> None:
        """Cancel a profile's tasks (or every task) and wait until each has ended; forget their failures."""
        tasks = list(self._tasks) if everything else self.of(profile)
        if not everything:
            self.failures = [f for f in self.failures if f.profile != profile]
        await cancel(tasks)


async def cancel(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel the tasks and wait until each has ended (whatever it ended with: it is going away)."""
    for t in tasks:
        t.cancel()
    for t in tasks:
        with contextlib.suppress(BaseException):
            await t
