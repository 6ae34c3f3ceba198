"""IMDSv2 emulation (the EC2 instance metadata service) for tools that know no other credential source.

It shares the container endpoint's port and guards (Host, browser markers, peer uid) but, like the real
IMDS, has no shared secret: a session token is obtained with a PUT carrying a TTL header, which SSRF-prone
software (that can only be made to GET) cannot do, and a PUT relayed by a proxy (X-Forwarded-For) is
refused as AWS does. It serves the default profile."""
from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from typing import TYPE_CHECKING

from aiohttp import web

from ..errors import TipdError
from .guards import Guard, error

if TYPE_CHECKING:
    from ..daemon import Broker

TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
MAX_TOKENS = 4096  # bounded memory whatever a client does
BASE = "/latest/meta-data/iam/security-credentials"


def _text(body: str, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(status=status, text=body, content_type="text/plain", headers=headers)


class Imds:
    def __init__(self, broker: Broker, guard: Guard, allow_v1: bool) -> None:
        self.broker = broker
        self.guard = guard
        self.allow_v1 = allow_v1
        self._tokens: OrderedDict[str, float] = OrderedDict()  # token -> monotonic expiry

    def add_routes(self, app: web.Application) -> None:
        app.router.add_put("/latest/api/token", self.put_token)
        for base in (BASE, BASE + "-extended"):
            app.router.add_get(base + "/", self.list_roles)
            app.router.add_get(base, self.list_roles)
            app.router.add_get(base + "/{name}", self.credentials)

    def _refuse(self, request: web.Request) -> web.Response | None:
        return self.guard.refuse_browser(request) or self.guard.refuse_user(request)

    async def put_token(self, request: web.Request) -> web.Response:
        refused = self._refuse(request)
        if refused is not None:
            return refused
        if "X-Forwarded-For" in request.headers:
            return _text("Forbidden", 403)
        raw = request.headers.get(TTL_HEADER, "")
        # ASCII digits only: str.isdigit() also takes "⁵" or "٣", which int() refuses (a 500 before)
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 5) or not 1 <= int(raw) <= 21600:
            return _text("Bad Request", 400)
        ttl = int(raw)
        token = secrets.token_urlsafe(32)
        self._tokens[token] = time.monotonic() + ttl
        while len(self._tokens) > MAX_TOKENS:
            self._tokens.popitem(last=False)
        return _text(token, headers={TTL_HEADER: raw})

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

    def _check(self, request: web.Request) -> web.Response | None:
        refused = self._refuse(request)
        if refused is not None:
            return refused
        if not self._token_ok(request):
            return _text("Unauthorized", 401)
        return None

    async def list_roles(self, request: web.Request) -> web.Response:
        refused = self._check(request)
        if refused is not None:
            return refused
        name = self.broker.default_profile
        if name is None:
            return _text("Not Found", 404)
        return _text(name)

    async def credentials(self, request: web.Request) -> web.Response:
        refused = self._check(request)
        if refused is not None:
            return refused
        name = request.match_info["name"]
        session = self.broker.sessions.get(name) if name == self.broker.default_profile else None
        if session is None:
            return _text("Not Found", 404)
        served = session.served if session.cached_body() is not None else None
        if served is None:
            try:
                served = await session.credentials()
            except TipdError as e:
                return error(e.status, e.code, e.message)
        self.broker.audit.record(name, "imds", self.guard.peer(request))
        extended = request.path.startswith(BASE + "-extended")
        return web.Response(body=served.imds_extended_body if extended else served.imds_body,
                            content_type="text/plain")
