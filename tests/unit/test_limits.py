"""The log guards and the descriptor limit (tipd/limits.py). The real daemon under a real flood:
tests/acceptance/test_exhaustion.py."""
from __future__ import annotations

import io
import logging
import resource

from tipd import limits


def logger_with(filter_: logging.Filter, name: str) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    log = logging.getLogger(name)
    log.handlers[:] = [handler]
    log.propagate = False
    log.filters[:] = [filter_]
    return log, out


def test_a_bad_request_exception_keeps_its_class_and_loses_its_content():
    log, out = logger_with(limits.RateLimit(redact=True), "test.aiohttp.server")
    try:
        raise ValueError("Invalid header: b'Authorization : s3cr3t-token'")
    except ValueError as e:
        log.exception("Error handling request from %s", "127.0.0.1", exc_info=e)
    text = out.getvalue()
    assert "s3cr3t" not in text and "Traceback" not in text and "127.0.0.1" not in text
    assert "Error handling request from %s (ValueError; request content not logged)" in text


def test_a_repeated_line_is_written_once_per_interval_with_the_count_held_back(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr("tipd.limits.time.monotonic", lambda: now[0])
    log, out = logger_with(limits.RateLimit(every=10), "test.asyncio")
    for _ in range(5000):
        log.error("socket.accept() out of system resource")
        now[0] += 0.001
    assert out.getvalue().count("\n") == 1
    now[0] += 10
    log.error("socket.accept() out of system resource")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "[4999 more like this in the last" in lines[1]
    log.error("another message")  # others are not held back by it
    assert len(out.getvalue().splitlines()) == 3


def test_the_soft_descriptor_limit_is_raised_towards_the_hard_one():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        got = limits.raise_nofile(2048)
        assert got == min(2048, hard) == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        assert limits.raise_nofile(128) == got  # never lowered
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
