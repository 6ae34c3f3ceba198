"""The credential app's dispatch cost per request, in process: router, checks, handler and response
object, without the network, HTTP parsing or the neighbours' effect on a 10 s wrk run (issue 12's guard).

    .venv/bin/python bench/dispatch.py [TREE]     # TREE: a checkout whose tipd/ to measure (default: this one)

Best of 15 rounds of 10 000 requests, cycling over 1 000 pre-made requests; the peer-uid lookup is off (mocked
transports have no peer; in tipd it is cached per connection)."""
from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

TREE = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TREE))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from aiohttp.test_utils import make_mocked_request  # noqa: E402
from request_path import TOKEN, serving_broker  # noqa: E402  # the same app state as bench/request_path.py


async def main(n: int = 10_000, rounds: int = 15) -> None:
    import tipd.server.guards as guards
    from tipd.server import container

    broker = serving_broker()
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
