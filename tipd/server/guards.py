"""The checks a request passes before its handler runs: each route's own, chosen when the route is added
(`Routes.add` wraps its handler), and the one place a `TipdError` becomes an HTTP answer (its JSON). Cheap by
design: a dict lookup, a header scan and one constant-time compare (no I/O, no other crypto).

Not an aiohttp middleware: aiohttp's middleware chain alone (a do-nothing middleware) adds 7 % to a bare handler's
instructions per request, more than these checks do (docs/performance.md, issue 12's performance guard)."""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import weakref
from collections.abc import Callable

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from ..consumers import Consumers
from ..errors import TipdError
from .peer import SUPPORTED as PEER_UID_SUPPORTED
from .peer import Peer, peer_uid, tcp_peer

log = logging.getLogger(__name__)

#: headers browsers add and SDKs never send: a request carrying one came from a web page (aiohttp's `istr`
#: constants: a header lookup by one need not lower-case the name first, which is half of its cost)
BROWSER_MARKERS = (hdrs.ORIGIN, hdrs.SEC_FETCH_SITE, hdrs.SEC_FETCH_MODE, hdrs.SEC_FETCH_DEST, hdrs.REFERER)

#: a route's check: None when the request may go on, else the refusal to answer with
Check = Callable[[web.Request], TipdError | None]

FORBIDDEN = TipdError("request refused", code="Forbidden", status=403)
UNAUTHORIZED = TipdError("missing or wrong authorization token", code="Unauthorized", status=401)
OTHER_USER = TipdError("tipd serves only the user it runs as", code="Forbidden", status=403)
GRANT_ONLY = TipdError("this socket serves consumer tokens only (`tipctl grant`)", code="Unauthorized", status=401)
GRANT_NEEDS_PROFILE = TipdError("a consumer token fetches /v1/credentials/PROFILE, for a profile its grant names",
                                code="Forbidden", status=403)
#: where a request that a consumer token authorised keeps the grant's name (for the audit line)
GRANT = "tipd.grant"
CONTROL_OTHER_USER = TipdError("the control socket serves only the user running tipd", code="Forbidden", status=403)


def error_response(e: TipdError) -> web.Response:
    """How every endpoint answers with an error: its status, and {"code", "message"} as JSON."""
    return web.Response(status=e.status, body=json.dumps(e.to_json()).encode(), content_type="application/json")


def error(status: int, code: str, message: str) -> web.Response:
    return error_response(TipdError(message, code=code, status=status))


class Routes:
    """An app's routes, each added with its check: the handler is wrapped (once, here) in one that runs the check
    first and renders a TipdError (a refusal, or one the handler raised) as the answer. With `unmatched`, a
    request that no route matches passes that check before its 404 or 405 (a middleware, in that app only)."""

    def __init__(self, app: web.Application, unmatched: Check | None = None) -> None:
        self.app = app
        #: the wrapped handlers (they run their own check)
        self.guarded: set[Handler] = set()
        if unmatched is not None:
            app.middlewares.append(self._unmatched(unmatched))

    def add(self, method: str, path: str, handler: Handler, check: Check | None) -> None:
        wrapped = guarded(handler, check)
        self.guarded.add(wrapped)
        self.app.router.add_route(method, path, wrapped)

    def _unmatched(self, check: Check) -> Middleware:
        ours = self.guarded

        @web.middleware
        async def unmatched(request: web.Request, handler: Handler) -> web.StreamResponse:
            if handler not in ours:  # aiohttp's answer to a request no route matches (a 404 or 405)
                refused = check(request)
                if refused is not None:
                    return error_response(refused)
            return await handler(request)

        return unmatched


def guarded(handler: Handler, check: Check | None) -> Handler:
    """`handler` behind `check`, a TipdError rendered as the answer."""

    async def guarded_handler(request: web.Request) -> web.StreamResponse:
        try:
            if check is not None:
                refused = check(request)
                if refused is not None:
                    return error_response(refused)
            return await handler(request)
        except TipdError as e:
            return error_response(e)

    return guarded_handler


class Guard:
    """The credential port's checks (container credentials, S3 Access Grants, IMDS)."""

    def __init__(self, token: bytes, port: int, *, allow_other_users: bool = False,
                 consumers: Consumers | None = None) -> None:
        self.token = token
        #: the consumer tokens (`tipctl grant`), tried when the presented token is not the user's
        self.consumers = consumers
        #: DNS rebinding: a page at evil.example resolving to 127.0.0.1 still sends Host: evil.example
        self.hosts = frozenset({f"127.0.0.1:{port}", f"localhost:{port}"})
        self.check_uid = PEER_UID_SUPPORTED and not allow_other_users
        self.uid = os.getuid()
        #: the client of each connection by its transport's id, looked up once (when the connection caps admit it)
        #: and forgotten with the transport (a plain dict: every request looks its peer up)
        self._peers: dict[int, Peer | None] = {}

    def rotate(self, token: bytes) -> None:
        self.token = token

    def peer(self, request: web.Request) -> Peer | None:
        """The request's client (the hot path: one dict lookup)."""
        transport = request.transport
        try:
            return self._peers[id(transport)]
        except KeyError:
            return self.peer_of(transport)

    def peer_of(self, transport: asyncio.BaseTransport | None) -> Peer | None:
        """The connection's client, looked up once (when the connection caps admit it) and cached."""
        if transport is None:
            return None
        key = id(transport)
        if key not in self._peers:
            self._peers[key] = tcp_peer(transport.get_extra_info("peername"), transport.get_extra_info("sockname")) \
                if PEER_UID_SUPPORTED else None
            weakref.finalize(transport, self._peers.pop, key, None)  # before its id can be another's
        return self._peers[key]

    def uid_of(self, transport: asyncio.BaseTransport) -> int | None:
        peer = self.peer_of(transport)
        return peer.uid if peer is not None else None

    def refuse_browser(self, request: web.Request) -> TipdError | None:
        """The checks every endpoint shares: our Host, no browser."""
        headers = request.headers
        if headers.get(hdrs.HOST) not in self.hosts:
            return FORBIDDEN
        for marker in BROWSER_MARKERS:
            if marker in headers:
                return FORBIDDEN
        return None

    def refuse_user(self, request: web.Request) -> TipdError | None:
        """(Linux) the client runs as the user tipd runs as."""
        if self.check_uid:
            peer = self.peer(request)
            if peer is None or peer.uid != self.uid:
                return OTHER_USER
        return None

    def refuse_tokenless(self, request: web.Request) -> TipdError | None:
        """IMDS's check: no shared token (the IMDS session token is its own), the rest as for the others."""
        return self.refuse_browser(request) or self.refuse_user(request)

    def refuse(self, request: web.Request) -> TipdError | None:
        """None when a container-credentials request may proceed, else the refusal to send: `refuse_browser`, the
        token (the user's, else a consumer token's), then `refuse_user`. The first and last are written out here,
        not called: on every credential request, the two calls cost 0.6 % of its instructions (docs/performance.md)."""
        headers = request.headers
        if headers.get(hdrs.HOST) not in self.hosts:
            return FORBIDDEN
        for marker in BROWSER_MARKERS:
            if marker in headers:
                return FORBIDDEN
        presented = headers.get(hdrs.AUTHORIZATION)
        if presented is None:
            return UNAUTHORIZED
        raw = presented.encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(raw, self.token):
            refused = self.refuse_grant(request, raw)
            if refused is not None:
                return refused
        if self.check_uid:
            peer = self.peer(request)
            if peer is None or peer.uid != self.uid:
                return OTHER_USER
        return None

    def refuse_user_token_only(self, request: web.Request) -> TipdError | None:
        """Routes a consumer token does not open (S3 Access Grants): the user's token only."""
        refused = self.refuse_browser(request)
        if refused is not None:
            return refused
        presented = request.headers.get(hdrs.AUTHORIZATION)
        if presented is None or not hmac.compare_digest(presented.encode("utf-8", "surrogateescape"), self.token):
            return UNAUTHORIZED
        return self.refuse_user(request)

    def refuse_grant(self, request: web.Request, presented: bytes) -> TipdError | None:
        """A consumer token: live, and its grant names the profile asked for. The request remembers the grant
        (its handouts are audited under its name)."""
        consumers = self.consumers
        grant = consumers.match(presented) if consumers is not None else None
        if consumers is None or grant is None:
            return UNAUTHORIZED
        profile = request.match_info.get("profile")
        if profile is None:
            return GRANT_NEEDS_PROFILE
        if profile in grant.profiles and not consumers.allows(grant, profile):
            return TipdError(f"grant {grant.name} was made for profile {profile[:64]!r} as it was configured then; "
                             "that profile has been changed or replaced since: make the grant again "
                             f"(`tipctl grant revoke {grant.name}`, then `tipctl grant {grant.name} --profile ...`)",
                             code="Forbidden", status=403)
        if profile not in grant.profiles:
            return TipdError(f"grant {grant.name} does not allow profile {profile[:64]!r} (it allows: "
                             f"{', '.join(grant.profiles)})", code="Forbidden", status=403)
        assert self.consumers is not None
        self.consumers.used(grant)
        request[GRANT] = grant.name
        return None

    def refuse_relay(self, request: web.Request) -> TipdError | None:
        """The relay socket's check (tipd/relay.py forwards container requests there): a consumer token, for a
        profile its grant names; never the user's own token. No peer-uid check: a container's processes run as
        whatever uid its image says; the socket's 0700 directory is what keeps other host users out."""
        for marker in BROWSER_MARKERS:
            if marker in request.headers:
                return FORBIDDEN
        presented = request.headers.get(hdrs.AUTHORIZATION)
        if presented is None:
            return UNAUTHORIZED
        raw = presented.encode("utf-8", "surrogateescape")
        if hmac.compare_digest(raw, self.token):
            return GRANT_ONLY
        return self.refuse_grant(request, raw)


def same_user(uid: int | None = None) -> Check:
    """The control socket's check: the peer of the unix socket is the user tipd runs as."""
    owner = os.getuid() if uid is None else uid

    def check(request: web.Request) -> TipdError | None:
        if peer_uid(request) != owner:
            log.warning("control socket: refused a connection from another user")
            return CONTROL_OTHER_USER
        return None

    return check

