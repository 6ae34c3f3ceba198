"""The container-credentials endpoint every SDK reads through AWS_CONTAINER_CREDENTIALS_FULL_URI."""
from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from ..errors import TipdError
from .conns import CappedRunner, Caps
from .guards import Guard, error
from .imds import Imds
from .peer import SUPPORTED as PEER_UID_SUPPORTED

if TYPE_CHECKING:
    from ..daemon import Broker

JSON = "application/json"


def make_app(broker: Broker, guard: Guard, *, imds: bool = False) -> web.Application:
    """The credential endpoints on one port: container credentials, and IMDSv2 when enabled."""
    sessions = broker.sessions

    async def credentials(request: web.Request) -> web.Response:
        refused = guard.refuse(request)
        if refused is not None:
            return refused
        name = request.match_info.get("profile") or broker.default_profile
        session = sessions.get(name) if name else None
        if session is None:
            return error(404, "UnknownProfile", "no such profile; `tipctl status` lists the configured ones")
        body = session.cached_body()  # the hot path: from memory
        if body is None:
            try:
                body = (await session.credentials()).body
            except TipdError as e:
                return error(e.status, e.code, e.message)
        audit(name, "container", guard.peer(request))
        return web.Response(body=body, content_type=JSON)

    async def s3ag(request: web.Request) -> web.Response:
        """S3 Access Grants credentials for ?target=s3://...&permission=... (docs/s3-access-grants.md)."""
        refused = guard.refuse(request)
        if refused is not None:
            return refused
        name = request.match_info["profile"]
        cache = grants.get(name)
        if cache is None:
            return error(404, "UnknownProfile", "no such profile; `tipctl status` lists the configured ones")
        raw = request.raw_path  # as received: two requests that differ only in their escaping stay apart
        body = cache.cached_body(raw)  # the hot path: from memory
        if body is None:
            try:
                body = (await cache.fetch(request.query.items(), raw)).body
            except TipdError as e:
                return error(e.status, e.code, e.message)
        audit(name, "s3ag", guard.peer(request))
        return web.Response(body=body, content_type=JSON)

    audit = broker.audit.record
    grants = broker.grants
    app = web.Application(client_max_size=1024)
    app.router.add_get("/v1/credentials/{profile}", credentials)
    app.router.add_get("/v1/credentials", credentials)
    app.router.add_get("/v1/s3ag/{profile}", s3ag)
    if imds:
        Imds(broker, guard, allow_v1=broker.config.server.imds_v1).add_routes(app)
    return app


def make_runner(broker: Broker, guard: Guard, *, imds: bool = False, **kwargs) -> web.AppRunner:
    """The app in a runner that caps connections per user and in total (tipd/server/conns.py)."""
    return CappedRunner(make_app(broker, guard, imds=imds), Caps(guard.uid_of, know_uids=PEER_UID_SUPPORTED),
                        **kwargs)
