"""Benchmark of the refresh schedule (issue 3): upstream calls, freshness served, and the daemon's CPU.

    .venv/bin/python bench/schedule.py            # full run (~3.5 min): simulated day + two real daemons
    .venv/bin/python bench/schedule.py --sim-only # the simulated day alone (seconds)

1. The simulated day at production settings (1 h lifetimes, rotate with 30 min left, serve >= 20 min),
   driven exactly like tests/unit/test_schedule.py::test_a_simulated_day_...: the real
   tipd.session.ProfileSession on a VirtualClock with the unit fakes, a client fetching every 7 s.
   Reports the upstream calls per stage in each simulated hour, the minimum remaining lifetime ever
   served, and the wall time the simulation took.
2. The real daemon's CPU (utime+stime of /proc/<pid>/stat), against the real IdP (npm oidc-provider),
   moto and the project's AWS fake, signed in with `tipctl login` (headless BROWSER):
   a. idle: production refresh settings, fresh, then a window with no requests and no refresh due;
   b. per rotation: short lifetimes (30 s sessions, rotate at 14 s, min 8 s, as tests/acceptance/
      test_faults.py) for ~90 s with no requests; CPU / AssumeRole calls = CPU per full rotation;
   c. estimate per production hour and profile = idle/h + (rotations/h from 1.) x CPU per rotation.
   Target: < 1 s of CPU per simulated hour per profile.

Prints a Markdown table; writes every raw number to bench/results/schedule.json.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.stack import ACCOUNT, BIN, Home, Tipd, status, tipctl  # noqa: E402
from tests.support.stack import wait_for as poll  # noqa: E402

if TYPE_CHECKING:
    from tests.support.aws import FakeAWS
    from tests.support.idp import IdP

RESULTS = ROOT / "bench" / "results" / "schedule.json"
HOUR = 3600
TARGET_CPU_S_PER_HOUR = 1.0
STAGES = ("idp", "AssumeRoleWithWebIdentity", "CreateTokenWithIAM", "AssumeRole")
STAGE_LABEL = {"idp": "IdP refresh grant", "AssumeRoleWithWebIdentity": "AssumeRoleWithWebIdentity",
               "CreateTokenWithIAM": "CreateTokenWithIAM", "AssumeRole": "AssumeRole (identity-enhanced)"}
AWS_OPS = STAGES[1:]
SHORT_LIFETIME = 30
SHORT = f"""
[refresh]
min_remaining = 8
rotate_remaining = 14
session_duration = {SHORT_LIFETIME}
"""
APP_SHORT = f"arn:aws:sso::{ACCOUNT}:application/ssoins-1111222233334444/apl-bbbbbbbbbbbbbbbb"
_HZ = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------------------------
# 1. the simulated day
# --------------------------------------------------------------------------------------------------

async def _simulated_day(fetch_every: float, hours: int) -> dict[str, Any]:
    from tests.support.session_rig import Rig

    t_wall, t_cpu = time.perf_counter(), time.process_time()
    rig = Rig()  # RefreshConfig() defaults: the production settings
    before_login = dict(rig.aws.calls, idp=rig.idp.calls)
    await rig.start(fetch_every=fetch_every)
    after_login = dict(rig.aws.calls, idp=rig.idp.calls)
    hourly = []
    before = after_login
    for _ in range(hours):
        await rig.run(HOUR)
        now = dict(rig.aws.calls, idp=rig.idp.calls)
        hourly.append({k: now[k] - before[k] for k in now})
        before = now
    await rig.stop()
    wall, cpu = time.perf_counter() - t_wall, time.process_time() - t_cpu
    remaining = [r for _, r in rig.served]
    s = rig.session.settings
    return {
        "settings": {"session_duration": s.session_duration, "rotate_remaining": s.rotate_remaining,
                     "min_remaining": s.min_remaining, "fetch_every_s": fetch_every, "hours": hours},
        "login_calls": {k: after_login[k] - before_login[k] for k in after_login},
        "hourly": hourly,
        "per_stage": {k: {"min": min(h[k] for h in hourly), "max": max(h[k] for h in hourly),
                          "total": sum(h[k] for h in hourly)} for k in STAGES},
        "served": len(remaining),
        "failures": len(rig.failures),
        "min_remaining_served_s": min(remaining),
        "max_remaining_served_s": max(remaining),
        "jwt_bearer_exchanges": len(rig.aws.assertions),
        "refresh_tokens_stored": len(rig.store.saves),
        "wall_s": wall,
        "cpu_s": cpu,
    }


# --------------------------------------------------------------------------------------------------
# 2. the real daemon
# --------------------------------------------------------------------------------------------------

def proc_cpu_s(pid: int) -> float:
    """utime + stime of the whole process (all threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _HZ


def proc_runtime_s(pid: int) -> float:
    """Time on CPU of the process's live threads from the scheduler (/proc/<pid>/task/*/schedstat, ns):
    the precise cross-check of proc_cpu_s, whose 1/CLK_TCK ticks are too coarse for an idle minute."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            # a thread that ended meanwhile counts nothing
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def proc_status(pid: int) -> dict[str, Any]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("Threads", "voluntary_ctxt_switches", "nonvoluntary_ctxt_switches", "VmRSS"):
            out[k] = v.strip()
    return out


class BenchTipd(Tipd):
    """tipd as tests/support/stack.py starts it, but at the production log level (INFO by default)."""

    def __init__(self, home: Home, log_level: str = "INFO") -> None:
        super().__init__(home)
        self.log_level = log_level

    def start(self, timeout: float = 20) -> BenchTipd:
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([str(BIN / "tipd"), "--config", str(self.home.config_file),
                                      "--log-level", self.log_level],
                                     env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        poll(lambda: tipctl(self.home, "status", "--json", check=False).returncode != 3, timeout,
             "tipd ready", self.proc)
        return self


def profile_state(home: Home) -> dict[str, Any]:
    profile: dict[str, Any] = status(home)["profiles"][0]
    return profile


def upstream_counts(fake: FakeAWS, idp: IdP) -> dict[str, int]:
    ok = [c for c in fake.calls if c.status == 200]
    out = {op: sum(1 for c in ok if c.operation == op) for op in AWS_OPS}
    out["idp"] = idp.stats().get("/token", 0)  # every /token request (the login's code grant included)
    return out


def measure_window(d: BenchTipd, seconds: float, fake: FakeAWS, idp: IdP, sample_every: float = 10.0) -> dict[str, Any]:
    """CPU of the daemon over `seconds` in which nothing talks to it. The wait is the daemon's own
    `proc.wait(timeout)`: it returns early only if the daemon dies (an error)."""
    pid = d.proc.pid
    calls0 = upstream_counts(fake, idp)
    st0 = proc_status(pid)
    t0, c0, r0 = time.monotonic(), proc_cpu_s(pid), proc_runtime_s(pid)
    samples = []
    end = t0 + seconds
    while (left := end - time.monotonic()) > 0:
        try:
            d.proc.wait(timeout=min(sample_every, left))
            raise RuntimeError(f"tipd exited with {d.proc.returncode} during the window:\n{d.output()[-2000:]}")
        except subprocess.TimeoutExpired:
            samples.append((round(time.monotonic() - t0, 3), proc_cpu_s(pid)))
    t1, c1, r1 = time.monotonic(), proc_cpu_s(pid), proc_runtime_s(pid)
    st1 = proc_status(pid)
    calls1 = upstream_counts(fake, idp)
    return {
        "seconds": t1 - t0,
        "cpu_s": c1 - c0,
        "cpu_resolution_s": 1 / _HZ,
        "schedstat_cpu_s": r1 - r0,
        "cpu_samples": [(t, round(c - c0, 3)) for t, c in samples],
        "upstream_calls": {k: calls1[k] - calls0[k] for k in calls1},
        "voluntary_ctxt_switches": int(st1["voluntary_ctxt_switches"]) - int(st0["voluntary_ctxt_switches"]),
        "nonvoluntary_ctxt_switches": (int(st1["nonvoluntary_ctxt_switches"])
                                       - int(st0["nonvoluntary_ctxt_switches"])),
        "threads": st1["Threads"],
        "rss": st1["VmRSS"],
    }


def signed_in_daemon(home: Home, log_level: str) -> BenchTipd:
    d = BenchTipd(home, log_level).start()
    tipctl(home, "login")
    poll(lambda: profile_state(home)["state"] == "fresh", 30, "fresh after login", d.proc)
    return d


def run_daemons(idle_window: float, rotation_window: float, log_level: str) -> dict[str, Any]:
    from tests.support.aws import AppConfig, FakeAWS, FakeConfig, MotoServer
    from tests.support.idp import IdP
    from tests.support.stack import APP_ARN

    out: dict[str, Any] = {"log_level": log_level}
    with IdP() as idp, IdP(id_ttl=SHORT_LIFETIME, access_ttl=SHORT_LIFETIME) as short_idp, MotoServer() as moto:
        config = FakeConfig(
            applications={
                APP_ARN: AppConfig(issuer_url=idp.issuer, audiences=[idp.client_id], claim="email"),
                APP_SHORT: AppConfig(issuer_url=short_idp.issuer, audiences=[short_idp.client_id], claim="email",
                                     access_token_ttl=SHORT_LIFETIME),
            },
            users={"alice@example.com": "9067e4a2-alice"})
        with FakeAWS(moto.url, config) as fake:
            # a. idle, production settings
            home = Home(idp.issuer, idp.client_id, fake.url)
            d = None
            try:
                print(f"idle: production settings, {idle_window:.0f} s window ...", file=sys.stderr)
                d = signed_in_daemon(home, log_level)
                st = profile_state(home)
                w = measure_window(d, idle_window, fake, idp)
                after = profile_state(home)
                w.update(state_before=st["state"], state_after=after["state"], next_refresh=st["next_refresh"],
                         credentials_expire=st["credentials_expire"],
                         cpu_s_per_hour=w["cpu_s"] / w["seconds"] * HOUR,
                         # with 0 or few ticks in the window, /proc/<pid>/stat alone bounds it at (ticks+1)/window
                         cpu_s_per_hour_upper_bound=(w["cpu_s"] + 1 / _HZ) / w["seconds"] * HOUR,
                         schedstat_cpu_s_per_hour=w["schedstat_cpu_s"] / w["seconds"] * HOUR,
                         wakeups_per_s=w["voluntary_ctxt_switches"] / w["seconds"])
                if any(w["upstream_calls"].values()):
                    raise RuntimeError(f"a refresh happened in the idle window: {w['upstream_calls']}")
                out["idle"] = w
            finally:
                if d is not None:
                    d.stop()
                home.cleanup()

            # b. per rotation, short lifetimes
            home = Home(short_idp.issuer, short_idp.client_id, fake.url, app_arn=APP_SHORT, extra_config=SHORT)
            d = None
            try:
                print(f"rotations: {SHORT_LIFETIME} s lifetimes, {rotation_window:.0f} s window ...", file=sys.stderr)
                d = signed_in_daemon(home, log_level)
                w = measure_window(d, rotation_window, fake, short_idp)
                after = profile_state(home)
                rotations = w["upstream_calls"]["AssumeRole"]
                if rotations < 1:
                    raise RuntimeError(f"no rotation in {rotation_window} s: {w['upstream_calls']}")
                idle_rate = out["idle"]["cpu_s"] / out["idle"]["seconds"]
                net = max(0.0, w["cpu_s"] - idle_rate * w["seconds"])
                w.update(settings={"session_duration": SHORT_LIFETIME, "rotate_remaining": 14, "min_remaining": 8,
                                   "idp_id_ttl": SHORT_LIFETIME, "idp_access_ttl": SHORT_LIFETIME,
                                   "idc_access_token_ttl": SHORT_LIFETIME},
                         state_after=after["state"], last_error=after["last_error"],
                         rotations=rotations,
                         cpu_s_per_rotation=w["cpu_s"] / rotations,
                         schedstat_cpu_s_per_rotation=w["schedstat_cpu_s"] / rotations,
                         cpu_s_per_rotation_net_of_idle=net / rotations)
                out["rotation"] = w
            finally:
                if d is not None:
                    d.stop()
                home.cleanup()
    return out


# --------------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------------

def machine() -> dict[str, Any]:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    return {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "nproc": os.cpu_count(),
            "cpu": cpu, "kernel": platform.release(), "python": platform.python_version(),
            "clk_tck": _HZ, "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3]}


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def table(r: dict[str, Any]) -> str:
    sim = r["simulated_day"]
    lines = [f"### Simulated day ({sim['settings']['hours']} h, production settings, client every "
             f"{sim['settings']['fetch_every_s']:g} s; wall {sim['wall_s']:.2f} s)", "",
             "| stage | at login | calls/h min | calls/h max | total (24 h) |", "|---|---:|---:|---:|---:|"]
    for k in STAGES:
        p = sim["per_stage"][k]
        lines.append(f"| {STAGE_LABEL[k]} | {sim['login_calls'][k]} | {p['min']} | {p['max']} | {p['total']} |")
    lines += ["", f"- credentials served: {sim['served']}, failures: {sim['failures']}",
              f"- minimum remaining lifetime ever served: {sim['min_remaining_served_s']:.0f} s "
              f"(floor min_remaining = {sim['settings']['min_remaining']} s)",
              f"- simulation: {sim['wall_s']:.2f} s wall, {sim['cpu_s']:.2f} s CPU"]
    dm = r.get("daemon")
    if dm:
        idle, rot, est = dm["idle"], dm["rotation"], r["estimate"]
        lines += ["", f"### Real daemon CPU (log level {dm['log_level']}; /proc/<pid>/stat, "
                      f"{idle['cpu_resolution_s'] * 1000:g} ms ticks; schedstat = scheduler ns)", "",
                  "| measurement | /proc/<pid>/stat | schedstat |", "|---|---:|---:|",
                  f"| idle: {idle['seconds']:.0f} s, no requests, {idle['voluntary_ctxt_switches']} wake-ups, "
                  f"0 upstream calls | {idle['cpu_s']:.2f} s | {idle['schedstat_cpu_s'] * 1000:.1f} ms |",
                  f"| idle CPU per hour (x{HOUR / idle['seconds']:.0f}) | {idle['cpu_s_per_hour']:.2f} s "
                  f"(< {idle['cpu_s_per_hour_upper_bound']:.2f} s) | {idle['schedstat_cpu_s_per_hour']:.3f} s |",
                  f"| short lifetimes: {rot['seconds']:.0f} s, {rot['rotations']} rotations "
                  f"({', '.join(f'{k} {v}' for k, v in rot['upstream_calls'].items())}) "
                  f"| {rot['cpu_s']:.2f} s | {rot['schedstat_cpu_s']:.3f} s |",
                  f"| CPU per full rotation (all stages) | {rot['cpu_s_per_rotation'] * 1000:.0f} ms "
                  f"| {rot['schedstat_cpu_s_per_rotation'] * 1000:.0f} ms |",
                  f"| rotations per production hour (simulated day) | {est['rotations_per_hour']:g} | |",
                  f"| **estimate per production hour and profile** | **{est['cpu_s_per_hour']:.2f} s** "
                  f"(<= {est['cpu_s_per_hour_upper_bound']:.2f} s) | {est['cpu_s_per_hour_schedstat']:.2f} s |",
                  "", f"Target < {TARGET_CPU_S_PER_HOUR:g} s of CPU per hour per profile: "
                  f"/proc/<pid>/stat estimate {est['cpu_s_per_hour']:.2f} s **{verdict(est['met'])}** "
                  f"(at the tick upper bound {est['cpu_s_per_hour_upper_bound']:.2f} s: "
                  f"{verdict(est['met_at_upper_bound'])}); schedstat estimate {est['cpu_s_per_hour_schedstat']:.2f} s "
                  f"**{verdict(est['met_schedstat'])}**."]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=int, default=24, help="simulated hours (default 24)")
    ap.add_argument("--fetch-every", type=float, default=7.0, help="simulated client period, s (default 7)")
    ap.add_argument("--idle-window", type=float, default=60.0, help="idle measurement, s (default 60)")
    ap.add_argument("--rotation-window", type=float, default=90.0, help="short-lifetime run, s (default 90)")
    ap.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO"],
                    help="the daemons' log level (default INFO, as in production)")
    ap.add_argument("--sim-only", action="store_true", help="only the simulated day")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    results: dict[str, Any] = {"machine": machine(), "settings": vars(args) | {"out": str(args.out)},
                     "target_cpu_s_per_hour": TARGET_CPU_S_PER_HOUR}
    print("simulated day ...", file=sys.stderr)
    results["simulated_day"] = asyncio.run(_simulated_day(args.fetch_every, args.hours))
    if not args.sim_only:
        results["daemon"] = dm = run_daemons(args.idle_window, args.rotation_window, args.log_level)
        # rotations per production hour: the identity-enhanced session's renewals per simulated hour
        per_hour = results["simulated_day"]["per_stage"]["AssumeRole"]["max"]
        idle_h = dm["idle"]["cpu_s_per_hour"]
        est = idle_h + per_hour * dm["rotation"]["cpu_s_per_rotation"]
        upper = dm["idle"]["cpu_s_per_hour_upper_bound"] + per_hour * dm["rotation"]["cpu_s_per_rotation"]
        precise = (dm["idle"]["schedstat_cpu_s_per_hour"]
                   + per_hour * dm["rotation"]["schedstat_cpu_s_per_rotation"])
        results["estimate"] = {"rotations_per_hour": per_hour, "idle_cpu_s_per_hour": idle_h,
                               "cpu_s_per_hour": est, "met": est < TARGET_CPU_S_PER_HOUR,
                               # idle at one more clock tick than measured: the worst case /proc/<pid>/stat allows
                               "cpu_s_per_hour_upper_bound": upper, "met_at_upper_bound": upper < TARGET_CPU_S_PER_HOUR,
                               "cpu_s_per_hour_schedstat": precise, "met_schedstat": precise < TARGET_CPU_S_PER_HOUR,
                               "cpu_s_per_hour_net":
                                   idle_h + per_hour * dm["rotation"]["cpu_s_per_rotation_net_of_idle"]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"\nraw numbers: {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
