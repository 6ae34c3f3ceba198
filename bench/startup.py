"""Benchmark of tipd's start (issue 11, "Also"): from spawning the process to its credential port accepting
connections ("listening") and to its control socket answering ("ready"), with each kind of keyring.

    .venv/bin/python bench/startup.py          # about 1 min; needs dbus-daemon and gnome-keyring for the
                                               # Secret Service rows (skipped with a note when missing)

Runs the real tipd in an isolated home with one profile and a stored sign-in (so the store is read at start;
the refresh that follows goes to an address that refuses at once and is not timed). Keyring variants:

    no keyring        PYTHON_KEYRING_BACKEND=keyring.backends.fail.Keyring (the test default; headless servers)
    auto, no D-Bus    keyring's own backend discovery with no session bus (a headless Linux login)
    Secret Service    gnome-keyring-daemon on a private D-Bus session, unlocked (a Linux desktop)
    ... locked        the same, its collection locked (the probe fails; the file store takes over)

Also times the keyring probe alone (`tipd.store.usable_keyring()` in a fresh interpreter, minus the bare
interpreter). Target: start to listening <= 300 ms. Prints a Markdown table; writes bench/results/startup.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.secret_service import SecretService, missing_tools  # noqa: E402
from tests.support.stack import BIN, Home  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "startup.json"
TARGET_MS = 300.0
GRANT = json.dumps({"version": 2, "issuer": "http://127.0.0.1:9", "client_id": "bench-client",
                    "refresh_token": "rt-bench", "scope": "openid email offline_access"})


def _answers(port: int) -> bool:
    """The credential port answers HTTP (a request without the token: 401 at once). A bare connect is not
    enough: the kernel accepts into the backlog as soon as the port is bound, long before anything serves."""
    s = socket.socket()
    s.settimeout(5)
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET /v1/credentials HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        return s.recv(12).startswith(b"HTTP/1.")
    except OSError:
        return False
    finally:
        s.close()


def _cpu_ms(pid: int) -> float:
    """CPU time the process has used (ns in /proc/PID/schedstat): less disturbed by a busy machine than wall time."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e6
    except (OSError, ValueError, IndexError):
        return float("nan")


def _control_answers(path: Path) -> bool:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(str(path))
        s.sendall(b"GET /v1/summary HTTP/1.0\r\nHost: tipd\r\n\r\n")
        return s.recv(12).startswith(b"HTTP/1.")
    except OSError:
        return False
    finally:
        s.close()


def one_start(home: Home, env: dict[str, str]) -> tuple[float, float, float]:
    """Milliseconds from spawn to listening and to ready (polled every 1 ms), and tipd's CPU ms at listening."""
    t0 = time.perf_counter()
    p = subprocess.Popen([str(BIN / "tipd"), "--config", str(home.config_file), "--log-level", "WARNING"],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    listening = ready = cpu = None
    try:
        while ready is None:
            if p.poll() is not None:
                raise SystemExit(f"tipd exited {p.returncode}: {p.stderr.read().decode()[-800:] if p.stderr else ''}")
            now = time.perf_counter()
            if listening is None and _answers(home.port):
                listening = (time.perf_counter() - t0) * 1000
                cpu = _cpu_ms(p.pid)
            if listening is not None and _control_answers(home.socket):
                ready = (time.perf_counter() - t0) * 1000
            elif now - t0 > 30:
                raise SystemExit("tipd did not start within 30 s")
            else:
                time.sleep(0.001)  # polling interval of the measurement
    finally:
        p.terminate()
        p.wait(10)
    assert listening is not None and cpu is not None  # set before `ready` is
    return listening, ready, cpu


def probe_cost(env: dict[str, str], n: int) -> float:
    """Median ms of usable_keyring() in a fresh interpreter, over the bare interpreter with tipd.store imported."""
    def run(code: str) -> float:
        xs = []
        for _ in range(n):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], env=env, check=True)
            xs.append((time.perf_counter() - t0) * 1000)
        return statistics.median(xs)
    return run("import tipd.store as s; s.usable_keyring()") - run("import tipd.store")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=15, help="starts per variant (default 15, after 2 warm-ups)")
    args = ap.parse_args()

    home = Home("http://127.0.0.1:9", "bench-client", "http://127.0.0.1:9")
    tokens = home.state_dir / "tokens"
    tokens.mkdir(parents=True, mode=0o700)
    variants: dict[str, dict[str, str]] = {
        "no keyring": dict(home.env),
        "auto, no D-Bus": {k: v for k, v in home.env.items() if k not in ("PYTHON_KEYRING_BACKEND",)
                           and not k.startswith("DBUS_")},
    }
    ss = None
    missing = missing_tools()
    if not missing:
        ss = SecretService(Path(tempfile.mkdtemp(prefix="tipd-bench-kr-"))).__enter__()
        variants["Secret Service (gnome-keyring, unlocked)"] = dict(home.env, **ss.env)
        variants["Secret Service, locked"] = dict(home.env, **ss.env)
    results: dict[str, dict[str, Any]] = {}  # the JSON report's rows
    try:
        for name, env in variants.items():
            if ss is not None and name.startswith("Secret Service"):
                (ss.lock if "locked" in name else ss.unlock)()
            (tokens / "work.json").write_text(GRANT)
            os.chmod(tokens / "work.json", 0o600)
            runs = [one_start(home, env) for _ in range(args.n + 2)][2:]
            listening = sorted(r[0] for r in runs)
            ready = sorted(r[1] for r in runs)
            cpu = sorted(r[2] for r in runs)
            results[name] = {
                "listening_min_ms": listening[0],
                "listening_median_ms": statistics.median(listening), "listening_max_ms": listening[-1],
                "cpu_at_listening_median_ms": statistics.median(cpu),
                "ready_median_ms": statistics.median(ready), "ready_max_ms": ready[-1],
                "probe_ms": probe_cost(env, 5),
                "runs_ms": runs,
            }
    finally:
        if ss is not None:
            ss.__exit__()
        home.cleanup()

    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "n": args.n, "target_ms": TARGET_MS,
              "machine": {"nproc": os.cpu_count(), "python": platform.python_version(),
                          "loadavg": Path("/proc/loadavg").read_text().split()[:3]},
              "missing_tools": missing, "results": results}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    print(f"| keyring | start to listening (min / median / max) | tipd CPU at listening (median) | to control "
          f"socket ready (median) | keyring probe alone | target listening <= {TARGET_MS:.0f} ms |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        verdict = "met" if r["listening_median_ms"] <= TARGET_MS else "NOT met"
        print(f"| {name} | {r['listening_min_ms']:.0f} / {r['listening_median_ms']:.0f} / "
              f"{r['listening_max_ms']:.0f} ms | {r['cpu_at_listening_median_ms']:.0f} ms | "
              f"{r['ready_median_ms']:.0f} ms | {r['probe_ms']:.0f} ms | {verdict} |")
    if missing:
        print(f"\n(Secret Service rows skipped: {', '.join(missing)} missing)")
    return 0 if all(r["listening_median_ms"] <= TARGET_MS for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
