"""The control API on a unix socket (0600, in a 0700 directory, peer uid checked): login hand-off,
logout, status and credentials for tipctl. The wire format is documented in docs/control-api.md."""
from __future__ import annotations

import contextlib
import json
import os
from typing import Any

from aiohttp import web

from .. import __version__
from ..accounts import AccountSession
from ..broker import BROKER, Broker
from ..changes import follow, worst_state
from ..clock import numeric_date
from ..consumers import DEFAULT_TTL, Consumers, GrantError, check_name
from ..errors import TipdError, UnknownProfile
from ..idp.oidc import TokenResponse, parse_token_response
from ..idp.verify import unverified_claims
from ..profiles import unknown_profile
from ..session import ProfileSession
from .guards import Routes, same_user

#: a profile's status as /v1/summary and `/v1/events?brief=1` give it
SUMMARY_KEYS = ("profile", "state", "user", "credentials_expire", "next_refresh", "last_error")
#: an account profile's, in the summary's `accounts`
ACCOUNT_SUMMARY_KEYS = ("profile", "source", "state", "credentials_expire", "last_error")


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(data).encode(), content_type="application/json")


def hand_off(data: Any, needs_id_token: bool = True) -> TokenResponse:  # Any: a JSON body
    """The login hand-off's tokens, checked before the session sees them: a JSON object of strings, and an
    id_token (when present) that is a JWT whose `exp` is a time. A bad one never touches a working sign-in."""
    what = "the login hand-off"
    if not isinstance(data, dict):
        raise TipdError(f"{what} must be the IdP's token response: a JSON object")
    for key in ("access_token", "id_token", "refresh_token", "scope"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise TipdError(f"{what}: {key} must be a string")
    tokens = parse_token_response(data, what)
    if tokens.id_token is None and needs_id_token:
        raise TipdError(f"{what} has no id_token, which this profile exchanges with AWS: its scopes must "
                        "include openid")
    if tokens.id_token is not None:
        claims = unverified_claims(tokens.id_token.reveal())
        if claims.get("exp") is not None and numeric_date(claims["exp"]) is None:
            raise TipdError(f"{what}: the id_token's exp claim is not a time (seconds since 1970)")
    return tokens


def make_app(broker: Broker) -> web.Application:
    def session(request: web.Request) -> ProfileSession:
        name = request.match_info["profile"]
        s = broker.sessions.get(name)
        if s is None:
            acct = broker.accounts.get(name)
            if acct is not None:
                raise UnknownProfile(f"{name} is an account profile: it signs in through profile {acct.source.name} "
                                     f"(use `tipctl login {acct.source.name}` / `tipctl logout {acct.source.name}`)",
                                     status=400)
            raise UnknownProfile(unknown_profile(name, broker.sessions))
        return s

    def profile_statuses() -> list[dict[str, Any]]:
        """Each profile's status; one whose background task stopped is degraded and says so."""
        out = []
        for name, s in broker.sessions.items():
            st = s.status()
            st["accounts"] = [a.status() for a in broker.accounts.values() if a.source is s]
            failed = broker.tasks.failed(name)
            if failed is not None:
                if st["state"] != "login-required":  # its renewals (or tipd's part in them) stopped
                    st["state"] = "degraded"
                st["last_error"] = failed.sentence() + (f"; before that: {st['last_error']}" if st["last_error"]
                                                        else "")
            out.append(st)
        return out

    def served(name: str) -> ProfileSession | AccountSession:
        """A profile whose credentials can be asked for: a sign-in or an account profile."""
        s = broker.sessions.get(name) or broker.accounts.get(name)
        if s is None:
            raise UnknownProfile(unknown_profile(name, [*broker.sessions, *broker.accounts]))
        return s

    def overall(states: list[str]) -> str:
        # a stopped task of tipd's own (not a profile's) needs attention too
        daemon_failed = any(f.profile is None for f in broker.tasks.failures)
        return worst_state([*states, "degraded"] if daemon_failed else states)

    def full_status() -> dict[str, Any]:
        profiles = profile_statuses()
        return {"version": __version__, "pid": os.getpid(), "port": broker.config.server.port,
                "default_profile": broker.default_profile, "state": overall([p["state"] for p in profiles]),
                "profiles": profiles, "recent_clients": broker.audit.clients(),
                "failed_tasks": [f.to_json() for f in broker.tasks.failures]}

    def summary() -> dict[str, Any]:
        """What a tray or a shell prompt shows: no stages, no audit."""
        profiles = [{k: st[k] for k in SUMMARY_KEYS} for st in profile_statuses()]
        accounts = [{k: st[k] for k in ACCOUNT_SUMMARY_KEYS} for st in (a.status() for a in broker.accounts.values())]
        return {"version": __version__, "pid": os.getpid(), "state": overall([p["state"] for p in profiles]),
                "default_profile": broker.default_profile, "profiles": profiles, "accounts": accounts}

    async def status(request: web.Request) -> web.Response:
        return _json(full_status())

    async def get_summary(request: web.Request) -> web.Response:
        return _json(summary())

    async def events(request: web.Request) -> web.StreamResponse:
        brief = request.query.get("brief", "") not in ("", "0", "false")
        with broker.changes.subscribe():  # before the answer starts, so a refusal can still be a 503
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
            await resp.prepare(request)
            # a ConnectionError: the client went away (noticed at the latest by the next keep-alive)
            with contextlib.suppress(ConnectionError):
                await follow(broker.changes, summary if brief else full_status, resp.write)
            return resp

    async def profiles(request: web.Request) -> web.Response:
        return _json({"default_profile": broker.default_profile,
                      "profiles": {**{n: s.profile.model_dump() for n, s in broker.sessions.items()},
                                   **{n: a.profile.model_dump() for n, a in broker.accounts.items()}}})

    def served_session(request: web.Request) -> ProfileSession | AccountSession:
        return served(request.match_info["profile"])

    async def login(request: web.Request) -> web.Response:
        s = session(request)
        try:
            data = await request.json()
        except (ValueError, RecursionError):  # a body nested thousands deep exhausts json's recursion
            raise TipdError("the login hand-off must be the IdP's token response as JSON", code="BadRequest",
                            status=400) from None
        try:
            tokens = hand_off(data, needs_id_token=s.profile.exchange_token == "id_token")
        except TipdError as e:  # the caller's mistake, whatever the checks' own status: a 400
            raise TipdError(e.message, code="BadRequest", status=400) from None
        return _json(await s.login(tokens))

    async def logout(request: web.Request) -> web.Response:
        s = session(request)
        revocation = await s.logout()
        return _json({"profile": s.name, "signed_out": True, "revoked_at_idp": bool(revocation),
                      "revocation": revocation.outcome, "revocation_detail": revocation.detail})

    async def credentials(request: web.Request) -> web.Response:
        served = await served_session(request).credentials()
        return web.Response(body=served.body, content_type="application/json")

    async def s3ag_list(request: web.Request) -> web.Response:
        name = session(request).name
        return _json({"profile": name, "grants": broker.grants[name].listing()})

    async def s3ag_credentials(request: web.Request) -> web.Response:
        served = await broker.grants[session(request).name].fetch(request.query.items())
        return web.Response(body=served.body, content_type="application/json")

    async def accounts(request: web.Request) -> web.Response:
        """The AWS accounts and roles of the profile's sign-in (Identity Center account access)."""
        s = session(request)
        if broker.portal is None:  # a daemon without account profiles made none yet
            from ..exchange import AwsChain
            from ..portal import Portal

            # a daemon's sessions hold its AwsChain (only unit tests give a session a stand-in chain)
            assert isinstance(s.aws, AwsChain)
            broker.portal = Portal(s.aws)
        portal = broker.portal
        token = await s.identity_center_token()
        listed = await portal.accounts(token, region=s.profile.region, application_arn=s.profile.application_arn,
                                       fresh=request.query.get("fresh", "") not in ("", "0", "false"))
        return _json({"profile": s.name, "accounts": [a.to_json() for a in listed]})

    async def diag_id_token(request: web.Request) -> web.Response:
        s = session(request)
        token = await s.fresh_id_token()
        return _json({"profile": s.name, "id_token": token.reveal()})

    async def rotate_token(request: web.Request) -> web.Response:
        broker.rotate_token()
        return _json({"rotated": True})

    def consumers() -> Consumers:
        if broker.consumers is None:
            raise TipdError("this tipd does not offer consumer tokens", status=501)
        return broker.consumers

    async def body(request: web.Request) -> dict[str, Any]:  # Any: a JSON object
        try:
            data = await request.json()
        except (ValueError, RecursionError):
            data = None
        if not isinstance(data, dict):
            raise GrantError("the request body must be a JSON object")
        return data

    async def grant_create(request: web.Request) -> web.Response:
        data = await body(request)
        name, profiles, ttl = data.get("name"), data.get("profiles"), data.get("ttl_seconds", DEFAULT_TTL)
        if not isinstance(profiles, list) or not all(isinstance(p, str) for p in profiles):
            raise GrantError("profiles must be a list of profile names")
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
            raise GrantError("ttl_seconds must be a number")
        token_dir = data.get("token_dir")
        if token_dir is not None and not isinstance(token_dir, str):
            raise GrantError("token_dir must be a path")
        for p in profiles:
            served(p)  # an unknown profile is a 404 that lists the configured ones
        g, token = consumers().create(check_name(name if isinstance(name, str) else ""), profiles, float(ttl),
                                      token_dir)
        return _json({**g.to_json(consumers().now()), "token": token})

    async def grant_rotate(request: web.Request) -> web.Response:
        g, token = consumers().rotate(request.match_info["name"])
        return _json({**g.to_json(consumers().now()), "token": token})

    async def grant_revoke(request: web.Request) -> web.Response:
        g = consumers().revoke(request.match_info["name"])
        return _json({"name": g.name, "revoked": True})

    async def grant_list(request: web.Request) -> web.Response:
        return _json({"grants": consumers().listing()})

    async def reload(request: web.Request) -> web.Response:
        return _json(await broker.reload())  # a config that does not load: its ConfigError, as a 400

    app = web.Application(client_max_size=256 * 1024)
    app[BROKER] = broker
    # every route, and a request no route matches, is for the user running tipd only
    check = same_user()
    routes = Routes(app, unmatched=check)
    for method, path, handler in (
            ("POST", "/v1/reload", reload),
            ("POST", "/v1/rotate-token", rotate_token),
            ("GET", "/v1/grants", grant_list),
            ("POST", "/v1/grants", grant_create),
            ("POST", "/v1/grants/{name}/rotate", grant_rotate),
            ("DELETE", "/v1/grants/{name}", grant_revoke),
            ("GET", "/v1/status", status),
            ("GET", "/v1/summary", get_summary),
            ("GET", "/v1/events", events),
            ("GET", "/v1/profiles", profiles),
            ("POST", "/v1/login/{profile}", login),
            ("POST", "/v1/logout/{profile}", logout),
            ("GET", "/v1/credentials/{profile}", credentials),
            ("POST", "/v1/diag/{profile}/id-token", diag_id_token),
            ("GET", "/v1/accounts/{profile}", accounts),
            ("GET", "/v1/s3ag/{profile}", s3ag_list),
            ("GET", "/v1/s3ag/{profile}/credentials", s3ag_credentials)):
        routes.add(method, path, handler, check)
    return app
