"""The credential app's dispatch cost per request, in process: router, middleware, guard, handler and response
object, without the network, HTTP parsing or the neighbours' effect on a 10 s wrk run (issue 12's guard).

    .venv/bin/python bench/dispatch.py [TREE]     # TREE: a checkout whose tipd/ to measure (default: this one)

Best of 15 rounds of 10 000 requests, cycling over 1 000 pre-made requests; the peer-uid lookup is off (mocked
transports have no peer; in tipd it is cached per connection)."""
from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

TREE = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TREE))

from aiohttp.test_utils import make_mocked_request  # noqa: E402

TOKEN = b"t0ken-abcdefghijklmnopqrstuvwxyz0123456789ABCD"
PROFILE = {
    "issuer": "http://127.0.0.1:1", "client_id": "cid",
    "application_arn": "arn:aws:sso::111122223333:application/ssoins-1111222233334444/apl-aaaabbbbccccdddd",
    "oidc_role_arn": "arn:aws:iam::111122223333:role/a",
    "identity_enhanced_role_arn": "arn:aws:iam::111122223333:role/b", "region": "eu-west-1",
}


class NoStore:
    name = "none"

    async def load(self, profile: str) -> None:
        return None


async def main(n: int = 10_000, rounds: int = 15) -> None:
    import tipd.server.guards as guards
    from tipd.clock import Clock
    from tipd.config import parse_config
    from tipd.exchange import AwsCredentials
    from tipd.secret import Secret
    from tipd.server import container
    from tipd.session import ProfileSession, Served

    try:
        from tipd.broker import Broker
    except ImportError:  # before issue 12
        from tipd.daemon import Broker  # type: ignore[attr-defined]  # where an older tree kept it

    cfg = parse_config({"profiles": {"work": PROFILE}}, "bench")
    broker = Broker(cfg)
    clock = Clock()
    # a session serving a preset credential: it never loads a sign-in nor calls AWS or the IdP
    s: Any = ProfileSession("work", cfg.profiles["work"], cfg.refresh, store=NoStore(), aws=None,  # type: ignore[arg-type]
                            idp=None, clock=clock)  # type: ignore[arg-type]
    creds = AwsCredentials("ASIAEXAMPLE", Secret("sek"), Secret("tok"), clock.time() + 3000, "111122223333")
    s.served = Served(creds, json.dumps(creds.container_json()).encode())
    broker.sessions["work"] = s
    guards.PEER_UID_SUPPORTED = False  # type: ignore[attr-defined]  # guards' copy of peer.SUPPORTED, read by Guard()
    app = container.make_app(broker, guards.Guard(TOKEN, 9911, allow_other_users=True))
    app.freeze()
    headers = {"Host": "127.0.0.1:9911", "Authorization": TOKEN.decode()}
    pool = [make_mocked_request("GET", "/v1/credentials/work", headers=headers, app=app) for _ in range(1000)]
    assert (await app._handle(pool[0])).status == 200
    best = float("inf")
    for _ in range(rounds):
        t0 = time.process_time()
        for i in range(n):
            await app._handle(pool[i % 1000])
        best = min(best, (time.process_time() - t0) / n * 1e6)
    print(f"{TREE}: dispatch per request, best of {rounds} rounds: {best:.2f} us")


if __name__ == "__main__":
    asyncio.run(main())
