"""IMDSv2 emulation (the EC2 instance metadata service) for tools that know no other credential source.

It shares the container endpoint's port and guards (Host, browser markers, peer uid) but, like the real
IMDS, has no shared secret: a session token is obtained with a PUT carrying a TTL header, which SSRF-prone
software (that can only be made to GET) cannot do, and a PUT relayed by a proxy (X-Forwarded-For) is
refused as AWS does. It serves the default profile."""
from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections import OrderedDict

from aiohttp import web

from ..broker import Broker
from .guards import Guard, Routes
from .peer import processes_of_inodes

TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
MAX_TOKENS = 4096  # bounded memory whatever a client does
BASE = "/latest/meta-data/iam/security-credentials"


def _text(body: str, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=body, content_type="text/plain", headers=headers)


class Imds:
    def __init__(self, broker: Broker, guard: Guard, allow_v1: bool) -> None:
        self.broker = broker
        self.guard = guard
        self.allow_v1 = allow_v1
        self._tokens: OrderedDict[str, float] = OrderedDict()  # token -> monotonic expiry

    def add_routes(self, routes: Routes) -> None:
        """Each behind the guard's checks but the token's (IMDS has its own session tokens)."""
        check = self.guard.refuse_tokenless
        routes.add("PUT", "/latest/api/token", self.put_token, check)
        for base in (BASE, BASE + "-extended"):
            routes.add("GET", base + "/", self.list_roles, check)
            routes.add("GET", base, self.list_roles, check)
            routes.add("GET", base + "/{name}", self.credentials, check)

    async def put_token(self, request: web.Request) -> web.Response:
        if "X-Forwarded-For" in request.headers:
            return _text("Forbidden", 403)
        raw = request.headers.get(TTL_HEADER, "")
        # ASCII digits only: str.isdigit() also takes "⁵" or "٣", which int() refuses (a 500 before)
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 5) or not 1 <= int(raw) <= 21600:
            return _text("Bad Request", 400)
        ttl = int(raw)
        if self.guard.check_uid and not await asyncio.to_thread(self._same_user_namespace, request):
            return _text("Forbidden", 403)
        token = secrets.token_urlsafe(32)
        self._tokens[token] = time.monotonic() + ttl
        while len(self._tokens) > MAX_TOKENS:
            self._tokens.popitem(last=False)
        return _text(token, headers={TTL_HEADER: raw})

    def _same_user_namespace(self, request: web.Request) -> bool:
        """(Linux) the client runs in tipd's own user namespace. IMDS has no shared secret, and a rootless container
        or another user-namespace sandbox with the host's network runs as the user's own uid: the namespace is what
        tells it from the user's own processes. One /proc walk per session token (an SDK asks for one per fetch of
        credentials, not per request); a client that cannot be found is refused."""
        peer = self.guard.peer(request)
        if peer is None:
            return False
        found = processes_of_inodes({peer.inode}).get(peer.inode)
        if found is None:
            return False
        try:
            return os.readlink(f"/proc/{found.pid}/ns/user") == os.readlink("/proc/self/ns/user")
        except OSError:
            return False

    def _token_ok(self, request: web.Request) -> bool:
        token = request.headers.get(TOKEN_HEADER)
        if token is None:
            return self.allow_v1
        expiry = self._tokens.get(token)
        if expiry is None:
            return False
        if expiry < time.monotonic():
            del self._tokens[token]
            return False
        return True

    async def list_roles(self, request: web.Request) -> web.Response:
        if not self._token_ok(request):
            return _text("Unauthorized", 401)
        name = self.broker.default_profile
        if name is None:
            return _text("Not Found", 404)
        return _text(name)

    async def credentials(self, request: web.Request) -> web.Response:
        if not self._token_ok(request):
            return _text("Unauthorized", 401)
        name = request.match_info["name"]
        broker = self.broker
        session = (broker.sessions.get(name) or broker.accounts.get(name)) if name == broker.default_profile else None
        if session is None:
            return _text("Not Found", 404)
        served = session.served if session.cached_body() is not None else None
        if served is None:
            served = await session.credentials()  # a TipdError: rendered by the guard's middleware
        self.broker.audit.record(name, "imds", self.guard.peer(request))
        extended = request.path.startswith(BASE + "-extended")
        return web.Response(body=served.imds_extended_body if extended else served.imds_body,
                            content_type="text/plain")
