"""Status for people and programs, end to end: the real tipd's change stream (read with curl), the brief
status, `tipctl status --watch` and the table; the real IdP, moto and the fake behind them."""
from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
import time

import pytest

from tests.support.stack import APP_ARN, BIN, Tipd, tipctl, wait_for

pytestmark = pytest.mark.acceptance
DEADLINE = 30.0


class Lines:
    """A process's stdout, line by line, read in a thread so a test can wait for a line with a deadline."""

    def __init__(self, args, env):
        self.args = list(args)
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.q: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.q.put(line.rstrip("\n"))
        self.q.put(None)

    def next(self, timeout=DEADLINE):
        try:
            return self.q.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no output from {self.args[:3]} within {timeout} s") from None

    def until(self, predicate, timeout=DEADLINE, what="a line"):
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while True:
            line = self.next(max(0.01, deadline - time.monotonic()))
            if line is None:
                raise AssertionError(f"the output ended before {what}; it was: {seen}")
            seen.append(line)
            if predicate(line):
                return line, seen

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class Stream(Lines):
    """`curl -N` on the control socket's event stream; `event()` returns (name, id, data) per event."""

    def __init__(self, home, path="/v1/events"):
        super().__init__(["curl", "-sS", "-N", "--unix-socket", str(home.socket), f"http://tipd{path}"], home.env)

    def event(self, timeout=DEADLINE):
        fields: dict[str, str] = {}
        deadline = time.monotonic() + timeout
        while True:
            line = self.next(max(0.01, deadline - time.monotonic()))
            if line is None:
                return None
            if line == "" and "data" in fields:
                return fields["event"], int(fields["id"]), json.loads(fields["data"])
            if line and not line.startswith(":"):
                k, _, v = line.partition(": ")
                fields[k] = v

    def event_where(self, predicate, timeout=DEADLINE):
        deadline = time.monotonic() + timeout
        got: list[object] = []
        while True:
            ev = self.event(max(0.01, deadline - time.monotonic()))
            assert ev is not None, f"the stream ended; events so far: {got}"
            got.append(ev)
            if predicate(ev[2]):
                return ev, got


def work(status):
    return next(p for p in status["profiles"] if p["profile"] == "work")


def test_the_stream_sends_the_status_then_each_sign_in_and_sign_out(home, tipd):
    s = Stream(home)
    try:
        name, first_id, data = s.event()
        assert name == "status" and work(data)["state"] == "signed-out" and data["state"] == "signed-out"
        assert "stages" in work(data) and "recent_clients" in data  # the full status

        tipctl(home, "login")
        (_, login_id, data), seen = s.event_where(lambda d: work(d)["state"] == "fresh")
        assert work(data)["user"] == "alice@example.com" and work(data)["credentials_expire"]
        # a status stream may coalesce a transient state away (a loaded machine can finish the sign-in
        # within one burst): whatever came before "fresh" was the sign-in on its way, nothing else
        assert {work(d)["state"] for _, _, d in seen[:-1]} <= {"signed-out", "signing-in"}

        tipctl(home, "logout")
        (_, logout_id, data), _ = s.event_where(lambda d: work(d)["state"] == "signed-out")
        assert work(data)["user"] is None
        assert first_id < login_id < logout_id  # ids only ever rise
    finally:
        s.stop()


def test_the_brief_status_has_states_users_and_expiry_only(home, tipd):
    from tipd.cli.control import ControlClient

    ctl = ControlClient(home.socket, timeout=5)
    before = ctl.request("GET", "/v1/summary")
    assert before["state"] == "signed-out" and before["pid"] == tipd.proc.pid
    assert before["profiles"] == [{"profile": "work", "state": "signed-out", "user": None, "credentials_expire": None,
                                   "next_refresh": None, "last_error": None}]
    tipctl(home, "login")
    after = ctl.request("GET", "/v1/summary")
    assert after["state"] == "fresh"
    assert set(after) == {"version", "pid", "state", "default_profile", "profiles", "accounts"}
    p = after["profiles"][0]
    assert p["user"] == "alice@example.com" and p["credentials_expire"] and p["next_refresh"]
    # the brief stream sends the same shape
    s = Stream(home, "/v1/events?brief=1")
    try:
        _, _, data = s.event()
        assert data == after
    finally:
        s.stop()


def test_watch_json_prints_a_line_per_change_and_ctrl_c_exits_cleanly(home, tipd):
    w = Lines([str(BIN / "tipctl"), "status", "--watch", "--json"], home.env)
    try:
        first = json.loads(w.next())
        assert first["running"] is True and work(first)["state"] == "signed-out"
        tipctl(home, "login")
        line, _ = w.until(lambda ln: work(json.loads(ln))["state"] == "fresh", what="the fresh state")
        assert work(json.loads(line))["user"] == "alice@example.com"
        assert w.stop(signal.SIGINT) == 0
        assert w.proc.stderr is not None
        err = w.proc.stderr.read()
        assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    finally:
        w.stop()


def test_watch_rides_out_a_daemon_restart(home, tipd):
    w = Lines([str(BIN / "tipctl"), "status", "--watch", "--json"], home.env)
    try:
        first = json.loads(w.next())
        assert tipd.stop() == 0
        gone = json.loads(w.next())
        assert gone["running"] is False and "reconnecting" in gone["message"]
        again = Tipd(home).start()
        try:
            back, _ = w.until(lambda ln: json.loads(ln)["running"], what="the restarted daemon's status")
            assert json.loads(back)["pid"] == again.proc.pid != first["pid"]
        finally:
            assert again.stop() == 0
    finally:
        assert w.stop(signal.SIGINT) == 0


def test_watch_as_text_appends_a_table_per_change(home, tipd):
    w = Lines([str(BIN / "tipctl"), "status", "--watch"], home.env)
    try:
        w.until(lambda ln: ln.startswith("work") and "signed-out" in ln, what="the first table")
        tipctl(home, "login")
        row, _ = w.until(lambda ln: ln.startswith("work") and " fresh " in ln, what="the fresh row")
        assert "alice@example.com" in row
    finally:
        assert w.stop(signal.SIGINT) == 0


def test_watch_in_a_terminal_redraws_in_place(home, tipd):
    import os
    import pty
    import select

    from tipd.cli.status import CLEAR

    master, slave = pty.openpty()
    proc = subprocess.Popen([str(BIN / "tipctl"), "status", "--watch"], env=home.env, stdin=slave, stdout=slave,
                            stderr=slave)
    os.close(slave)
    screen = b""

    def screens():
        nonlocal screen
        while select.select([master], [], [], 0)[0]:
            try:
                screen += os.read(master, 65536)
            except OSError:  # the terminal's other side closed
                break
        return screen.decode(errors="replace").split(CLEAR)[1:]  # what each redraw put on a cleared screen

    try:
        first = wait_for(lambda: [s for s in screens() if "signed-out" in s], DEADLINE, "the first screen",
                         proc=proc)[0]
        assert first.startswith("tipd status at ") and "(Ctrl-C to stop)" in first.splitlines()[0]
        tipctl(home, "login")
        last = wait_for(lambda: [s for s in screens() if " fresh " in s], DEADLINE, "a redraw", proc=proc)[-1]
        assert "alice@example.com" in last and "signed-out" not in last
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def test_stopping_tipd_with_open_streams_is_quick_and_ends_them(home, tipd):
    streams = [Stream(home) for _ in range(3)]
    watcher = Lines([str(BIN / "tipctl"), "status", "--watch", "--json"], home.env)
    try:
        for s in streams:
            assert s.event()[0] == "status"
        watcher.next()
        assert tipd.stop() == 0
        # Each stream ended cleanly (curl exits 0 at the chunked end): a stream left open would have been
        # cut at the end of the 3 s shutdown grace instead (curl: 18, partial transfer). That proves the
        # quick end without timing it, which a loaded machine could not be trusted with.
        for s in streams:
            assert s.event(timeout=5) is None
            assert s.proc.wait(5) == 0
    finally:
        for s in streams:
            s.stop()
        watcher.stop(signal.SIGINT)


def test_the_table_names_the_worst_state_and_the_last_error(home, fake):
    home.config_file.write_text(home.config_file.read_text().replace("[profiles.work]", f"""[profiles.spare]
issuer = "http://127.0.0.1:1/"
client_id = "spare"
application_arn = "{APP_ARN}"
oidc_role_arn = "arn:aws:iam::123456789012:role/a"
identity_enhanced_role_arn = "arn:aws:iam::123456789012:role/b"
region = "us-east-1"

[profiles.work]"""))
    d = Tipd(home).start()
    try:
        app = fake.config.applications[APP_ARN]
        app.assigned = {"someone-else"}
        try:
            assert tipctl(home, "login", "work", check=False).returncode == 1
        finally:
            app.assigned = None
        r = tipctl(home, "status", check=False)
        assert r.returncode == 1
        lines = r.stdout.splitlines()
        assert lines[0].split() == ["PROFILE", "USER", "STATE", "CREDENTIALS", "VALID", "UNTIL", "NEXT", "REFRESH"]
        assert "Worst state: login-required" in lines
        err = lines.index("Last error:")
        assert lines[err + 1].startswith("  work: ") and "assigned to the application" in lines[err + 1]
        assert json.loads(tipctl(home, "status", "--json", check=False).stdout)["state"] == "login-required"
        tipctl(home, "login", "work")
        r = tipctl(home, "status")
        assert "Worst state: fresh" in r.stdout.splitlines() and "Last error:" not in r.stdout
    finally:
        assert d.stop() == 0
