"""The daemon's lifecycle against the real tipd process: one instance per state directory, the port held
across restarts (socket activation), no core dumps, start-up faults as sentences, and reload.
(docs/security.md, "Lifecycle faults", lists each fault class with its test here.)"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support.activation import activated, listen
from tests.support.stack import BIN, Home, Tipd, in_tipd_env, status, tipctl, wait_for

pytestmark = pytest.mark.acceptance
ALICE_ID = "9067e4a2-alice"
NOBODY = 65534
BOTO3_WHOAMI = ("python -c 'import boto3, json; "
                "print(json.dumps(boto3.client(\"sts\").get_caller_identity()))'")
TIPD = [str(BIN / "tipd"), "--log-level", "DEBUG"]


def fetch(home: Home, profile: str = "work", timeout: float = 60) -> tuple[int, dict[str, Any]]:
    """One credential request as an SDK makes it (token re-read from the file); status 0: no connection."""
    req = urllib.request.Request(f"http://127.0.0.1:{home.port}/v1/credentials/{profile}",
                                 headers={"Authorization": home.token()})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")
    except OSError:
        return 0, {}


def start_raw(home: Home, *args: str, env: dict[str, str] | None = None, **kw) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*TIPD, "--config", str(home.config_file), *args], env=dict(home.env, **(env or {})),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)


def finish(p: subprocess.Popen[bytes], timeout: float = 60) -> tuple[str, str]:
    """Its output once it exits; killed if it has not by then (a tipd that wrongly keeps running)."""
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise AssertionError("it did not exit") from None
    return (out.decode() if isinstance(out, bytes) else out or ""), (err.decode() if isinstance(err, bytes)
                                                                       else err or "")


def terminate(p: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout`: no test leaves a tipd behind."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def ready(home: Home) -> bool:
    return tipctl(home, "status", "--json", check=False).returncode != 3


# ---- 1: a second tipd breaks nothing ------------------------------------------------------------------

TRIALS = 10


@pytest.mark.parametrize("concurrent", [2, 3])
def test_simultaneous_starts_leave_exactly_one_serving_with_its_token_and_socket_intact(home, idp, fake, concurrent):
    """Issue 11 #1: two starts together used to delete the live daemon's socket and rewrite its token (10 of
    10 trials). Now exactly one serves; the others exit 2 with a sentence, having touched nothing."""
    failures = []
    signed_in = False
    for trial in range(TRIALS):
        procs = [start_raw(home) for _ in range(concurrent)]
        try:
            # all but one exit; the survivor answers on its control socket
            def all_but_one_exited(procs: list[subprocess.Popen[bytes]] = procs):
                return sum(p.poll() is not None for p in procs) == concurrent - 1

            wait_for(all_but_one_exited, timeout=90, what="all but one start to exit")
            live = next(p for p in procs if p.poll() is None)
            wait_for(lambda: ready(home), timeout=60, what="the survivor to answer", proc=live)
            if not signed_in:
                tipctl(home, "login")
                signed_in = True
            for p in procs:
                if p is live:
                    continue
                assert p.stdout is not None
                out = p.stdout.read().decode()
                last = out.strip().splitlines()[-1]
                if p.returncode != 2 or "already running" not in last or "Traceback" in out:
                    failures.append(f"trial {trial}: a loser exited {p.returncode}: {out[-400:]}")
            # the survivor's control socket and endpoint token are the ones on disk
            st = status(home)
            if st.get("pid") != live.pid:
                failures.append(f"trial {trial}: the control socket answers for pid {st.get('pid')}, not {live.pid}")
            code, body = fetch(home)  # with the token on disk: it is the one the survivor accepts
            if code != 200:
                failures.append(f"trial {trial}: the endpoint answered {code} {body}")
        finally:
            for p in procs:
                terminate(p)
                if p.stdout:
                    p.stdout.close()
        assert not home.socket.exists(), "a stopped tipd leaves no socket behind"
    assert failures == [], "\n".join(failures)
    print(f"{TRIALS} trials of {concurrent} simultaneous starts: {len(failures)} failures")
    d = Tipd(home).start()  # and a real SDK after all that

    try:
        boto = in_tipd_env(home, BOTO3_WHOAMI)
        assert boto.returncode == 0 and f"tip-{ALICE_ID}" in boto.stdout, boto.stderr
    finally:
        d.stop()


def test_a_second_start_while_one_serves_changes_nothing_shared(home, tipd):
    token, sock = home.token_file.read_bytes(), home.socket.stat()
    second = start_raw(home)
    out, _ = finish(second)
    assert second.returncode == 2, out
    last = out.strip().splitlines()[-1]
    assert last.startswith("tipd: another tipd") and "already running" in last and f"pid {tipd.proc.pid}" in last
    assert "Traceback" not in out
    assert home.token_file.read_bytes() == token
    assert (home.socket.stat().st_ino, home.socket.stat().st_dev) == (sock.st_ino, sock.st_dev)
    assert status(home)["pid"] == tipd.proc.pid
    assert fetch(home)[1].get("code") == "LoginRequired"  # the token on disk is the one it accepts


def test_after_kill_9_the_lock_and_the_stale_socket_do_not_block_the_next_start(home, tipd):
    """The kernel drops an flock with its process, however it ends: no stale lock is possible."""
    token = home.token()
    tipd.kill9()
    assert home.socket.exists()  # left behind by the killed one
    again = Tipd(home).start()
    try:
        assert status(home)["pid"] == again.proc.pid
        assert home.token() == token and fetch(home)[1].get("code") == "LoginRequired"
    finally:
        again.stop()


# ---- 2: the port never free across a restart (socket activation) ------------------------------------

class Activator:
    """What systemd does for a .socket unit: it owns the listening socket and hands it to each tipd it
    starts as fd 3, with LISTEN_FDS=1 and LISTEN_PID set to the pid of the exec'd process."""

    def __init__(self, home: Home) -> None:
        self.home = home
        self.sock = listen(("127.0.0.1", home.port))

    def start(self) -> Tipd:
        d = Tipd(self.home)
        d.log = open(d.log_path, "wb")
        d.proc = activated(self.sock, [*TIPD, "--config", str(self.home.config_file)], env=d.env, stdout=d.log,
                           stderr=subprocess.STDOUT)
        wait_for(lambda: ready(self.home), timeout=60, what="the activated tipd to answer", proc=d.proc)
        return d

    def close(self) -> None:
        self.sock.close()


def test_socket_activation_keeps_the_port_across_restarts_no_squatter_no_refusal(home, idp, fake):
    """Issue 11 #2: while tipd restarted, another user bound its port and received the endpoint token.
    With the socket held by the service manager the port is never free: a squatter's bind fails the whole
    time, and a client requesting throughout is never refused (it waits in the backlog)."""
    act = Activator(home)
    d = act.start()
    stop = threading.Event()
    squats: list[int | None] = []  # errno of each bind attempt (0: the squatter got the port)
    answers: list[int] = []

    def squatter() -> None:
        while not stop.is_set():
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind(("127.0.0.1", home.port))
                    squats.append(0)
                except OSError as e:
                    squats.append(e.errno)
            stop.wait(0.005)

    def client() -> None:
        while not stop.is_set():
            answers.append(fetch(home, timeout=120)[0])

    try:
        tipctl(home, "login")
        assert fetch(home)[0] == 200
        threads = [threading.Thread(target=squatter), threading.Thread(target=client)]
        for t in threads:
            t.start()
        restarts = 3
        for _ in range(restarts):
            assert d.stop() == 0
            d = act.start()
            # three answers completed after the new tipd came up: the client's request that waited through the
            # restart and two more (an answer the old tipd gave while stopping does not count)
            seen = len(answers)
            def answered_thrice(seen: int = seen) -> bool:
                return len(answers) > seen + 2

            wait_for(answered_thrice, timeout=120, what="answers from the new tipd")
        stop.set()
        for t in threads:
            t.join(130)
        assert squats and all(e != 0 for e in squats), "the squatter got the port"
        assert answers and all(a == 200 for a in answers), sorted(set(answers))
        print(f"socket activation: {restarts} restarts, {len(answers)} requests all 200, "
              f"{len(squats)} squatter binds all refused")
        boto = in_tipd_env(home, BOTO3_WHOAMI)
        assert boto.returncode == 0 and f"tip-{ALICE_ID}" in boto.stdout, boto.stderr
        assert "the service manager holds" in d.output()
    finally:
        stop.set()
        d.stop()
        act.close()


def test_a_request_waiting_on_a_refresh_when_tipd_stops_is_answered_and_audited(home, idp, fake):
    """A restart came while an SDK's request waited on the chain (a new tipd has no credentials in memory yet):
    tipd stopped its tasks and flushed its audit first, then gave the request 3 s, so on a loaded machine the
    SDK saw its connection dropped, and a request answered during the stop was never audited. Now requests
    finish first (up to SHUTDOWN_GRACE), then tasks stop and the audit flushes."""
    import http.client

    from tipd.server.peer import tcp_peer

    d = Tipd(home).start()
    tipctl(home, "login")
    assert d.stop() == 0
    fake.hold("AssumeRole")  # the new tipd's chain waits at its last AWS call
    d = Tipd(home).start()
    conn = http.client.HTTPConnection("127.0.0.1", home.port, timeout=120)
    try:
        conn.request("GET", "/v1/credentials/work", headers={"Authorization": home.token()})
        fake.wait_until_held()
        # the request is tipd's: its end of the connection is one of tipd's descriptors (accepted, not queued)
        server_end = ("127.0.0.1", home.port)
        client_end = conn.sock.getsockname()

        def accepted() -> bool:
            peer = tcp_peer(server_end, client_end)
            return peer is not None and peer.inode != 0 and f"socket:[{peer.inode}]" in {
                os.readlink(f"/proc/{d.proc.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{d.proc.pid}/fd")}

        wait_for(accepted, timeout=60, what="tipd to take the connection", proc=d.proc)
        d.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "stopping: requests under way" in d.output(), timeout=60, what="tipd to begin stopping")
        fake.release()
        r = conn.getresponse()
        code, body = r.status, json.loads(r.read())
        assert d.proc.wait(60) == 0
        assert code == 200 and body.get("AccessKeyId"), (code, body)
        out = d.output()
        assert "handed out 1 credential: profile=work endpoint=container" in out, out[-3000:]
        assert "Traceback" not in out
    finally:
        conn.close()
        fake.release()
        d.stop()

def test_an_activated_socket_on_another_port_is_refused_with_a_sentence(home):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    try:
        p = activated(sock, [*TIPD, "--config", str(home.config_file)], env=home.env, stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE, text=True)
        _, err = finish(p)
    finally:
        sock.close()
    assert p.returncode == 2 and "Traceback" not in err
    assert f"but the config says {home.port}" in err.strip().splitlines()[-1]
    assert not home.token_file.exists()  # refused before anything shared was written


def as_nobody() -> list[str]:
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


needs_root = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                                reason="needs root and setpriv to act as another user")


@needs_root
def test_status_and_start_say_when_another_user_holds_the_port(home):
    squatter = subprocess.Popen([*as_nobody(), sys.executable, "-c", (
        "import socket, sys; s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); "
        "print('ready', flush=True); sys.stdin.read()"), str(home.port)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert squatter.stdout is not None and squatter.stdin is not None
        assert squatter.stdout.readline().strip() == "ready"
        r = tipctl(home, "status", check=False)
        assert r.returncode == 3
        assert f"port {home.port}" in r.stderr and f"another user (uid {NOBODY})" in r.stderr
        assert json.loads(tipctl(home, "status", "--json", check=False).stdout)["port_held_by_other_user"] == [NOBODY]
        start = subprocess.run([*TIPD, "--config", str(home.config_file)], env=home.env, capture_output=True,
                               text=True, timeout=60)
        assert start.returncode == 2 and "Traceback" not in start.stderr
        assert f"another user, uid {NOBODY}, holds it" in start.stderr.strip().splitlines()[-1]
    finally:
        if squatter.stdin is not None:
            squatter.stdin.close()
        squatter.wait(10)
    assert "Warning" not in tipctl(home, "status", check=False).stderr  # free again: no warning


# ---- 8: no core dumps ------------------------------------------------------------------------------

def unlimited_core() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def proc_limit(pid: int, name: str) -> list[str]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith(name):
            return line[len(name):].split()[:2]
    raise AssertionError(f"no {name} in /proc/{pid}/limits")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_started_with_ulimit_c_unlimited_the_daemon_cannot_dump_core(home):
    """Issue 11 #8: a crash under `ulimit -c unlimited` wrote the refresh token, a SecretAccessKey and the
    endpoint token to a core file. The daemon sets RLIMIT_CORE to 0 and makes itself non-dumpable."""
    log = open(home.dir / "tipd-core.log", "wb")
    proc = subprocess.Popen([*TIPD, "--config", str(home.config_file)], env=home.env, stdout=log,
                            stderr=subprocess.STDOUT, preexec_fn=unlimited_core)
    try:
        wait_for(lambda: ready(home), timeout=60, what="tipd to answer", proc=proc)
        assert proc_limit(proc.pid, "Max core file size") == ["0", "0"]
    finally:
        terminate(proc)
        log.close()


@needs_root
def test_the_daemon_is_not_dumpable_so_no_core_and_no_same_user_ptrace(home):
    """The files in /proc/PID belong to root, not to the process's user, exactly when the process is not
    dumpable (proc(5), /proc/pid: the files are owned by root if "the process's dumpable attribute has a value
    other than 1"): run tipd as nobody, under `ulimit -c unlimited`, and look."""
    subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(home.dir)], check=True)
    log = open("/dev/null", "wb")
    proc = subprocess.Popen([*as_nobody(), *TIPD, "--config", str(home.config_file)], env=home.env, stdout=log,
                            stderr=subprocess.STDOUT, preexec_fn=unlimited_core)
    try:
        wait_for(lambda: home.socket.exists(), timeout=60, what="the control socket", proc=proc)
        uids = next(line for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                    if line.startswith("Uid:")).split()[1:]
        assert uids[0] == str(NOBODY)  # it runs as nobody ...
        assert os.stat(f"/proc/{proc.pid}/status").st_uid == 0  # ... yet its /proc files are root's: not dumpable
        assert proc_limit(proc.pid, "Max core file size") == ["0", "0"]
    finally:
        terminate(proc)
        log.close()


# ---- 11: start-up faults are sentences -------------------------------------------------------------

def start_fails(home: Home, code: int, prefix: list[str] | None = None) -> str:
    r = subprocess.run([*(prefix or []), *TIPD, "--config", str(home.config_file)], env=home.env,
                       capture_output=True, text=True, timeout=60)
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == code, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("tipd: "), r.stderr
    return last


@pytest.fixture
def mount_point(home):
    """A tmpfs mounted on the state home (root only), unmounted afterwards."""
    target = home.dir / "state"
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(target)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    (target / "tipd").mkdir(mode=0o700)
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


def test_control_socket_path_being_a_directory_is_a_sentence(home):
    home.socket.mkdir(parents=True)
    assert "is a directory" in start_fails(home, 2)


def test_endpoint_token_path_being_a_directory_is_a_sentence(home):
    home.token_file.mkdir(parents=True)
    assert "is a directory" in start_fails(home, 2)


def test_a_read_only_state_directory_is_a_sentence(home, mount_point):
    subprocess.run(["mount", "-o", "remount,ro", str(mount_point)], check=True)
    assert "read-only file system" in start_fails(home, 2).lower()


def test_a_full_state_directory_is_a_sentence_and_touches_no_sign_in(home, mount_point):
    tokens = mount_point / "tipd" / "tokens"
    tokens.mkdir(mode=0o700)
    stored = tokens / "work.json"
    stored.write_text('{"refresh_token": "kept"}')
    stored.chmod(0o600)
    with open(mount_point / "filler", "wb", buffering=0) as f:  # unbuffered: nothing left to flush at close
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    line = start_fails(home, 1)  # exit 1: the condition may pass (a service manager restarts it)
    assert "No space left on device" in line and "endpoint token" in line
    assert stored.read_text() == '{"refresh_token": "kept"}'


def test_a_kept_endpoint_token_others_could_read_or_plant_is_replaced_at_start(home, tmp_path):
    """The endpoint token is kept across restarts, but only one tipd wrote for this user alone: a file others
    could read or write (a leaked or planted token), another user's file, or a symbolic link to a token of
    the attacker's choosing is replaced by a new 0600 file, and the link's target is left alone."""
    Tipd(home).start().stop()
    kept = home.token()
    d = Tipd(home).start()
    d.stop()
    assert home.token() == kept  # the ordinary case: kept
    planted = tmp_path / "planted"
    for spoil in ("chmod 644", "chmod 660", "chown nobody", "symlink"):
        before = home.token()
        if spoil == "symlink":
            planted.write_text("A" * 43)
            planted.chmod(0o600)
            home.token_file.unlink()
            home.token_file.symlink_to(planted)
            before = planted.read_text()
        elif spoil == "chown nobody":
            if os.geteuid() != 0:
                continue
            shutil.chown(home.token_file, "nobody")
        else:
            home.token_file.chmod(int(spoil.split()[1], 8))
        d = Tipd(home).start()
        d.stop()
        st = home.token_file.lstat()
        assert home.token() != before, spoil
        assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.getuid(), spoil
    assert planted.read_text() == "A" * 43


def test_rotate_token_on_a_full_state_directory_is_a_sentence_and_the_old_token_stays(home, mount_point):
    """`tipctl rotate-token` on a full disk was a 500 ('tipd sent an unreadable answer')."""
    d = Tipd(home).start()
    try:
        old = home.token()
        with open(mount_point / "filler", "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError:
                pass
        r = tipctl(home, "rotate-token", check=False)
        assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
        assert "not rotated" in r.stderr and "No space left on device" in r.stderr, r.stderr
        assert "unreadable" not in r.stderr and home.token() == old
        assert tipctl(home, "status", "--json", check=False).returncode == 0  # still serving
    finally:
        d.stop()


def test_a_stored_client_secret_that_cannot_be_read_is_a_sentence_not_a_traceback(home, idp):
    """A directory (or an unreadable file) where the client secret belongs: tipd's start was an
    IsADirectoryError traceback. Now the profile waits for its secret with a sentence and tipd serves."""
    home.write_config(idp.issuer, idp.client_id, profile_extra='client_auth = "client_secret_post"')
    (home.state_dir / "tokens" / "work.client-secret").mkdir(parents=True)
    d = Tipd(home).start()
    try:
        profile = status(home)["profiles"][0]
        assert profile["state"] == "login-required", profile
        assert "cannot read the stored client secret" in json.dumps(profile), profile
    finally:
        d.stop()
    assert "Traceback" not in d.output()


@needs_root
def test_a_runtime_directory_owned_by_another_user_is_a_sentence(home):
    """tipd runs as nobody; its runtime directory belongs to root and holds a socket. The failed start used
    to clean up by unlinking that socket (PermissionError: a traceback); now it refuses in one sentence and
    removes nothing it did not create."""
    subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(home.dir)], check=True)
    home.socket.parent.mkdir(mode=0o700)
    os.chown(home.socket.parent, 0, 0)
    home.socket.write_text("")  # another user's socket (a file stands in for it)
    assert "belongs to another user" in start_fails(home, 2, prefix=as_nobody())
    assert home.socket.exists()


def test_a_config_nested_thousands_deep_is_a_sentence(home):
    home.config_file.write_text("default_profile = " + "[" * 5000 + "]" * 5000 + "\n")
    assert "nest too deeply" in start_fails(home, 2)


# ---- 12: reload ------------------------------------------------------------------------------------

def profile_block(home: Home, name: str, extra: str = "") -> str:
    """A copy of the "work" profile (from the config as the Home wrote it) named `name`."""
    text: str = home.original_config  # type: ignore[attr-defined]  # the tests below keep it on the Home
    start = text.index("[profiles.work]")
    return text[start:].replace("[profiles.work]", f"[profiles.{name}]", 1) + extra + "\n"


class Poller:
    """A client fetching one profile in a loop, recording every status."""

    def __init__(self, home: Home, profile: str = "work") -> None:
        self.home, self.profile = home, profile
        self.codes: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.codes.append(fetch(self.home, self.profile, timeout=30)[0])

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(60)


def test_reload_starts_new_stops_removed_restarts_changed_and_the_unchanged_never_gap(home, idp, fake):
    """Issue 11 #12: a profile added while tipd ran was never loaded. `tipctl reload` and SIGHUP re-read the
    config; a client polling the unchanged profile throughout never sees anything but 200."""
    work = home.original_config = home.config_file.read_text()
    home.config_file.write_text(work + profile_block(home, "gone"))
    d = Tipd(home).start()
    try:
        tipctl(home, "login", "work")
        assert fetch(home)[0] == 200
        with Poller(home) as poll:
            home.config_file.write_text(work + profile_block(home, "extra"))
            # the commands agree: the file has it, tipd does not yet, and `tipctl profiles` says what to do
            assert "`tipctl reload` loads it" in tipctl(home, "profiles").stdout
            r = tipctl(home, "reload")
            assert "started: extra" in r.stdout and "stopped: gone" in r.stdout and "unchanged: work" in r.stdout
            assert [p["profile"] for p in status(home)["profiles"]] == ["work", "extra"]
            assert fetch(home, "gone")[1]["code"] == "UnknownProfile"
            rows = json.loads(tipctl(home, "profiles", "--json").stdout)["profiles"]
            assert {r["profile"]: r["state"] for r in rows} == {"work": "fresh", "extra": "signed-out"}
            tipctl(home, "login", "extra")
            code, first = fetch(home, "extra")
            assert code == 200

            # SIGHUP: "extra" changes (it restarts, from its stored sign-in), "third" is new
            home.config_file.write_text(work + profile_block(home, "extra", 'account_id = "123456789012"')
                                        + profile_block(home, "third"))
            d.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "third" in [p["profile"] for p in status(home)["profiles"]], timeout=60,
                     what="the SIGHUP reload")
            code, again = wait_for(lambda: got if (got := fetch(home, "extra"))[0] == 200 else None, timeout=60,
                                   what="the restarted profile to serve")
            assert again["AccessKeyId"] != first["AccessKeyId"]  # a new session, not the old one's credentials
            n = len(poll.codes)
            wait_for(lambda: len(poll.codes) > n + 2, timeout=60, what="more polls")
        assert poll.codes and set(poll.codes) == {200}, sorted(set(poll.codes))
        print(f"reload: {len(poll.codes)} requests to the unchanged profile over 2 reloads, all 200")
        assert "config reloaded" in d.output() and "Traceback" not in d.output()
    finally:
        d.stop()


def test_a_bad_config_is_refused_with_its_error_and_the_old_one_keeps_running(home, idp, fake):
    d = Tipd(home).start()
    try:
        tipctl(home, "login")
        good = home.original_config = home.config_file.read_text()
        home.config_file.write_text(good + profile_block(home, "broken").replace('region = "us-east-1"',
                                                                                'region = "moon"'))
        r = tipctl(home, "reload", check=False)
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert "not reloaded" in r.stderr and "profiles.broken.region" in r.stderr
        home.config_file.write_text("this is [ not toml")
        d.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload refused" in d.output(), timeout=60, what="the refusal in the log")
        r = tipctl(home, "reload", check=False)
        assert r.returncode == 1 and "not valid TOML" in r.stderr
        home.config_file.unlink()  # (an editor saving by delete-and-create): not an empty config
        r = tipctl(home, "reload", check=False)
        assert r.returncode == 1 and "no config file here" in r.stderr
        assert d.proc.poll() is None
        assert [p["profile"] for p in status(home)["profiles"]] == ["work"]
        assert fetch(home)[0] == 200
        # a [server] change is reported, not applied: the port stays, "work" keeps serving
        home.config_file.write_text(good.replace(f"port = {home.port}", f"port = {home.port + 1}"))
        r = tipctl(home, "reload", "--json")
        answer = json.loads(r.stdout)
        assert answer["needs_restart"] == ["server"] and answer["unchanged"] == ["work"]
        out = tipctl(home, "reload").stdout
        # a plain restart of the service would keep the old port's socket, which tipd refuses: the advice says so
        assert "[server] changed: restart tipd" in out and "for a new port `tipctl service install`" in out
        assert status(home)["port"] == home.port and fetch(home)[0] == 200
    finally:
        d.stop()


def test_a_reload_during_a_sign_in_serves_the_new_sign_in_not_the_one_before(home, idp, fake):
    """Bob signs in over Alice's sign-in while a reload replaces the profile. The replacement read the store before
    Bob's sign-in was saved: it served Alice's credentials and saved her rotated token over Bob's record. Now a
    reload lets a sign-in under way finish first."""
    from tests.support.device import approve_device_code
    from tests.support.login import Login

    d = Tipd(home).start()
    login = reload = None
    try:
        tipctl(home, "login")
        assert status(home)["profiles"][0]["user"] == "alice@example.com"
        fake.hold("AssumeRole")  # Bob's chain will wait at its last AWS call
        login = Login(home, "--device", "--force")  # over a fresh sign-in, on purpose
        approve_device_code(idp.issuer, login.user_code(), login="bob")
        fake.wait_until_held()
        with home.config_file.open("a") as f:
            f.write("redirect_port = 8765\n")  # a change to the profile: the reload replaces its session
        reload = subprocess.Popen([str(BIN / "tipctl"), "reload"], env=home.env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        # the reload has reached tipd: done already (the old code) or waiting for the sign-in (the fix)
        wait_for(lambda: reload.poll() is not None or "a sign-in is under way" in d.output(), timeout=60,
                 what="the reload at tipd", proc=d.proc)
        fake.release()
        assert login.wait(60) == 0, login.stderr()
        out, err = reload.communicate(timeout=120)
        assert reload.returncode == 0 and "restarted: work" in out, err
        user = wait_for(lambda: status(home)["profiles"][0]["user"], timeout=60, what="the reloaded profile's user",
                        proc=d.proc)
        assert user == "bob@example.com"
    finally:
        fake.release()
        for p in (login.proc if login else None, reload):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        d.stop()
