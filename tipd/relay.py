"""`tipd-relay`: the container side of tipd (docs/containers.md). It listens on the container's own loopback (or on
169.254.170.2:80 in a compose network) for the AWS SDKs' container-credentials requests and forwards each to tipd's
relay socket, a unix socket mounted from the host. It holds no secret: the SDK sends the grant's token, read from
AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE at every fetch, and tipd checks it.

Standard library only, and no import from the rest of tipd: this one file can be copied into an image and run with
any python3 >= 3.8 (`python3 relay.py`): annotations are never evaluated (the __future__ import)."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys

#: before Python 3.11 asyncio's timeout is not the builtin TimeoutError
Timeout = asyncio.TimeoutError
DEFAULT_LISTEN = "127.0.0.1:9911"
DEFAULT_SOCKET = "/run/tipd-relay/credentials.sock"
#: what an SDK asks for; anything else is refused here, before tipd sees it
PATH = re.compile(r"/v1/credentials/[A-Za-z0-9._-]{1,64}")
MAX_HEAD = 8192
MAX_ANSWER = 64 * 1024
MAX_CONNECTIONS = 64
MAX_IDLE = 8
#: a client has this long to send a whole request head (slow-loris), tipd this long to answer
HEAD_TIMEOUT = 10.0
UPSTREAM_TIMEOUT = 15.0
BROWSER_MARKERS = ("origin", "sec-fetch-site", "sec-fetch-mode", "sec-fetch-dest", "referer")
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 413: "Payload Too Large", 500: "Internal Server Error",
           502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def answer(status: int, body: bytes, keep_alive: bool) -> bytes:
    head = (f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n")
    return head.encode("ascii") + body


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"code": code, "message": message}).encode()


class Relay:
    def __init__(self, listen_host: str, listen_port: int, socket_path: str,
                 upstream_tcp: tuple[str, int] | None = None) -> None:
        self.socket_path = socket_path
        #: Docker Desktop, where a host unix socket cannot be shared: tipd's TCP endpoint through the VM's
        #: host.docker.internal (docs/containers.md says what is and is not verified)
        self.upstream_tcp = upstream_tcp
        port = f":{listen_port}"
        hosts = {f"{listen_host}{port}", f"localhost{port}"}
        if listen_port == 80:  # an SDK leaves the default port out of Host
            hosts |= {listen_host, "localhost"}
        self.hosts = frozenset(hosts)
        self.connections = 0
        #: upstream connections to tipd, idle and reusable
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.connections >= MAX_CONNECTIONS:
            writer.close()
            return
        self.connections += 1
        try:
            keep_alive = True
            while keep_alive:
                try:
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
                except (asyncio.IncompleteReadError, Timeout, ConnectionError):
                    return
                except asyncio.LimitOverrunError:
                    writer.write(answer(413, error_body("TooLarge", "request head too large"), False))
                    return
                try:
                    path, auth, keep_alive = self.parse(head)
                    status, body = await self.forward(path, auth)
                except Refused as r:
                    status, body, keep_alive = r.status, error_body(r.code, r.message), False
                writer.write(answer(status, body, keep_alive))
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            self.connections -= 1
            writer.close()

    def parse(self, head: bytes) -> tuple[str, str | None, bool]:
        """The request's path, its Authorization (passed on as is) and whether to keep the connection."""
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise Refused(400, "BadRequest", "not an HTTP/1.x request")
        method, target, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise Refused(400, "BadRequest", "a malformed header line")
            key = name.lower()
            if key in headers:
                raise Refused(400, "BadRequest", f"header {name[:40]} given twice")
            headers[key] = value.strip()
        if method != "GET":
            raise Refused(405, "MethodNotAllowed", "the relay answers GET only")
        if headers.get("content-length", "0") != "0" or "transfer-encoding" in headers:
            raise Refused(413, "TooLarge", "a credentials request has no body")
        if PATH.fullmatch(target) is None:
            raise Refused(404, "NotFound", "the relay serves /v1/credentials/PROFILE only")
        if headers.get("host") not in self.hosts:
            raise Refused(403, "Forbidden", "request refused")
        if any(m in headers for m in BROWSER_MARKERS):
            raise Refused(403, "Forbidden", "request refused")
        auth = headers.get("authorization")
        if auth is not None and (len(auth) > 256 or not auth.isprintable()):
            raise Refused(401, "Unauthorized", "missing or wrong authorization token")
        connection = headers.get("connection", "").lower()
        keep = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
        return target, auth, keep

    async def forward(self, path: str, auth: str | None) -> tuple[int, bytes]:
        """tipd's answer to the request. Upstream connections are kept alive and reused (a new connection per
        request cost more than the request itself); one that tipd closed meanwhile is retried once on a new one."""
        # over TCP tipd checks Host against its own loopback address (DNS rebinding): name that
        host = f"127.0.0.1:{self.upstream_tcp[1]}" if self.upstream_tcp else "tipd-relay"
        request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
        if auth is not None:
            request += f"Authorization: {auth}\r\n"
        data = request.encode("latin-1") + b"\r\n"
        for attempt in (0, 1):
            reused = bool(self.idle) and attempt == 0
            reader, writer = self.idle.pop() if reused else await self.connect()
            try:
                writer.write(data)
                status, body, keep = await asyncio.wait_for(read_answer(reader), UPSTREAM_TIMEOUT)
            except (OSError, Timeout, asyncio.IncompleteReadError, ValueError) as e:
                writer.close()
                if reused and isinstance(e, (OSError, asyncio.IncompleteReadError)):
                    continue  # tipd closed the idle connection (its keep-alive timeout): once more, fresh
                if isinstance(e, ValueError):
                    raise Refused(502, "BadGateway", "tipd sent an unreadable answer") from None
                raise Refused(504, "TipdTimeout", "tipd did not answer in time") from None
            if keep and len(self.idle) < MAX_IDLE:
                self.idle.append((reader, writer))
            else:
                writer.close()
            return status, body
        raise Refused(502, "BadGateway", "tipd closed the connection")

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        where = f"{self.upstream_tcp[0]}:{self.upstream_tcp[1]}" if self.upstream_tcp else self.socket_path
        try:
            opening = (asyncio.open_connection(*self.upstream_tcp, limit=MAX_HEAD) if self.upstream_tcp
                       else asyncio.open_unix_connection(self.socket_path, limit=MAX_HEAD))
            return await asyncio.wait_for(opening, UPSTREAM_TIMEOUT)
        except (OSError, Timeout):
            raise Refused(503, "TipdUnreachable", f"tipd does not answer on {where}: is tipd running on the "
                          "host, and its relay directory mounted (`tipctl grant docker-flags`)?") from None


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """One HTTP/1.1 answer with a Content-Length (what tipd sends): status, body, whether the connection stays."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise ValueError("answer head too large") from None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) < 2 or not parts[1].isdigit():
        raise ValueError("no status line")
    length, keep = None, True
    for line in lines[1:]:
        name, _, value = line.partition(":")
        key = name.strip().lower()
        if key == "content-length":
            length = int(value.strip())  # ValueError: unreadable
        elif key == "connection" and value.strip().lower() == "close":
            keep = False
    if length is None or not 0 <= length <= MAX_ANSWER:
        raise ValueError("no usable Content-Length")
    return int(parts[1]), await reader.readexactly(length), keep


def split_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise ValueError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:9911 or 169.254.170.2:80)")
    return host, int(port)


async def run(listen: str, socket_path: str, ready: str | None = None, upstream_tcp: str | None = None) -> None:
    host, port = split_listen(listen)
    relay = Relay(host, port, socket_path, split_listen(upstream_tcp) if upstream_tcp else None)
    server = await asyncio.start_server(relay.serve, host, port, limit=MAX_HEAD, backlog=128)
    print(f"tipd-relay: listening on {listen}, forwarding to {upstream_tcp or socket_path}", file=sys.stderr,
          flush=True)
    if ready:  # a file whose appearance says the relay listens (tests, container health checks)
        with open(ready, "w") as f:
            f.write(str(os.getpid()))
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="tipd-relay",
        description="Relay AWS SDK container-credential requests from inside a container to tipd on the host, "
                    "through tipd's relay socket (a unix socket mounted into the container). The SDK sends a "
                    "consumer token (`tipctl grant`) read from AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE; the relay "
                    "holds no secret. See docs/containers.md.")
    p.add_argument("--listen", default=os.environ.get("TIPD_RELAY_LISTEN", DEFAULT_LISTEN),
                   help=f"HOST:PORT to listen on (default $TIPD_RELAY_LISTEN, else {DEFAULT_LISTEN}; "
                   "169.254.170.2:80 in a compose network)")
    p.add_argument("--socket", default=os.environ.get("TIPD_RELAY_SOCKET", DEFAULT_SOCKET),
                   help=f"tipd's relay socket as mounted (default $TIPD_RELAY_SOCKET, else {DEFAULT_SOCKET})")
    p.add_argument("--upstream-tcp", metavar="HOST:PORT", default=os.environ.get("TIPD_RELAY_UPSTREAM_TCP"),
                   help="forward to tipd's TCP endpoint instead of the socket (Docker Desktop: "
                   "host.docker.internal:PORT; see docs/containers.md)")
    p.add_argument("--ready-file", help="write the relay's pid to this file once it listens")
    args = p.parse_args(argv)
    try:
        asyncio.run(run(args.listen, args.socket, args.ready_file, args.upstream_tcp))
    except ValueError as e:
        print(f"tipd-relay: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"tipd-relay: cannot listen on {args.listen}: {e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
