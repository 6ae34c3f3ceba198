"""Benchmark of `tipctl accounts`' work in the daemon (issue 13): listing N accounts with their roles through the
portal API (tipd/portal.py), cold and from the 60 s cache, against the test stack's portal fake (moto behind it).

    .venv/bin/python bench/accounts_listing.py [--accounts 100] [--runs 5]

One ListAccounts page (100 per page) then one ListAccountRoles per account, at most `concurrency` in flight.
The fake answers in about a millisecond, so the cold number is tipd's own cost plus loopback round trips; the
real portal's latency (tens of ms per call from most places) multiplies by about N / concurrency. Also prints
the load average: numbers on a loaded machine are noisy. Target (issue 13): 100 accounts in a few seconds.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
from botocore import UNSIGNED  # noqa: E402
from botocore.config import Config  # noqa: E402

from tests.support.aws import ACCOUNT_ACCESS, JWT_BEARER, AppConfig, FakeAWS, FakeConfig, JwtIssuer, MotoServer  # noqa: E402
from tipd.clock import Clock  # noqa: E402
from tipd.exchange import AwsChain, IdcToken  # noqa: E402
from tipd.portal import Portal  # noqa: E402
from tipd.secret import Secret  # noqa: E402

APP = "arn:aws:sso::123456789012:application/ssoins-1111222233334444/apl-aaaabbbbccccdddd"
ROLE = "arn:aws:iam::123456789012:role/bench-oidc"
USER, USER_ID = "alice@example.com", "bench-alice"


def token(fake: FakeAWS, issuer: JwtIssuer) -> IdcToken:
    sts = boto3.client("sts", endpoint_url=fake.url, region_name="us-east-1", aws_access_key_id="x",
                       aws_secret_access_key="x", config=Config(signature_version=UNSIGNED))
    boot = sts.assume_role_with_web_identity(RoleArn=ROLE, RoleSessionName="bench",
                                             WebIdentityToken=issuer.token(aud="bench", email=USER))["Credentials"]
    oidc = boto3.client("sso-oidc", endpoint_url=fake.url, region_name="us-east-1",
                        aws_access_key_id=boot["AccessKeyId"], aws_secret_access_key=boot["SecretAccessKey"],
                        aws_session_token=boot["SessionToken"])
    r = oidc.create_token_with_iam(clientId=APP, grantType=JWT_BEARER, assertion=issuer.token(aud="bench", email=USER))
    return IdcToken(access_token=Secret(r["accessToken"]), refresh_token=None, identity_context=Secret("x"),
                    expires_at=time.time() + 3600, scopes=tuple(r["scope"]))


async def measure(idc: IdcToken, runs: int, concurrency: int) -> tuple[list[float], list[float], int]:
    cold, cached, count = [], [], 0
    for _ in range(runs):
        portal = Portal(AwsChain(Clock()), concurrency=concurrency)  # a new cache each run
        t = time.perf_counter()
        listed = await portal.accounts(idc, region="us-east-1", application_arn=APP)
        cold.append(time.perf_counter() - t)
        t = time.perf_counter()
        await portal.accounts(idc, region="us-east-1", application_arn=APP)
        cached.append(time.perf_counter() - t)
        count = len(listed)
    return cold, cached, count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accounts", type=int, default=100)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--concurrency", type=int, default=10)
    args = ap.parse_args()
    with MotoServer() as moto, JwtIssuer() as issuer:
        config = FakeConfig(applications={APP: AppConfig(issuer_url=issuer.url, audiences=["bench"],
                                                         scopes=["sts:identity_context", ACCOUNT_ACCESS])},
                            users={USER: USER_ID})
        with FakeAWS(moto.url, config) as fake:
            for i in range(args.accounts):
                fake.portal.assign(USER_ID, f"{300000000000 + i}", "ReadOnly", "Developer")
            os.environ["AWS_ENDPOINT_URL"] = fake.url
            idc = token(fake, issuer)
            cold, cached, count = asyncio.run(measure(idc, args.runs, args.concurrency))
    load = os.getloadavg()
    print(f"accounts listed: {count}, runs: {args.runs}, concurrency: {args.concurrency}, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    print(f"| listing | median | max |\n| --- | --- | --- |\n"
          f"| cold ({count + 1} portal calls) | {statistics.median(cold) * 1000:.0f} ms | {max(cold) * 1000:.0f} ms |\n"
          f"| cached | {statistics.median(cached) * 1e6:.0f} µs | {max(cached) * 1e6:.0f} µs |")


if __name__ == "__main__":
    main()
