"""Bounds on what the outside world can make tipd hold: file descriptors and log lines (standard library
only). The config and token files bound their own reads (tipd/config_file.py, tipd/store.py)."""
from __future__ import annotations

import logging
import time

#: the soft RLIMIT_NOFILE tipd raises itself to (when the hard limit allows): far above what the
#: connection caps (tipd/server/conns.py) can use, so an accept() never fails for want of a descriptor
WANT_NOFILE = 8192
#: a repeated log line (the same logger and message) is written at most once per this many seconds
LOG_EVERY = 10.0
#: loggers whose records may quote a client's request (aiohttp puts the raw bad line in its exceptions)
REQUEST_LOGGERS = ("aiohttp.server", "aiohttp.web", "aiohttp.access", "aiohttp.internal")


def raise_nofile(want: int = WANT_NOFILE) -> int:
    """Raise the soft file-descriptor limit towards `want` (never above the hard limit, never lower than
    it is); the limit in force afterwards. The common default soft limit, 1024, lets one local user holding
    idle connections starve accept()."""
    try:
        import resource
    except ImportError:  # not a POSIX system
        return 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def nofile_limit() -> int:
    try:
        import resource
    except ImportError:
        return 1024
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return 1 << 20 if soft == resource.RLIM_INFINITY else soft


class RateLimit(logging.Filter):
    """Lets the first record of each (logger, message) through, then at most one per `every` seconds,
    which says how many were held back. With `redact`, a record keeps only its message template and the
    class of its exception: no arguments, no exception text, no traceback (they may quote a request)."""

    def __init__(self, every: float = LOG_EVERY, *, redact: bool = False) -> None:
        super().__init__()
        self.every = every
        self.redact = redact
        self._last: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = time.monotonic()
        last, held = self._last.get(key, (-1e18, 0))
        if now - last < self.every:
            self._last[key] = (last, held + 1)
            return False
        if len(self._last) >= 1024:  # bounded memory, whatever the messages
            self._last.clear()
        self._last[key] = (now, 0)
        if self.redact:
            exc = record.exc_info[1] if record.exc_info else None
            msg = str(record.msg)  # with no arguments it is not %-formatted
            if exc is not None:
                msg += f" ({type(exc).__name__}; request content not logged)"
            record.msg, record.args = msg, ()
            record.exc_info = record.exc_text = record.stack_info = None
        if held:
            record.msg = f"{record.msg} [{held} more like this in the last {now - last:.0f} s not logged]"
        return True


def guard_logs() -> None:
    """No request content reaches a log line, and no client can flood the log: aiohttp's loggers are
    redacted and rate-limited, asyncio's (accept errors when descriptors run out) rate-limited."""
    for name in REQUEST_LOGGERS:
        logging.getLogger(name).addFilter(RateLimit(redact=True))
    logging.getLogger("asyncio").addFilter(RateLimit())


def harden_process() -> int:
    """What `tipd` does first thing: log guards on, the descriptor limit raised; returns that limit."""
    guard_logs()
    return raise_nofile()
