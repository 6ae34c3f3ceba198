"""The container-credentials endpoint every SDK reads through AWS_CONTAINER_CREDENTIALS_FULL_URI, and the
S3 Access Grants endpoint beside it. Their guard runs first (tipd/server/guards.py); a TipdError a handler
raises is rendered there too."""
from __future__ import annotations

from typing import Any

from aiohttp import web

from ..broker import BROKER, Broker
from ..errors import UnknownProfile
from .conns import CappedRunner, Caps
from .guards import GRANT, Guard, Routes
from .imds import Imds
from .peer import SUPPORTED as PEER_UID_SUPPORTED
from .peer import Peer

JSON = "application/json"
#: where the credential app keeps its guard
GUARD = web.AppKey("guard", Guard)

NO_SUCH_PROFILE = "no such profile; `tipctl status` lists the configured ones"


def make_app(broker: Broker, guard: Guard, *, imds: bool = False, relay: bool = False) -> web.Application:
    """The credential endpoints on one port: container credentials, and IMDSv2 when enabled. `relay`: the app of
    the relay's unix socket (consumer tokens only, container credentials only)."""
    # The handlers are the hot path: what they use is bound here once, not looked up per request.
    sessions, grants, audit, peer = broker.sessions, broker.grants, broker.audit.record, guard.peer
    # the relay socket's client is the relay in a container: no TCP peer to look up, the grant names the consumer
    endpoint = "relay" if relay else "container"
    if relay:
        peer = _no_peer
    accounts = broker.accounts

    async def credentials(request: web.Request) -> web.Response:
        name = request.match_info.get("profile") or broker.default_profile
        if name is None or (session := sessions.get(name) or accounts.get(name)) is None:
            raise UnknownProfile(NO_SUCH_PROFILE)
        body = session.cached_body()  # from memory
        if body is None:
            body = (await session.credentials()).body
        # the grant of a consumer token, which the guard keeps on the request; the user's own token leaves the
        # request empty, and `len` first spares each such request a raised KeyError (1.4 % of its instructions)
        audit(name, endpoint, peer(request), request.get(GRANT) if len(request) else None)
        return web.Response(body=body, content_type=JSON)

    async def s3ag(request: web.Request) -> web.Response:
        """S3 Access Grants credentials for ?target=s3://...&permission=... (docs/s3-access-grants.md)."""
        name = request.match_info["profile"]
        cache = grants.get(name)
        if cache is None:
            raise UnknownProfile(NO_SUCH_PROFILE)
        raw = request.raw_path  # as received: two requests that differ only in their escaping stay apart
        body = cache.cached_body(raw)  # from memory
        if body is None:
            body = (await cache.fetch(request.query.items(), raw)).body
        audit(name, "s3ag", peer(request))
        return web.Response(body=body, content_type=JSON)

    app = web.Application(client_max_size=1024)
    app[BROKER] = broker
    app[GUARD] = guard
    routes = Routes(app)
    if relay:
        routes.add("GET", "/v1/credentials/{profile}", credentials, guard.refuse_relay)
        return app
    routes.add("GET", "/v1/credentials/{profile}", credentials, guard.refuse)
    routes.add("GET", "/v1/credentials", credentials, guard.refuse)
    routes.add("GET", "/v1/s3ag/{profile}", s3ag, guard.refuse_user_token_only)
    if imds:
        Imds(broker, guard, allow_v1=broker.config.server.imds_v1).add_routes(routes)
    return app


def _no_peer(request: web.Request) -> Peer | None:
    return None


def make_runner(broker: Broker, guard: Guard, *, imds: bool = False, **kwargs: Any) -> web.AppRunner:
    """The app in a runner that caps connections per user and in total (tipd/server/conns.py)."""
    return CappedRunner(make_app(broker, guard, imds=imds), Caps(guard.uid_of, know_uids=PEER_UID_SUPPORTED),
                        **kwargs)
