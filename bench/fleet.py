"""A fleet of tipd daemons on one virtual clock: what a company's working day costs the shared upstreams (issue 13).

    .venv/bin/python bench/fleet.py                 # 10,000 daemons, two days (ordinary, IdP outage), jitter off/on
    .venv/bin/python bench/fleet.py --people 2000   # smaller and faster

Each person runs one tipd. Their day (seeded, so every run and every variant sees the same people):
- the laptop wakes in the morning: 85 % around 08:55 (normal, sigma 20 min), 15 % anywhere 07:00-11:00;
- 60 % suspend it over lunch (start ~12:20, sigma 20 min; 20-80 min, mean 50);
- it goes to sleep in the evening (~17:45, sigma 50 min, 15:30-21:00). A sleeping laptop calls nothing.
- at wake the first AWS call runs the whole chain: IdP refresh grant, STS AssumeRoleWithWebIdentity, sso-oidc
  CreateTokenWithIAM, STS AssumeRole (with ProvidedContexts); every value lives 1 h (IdP access/id tokens,
  Identity Center token, both STS sessions: tipd's defaults, tipd.config.RefreshConfig);
- 10 % use 20 account profiles (portal GetRoleCredentials, 1 h permission-set sessions, sharing the Identity
  Center token): each first used at wake + an exponential delay (mean 45 min), then kept renewed while the
  laptop is awake (the most it can cost).
The schedule is tipd's own (tipd/refresh.py: `renewal_due`, `renewal_head_start`, `backoff_delay`; the daemon's
scheduler notices a resume within its 5 s tick, tipd.refresh.TICK): a value is renewed 30 min before expiry (less
the random head start when jitter is on); after a suspend every overdue value is renewed at resume; a failed
call is retried after the full-jitter exponential backoff (1 s doubling, 5 min cap).

Days: "ordinary"; "idp-outage": the IdP token endpoint answers 5xx from 10:00 to 10:20 (the AWS stages ride it
out on still-valid tokens; every failed attempt counts as a call on the IdP). Each day runs with jitter off
(RENEW_JITTER = 0, tipd before this change) and on (tipd.refresh.RENEW_JITTER).

Reports per upstream: calls in the day, mean calls/s over 08:00-18:00, the peak second, the peak minute (mean
calls/s over its 60 s), and the peak minute after 11:00 (an outage's echo: values obtained in the same
minutes are renewed in the same minutes every 30 min after, unless jitter spreads them). Pure Python, a few
seconds per 10,000-daemon day. Prints Markdown; writes bench/results/fleet.json.
"""
from __future__ import annotations

import argparse
import heapq
import json
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tipd.config import RefreshConfig  # noqa: E402
from tipd.refresh import RENEW_JITTER, TICK, backoff_delay, renewal_due, renewal_head_start  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "fleet.json"
DAY = 86400
H = 3600.0
M = 60.0
#: the upstreams, in the order of the chain; the portal last
IDP, ARWWI, CTWI, ASSUME, PORTAL = "idp", "sts:AssumeRoleWithWebIdentity", "sso-oidc:CreateTokenWithIAM", \
    "sts:AssumeRole", "sso:GetRoleCredentials"
UPSTREAMS = (IDP, ARWWI, CTWI, ASSUME, PORTAL)
CHAIN = (IDP, ARWWI, CTWI, ASSUME)
LIFETIME = 3600.0  # every value of the chain, and a permission set's default session (1 h)
ACCOUNTS_SHARE, ACCOUNTS_EACH = 0.10, 20
OUTAGE = (10 * H, 10 * H + 20 * M)
WORKDAY = (8 * H, 18 * H)


@dataclass(frozen=True)
class Person:
    wake: float
    leave: float
    lunch: tuple[float, float] | None
    first_use: tuple[float, ...]  # of each account profile (empty: none in use)

    def awake(self, t: float) -> bool:
        if not self.wake <= t < self.leave:
            return False
        return self.lunch is None or not self.lunch[0] <= t < self.lunch[1]

    def next_awake(self, t: float) -> float | None:
        """The next moment at or after `t` when the laptop is awake, or None (asleep for the night)."""
        if t < self.wake:
            return self.wake
        if self.lunch is not None and self.lunch[0] <= t < self.lunch[1]:
            t = self.lunch[1]
        return t if t < self.leave else None


def clipped_normal(rng: random.Random, mean: float, sigma: float, lo: float, hi: float) -> float:
    return min(hi, max(lo, rng.gauss(mean, sigma)))


def population(n: int, seed: int) -> list[Person]:
    rng = random.Random(seed)
    people = []
    for _ in range(n):
        if rng.random() < 0.85:
            wake = clipped_normal(rng, 8 * H + 55 * M, 20 * M, 7 * H, 11 * H)
        else:
            wake = rng.uniform(7 * H, 11 * H)
        leave = clipped_normal(rng, 17 * H + 45 * M, 50 * M, max(15.5 * H, wake + H), 21 * H)
        lunch = None
        if rng.random() < 0.6:
            start = clipped_normal(rng, 12 * H + 20 * M, 20 * M, 11.5 * H, 14 * H)
            lunch = (start, start + clipped_normal(rng, 50 * M, 10 * M, 20 * M, 80 * M))
        first: tuple[float, ...] = ()
        if rng.random() < ACCOUNTS_SHARE:
            first = tuple(wake + rng.expovariate(1 / (45 * M)) for _ in range(ACCOUNTS_EACH))
        people.append(Person(wake, leave, lunch, first))
    return people


@dataclass
class Day:
    """One simulated day of the whole fleet: calls per upstream per second."""

    people: list[Person]
    jitter: float
    failing: Callable[[str, float], bool]
    seed: int
    settings: RefreshConfig = field(default_factory=RefreshConfig)
    calls: dict[str, list[int]] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)

    def run(self) -> Day:
        rng = random.Random(self.seed)
        ahead = float(self.settings.rotate_remaining)
        self.calls = {u: [0] * DAY for u in UPSTREAMS}
        self.failures = dict.fromkeys(UPSTREAMS, 0)
        # (time, person, slot, failures so far); slot < 4: a stage of the chain, else an account profile
        heap: list[tuple[float, int, int, int]] = []
        for i, p in enumerate(self.people):
            for s in range(len(CHAIN)):
                heap.append((p.wake + 0.3 * s, i, s, 0))  # the first AWS call runs the chain in order
            for k, t in enumerate(p.first_use):
                if t < p.leave:
                    heap.append((t, i, len(CHAIN) + k, 0))
        heapq.heapify(heap)
        while heap:
            t, i, slot, failed = heapq.heappop(heap)
            p = self.people[i]
            if not p.awake(t):
                resume = p.next_awake(t)
                if resume is not None:  # overdue at resume: noticed within the scheduler's tick
                    heapq.heappush(heap, (resume + rng.uniform(0, TICK), i, slot, failed))
                continue
            upstream = CHAIN[slot] if slot < len(CHAIN) else PORTAL
            self.calls[upstream][int(t)] += 1
            if self.failing(upstream, t):
                self.failures[upstream] += 1
                heapq.heappush(heap, (t + backoff_delay(failed + 1, rng), i, slot, failed + 1))
                continue
            expires = t + LIFETIME
            due = renewal_due(t, expires, ahead) - renewal_head_start(t, expires, ahead, rng, self.jitter)
            heapq.heappush(heap, (due, i, slot, 0))
        return self

    def report(self) -> dict[str, dict[str, float]]:
        out = {}
        lo, hi = int(WORKDAY[0]), int(WORKDAY[1])
        for u, per_s in self.calls.items():
            minutes = [sum(per_s[m:m + 60]) for m in range(0, DAY, 60)]
            peak_min = max(range(len(minutes)), key=minutes.__getitem__)
            out[u] = {
                "calls": sum(per_s),
                "failed": self.failures[u],
                "mean_per_s_workday": sum(per_s[lo:hi]) / (hi - lo),
                "peak_second": max(per_s),
                "peak_minute_per_s": minutes[peak_min] / 60,
                "peak_minute_at": peak_min * 60,
                "peak_minute_after_11_per_s": max(minutes[11 * 60:]) / 60,
                "peak_minute_after_14_per_s": max(minutes[14 * 60:]) / 60,
            }
        return out


def hhmm(seconds: float) -> str:
    return f"{int(seconds // 3600):02d}:{int(seconds % 3600 // 60):02d}"


def outage(upstream: str, t: float) -> bool:
    return upstream == IDP and OUTAGE[0] <= t < OUTAGE[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--people", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--jitter", type=float, default=RENEW_JITTER, help="the 'on' variant's RENEW_JITTER")
    args = ap.parse_args()
    people = population(args.people, args.seed)
    n_acc = sum(1 for p in people if p.first_use)
    print(f"{args.people} daemons ({n_acc} with {ACCOUNTS_EACH} account profiles in use), lifetimes 1 h, "
          f"renewal {RefreshConfig().rotate_remaining // 60} min before expiry\n")
    days: dict[str, Callable[[str, float], bool]] = {"ordinary": lambda u, t: False, "idp-outage": outage}
    results: dict[str, object] = {"people": args.people, "seed": args.seed, "with_accounts": n_acc, "runs": {}}
    runs: dict[str, dict[str, dict[str, float]]] = {}
    for day, failing in days.items():
        for label, jitter in (("jitter off", 0.0), (f"jitter {args.jitter:g}", args.jitter)):
            t0 = time.perf_counter()
            rep = Day(people, jitter, failing, seed=args.seed + 1).run().report()
            wall = time.perf_counter() - t0
            runs[f"{day}, {label}"] = rep
            print(f"### {day}, {label} (simulated in {wall:.1f} s)\n")
            print("| upstream | calls/day | mean/s 08-18 | peak second | peak minute (/s, at) | peak minute after "
                  "11:00 (/s) | after 14:00 (/s) |")
            print("|---|---:|---:|---:|---:|---:|---:|")
            for u, r in rep.items():
                failed = f" ({r['failed']:.0f} failed)" if r["failed"] else ""
                print(f"| {u} | {r['calls']:.0f}{failed} | {r['mean_per_s_workday']:.2f} | {r['peak_second']:.0f} | "
                      f"{r['peak_minute_per_s']:.2f} at {hhmm(r['peak_minute_at'])} | "
                      f"{r['peak_minute_after_11_per_s']:.2f} | {r['peak_minute_after_14_per_s']:.2f} |")
            print()
    results["runs"] = runs
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1))
    print(f"raw numbers: {RESULTS.relative_to(ROOT)}")
    return 0 if all(math.isfinite(r["mean_per_s_workday"]) for rep in runs.values() for r in rep.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
