"""Benchmark of the credential endpoint (issue 2), side by side with a bare aiohttp handler.

    .venv/bin/python bench/endpoint.py            # full run (~2 min); needs `wrk` (apt-get install wrk)

Runs the real tipd in an isolated home against the test stack (the npm oidc-provider IdP, moto and the
project's AWS fake, as in tests/conftest.py), signs in with `tipctl login` (headless browser), then measures:

1. warm fetch, one keep-alive client (wrk -t1 -c1 --latency): p50/p99 latency    target: tipd p99 <= 0.5 ms
2. 16 keep-alive clients (wrk -c16 --latency): requests/s                          target: tipd >= 0.85x bare
   (1 and 2 also for a cached S3 Access Grants fetch, /v1/s3ag/<profile>?target=..., issue 6: same targets)
3. credential resolution in N fresh boto3 processes (imports excluded)             target: tipd <= 1.2x bare
4. 200 concurrent cold requests right after a restart: upstream calls              target: exactly one each

Both targets of the performance guard (issue 12: 1 and 2) come from the same run, next to the load average
(`uptime`) at its start and end. `--wrk-only` measures only 1 and 2 (about 1.5 min on a quiet machine);
`--rounds N` measures only 1 and 2, as the median of N rounds of freshly started tipd and bare processes
(about 30 s a round).

Prints a Markdown table; writes every raw number to bench/results/endpoint.json.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.net import free_port, wait_for_port  # noqa: E402
from tests.support.stack import APP_ARN, BIN, Home, Tipd, tipctl, wait_for  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "endpoint.json"
PROFILE = "work"
UPSTREAM_OPS = ("AssumeRoleWithWebIdentity", "CreateTokenWithIAM", "AssumeRole")
ALICE_ID = "9067e4a2-alice"
#: 16 clients: tipd's requests/s at least this share of the bare handler's (issue 12's performance guard)
RPS_TARGET = 0.85
S3AG_QUERY = "target=s3%3A%2F%2Fbench-data%2Fprefix%2F&permission=READ"

BARE_SERVER = r'''
import sys
from aiohttp import web
body = open(sys.argv[2], "rb").read()
async def credentials(request):
    return web.Response(body=body, content_type="application/json")
app = web.Application()
app.router.add_get("/v1/credentials/{profile}", credentials)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
'''

BOTO3_PROBE = r'''
import json, time
import boto3
t0 = time.perf_counter()
creds = boto3.Session().get_credentials()
frozen = creds.get_frozen_credentials()
ms = (time.perf_counter() - t0) * 1000
print(json.dumps({"ms": ms, "method": creds.method, "key": frozen.access_key[:4]}))
'''

# models the aws-samples sample CLI: a Python process that prints Version 1 JSON
FAKE_CREDENTIAL_PROCESS = r'''
import json, time
print(json.dumps({"Version": 1, "AccessKeyId": "AKIA" + "FAKE" * 4,
                  "SecretAccessKey": "fakefakefakefakefakefakefakefakefakefake",
                  "SessionToken": "fake-session-token",
                  "Expiration": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))}))
'''


# --------------------------------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------------------------------

def _connects(family: int, addr: str | tuple[str, int]) -> bool:
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(0.5)
    try:
        s.connect(addr)
        return True
    except OSError:
        return False
    finally:
        s.close()


class BenchTipd(Tipd):
    """tipd as in tests/support/stack.py, but at the production log level (INFO) and with readiness
    polled directly on the sockets (the cold test must fire while the chain is still being fetched)."""

    def spawn(self) -> BenchTipd:
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([str(BIN / "tipd"), "--config", str(self.home.config_file), "--log-level", "INFO"],
                                     env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        return self

    def wait_port(self, timeout: float = 20) -> None:
        wait_for(lambda: _connects(socket.AF_INET, ("127.0.0.1", self.home.port)), timeout, "tipd port", self.proc,
                 interval=0.002)

    def wait_control(self, timeout: float = 20) -> None:
        wait_for(lambda: _connects(socket.AF_UNIX, str(self.home.socket)), timeout, "tipd control socket", self.proc,
                 interval=0.002)


def http_get(url: str, token: str) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Authorization": token})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


# --------------------------------------------------------------------------------------------------
# wrk
# --------------------------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        raise ValueError(f"cannot parse wrk time {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out: str) -> dict[str, Any]:
    pct = {f"p{p}": _ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)\s*$", out, re.M)}
    rps_line = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    total = re.search(r"^\s+(\d+) requests in ([\d.]+\w+),", out, re.M)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    lat = re.search(r"^\s+Latency\s+(\S+)\s+(\S+)\s+(\S+)", out, re.M)
    if rps_line is None or total is None or lat is None:
        raise ValueError(f"cannot parse wrk's output:\n{out}")
    rps = float(rps_line.group(1))
    return {
        "latency_ms": pct,
        "latency_avg_ms": _ms(lat.group(1)), "latency_stdev_ms": _ms(lat.group(2)), "latency_max_ms": _ms(lat.group(3)),
        "requests_per_s": rps,
        "requests": int(total.group(1)),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(map(int, errs.groups())) if errs else 0,
        "raw": out,
    }


_HZ = os.sysconf("SC_CLK_TCK")


def _proc_cpu_s(pid: int) -> float:
    """utime + stime of one process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _HZ


def _system_cpu_s() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine: user+nice+system+irq+softirq+steal, and steal."""
    f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / _HZ, f[7] / _HZ


def run_wrk(url: str, token: str, threads: int, conns: int, duration: int,
            server_pid: int | None = None) -> dict[str, Any]:
    """One wrk run; with server_pid, also the server's CPU per request and how much CPU anything other
    than the server and wrk used meanwhile (a noise indicator on a shared machine)."""
    import resource

    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration}s", "--latency", "-H", f"Authorization: {token}", url]
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    sys0, steal0 = _system_cpu_s()
    srv0 = _proc_cpu_s(server_pid) if server_pid else 0.0
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=duration + 60).stdout
    srv1 = _proc_cpu_s(server_pid) if server_pid else 0.0
    sys1, steal1 = _system_cpu_s()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = parse_wrk(out)
    if server_pid:
        wrk_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        res["server_cpu_s"] = srv1 - srv0
        res["server_cpu_us_per_request"] = (srv1 - srv0) / res["requests"] * 1e6
        res["wrk_cpu_s"] = wrk_cpu
        res["other_cpu_s"] = max(0.0, (sys1 - sys0) - (srv1 - srv0) - wrk_cpu)
        res["steal_s"] = steal1 - steal0
    res["command"] = " ".join(cmd[:-3]) + " -H 'Authorization: <token>' " + url
    if res["non_2xx"] or res["socket_errors"]:
        raise RuntimeError(f"wrk saw errors against {url}:\n{out}")
    return res


def measured_wrk(url: str, token: str, threads: int, conns: int, duration: int, pid: int, max_noise: float,
                 retries: int, wait: float) -> dict[str, Any]:
    """run_wrk, repeated (up to `retries` more times) while other processes used more than `max_noise`
    CPU-seconds during the run: on a shared 2-core machine one busy neighbour halves the numbers. Every
    attempt is kept in the result; the last one is the measurement."""
    attempts = []
    for _ in range(retries + 1):
        wait_quiet(wait)
        res = run_wrk(url, token, threads, conns, duration, pid)
        attempts.append({k: v for k, v in res.items() if k != "raw"})
        if res["other_cpu_s"] <= max_noise:
            break
        print(f"  noisy run (other processes used {res['other_cpu_s']:.2f} CPU-s); repeating", file=sys.stderr)
    res["noisy"] = res["other_cpu_s"] > max_noise
    res["attempts"] = attempts
    return res


def wait_quiet(timeout: float, busy_max: float = 0.15) -> float:
    """Wait (up to `timeout` s) until the machine is idle: less than `busy_max` of a core busy over 1 s.
    Returns the busy fraction last seen."""
    deadline = time.monotonic() + timeout
    while True:
        b0, _ = _system_cpu_s()
        time.sleep(1.0)  # the measuring window, not a synchronisation sleep
        busy = _system_cpu_s()[0] - b0
        if busy <= busy_max or time.monotonic() > deadline:
            return busy
        print(f"waiting for a quiet machine ({busy:.2f} cores busy)", file=sys.stderr)


# --------------------------------------------------------------------------------------------------
# fresh boto3 processes
# --------------------------------------------------------------------------------------------------

def boto3_env(base: dict[str, str], tmp: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in base.items() if not k.startswith("AWS_")}
    home = Path(tempfile.mkdtemp(prefix="home-", dir=tmp))
    env.update({"HOME": str(home), "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_CONFIG_FILE": str(home / "no-config"),
                "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-credentials")})
    env.update(extra)
    return env


def run_probe(env: dict[str, str]) -> dict[str, Any]:
    r = subprocess.run([sys.executable, "-c", BOTO3_PROBE], env=env, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"boto3 probe failed: {r.stderr}")
    probe: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
    return probe


def summary(xs: list[float]) -> dict[str, Any]:
    s = sorted(xs)
    q = statistics.quantiles(s, n=10, method="inclusive")
    return {"median": statistics.median(s), "p90": q[8], "min": s[0], "max": s[-1], "samples": xs}


# --------------------------------------------------------------------------------------------------
# cold burst
# --------------------------------------------------------------------------------------------------

async def burst(url: str, token: str, n: int) -> dict[str, Any]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=0, force_close=True)  # one connection per request
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        t0 = time.perf_counter()

        async def one() -> tuple[int, float]:
            async with http.get(url, headers={"Authorization": token}) as r:
                await r.read()
                return r.status, (time.perf_counter() - t0) * 1000

        results = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
    statuses: dict[str, int] = {}
    done = []
    for r in results:
        key = type(r).__name__ if isinstance(r, BaseException) else str(r[0])
        statuses[key] = statuses.get(key, 0) + 1
        if not isinstance(r, BaseException):
            done.append(r[1])
    return {"statuses": statuses, "ok": statuses.get("200", 0), "wall_ms": max(done) if done else None,
            "first_answer_ms": min(done) if done else None,
            "median_answer_ms": statistics.median(done) if done else None}


# --------------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------------

def machine() -> dict[str, Any]:
    import aiohttp
    import boto3
    import botocore

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    wrk_v = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()[0]
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout

    return {"git_head": git("rev-parse", "--short", "HEAD").strip(),
            "tipd_uncommitted": [ln[3:] for ln in git("status", "--porcelain", "--", "tipd").splitlines()],
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "nproc": os.cpu_count(),
            "cpu": cpu, "kernel": platform.release(), "python": platform.python_version(),
            "aiohttp": aiohttp.__version__, "boto3": boto3.__version__, "botocore": botocore.__version__,
            "wrk": wrk_v.split(" Copyright")[0], "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
            "uptime_at_start": uptime()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    ap.add_argument("--wrk-threads", type=int, default=1,
                    help="wrk threads for the 16-client run "
                         "(default 1: on 2 cores, wrk keeps one, the server the other)")
    ap.add_argument("--warmup", type=int, default=3, help="seconds of unrecorded wrk load per server first (default 3)")
    ap.add_argument("-n", type=int, default=15, help="fresh boto3 processes per variant (default 15)")
    ap.add_argument("--burst", type=int, default=200, help="concurrent cold requests (default 200)")
    ap.add_argument("--max-noise", type=float, default=0.5,
                    help="CPU-seconds other processes may use during a wrk run before it is repeated (default 0.5)")
    ap.add_argument("--retries", type=int, default=5, help="repeats of a noisy wrk run (default 5)")
    ap.add_argument("--wait-quiet", type=float, default=120,
                    help="before each measurement, wait up to this many seconds for an idle machine (default 120)")
    ap.add_argument("--wrk-only", action="store_true",
                    help="measure only the wrk runs (1 and 2: the performance guard), "
                         "not boto3 processes or the cold burst")
    ap.add_argument("--rounds", type=int, default=0,
                    help="the performance guard as the median of N rounds, each with a freshly started tipd and "
                         "bare server measured alternately (1 and 2 only); see 'Fresh pairs' in docs/performance.md")
    ap.add_argument("--round-duration", type=int, default=5, help="seconds per wrk run in --rounds (default 5)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        print("wrk is missing: apt-get install -y wrk", file=sys.stderr)
        return 2

    from tests.support.aws import AppConfig, FakeAWS, FakeConfig, MotoServer
    from tests.support.idp import IdP

    results: dict[str, Any] = {"machine": machine(), "settings": vars(args) | {"out": str(args.out)}}
    tmp = Path(tempfile.mkdtemp(prefix="bench-endpoint-"))
    bare = tipd = None
    with IdP() as idp, MotoServer() as moto:
        config = FakeConfig(applications={APP_ARN: AppConfig(issuer_url=idp.issuer, audiences=[idp.client_id],
                                                             claim="email")},
                            users={"alice@example.com": "9067e4a2-alice"})
        with FakeAWS(moto.url, config) as fake:
            home = Home(idp.issuer, idp.client_id, fake.url)
            try:
                tipd = BenchTipd(home).spawn()
                tipd.wait_control()
                tipctl(home, "login")
                tipd_url = f"http://127.0.0.1:{home.port}/v1/credentials/{PROFILE}"
                token = home.token()
                status, body = http_get(tipd_url, token)
                assert status == 200, (status, body)
                # an S3 Access Grant for alice, asked once here; wrk then measures the cached fetch
                fake.access_grants.grant(ALICE_ID, "s3://bench-data/prefix/*", "READ")
                s3ag_url = f"http://127.0.0.1:{home.port}/v1/s3ag/{PROFILE}?{S3AG_QUERY}"
                status, s3ag_body = http_get(s3ag_url, token)
                assert status == 200 and fake.count("GetDataAccess") == 1, (status, s3ag_body)
                results["s3ag_body_bytes"] = len(s3ag_body)

                # the bare handler: same bytes, same route shape, same content type, no checks
                body_file = tmp / "body.json"
                body_file.write_bytes(body)
                bare_token = tmp / "bare-token"
                bare_token.write_text(token)
                bare, bare_url = start_bare(body_file)
                b_status, b_body = http_get(bare_url, token)
                assert b_status == 200 and b_body == body
                results["body_bytes"] = len(body)

                if args.rounds:
                    tipd, bare = fresh_pairs(args, results, home, tipd, bare, body_file, token)
                    return finish(results, args.out)

                # 1 and 2: wrk, tipd and bare alternately
                targets = {"tipd": tipd_url, "s3ag": s3ag_url, "bare": bare_url}
                pids = {"tipd": tipd.proc.pid, "s3ag": tipd.proc.pid, "bare": bare.pid}
                # an unrecorded warm-up of each server first: the first seconds of load on a fresh process
                # show p99 outliers (page faults, allocator growth) that a long-running daemon does not have
                for name, url in targets.items():
                    print(f"warm-up wrk -t1 -c16 -d{args.warmup}s  {name} ...", file=sys.stderr)
                    run_wrk(url, token, 1, 16, args.warmup)
                for key, threads, conns in (("one_client", 1, 1), ("sixteen_clients", args.wrk_threads, 16)):
                    results[key] = {}
                    for name, url in targets.items():
                        print(f"wrk -t{threads} -c{conns} -d{args.duration}s  {name} ...", file=sys.stderr)
                        results[key][name] = measured_wrk(url, token, threads, conns, args.duration, pids[name],
                                                          args.max_noise, args.retries, args.wait_quiet)
                results["s3ag_upstream_calls"] = fake.count("GetDataAccess")  # 1: every wrk request was cached
                if args.wrk_only:
                    return finish(results, args.out)

                # 3: fresh boto3 processes, the variants interleaved round by round
                fake_proc = tmp / "fake_credential_process.py"
                fake_proc.write_text(FAKE_CREDENTIAL_PROCESS)
                cfg_c, cfg_d = tmp / "config-sample", tmp / "config-tipctl"
                cfg_c.write_text(f"[default]\ncredential_process = {sys.executable} {fake_proc}\n")
                cfg_d.write_text(f"[default]\ncredential_process = {BIN / 'tipctl'} credential-process {PROFILE}\n")
                variants = {
                    "tipd": {"AWS_CONTAINER_CREDENTIALS_FULL_URI": tipd_url,
                             "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(home.token_file)},
                    "bare": {"AWS_CONTAINER_CREDENTIALS_FULL_URI": bare_url,
                             "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(bare_token)},
                    "credential_process_python": {"AWS_CONFIG_FILE": str(cfg_c)},
                    "tipctl_credential_process": {"AWS_CONFIG_FILE": str(cfg_d)},
                }
                expect = {"tipd": ("container-role", "ASIA"), "bare": ("container-role", "ASIA"),
                          "credential_process_python": ("custom-process", "AKIA"),
                          "tipctl_credential_process": ("custom-process", "ASIA")}
                # tipctl finds the daemon through the XDG directories of the isolated home
                # (boto3_env drops every AWS_* variable of it and gives each variant its own empty HOME)
                envs = {k: boto3_env(home.env, tmp, v) for k, v in variants.items()}
                wait_quiet(args.wait_quiet)
                run_probe(envs["bare"])  # one unrecorded warm-up (page cache of the boto3 imports)
                samples: dict[str, list[float]] = {k: [] for k in variants}
                print(f"boto3: {args.n} fresh processes x {len(variants)} variants ...", file=sys.stderr)
                for _ in range(args.n):
                    for name, env in envs.items():
                        r = run_probe(env)
                        if (r["method"], r["key"]) != expect[name]:
                            raise RuntimeError(f"{name}: credentials came from {r}, expected {expect[name]}")
                        samples[name].append(r["ms"])
                results["boto3"] = {k: summary(v) for k, v in samples.items()}

                # 4: restart, then a burst of cold requests
                print(f"cold burst of {args.burst} ...", file=sys.stderr)
                assert tipd.stop() == 0
                wait_quiet(args.wait_quiet)
                fake.clear_calls()
                idp.reset_stats()
                t_spawn = time.perf_counter()
                tipd = BenchTipd(home).spawn()
                tipd.wait_port()
                t_port = time.perf_counter()
                cold = asyncio.run(burst(tipd_url, home.token(), args.burst))
                cold["spawn_to_port_ms"] = (t_port - t_spawn) * 1000
                cold["upstream_calls"] = {op: fake.count(op) for op in UPSTREAM_OPS}
                cold["idp_token_requests"] = idp.stats().get("/token", 0)
                tipd.wait_control()
                results["cold"] = cold
            finally:
                if bare is not None:
                    stop_bare(bare)
                if tipd is not None:
                    tipd.stop()
                home.cleanup()
                shutil.rmtree(tmp, ignore_errors=True)

    return finish(results, args.out)


def start_bare(body_file: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The bare handler in a process of its own, serving body_file; returns it and its credentials URL."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", BARE_SERVER, str(port), str(body_file)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for_port(port, timeout=20)
    return proc, f"http://127.0.0.1:{port}/v1/credentials/{PROFILE}"


def stop_bare(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def fresh_pairs(args: argparse.Namespace, results: dict[str, Any], home: Home, tipd: BenchTipd,
                bare: subprocess.Popen[bytes], body_file: Path,
                token: str) -> tuple[BenchTipd, subprocess.Popen[bytes]]:
    """The guard over N rounds. Two processes of the same code differ here by up to 12 % in CPU per request
    (docs/performance.md), so one run compares one draw of each: every round starts a new tipd (the same
    sign-in, from its store) and a new bare server, warms both up, then measures 1 and 16 clients on each,
    alternating which goes first. The result is the median over the rounds, next to every round."""
    rounds = []
    try:
        for i in range(args.rounds):
            assert tipd.stop() == 0
            stop_bare(bare)
            tipd = BenchTipd(home).spawn()
            tipd.wait_control()
            tipd_url = f"http://127.0.0.1:{home.port}/v1/credentials/{PROFILE}"
            status, _ = http_get(tipd_url, token)
            assert status == 200, status
            bare, bare_url = start_bare(body_file)
            targets = {"tipd": (tipd_url, tipd.proc.pid), "bare": (bare_url, bare.pid)}
            order = ["tipd", "bare"] if i % 2 == 0 else ["bare", "tipd"]
            for name in order:
                run_wrk(targets[name][0], token, 1, 16, args.warmup)
            r: dict[str, Any] = {"order": order}
            for key, conns in (("one_client", 1), ("sixteen_clients", 16)):
                r[key] = {}
                for name in order:
                    url, pid = targets[name]
                    print(f"round {i + 1}/{args.rounds}: wrk -t1 -c{conns} -d{args.round_duration}s  {name} ...",
                          file=sys.stderr)
                    r[key][name] = measured_wrk(url, token, 1, conns, args.round_duration, pid, args.max_noise,
                                                args.retries, args.wait_quiet)
            r["ratio"] = r["sixteen_clients"]["tipd"]["requests_per_s"] / r["sixteen_clients"]["bare"]["requests_per_s"]
            print(f"round {i + 1}: 16 clients {r['ratio']:.2f}x bare; 1-client p99 tipd "
                  f"{r['one_client']['tipd']['latency_ms']['p99']:.3f} ms, bare "
                  f"{r['one_client']['bare']['latency_ms']['p99']:.3f} ms", file=sys.stderr)
            rounds.append(r)
    except BaseException:
        tipd.stop()  # the processes of this round: the caller stops the ones it passed in
        stop_bare(bare)
        raise
    med = statistics.median
    results["rounds"] = {
        "rounds": rounds,
        "median_ratio": med(r["ratio"] for r in rounds),
        "median_p99_ms": {n: med(r["one_client"][n]["latency_ms"]["p99"] for r in rounds) for n in ("tipd", "bare")},
        "median_cpu_us": {n: med(r["sixteen_clients"][n]["server_cpu_us_per_request"] for r in rounds)
                          for n in ("tipd", "bare")},
        "noisy_runs": sum(r[k][n]["noisy"] for r in rounds for k in ("one_client", "sixteen_clients")
                          for n in ("tipd", "bare")),
    }
    return tipd, bare


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def finish(results: dict[str, Any], out: Path) -> int:
    results["machine"]["loadavg_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
    results["machine"]["uptime_at_end"] = uptime()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"\nraw numbers: {out}", file=sys.stderr)
    return 0


def rounds_table(r: dict[str, Any]) -> str:
    m, g = r["machine"], r["rounds"]
    def ok(cond: bool) -> str:
        return "met" if cond else "**missed**"

    lines = [
        f"Machine: {m['nproc']} cores ({m['cpu']}), Linux {m['kernel']}, Python {m['python']}, aiohttp {m['aiohttp']}, "
        f"{m['wrk']}; {m['date']}; tipd at {m['git_head']}"
        + (f" with uncommitted changes to {', '.join(m['tipd_uncommitted'])}" if m["tipd_uncommitted"] else ""),
        "",
        "| round (first measured) | 1 client p99 ms: tipd, bare | 16 clients requests/s: tipd, bare (ratio) | "
        "16 clients CPU per request: tipd, bare (us) | steal in the 1-client runs: tipd, bare (s) |",
        "|---|---|---|---|---|",
    ]
    for i, x in enumerate(g["rounds"], 1):
        one, six = x["one_client"], x["sixteen_clients"]
        lines.append(f"| {i} ({x['order'][0]}) | {one['tipd']['latency_ms']['p99']:.3f}, "
                     f"{one['bare']['latency_ms']['p99']:.3f} | {six['tipd']['requests_per_s']:.0f}, "
                     f"{six['bare']['requests_per_s']:.0f} ({x['ratio']:.2f}x) | "
                     f"{six['tipd']['server_cpu_us_per_request']:.1f}, "
                     f"{six['bare']['server_cpu_us_per_request']:.1f} | "
                     f"{one['tipd']['steal_s']:.2f}, {one['bare']['steal_s']:.2f} |")
    p99 = g["median_p99_ms"]
    lines += [
        f"| **median of {len(g['rounds'])}** | **{p99['tipd']:.3f}**, {p99['bare']:.3f} | "
        f"**{g['median_ratio']:.2f}x** | {g['median_cpu_us']['tipd']:.1f}, {g['median_cpu_us']['bare']:.1f} | |",
        "",
        f"Guard: 16 clients >= {RPS_TARGET}x bare: {g['median_ratio']:.2f}x, {ok(g['median_ratio'] >= RPS_TARGET)}; "
        f"1-client p99 <= 0.5 ms: {p99['tipd']:.3f} ms, {ok(p99['tipd'] <= 0.5)} "
        f"(the bare handler's own: {p99['bare']:.3f} ms). Noisy runs kept after retries: {g['noisy_runs']}. "
        "Steal: CPU time the hypervisor gave to other guests while this VM wanted it (/proc/stat).",
        f"uptime at start: {m.get('uptime_at_start', '?')}; at end: {m.get('uptime_at_end', '?')}",
    ]
    return "\n".join(lines)


def table(r: dict[str, Any]) -> str:
    if "rounds" in r:
        return rounds_table(r)
    m, one, six = r["machine"], r["one_client"], r["sixteen_clients"]
    def f(x: float) -> str:
        return f"{x:.3f}"

    ratio_rps = six["tipd"]["requests_per_s"] / six["bare"]["requests_per_s"]
    p99 = one["tipd"]["latency_ms"]["p99"]
    threads = r["settings"]["wrk_threads"]
    def ok(cond: bool) -> str:
        return "met" if cond else "**missed**"

    s3one, s3six = one["s3ag"], six["s3ag"]
    s3_p99 = s3one["latency_ms"]["p99"]
    s3_ratio = s3six["requests_per_s"] / six["bare"]["requests_per_s"]
    lines = [
        f"Machine: {m['nproc']} cores ({m['cpu']}), Linux {m['kernel']}, Python {m['python']}, aiohttp {m['aiohttp']}, "
        f"boto3 {m['boto3']}, {m['wrk']}; {m['date']}; tipd at {m['git_head']}"
        + (f" with uncommitted changes to {', '.join(m['tipd_uncommitted'])}" if m["tipd_uncommitted"] else ""),
        "",
        "| Measurement | tipd | bare aiohttp | target | result |",
        "|---|---|---|---|---|",
        f"| 1 client keep-alive (wrk -t1 -c1 -d{r['settings']['duration']}s): p50 / p99 ms | "
        f"{f(one['tipd']['latency_ms']['p50'])} / {f(p99)} | "
        f"{f(one['bare']['latency_ms']['p50'])} / {f(one['bare']['latency_ms']['p99'])} | p99 <= 0.5 ms | "
        f"{ok(p99 <= 0.5)} |",
        f"| 1 client: requests/s | {one['tipd']['requests_per_s']:.0f} | {one['bare']['requests_per_s']:.0f} | | |",
        f"| 16 clients keep-alive (wrk -t{threads} -c16): requests/s | {six['tipd']['requests_per_s']:.0f} | "
        f"{six['bare']['requests_per_s']:.0f} | >= {RPS_TARGET}x bare | "
        f"{ratio_rps:.2f}x, {ok(ratio_rps >= RPS_TARGET)} |",
        f"| 16 clients: server CPU per request (us) | {six['tipd']['server_cpu_us_per_request']:.1f} | "
        f"{six['bare']['server_cpu_us_per_request']:.1f} | | |",
        f"| 16 clients: p50 / p99 ms | {f(six['tipd']['latency_ms']['p50'])} / {f(six['tipd']['latency_ms']['p99'])} | "
        f"{f(six['bare']['latency_ms']['p50'])} / {f(six['bare']['latency_ms']['p99'])} | | |",
        f"| S3 Access Grants, cached (`/v1/s3ag/{PROFILE}?target=...`), 1 client: p50 / p99 ms | "
        f"{f(s3one['latency_ms']['p50'])} / {f(s3_p99)} | | p99 <= 0.5 ms | {ok(s3_p99 <= 0.5)} |",
        f"| S3 Access Grants, cached, 16 clients: requests/s | {s3six['requests_per_s']:.0f} "
        f"({s3six['requests_per_s'] / six['tipd']['requests_per_s']:.2f}x the identity-enhanced fetch) | "
        f"{six['bare']['requests_per_s']:.0f} | >= {RPS_TARGET}x bare | "
        f"{s3_ratio:.2f}x, {ok(s3_ratio >= RPS_TARGET)} |",
        f"| S3 Access Grants, 16 clients: server CPU per request (us) | {s3six['server_cpu_us_per_request']:.1f} | "
        f"{six['bare']['server_cpu_us_per_request']:.1f} | | |",
        f"| GetDataAccess calls during the S3 Access Grants wrk runs | {r['s3ag_upstream_calls'] - 1} | | 0 | "
        f"{ok(r['s3ag_upstream_calls'] == 1)} |",
    ]
    if "boto3" in r:
        b = r["boto3"]
        ratio_boto = b["tipd"]["median"] / b["bare"]["median"]
        lines += [
            f"| fresh boto3 process, credential resolution (N={len(b['tipd']['samples'])}): median / p90 ms | "
            f"{b['tipd']['median']:.1f} / {b['tipd']['p90']:.1f} | "
            f"{b['bare']['median']:.1f} / {b['bare']['p90']:.1f} | "
            f"<= 1.2x bare | {ratio_boto:.2f}x, {ok(ratio_boto <= 1.2)} |",
            f"| same, credential_process spawning Python (sample CLI model) | "
            f"{b['credential_process_python']['median']:.1f} / {b['credential_process_python']['p90']:.1f} "
            "| | reference | |",
            f"| same, `tipctl credential-process` | "
            f"{b['tipctl_credential_process']['median']:.1f} / {b['tipctl_credential_process']['p90']:.1f} "
            "| | reference | |",
        ]
    if "cold" in r:
        c = r["cold"]
        calls = c["upstream_calls"]
        lines += [
            f"| {sum(c['statuses'].values())} concurrent cold requests after restart: upstream calls "
            f"ARWWI / CreateTokenWithIAM / AssumeRole | {calls['AssumeRoleWithWebIdentity']} / "
            f"{calls['CreateTokenWithIAM']} / {calls['AssumeRole']} | | 1 / 1 / 1 | "
            f"{ok(all(v == 1 for v in calls.values()))} |",
            f"| cold burst: 200 OK, wall time to last answer (port open after {c['spawn_to_port_ms']:.0f} ms) | "
            f"{c['ok']} OK, {c['wall_ms']:.0f} ms | | all OK | {ok(c['ok'] == sum(c['statuses'].values()))} |",
        ]
    noise = ", ".join(f"{key} {name} {r[key][name]['other_cpu_s']:.2f} s"
                      + (" (NOISY)" if r[key][name]["noisy"] else "")
                      for key in ("one_client", "sixteen_clients") for name in ("tipd", "s3ag", "bare"))
    lines += ["", f"CPU used by other processes during each {r['settings']['duration']} s wrk run "
                  "(noise; ~0 on a quiet "
                  f"machine): {noise}. Load average at start / end: {' '.join(m['loadavg_at_start'])} / "
                  f"{' '.join(m.get('loadavg_at_end', []))}.",
              f"uptime at start: {m.get('uptime_at_start', '?')}; at end: {m.get('uptime_at_end', '?')}"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
