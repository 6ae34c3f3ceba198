"""A background task of the daemon that dies is logged and shows in the status (it used to stop silently):
the real Daemon, started in process on a free port with a private state directory; a profile's schedule is
made to fail (a stand-in for a bug) and the audit writer is made to fail."""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.net import free_port
from tests.support.profiles import PROFILE
from tipd.cli.status import needs_attention, render
from tipd.config import parse_config
from tipd.daemon import Daemon
from tipd.paths import Paths
from tipd.session import ProfileSession

#: what the failing code's exception says: it must reach neither the log nor the status
SECRET = "refresh-token-s3cr3t-value"


async def status(daemon: Daemon) -> dict[str, Any]:
    conn = aiohttp.UnixConnector(path=str(daemon.paths.control_socket))
    async with aiohttp.ClientSession(connector=conn) as http, http.get("http://tipd/v1/status") as r:
        assert r.status == 200
        body: dict[str, Any] = await r.json()
        return body


async def until(check: Any, timeout: float = 20.0) -> None:
    """Wait for a condition (the failure is recorded by a done-callback, a loop iteration or so later)."""
    async def poll() -> None:
        while not check():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


@pytest.fixture
async def daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    config = parse_config({"server": {"port": free_port()}, "store": {"backend": "file"},
                           "profiles": {"work": PROFILE}}, "test")
    short = Path(tmp_path)  # a unix socket path must be short: pytest's tmp_path is
    paths = Paths(config_dir=short / "c", state_dir=short / "s", runtime_dir=short / "r")
    d = Daemon(config, paths)
    yield d
    await d.shutdown()


async def test_a_schedule_that_dies_is_logged_and_shows_in_the_status(daemon: Daemon, monkeypatch, caplog):
    async def broken_run(self: ProfileSession) -> None:
        await asyncio.sleep(0)
        raise RuntimeError(f"a bug holding {SECRET}")

    monkeypatch.setattr(ProfileSession, "run", broken_run)
    caplog.set_level(logging.ERROR, logger="tipd")
    await daemon.startup()
    await until(lambda: daemon.tasks.failures)

    logged = [r.getMessage() for r in caplog.records if "schedule-work" in r.getMessage()]
    assert len(logged) == 1 and "RuntimeError" in logged[0] and "broken_run" in logged[0], logged
    st = await status(daemon)
    work = st["profiles"][0]
    assert work["state"] == "degraded" and st["state"] == "degraded"
    assert "schedule-work" in work["last_error"] and "RuntimeError" in work["last_error"]
    assert [f["task"] for f in st["failed_tasks"]] == ["schedule-work"]
    shown = render(st)
    assert "the background task schedule-work stopped (RuntimeError" in shown and needs_attention(st)
    assert SECRET not in caplog.text and SECRET not in str(st)


async def test_tipds_own_task_that_dies_shows_too(daemon: Daemon, caplog):
    async def broken() -> None:
        raise KeyError(SECRET)

    daemon.broker.audit.run = broken  # type: ignore[method-assign]  # the task made to die
    caplog.set_level(logging.ERROR, logger="tipd")
    await daemon.startup()
    await until(lambda: daemon.tasks.failures)

    assert any("audit" in r.getMessage() and "KeyError" in r.getMessage() for r in caplog.records)
    st = await status(daemon)
    assert st["state"] == "degraded" and [f["task"] for f in st["failed_tasks"]] == ["audit"]
    assert "Background tasks that stopped:" in render(st) and needs_attention(st)
    assert SECRET not in caplog.text and SECRET not in str(st)


async def test_a_task_cancelled_at_shutdown_is_no_failure(daemon: Daemon, caplog):
    caplog.set_level(logging.ERROR, logger="tipd")
    await daemon.startup()
    assert (await status(daemon))["failed_tasks"] == []
    await daemon.shutdown()
    assert daemon.tasks.failures == [] and "stopped" not in caplog.text
