"""The change hub, the event stream it feeds, and the signals a session sends it (virtual time, fake upstreams;
the real daemon's stream is in tests/acceptance/test_status_stream.py)."""
from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.support.profiles import PROFILE
from tests.support.session_rig import HOUR, Rig
from tipd.broker import Broker
from tipd.changes import Changes, TooManySubscribers, follow, worst_state
from tipd.config import parse_config
from tipd.server import control
from tipd.session import State


# -- the hub ---------------------------------------------------------------------------------
async def test_a_waiter_wakes_on_a_signal_and_a_newer_version_returns_at_once():
    hub = Changes()
    seen = hub.version
    waiter = asyncio.create_task(hub.wait(seen))
    await asyncio.sleep(0)
    assert not waiter.done()
    hub.signal()
    assert await asyncio.wait_for(waiter, 1) == seen + 1
    assert await asyncio.wait_for(hub.wait(seen), 1) == seen + 1  # already newer: no waiting


async def test_wait_times_out_with_the_same_version():
    hub = Changes()
    assert await hub.wait(hub.version, timeout=0.01) == 0


async def test_a_burst_reaches_a_slow_subscriber_as_one_wake_up_and_costs_no_memory():
    hub = Changes()
    seen = hub.version
    for _ in range(10_000):  # nobody is reading meanwhile
        hub.signal()
    assert await hub.wait(seen) == seen + 10_000  # one wake-up, straight to the latest
    waiting = asyncio.ensure_future(hub.wait(hub.version))  # nothing queued up: the next wait blocks again
    for _ in range(20):
        await asyncio.sleep(0)  # every turn a queued-up wake-up would need to finish it
    assert not waiting.done()
    hub.signal()
    assert await asyncio.wait_for(waiting, 60) == seen + 10_001


async def test_subscribers_are_bounded_and_released():
    hub = Changes(max_subscribers=2)
    with hub.subscribe(), hub.subscribe():
        assert hub.subscribers == 2
        with pytest.raises(TooManySubscribers) as e, hub.subscribe():
            pass
        assert e.value.status == 503 and "too many open status streams" in e.value.message
    assert hub.subscribers == 0
    with hub.subscribe():  # room again
        assert hub.subscribers == 1


async def test_close_wakes_every_waiter_for_good():
    hub = Changes()
    waiters = [asyncio.create_task(hub.wait(0)) for _ in range(3)]
    await asyncio.sleep(0)
    hub.close()
    assert all(v == 1 for v in await asyncio.wait_for(asyncio.gather(*waiters), 1))
    assert await asyncio.wait_for(hub.wait(hub.version, timeout=10), 1) == hub.version  # no blocking after close


def test_worst_state_is_the_one_most_in_need_of_attention():
    assert worst_state([]) == "signed-out"
    assert worst_state(["signed-out", "fresh"]) == "fresh"  # an unused profile needs nothing
    assert worst_state(["fresh", "refreshing"]) == "refreshing"
    assert worst_state(["fresh", "degraded", "signing-in"]) == "degraded"
    assert worst_state(["login-required", "degraded", "fresh"]) == "login-required"
    assert {str(s) for s in State} <= {"signed-out", "fresh", "refreshing", "signing-in", "degraded",
                                       "login-required"}


# -- the stream ------------------------------------------------------------------------------
def parse(chunks: list[bytes]) -> list[tuple[str, dict[str, Any] | None, int | None]]:
    """(event, data, id) per event, ("keep-alive", None, None) per comment."""
    out: list[tuple[str, dict[str, Any] | None, int | None]] = []
    for raw in b"".join(chunks).decode().split("\n\n"):
        if not raw:
            continue
        if raw.startswith(":"):
            out.append(("keep-alive", None, None))
            continue
        fields = dict(line.split(": ", 1) for line in raw.splitlines())
        out.append((fields["event"], json.loads(fields["data"]), int(fields["id"])))
    return out


class Feed:
    def __init__(self, hub):
        self.hub = hub
        self.state = "signed-out"
        self.sent: list[bytes] = []
        self.snapshots = 0

    def snapshot(self):
        self.snapshots += 1
        return {"state": self.state, "profiles": [{"profile": "work", "state": self.state}]}

    async def send(self, data):
        self.sent.append(data)

    async def until(self, n):
        while len(parse(self.sent)) < n:
            await asyncio.sleep(0.001)
        return parse(self.sent)


async def test_follow_sends_the_status_then_one_event_per_visible_change_with_rising_ids():
    hub = Changes()
    feed = Feed(hub)
    task = asyncio.create_task(follow(hub, feed.snapshot, feed.send, keepalive=30, coalesce=0.01))
    events = await asyncio.wait_for(feed.until(1), 2)
    assert events[0][:2] == ("status", {"state": "signed-out", "profiles": [{"profile": "work",
                                                                            "state": "signed-out"}]})
    feed.state = "signing-in"
    for _ in range(50):  # a burst: one event
        hub.signal()
    events = await asyncio.wait_for(feed.until(2), 2)
    hub.signal()  # a change nobody can see: no event
    feed.state = "fresh"
    hub.signal()
    events = await asyncio.wait_for(feed.until(3), 2)
    hub.close()
    await asyncio.wait_for(task, 2)
    assert [e[1]["state"] for e in events] == ["signed-out", "signing-in", "fresh"]
    ids = [e[2] for e in events]
    assert ids == sorted(set(ids)) and ids[0] == 0
    assert feed.snapshots < 10  # the burst was read once, not fifty times


async def test_follow_keeps_an_idle_stream_alive_and_a_gone_client_ends_it():
    hub = Changes()
    feed = Feed(hub)
    task = asyncio.create_task(follow(hub, feed.snapshot, feed.send, keepalive=0.01))
    events = await asyncio.wait_for(feed.until(3), 2)
    assert events[0][0] == "status" and events[1][0] == events[2][0] == "keep-alive"

    async def gone(data):
        raise ConnectionResetError("Cannot write to closing transport")

    task.cancel()
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(follow(hub, feed.snapshot, gone, keepalive=0.01), 2)


# -- the session's signals -------------------------------------------------------------------
class Recorder:
    """Counts signals and notes the session's state at each."""

    def __init__(self, session):
        self.session = session
        self.states: list[str] = []
        session.on_change = self

    def __call__(self):
        self.states.append(str(self.session.state))


async def test_login_refresh_and_logout_signal_each_state_they_pass_through():
    rig = Rig()
    rec = Recorder(rig.session)
    await rig.start()
    assert rec.states[0] == "signing-in" and rec.states[-1] == "fresh"
    n = len(rec.states)
    await rig.run(40 * 60)  # the rotation 30 minutes before expiry
    assert rec.states[n:].count("refreshing") >= 1 and rec.states[-1] == "fresh"
    await rig.session.logout()
    assert rec.states[-1] == "signed-out"
    await rig.stop()


async def test_a_refused_refresh_signals_login_required():
    rig = Rig()
    rec = Recorder(rig.session)
    await rig.start()
    rig.idp.revoked = True
    await rig.run(HOUR)
    assert rec.states[-1] == "login-required"
    await rig.stop()


async def test_the_scheduler_tick_signals_a_change_only_time_made():
    rig = Rig()
    rec = Recorder(rig.session)
    await rig.start(fetch_every=10_000)
    await rig.run(600)
    n = len(rec.states)
    rig.clock.jump(3 * HOUR)  # the laptop slept past every expiry: no refresh, no request, no failure yet
    await rig.run(5.5)  # one scheduler tick
    # the tick told readers the credentials went stale before it started renewing them
    assert rec.states[n:n + 2] == ["degraded", "refreshing"] and rec.states[-1] == "fresh"
    await rig.stop()


# -- the control routes, in process ----------------------------------------------------------
class Served:
    def __init__(self, broker):
        self.broker = broker
        self.dir = tempfile.mkdtemp(prefix="tipd-ctl-")
        self.path = str(Path(self.dir) / "control.sock")

    async def __aenter__(self):
        self.runner = web.AppRunner(control.make_app(self.broker), shutdown_timeout=3.0)
        await self.runner.setup()
        await web.UnixSite(self.runner, self.path).start()
        self.http = aiohttp.ClientSession(connector=aiohttp.UnixConnector(self.path))
        return self

    async def __aexit__(self, *exc):
        await self.http.close()
        await self.runner.cleanup()


async def read_event(resp) -> tuple[str, dict[str, Any]]:
    fields: dict[str, str] = {}
    while True:
        line = (await resp.content.readline()).decode().rstrip("\n")
        if not line:
            if "data" in fields:
                return fields["event"], json.loads(fields["data"])
            continue
        if not line.startswith(":"):
            k, _, v = line.partition(": ")
            fields[k] = v


async def test_the_event_route_streams_a_login_and_the_summary_is_brief():
    rig = Rig()
    broker = Broker(parse_config({"profiles": {"work": PROFILE}}, "test"), sessions={"work": rig.session})
    rig.session.on_change = broker.changes.signal
    async with Served(broker) as srv:
        summary = await (await srv.http.get("http://tipd/v1/summary")).json()
        assert summary["state"] == "signed-out"
        assert list(summary["profiles"][0]) == list(control.SUMMARY_KEYS)
        assert "recent_clients" not in summary and "stages" not in summary["profiles"][0]

        resp = await srv.http.get("http://tipd/v1/events?brief=1")
        assert resp.status == 200 and resp.headers["Content-Type"] == "text/event-stream"
        event, data = await asyncio.wait_for(read_event(resp), 5)
        assert event == "status" and data["profiles"][0]["state"] == "signed-out"
        assert broker.changes.subscribers == 1
        await rig.start()
        while data["state"] != "fresh":
            event, data = await asyncio.wait_for(read_event(resp), 5)
        assert data["profiles"][0]["user"] == "alice@example.com"
        # brief: no stages, no audit
        assert set(data) == {"version", "pid", "state", "default_profile", "profiles", "accounts"}

        full = await srv.http.get("http://tipd/v1/events")
        event, data = await asyncio.wait_for(read_event(full), 5)
        assert data["state"] == "fresh" and "stages" in data["profiles"][0] and "recent_clients" in data

        broker.changes.max_subscribers = 2
        refused = await srv.http.get("http://tipd/v1/events")
        assert refused.status == 503 and (await refused.json())["code"] == "TooManyStreams"

        broker.changes.close()  # the daemon stops: both streams end at once
        assert await asyncio.wait_for(resp.content.read(), 2) == b""
        assert await asyncio.wait_for(full.content.read(), 2) == b""
        resp.close()
        full.close()
    await rig.stop()
    assert broker.changes.subscribers == 0
