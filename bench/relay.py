"""Benchmark of the container relay (issue 14): what tipd-relay adds to a credential fetch, and a fresh boto3
process in a "container" (a network namespace of its own, as tests/acceptance/test_relay.py) against one on the
host. Needs root (ip netns).

    .venv/bin/python bench/relay.py            # about 1-2 min

1. warm fetch latency, one keep-alive client doing sequential GETs: inside the namespace through the relay, and
   on the host straight to tipd's endpoint with the same grant token; alternating rounds in the same run
                                                                        target: relay p99 - direct p99 <= 0.3 ms
2. credential resolution in N fresh boto3 processes (time around get_credentials, imports excluded), inside the
   namespace through the relay and on the host straight to the endpoint, alternating     target: <= 1.2x host

Prints a Markdown table with `uptime` at start and end; writes the raw numbers to bench/results/relay.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.consumer import make_grant  # noqa: E402
from tests.support.net import free_port  # noqa: E402
from tests.support.netns import Netns  # noqa: E402
from tests.support.stack import APP_ARN, Home, Tipd, tipctl, wait_for  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "relay.json"
LATENCY_TARGET_MS = 0.3
BOTO3_TARGET = 1.2

#: sequential GETs on one keep-alive connection; prints each latency in seconds, one per line
LATENCY_CLIENT = r"""
import http.client, sys, time
host, port, path, token, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
c = http.client.HTTPConnection(host, port, timeout=10)
h = {"Authorization": token, "Host": f"{host}:{port}"}
out = []
for i in range(n + 50):
    t = time.perf_counter()
    c.request("GET", path, headers=h)
    r = c.getresponse(); r.read()
    assert r.status == 200, r.status
    if i >= 50:  # warm-up
        out.append(time.perf_counter() - t)
print("\n".join(map(repr, out)))
"""
BOTO3_CLIENT = r"""
import time, boto3
s = boto3.Session()
t = time.perf_counter()
key = s.get_credentials().get_frozen_credentials().access_key
print(repr(time.perf_counter() - t), key[:4])
"""


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=2000, help="sequential requests per latency round")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds (relay, direct)")
    ap.add_argument("--boto3", type=int, default=12, help="fresh boto3 processes per side")
    ap.add_argument("--rt", action="store_true", help="run tipd, the relay and the latency clients under SCHED_FIFO "
                    "(chrt), to see the relay's own cost apart from the other load on a shared machine")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    from tests.support.aws import AppConfig, FakeAWS, FakeConfig, MotoServer
    from tests.support.idp import IdP

    results: dict[str, Any] = {"uptime_at_start": uptime(), "settings": {k: str(v) for k, v in vars(args).items()}}
    if args.rt:
        print("SCHED_FIFO (--rt): tipd, the relay and the latency clients", file=sys.stderr)
    with IdP() as idp, MotoServer() as moto:
        config = FakeConfig(applications={APP_ARN: AppConfig(issuer_url=idp.issuer, audiences=[idp.client_id],
                                                             claim="email")},
                            users={"alice@example.com": "9067e4a2-alice"})
        with FakeAWS(moto.url, config) as fake:
            home = Home(idp.issuer, idp.client_id, fake.url)
            tipd = Tipd(home).start()
            ns = Netns()
            relay = None
            try:
                tipctl(home, "login")
                grant = make_grant(home, "bench", "work")
                port = free_port()
                ready = Path(tempfile.mkdtemp()) / "ready"
                relay = subprocess.Popen(ns.cmd(sys.executable, "-m", "tipd.relay", "--listen", f"127.0.0.1:{port}",
                                                "--socket", str(home.dir / "run/tipd/relay/credentials.sock"),
                                                "--ready-file", str(ready)), env=home.env, stderr=subprocess.DEVNULL)
                wait_for(ready.exists, timeout=30, what="the relay", proc=relay)
                rt: list[str] = []
                if args.rt:
                    assert tipd.proc is not None
                    relay_pid = int(ready.read_text())  # the relay itself, not `ip netns exec`
                    for pid in (tipd.proc.pid, relay_pid):
                        subprocess.run(["chrt", "-a", "-f", "-p", "10", str(pid)], check=True)
                    rt = ["chrt", "-f", "10"]
                path = "/v1/credentials/work"
                lat: dict[str, list[float]] = {"relay": [], "direct": []}
                for _ in range(args.rounds):
                    for side in ("relay", "direct"):
                        cmd = [sys.executable, "-c", LATENCY_CLIENT, "127.0.0.1",
                               str(port if side == "relay" else home.port), path, grant["token"], str(args.requests)]
                        out = subprocess.run([*rt, *(ns.cmd(*cmd) if side == "relay" else cmd)], env=home.env,
                                             capture_output=True, text=True, check=True, timeout=600).stdout
                        lat[side] += [float(x) for x in out.split()]
                boto: dict[str, list[float]] = {"namespace": [], "host": []}
                for _ in range(args.boto3):
                    for side in ("namespace", "host"):
                        url = f"http://127.0.0.1:{port if side == 'namespace' else home.port}{path}"
                        env = dict(home.env, AWS_CONTAINER_CREDENTIALS_FULL_URI=url,
                                   AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=grant["token_file"])
                        cmd = [sys.executable, "-c", BOTO3_CLIENT]
                        out = subprocess.run(ns.cmd(*cmd) if side == "namespace" else cmd, env=env,
                                             capture_output=True, text=True, check=True, timeout=120).stdout
                        boto[side].append(float(out.split()[0]))
            finally:
                if relay is not None:
                    relay.terminate()
                    relay.wait(10)
                ns.close()
                tipd.stop()
                home.cleanup()
    results["uptime_at_end"] = uptime()
    ms = {side: {"p50": pct(v, 50) * 1e3, "p90": pct(v, 90) * 1e3, "p99": pct(v, 99) * 1e3, "n": len(v)}
          for side, v in lat.items()}
    added = ms["relay"]["p99"] - ms["direct"]["p99"]
    med = {side: statistics.median(v) * 1e3 for side, v in boto.items()}
    ratio = med["namespace"] / med["host"]
    results.update(latency_ms=ms, relay_added_p99_ms=added, boto3_median_ms=med, boto3_ratio=ratio,
                   raw={"boto3_s": boto})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"load at start: {results['uptime_at_start']}\nload at end:   {results['uptime_at_end']}\n")
    print("| measurement | direct (host) | through the relay (namespace) | result | target |")
    print("|---|---|---|---|---|")
    print(f"| warm fetch p50, 1 keep-alive client | {ms['direct']['p50']:.3f} ms | {ms['relay']['p50']:.3f} ms | "
          f"{ms['relay']['p50'] - ms['direct']['p50']:+.3f} ms | |")
    print(f"| warm fetch p90, 1 keep-alive client | {ms['direct']['p90']:.3f} ms | {ms['relay']['p90']:.3f} ms | "
          f"{ms['relay']['p90'] - ms['direct']['p90']:+.3f} ms | |")
    print(f"| warm fetch p99, 1 keep-alive client | {ms['direct']['p99']:.3f} ms | {ms['relay']['p99']:.3f} ms | "
          f"{added:+.3f} ms | <= +{LATENCY_TARGET_MS} ms {'met' if added <= LATENCY_TARGET_MS else 'MISSED'} |")
    print(f"| fresh boto3 resolves credentials (median of {args.boto3}) | {med['host']:.2f} ms | "
          f"{med['namespace']:.2f} ms | {ratio:.2f}x | <= {BOTO3_TARGET}x "
          f"{'met' if ratio <= BOTO3_TARGET else 'MISSED'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
