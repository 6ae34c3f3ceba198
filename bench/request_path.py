"""The credential endpoint's whole request path in process, tipd against the bare handler of bench/endpoint.py:
the raw request bytes go into aiohttp's protocol (HTTP parser, router, checks, handler, response writer) and the
answer out to a stand-in transport. No network, no wrk, no neighbours: what bench/endpoint.py's 16-client ratio
is made of, measured without its noise (issue 12's guard).

    .venv/bin/python bench/request_path.py [TREE]                  # CPU time per request, best of 7 rounds
    .venv/bin/python bench/request_path.py [TREE] --instructions   # instructions per request (valgrind)

TREE: a checkout whose tipd/ to measure (default: this one). --instructions runs each variant under valgrind's
cachegrind (apt-get install -y valgrind) twice, for 1 000 and 9 000 requests, and divides the difference by 8 000:
deterministic to about 0.01 %, whatever else the machine runs (this VM has no hardware counters for `perf stat`).
tipd's app is the real one (make_app: the guard with the peer-uid check on a real loopback connection, the audit,
a signed-in session's credentials in memory)."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

TOKEN = b"t0ken-abcdefghijklmnopqrstuvwxyz0123456789ABCD"
PROFILE = {
    "issuer": "http://127.0.0.1:1", "client_id": "cid",
    "application_arn": "arn:aws:sso::111122223333:application/ssoins-1111222233334444/apl-aaaabbbbccccdddd",
    "oidc_role_arn": "arn:aws:iam::111122223333:role/a",
    "identity_enhanced_role_arn": "arn:aws:iam::111122223333:role/b", "region": "eu-west-1",
}
VARIANTS = ("bare", "tipd")


class NoStore:
    name = "none"

    async def load(self, profile: str) -> None:
        return None


class Transport(asyncio.Transport):
    """What aiohttp writes the answer to; the addresses are a real loopback connection's, so tipd's peer lookup
    (netlink) finds a real client socket of this user."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__({"peername": sock.getsockname(), "sockname": sock.getpeername(), "socket": None})
        self.writes = 0
        self.first = b""
        self.written: asyncio.Future[None] | None = None

    def write(self, data: Any) -> None:
        self.writes += 1
        self.first = bytes(data[:15])
        if self.written is not None and not self.written.done():
            self.written.set_result(None)

    def writelines(self, lines: Any) -> None:
        self.write(b"".join(lines))

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


def bare_app() -> Any:
    from aiohttp import web

    body = b"x" * 538

    async def credentials(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/v1/credentials/{profile}", credentials)
    return app


def serving_broker() -> Any:
    """A Broker with profile "work" serving a preset credential from memory: it never loads a sign-in nor calls
    AWS or the IdP (bench/dispatch.py uses it too)."""
    from tipd.clock import Clock
    from tipd.config import parse_config
    from tipd.exchange import AwsCredentials
    from tipd.secret import Secret
    from tipd.session import ProfileSession, Served

    try:
        from tipd.broker import Broker
    except ImportError:  # before issue 12
        from tipd.daemon import Broker  # type: ignore[attr-defined]  # where an older tree kept it

    cfg = parse_config({"profiles": {"work": PROFILE}}, "bench")
    broker = Broker(cfg)
    clock = Clock()
    s: Any = ProfileSession("work", cfg.profiles["work"], cfg.refresh, store=NoStore(), aws=None,  # type: ignore[arg-type]
                            idp=None, clock=clock)  # type: ignore[arg-type]
    creds = AwsCredentials("ASIAEXAMPLE", Secret("sek"), Secret("tok"), clock.time() + 3000, "111122223333")
    s.served = Served(creds, json.dumps(creds.container_json()).encode())
    broker.sessions["work"] = s
    return broker


def tipd_app(port: int) -> Any:
    from tipd.server import container
    from tipd.server.guards import Guard

    return container.make_app(serving_broker(), Guard(TOKEN, port))


async def serve(variant: str, n: int, rounds: int) -> float:
    """n requests, `rounds` times on one keep-alive connection; the best round's CPU time per request, in us."""
    from aiohttp import web

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client, listener.accept()[0]:
            runner = web.AppRunner(bare_app() if variant == "bare" else tipd_app(port), access_log=None,
                                   handle_signals=False)
            await runner.setup()
            assert runner.server is not None
            protocol = runner.server()
            transport = Transport(client)
            protocol.connection_made(transport)
            request = (f"GET /v1/credentials/work HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                       f"Authorization: {TOKEN.decode()}\r\n\r\n").encode()
            loop = asyncio.get_running_loop()

            async def one() -> None:
                transport.written = loop.create_future()
                writes = transport.writes
                protocol.data_received(request)
                await transport.written
                while transport.writes == writes:  # pragma: no cover (the answer is one write)
                    await asyncio.sleep(0)

            best = float("inf")
            for _ in range(rounds):
                t0 = time.process_time()
                for _ in range(n):
                    await one()
                best = min(best, (time.process_time() - t0) / n * 1e6)
            if transport.first != b"HTTP/1.1 200 OK":
                raise SystemExit(f"{variant}: the answer was {transport.first!r}, not 200 OK")
            await runner.cleanup()
    return best


def instructions(tree: Path, variant: str) -> int:
    """Instructions per request: cachegrind's count for 9 000 requests less that for 1 000, over 8 000."""
    counts = []
    for n in (1000, 9000):
        r = subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
                            sys.executable, __file__, str(tree), "--one", variant, str(n)],
                           capture_output=True, text=True,
                           # the same work in both runs: no bytecode written by the first, no hash randomisation
                           env=dict(os.environ, PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1"))
        m = re.search(r"I\s+refs:\s+([\d,]+)", r.stderr)
        if r.returncode != 0 or m is None:
            raise SystemExit(f"valgrind failed ({r.returncode}): {r.stderr[-2000:]}")
        counts.append(int(m.group(1).replace(",", "")))
    return (counts[1] - counts[0]) // 8000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tree", nargs="?", type=Path, default=Path(__file__).resolve().parents[1])
    ap.add_argument("--instructions", action="store_true", help="count instructions under valgrind (cachegrind)")
    ap.add_argument("--one", nargs=2, metavar=("VARIANT", "N"), help=argparse.SUPPRESS)  # one run, under valgrind
    args = ap.parse_args()
    tree = args.tree.resolve()
    sys.path.insert(0, str(tree))
    if args.one:
        asyncio.run(serve(args.one[0], int(args.one[1]), 1))
        return 0
    results = {v: instructions(tree, v) if args.instructions else asyncio.run(serve(v, 10_000, 7)) for v in VARIANTS}
    unit = "instructions" if args.instructions else "us of CPU"
    fmt = "{:,.0f}" if args.instructions else "{:.2f}"
    bare = results["bare"]
    for v, x in results.items():
        print(f"{tree}: {v}: {fmt.format(x)} {unit} per request ({x / bare:.3f}x bare)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
