"""Benchmark of account profiles (issue 13): what 300 configured account profiles cost, and what using a few does.

    .venv/bin/python bench/accounts.py            # about 2-3 min: real daemons against the test stack
    .venv/bin/python bench/accounts.py --sim-only # the simulated day alone (seconds)

1. Start-up and memory: the real tipd with 1 profile, and with the same profile plus 300 account profiles of it.
   Start-up is spawn -> the credential port answering HTTP and the control socket answering (5 starts each,
   medians; no stored sign-in, so nothing is fetched). RSS (VmRSS of /proc/PID/status) is read twice: at ready,
   and after `tipctl login` and one credential fetch through the endpoint (for the 300 config: of one account
   profile, so the portal client is loaded too). Targets: RSS < 1.5x, start-up < 0.5 s.
2. Upstream calls per hour with 3 of 300 account profiles in use: the real tipd.accounts code
   (AccountSession, AccountSchedule) and the real ProfileSession on the virtual clock
   (tests/support/account_rig.py), 24 simulated hours, three clients fetching the way botocore does (again
   whenever < 15 min remain), 1 h permission-set sessions. Target: only those 3 renewed.
3. The endpoint: a cached account-profile fetch against a cached identity-enhanced one, in the same run of the
   same daemon (wrk, 1 thread, 16 connections, 5 s, alternated, 2 rounds each; the daemon's CPU per request).

Prints Markdown tables; writes every raw number to bench/results/accounts.json. Numbers taken on a loaded
machine are noisy: the load (`uptime`) is recorded beside them.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from endpoint import run_wrk, uptime  # noqa: E402
from startup import _answers, _control_answers, _cpu_ms  # noqa: E402

from tests.support.stack import APP_ARN, BIN, Home, Tipd, tipctl  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "accounts.json"
HOUR = 3600
N_ACCOUNTS = 300
ALICE_ID = "9067e4a2-alice"
PROD = "111111111111"


def account_tables(n: int) -> str:
    text = (f'\n[profiles.prod-admin]\nsource = "work"\naccount_id = "{PROD}"\nrole_name = "AdministratorAccess"\n'
            if n else "")
    for i in range(max(0, n - 1)):
        text += f'\n[profiles.acct{i}]\nsource = "work"\naccount_id = "{300000000000 + i}"\nrole_name = "ReadOnly"\n'
    return text


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def start_once(home: Home) -> tuple[float, float, int, float]:
    """ms to listening, ms to ready, RSS (KiB) at ready, and tipd's CPU ms at ready (less disturbed than wall
    time by a busy machine)."""
    t0 = time.perf_counter()
    p = subprocess.Popen([str(BIN / "tipd"), "--config", str(home.config_file), "--log-level", "WARNING"],
                         env=home.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    listening = ready = None
    try:
        while ready is None:
            if p.poll() is not None:
                raise SystemExit(f"tipd exited {p.returncode}: {p.stderr.read().decode()[-800:] if p.stderr else ''}")
            if listening is None and _answers(home.port):
                listening = (time.perf_counter() - t0) * 1000
            if listening is not None and _control_answers(home.socket):
                ready = (time.perf_counter() - t0) * 1000
            elif time.perf_counter() - t0 > 30:
                raise SystemExit("tipd did not start within 30 s")
            else:
                time.sleep(0.001)  # the measurement's polling interval
        rss, cpu = rss_kib(p.pid), _cpu_ms(p.pid)
    finally:
        p.terminate()
        p.wait(10)
    assert listening is not None  # set before `ready` is
    return listening, ready, rss, cpu


def fetch(home: Home, profile: str) -> None:
    import urllib.request

    req = urllib.request.Request(f"http://127.0.0.1:{home.port}/v1/credentials/{profile}",
                                 headers={"Authorization": home.token()})
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.status == 200


def memory_and_startup(idp: Any, fake: Any, starts: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, n in (("1 profile", 0), (f"1 profile + {N_ACCOUNTS} account profiles", N_ACCOUNTS)):
        home = Home(idp.issuer, idp.client_id, fake.url)
        try:
            home.config_file.write_text(home.config_file.read_text() + account_tables(n))
            runs = [start_once(home) for _ in range(starts)]
            d = Tipd(home).start()
            try:
                idle = rss_kib(d.proc.pid)
                tipctl(home, "login", "work")
                fetch(home, "prod-admin" if n else "work")
                used = rss_kib(d.proc.pid)
            finally:
                d.stop()
        finally:
            home.cleanup()
        out[label] = {"listening_ms": [r[0] for r in runs], "ready_ms": [r[1] for r in runs],
                      "rss_at_ready_kib": [r[2] for r in runs], "cpu_at_ready_ms": [r[3] for r in runs],
                      "median_cpu_at_ready_ms": statistics.median(r[3] for r in runs),
                      "median_listening_ms": statistics.median(r[0] for r in runs),
                      "median_ready_ms": statistics.median(r[1] for r in runs),
                      "median_rss_at_ready_kib": statistics.median(r[2] for r in runs),
                      "rss_running_kib": idle, "rss_signed_in_and_used_kib": used}
    return out


def endpoint_cost(idp: Any, fake: Any, rounds: int, duration: int) -> dict[str, Any]:
    home = Home(idp.issuer, idp.client_id, fake.url)
    home.config_file.write_text(home.config_file.read_text() + account_tables(N_ACCOUNTS))
    d = Tipd(home).start()
    runs: dict[str, list[dict[str, Any]]] = {"work": [], "prod-admin": []}
    try:
        tipctl(home, "login", "work")
        for profile in runs:
            fetch(home, profile)  # both in memory before any measurement
        token = home.token()
        pid = d.proc.pid
        for _ in range(rounds):
            for profile in runs:
                runs[profile].append(run_wrk(f"http://127.0.0.1:{home.port}/v1/credentials/{profile}", token,
                                             1, 16, duration, server_pid=pid))
    finally:
        d.stop()
        home.cleanup()
    return {p: {"runs": r, "median_rps": statistics.median(x["requests_per_s"] for x in r),
                "median_p99_ms": statistics.median(x["latency_ms"]["p99"] for x in r),
                "median_server_cpu_us_per_request": statistics.median(x["server_cpu_us_per_request"] for x in r)}
            for p, r in runs.items()}


async def simulated_day(hours: int) -> dict[str, Any]:
    from tests.support.account_rig import AccountRig, account_id

    t0 = time.perf_counter()
    rig = AccountRig(N_ACCOUNTS)
    await rig.start()
    used = ["acct10", "acct150", "acct299"]
    for name in used:
        rig.use(name, every=60)
    hourly = []
    before_portal, before_aws, before_idp = dict(rig.portal.calls), dict(rig.aws.calls), rig.idp.calls
    for _ in range(hours):
        await rig.run(HOUR)
        portal, aws = dict(rig.portal.calls), dict(rig.aws.calls)
        hourly.append({"GetRoleCredentials": sum(portal.values()) - sum(before_portal.values()),
                       **{k: aws[k] - before_aws.get(k, 0) for k in aws}, "idp": rig.idp.calls - before_idp})
        before_portal, before_aws, before_idp = portal, aws, rig.idp.calls
    await rig.stop()
    return {"hours": hours, "configured": N_ACCOUNTS, "in_use": used,
            "profiles_with_calls": sorted(rig.portal.calls),
            "expected_accounts": sorted(account_id(int(n[4:])) for n in used),
            "calls_per_profile": dict(rig.portal.calls), "hourly": hourly,
            "waited_for_a_fetch": len(rig.waited), "failures": len(rig.failures),
            "min_remaining_served_s": min(r for _, _, r in rig.handed), "wall_s": time.perf_counter() - t0}


def table(r: dict[str, Any]) -> str:
    lines = [f"Load: `{r['uptime_start']}` at the start, `{r['uptime_end']}` at the end.", ""]
    sim = r["simulated"]
    steady = sim["hourly"][1:]
    lines += [f"Simulated {sim['hours']} h, {sim['configured']} account profiles configured, 3 in use "
              f"({sim['wall_s']:.1f} s of wall time):", "",
              "| upstream call | per hour (hours 2-24: min-max) |", "| --- | --- |"]
    for k in sim["hourly"][0]:
        xs = [h[k] for h in steady]
        lines.append(f"| {k} | {min(xs)}-{max(xs)} |")
    lines += ["", f"Profiles that caused any GetRoleCredentials: {len(sim['profiles_with_calls'])} "
              f"(the 3 in use: {sim['profiles_with_calls'] == sim['expected_accounts']}); requests that waited "
              f"for a fetch: {sim['waited_for_a_fetch']} (each profile's first); least lifetime served: "
              f"{sim['min_remaining_served_s']:.0f} s; failures: {sim['failures']}.", ""]
    if "startup" in r:
        lines += ["| config | start to listening (median) | to ready | tipd CPU to ready | RSS at ready | "
                  "RSS signed in, one fetch |", "| --- | --- | --- | --- | --- | --- |"]
        for label, s in r["startup"].items():
            lines.append(f"| {label} | {s['median_listening_ms']:.0f} ms | {s['median_ready_ms']:.0f} ms | "
                         f"{s['median_cpu_at_ready_ms']:.0f} ms | "
                         f"{s['median_rss_at_ready_kib'] / 1024:.1f} MiB | "
                         f"{s['rss_signed_in_and_used_kib'] / 1024:.1f} MiB |")
        one, many = list(r["startup"].values())
        lines += ["", f"RSS ratio at ready {many['median_rss_at_ready_kib'] / one['median_rss_at_ready_kib']:.2f}x, "
                  f"signed in and used {many['rss_signed_in_and_used_kib'] / one['rss_signed_in_and_used_kib']:.2f}x; "
                  f"start-up to ready {many['median_ready_ms'] - one['median_ready_ms']:+.0f} ms (wall), "
                  f"{many['median_cpu_at_ready_ms'] - one['median_cpu_at_ready_ms']:+.0f} ms (tipd's CPU).", ""]
    if "endpoint" in r:
        lines += ["| profile (cached) | req/s (median) | p99 | tipd CPU per request |", "| --- | --- | --- | --- |"]
        for p, e in r["endpoint"].items():
            lines.append(f"| {p} | {e['median_rps']:.0f} | {e['median_p99_ms']:.2f} ms | "
                         f"{e['median_server_cpu_us_per_request']:.0f} µs |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sim-only", action="store_true", help="only the simulated day")
    ap.add_argument("--hours", type=int, default=24)
    ap.add_argument("--starts", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--duration", type=int, default=5)
    args = ap.parse_args()
    results: dict[str, Any] = {"uptime_start": uptime()}
    results["simulated"] = asyncio.run(simulated_day(args.hours))
    if not args.sim_only:
        from tests.support.aws import ACCOUNT_ACCESS, DEFAULT_SCOPES, AppConfig, FakeAWS, FakeConfig, MotoServer
        from tests.support.idp import IdP

        with IdP() as idp, MotoServer() as moto:
            config = FakeConfig(applications={APP_ARN: AppConfig(
                issuer_url=idp.issuer, audiences=[idp.client_id], claim="email",
                scopes=[*DEFAULT_SCOPES, ACCOUNT_ACCESS])}, users={"alice@example.com": ALICE_ID})
            with FakeAWS(moto.url, config) as fake:
                fake.portal.assign(ALICE_ID, PROD, "AdministratorAccess")
                results["startup"] = memory_and_startup(idp, fake, args.starts)
                results["endpoint"] = endpoint_cost(idp, fake, args.rounds, args.duration)
    results["uptime_end"] = uptime()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"\nraw numbers: {RESULTS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
