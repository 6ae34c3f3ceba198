"""Benchmark of the quick `tipctl` commands (issue 5): wall time of a whole process, start to exit.

    .venv/bin/python bench/cli.py            # about 30 s; needs nothing beyond the .venv

Runs the real tipd (no sign-in needed: these commands read the config and the daemon's in-memory status) in an
isolated home, then times N fresh processes of each command, as a shell prompt or a script would start them:

    tipctl status, tipctl status --json, tipctl env, tipctl env --json     target: median and p90 < 150 ms

and, for reference, `python -c pass` with the same interpreter (the floor nobody can go below). Also lists
the heaviest modules `tipctl status` imports (python -X importtime), so a regression names its cause.
Prints a Markdown table; writes the raw numbers to bench/results/cli.json.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from endpoint import machine, wait_quiet  # noqa: E402

from tests.support.stack import BIN, Home, Tipd  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "cli.json"
TARGET_MS = 150.0
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "tipctl status": [str(BIN / "tipctl"), "status"],
    "tipctl status --json": [str(BIN / "tipctl"), "status", "--json"],
    "tipctl env": [str(BIN / "tipctl"), "env"],
    "tipctl env --json": [str(BIN / "tipctl"), "env", "--json"],
}


def time_runs(cmd: list[str], env: dict[str, str], n: int) -> list[float]:
    """Wall milliseconds of `n` runs (after 3 warm-ups, so the page cache is warm as on a used laptop)."""
    out = []
    for i in range(n + 3):
        t0 = time.perf_counter()
        p = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        dt = (time.perf_counter() - t0) * 1000
        if p.returncode not in (0, 1):  # status exits 1 when a profile needs attention (here: signed out)
            raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.decode()}")
        if i >= 3:
            out.append(dt)
    return out


def heaviest_imports(env: dict[str, str], top: int = 8) -> list[tuple[str, int]]:
    p = subprocess.run([sys.executable, "-X", "importtime", "-m", "tipd.cli.main", "status"], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    rows = []
    for line in p.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if m and len(m.group(3)) <= 2:  # top-level imports only: their cumulative time includes children
            rows.append((m.group(4), int(m.group(2))))
    return sorted(rows, key=lambda r: -r[1])[:top]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=40, help="timed runs per command (default 40)")
    ap.add_argument("--quiet-wait", type=float, default=60,
                    help="wait up to this many seconds for an idle machine before measuring (default 60)")
    args = ap.parse_args()

    home = Home("https://idp.invalid", "bench-client", "http://127.0.0.1:9")
    tipd = Tipd(home).start()
    try:
        results: dict[str, dict[str, Any]] = {}  # the JSON report's rows
        busy = wait_quiet(args.quiet_wait)
        for name, cmd in COMMANDS.items():
            xs = sorted(time_runs(cmd, home.env, args.n))
            results[name] = {"median_ms": statistics.median(xs), "p90_ms": xs[int(0.9 * (len(xs) - 1))],
                             "max_ms": xs[-1], "runs_ms": xs}
        imports = heaviest_imports(home.env)
    finally:
        tipd.stop()
        home.cleanup()

    report = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "busy_before": busy, "n": args.n,
              "target_ms": TARGET_MS, "results": results, "heaviest_imports_us": imports}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))

    print(f"| command | median | p90 | max | target < {TARGET_MS:.0f} ms |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        verdict = "(floor)" if name.startswith("python") else \
            ("met" if r["p90_ms"] < TARGET_MS else "NOT met")
        print(f"| `{name}` | {r['median_ms']:.1f} ms | {r['p90_ms']:.1f} ms | {r['max_ms']:.1f} ms | {verdict} |")
    print("\nheaviest top-level imports of `tipctl status` (cumulative):")
    for mod, us in imports:
        print(f"  {us / 1000:6.1f} ms  {mod}")
    return 0 if all(r["p90_ms"] < TARGET_MS for n, r in results.items() if not n.startswith("python")) else 1


if __name__ == "__main__":
    sys.exit(main())
