"""S3 Access Grants: credentials from s3control GetDataAccess, asked with a profile's identity-enhanced session,
cached per request, renewed ahead of expiry while they are used, and served from memory.

One `GrantCache` per profile. An entry is keyed by (target, permission, privilege, target_type); a request for
a narrower path is served by an entry whose grant scope (MatchedGrantTarget) covers it. The rules, and why
they are what they are, are in docs/s3-access-grants.md."""
from __future__ import annotations

import logging
import math
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from .clock import ClockLike, iso_utc
from .errors import ConfigError, TipdError
from .refresh import TICK, Stage, Verdict, WakeOrTick, Windows

if TYPE_CHECKING:  # kept out of the import: `tipctl s3ag` checks its arguments with parse_request
    from .config import RefreshConfig
    from .exchange import DataAccess
    from .session import ProfileSession, Served

log = logging.getLogger(__name__)

PERMISSIONS = ("READ", "WRITE", "READWRITE")
PRIVILEGES = ("Default", "Minimal")
TARGET_TYPES = ("Object",)
#: GetDataAccess's DurationSeconds range, and its default
MIN_DURATION, MAX_DURATION, DEFAULT_DURATION = 900, 43200, 3600
MAX_TARGET = 2000
#: bucket names: 3-63 lowercase letters, digits, dots and hyphens
BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
PARAMS = ("target", "permission", "privilege", "target_type", "duration")
#: a refusal (no grant matches) is answered from memory this long, then asked again: a grant created
#: meanwhile is noticed within this time, and a client retrying in a loop costs one call per period
REFUSAL_TTL = 30.0
#: at most this many grants per profile (the least recently used goes), and remembered requests
MAX_GRANTS = 256
MAX_REQUESTS = 1024


class GrantKey(NamedTuple):
    target: str
    permission: str
    privilege: str
    target_type: str  # "" when not given


def bad_request(message: str) -> TipdError:
    return TipdError(message, code="BadRequest", status=400, permanent=True)


def _canonical(value: str, allowed: tuple[str, ...], name: str) -> str:
    for a in allowed:
        if value.lower() == a.lower():
            return a
    raise bad_request(f"{name} must be one of {', '.join(allowed)} (got {value[:40]!r})")


def parse_request(pairs: Iterable[tuple[str, str]]) -> tuple[GrantKey, int]:
    """The cache key and duration of a request's query parameters; a clear 400 for anything wrong."""
    got: dict[str, str] = {}
    for k, v in pairs:
        if k not in PARAMS:
            raise bad_request(f"unknown parameter {k[:40]!r} (known: {', '.join(PARAMS)})")
        if k in got:
            raise bad_request(f"parameter {k!r} is given twice")
        got[k] = v
    target = got.get("target", "")
    if not target:
        raise bad_request("the target parameter is required, e.g. target=s3://bucket/prefix/")
    if target[:5].lower() != "s3://":
        raise bad_request("the target must be an S3 URL: s3://bucket[/prefix or key]")
    target = "s3://" + target[5:]
    bucket = target[5:].split("/", 1)[0]
    if not BUCKET.match(bucket):
        raise bad_request(f"{bucket[:70]!r} is not a bucket name (3-63 lowercase letters, digits, '.' and '-')")
    if len(target) > MAX_TARGET or any(ord(c) < 32 or ord(c) == 127 for c in target):
        raise bad_request(f"the target must be at most {MAX_TARGET} characters, without control characters")
    if "permission" not in got:
        raise bad_request(f"the permission parameter is required: {', '.join(PERMISSIONS)}")
    permission = _canonical(got["permission"], PERMISSIONS, "permission")
    privilege = _canonical(got.get("privilege", "Default"), PRIVILEGES, "privilege")
    target_type = _canonical(got["target_type"], TARGET_TYPES, "target_type") if got.get("target_type") else ""
    duration = DEFAULT_DURATION
    if "duration" in got:
        d = got["duration"]
        if not d.isdigit() or not MIN_DURATION <= int(d) <= MAX_DURATION:
            raise bad_request(f"duration must be a number of seconds from {MIN_DURATION} to {MAX_DURATION}")
        duration = int(d)
    return GrantKey(target, permission, privilege, target_type), duration


def covers(scope: str, target: str) -> bool:
    """Whether credentials for the grant scope `scope` (a MatchedGrantTarget: `s3://bucket/prefix/*`,
    `s3://bucket/*`, `s3://*` or one object) also reach `target`."""
    if not scope.endswith("*"):
        return target == scope
    stem = scope[:-1]
    rest = stem[5:]
    if rest and "/" not in rest:  # a wildcard inside a bucket name: never assume what it spans
        return False
    return target.startswith(stem)


class Grant:
    """One cached GetDataAccess answer, renewed ahead of expiry while it is used."""

    def __init__(self, key: GrantKey, duration: int, fetch: Callable[[Grant], Awaitable[tuple[Served, float]]],
                 clock: ClockLike, refresh_ahead: float) -> None:
        self.key = key
        self.duration = duration
        self.stage: Stage[Served] = Stage(f"s3ag {key.permission} {key.target}", lambda: fetch(self), clock,
                                          refresh_ahead)
        self.served: Served | None = None
        self.matched: str | None = None
        #: the serving windows (tipd/refresh.py), set from the lifetime at each renewal
        self.windows = Windows(advisory=0.0, mandatory=0.0)
        self.last_used = clock.time()
        self.refused: TipdError | None = None
        self.refused_until = 0.0
        #: the narrower keys and the raw requests this grant answers (so the next such request is a dict hit)
        self.keys: set[GrantKey] = {key}
        self.requests: dict[str, GrantKey] = {}

    def __repr__(self) -> str:
        return f"Grant({self.key.permission} {self.key.target}, matched={self.matched!r})"


class GrantCache:
    """One profile's S3 Access Grants. `cached_body` is the hot path (a dict lookup); `get` does the rest."""

    def __init__(self, session: ProfileSession, aws: DataAccess, clock: ClockLike, settings: RefreshConfig) -> None:
        self.session = session
        self.aws = aws
        self.clock = clock
        self.settings = settings
        self._grants: dict[GrantKey, Grant] = {}  # by their own key
        self._index: dict[GrantKey, Grant] = {}  # by every key they answer
        self._by_request: dict[str, Grant] = {}  # by every raw request (path and query) they answered
        #: whose grants these are: (IdP user, Identity Center user); another sign-in empties the cache
        self.identity: tuple[Any, Any] = (None, None)
        #: the schedule's loop (`run`); a short grant served, or a new one, wakes it
        self.schedule = WakeOrTick(clock)

    # -- serving ---------------------------------------------------------------------------
    def cached_body(self, request: str) -> bytes | None:
        """The hot path: the body for a request (its raw path and query) answered before, while it has its
        advisory window left."""
        g = self._by_request.get(request)
        if g is None or (s := g.served) is None:
            return None
        session = self.session
        if session.served is None or session.user != self.identity[0] or session.idc_user_id != self.identity[1]:
            return None
        now = self.clock.time()
        if s.creds.expires_at - now < g.windows.advisory:
            return None
        g.last_used = now
        return s.body

    async def fetch(self, pairs: Iterable[tuple[str, str]], request: str | None = None) -> Served:
        """A request's credentials: parse and check its parameters, then `get`. With `request` (its raw path
        and query), the next identical request is answered by `cached_body`."""
        key, duration = parse_request(pairs)
        return await self.get(key, duration, request)

    async def get(self, key: GrantKey, duration: int = DEFAULT_DURATION, request: str | None = None) -> Served:
        self._check_identity()
        if self.session.served is None:
            await self.session.credentials()  # signed out: LoginRequired; expired: renew it first
            self._check_identity()
        now = self.clock.time()
        g = self._index.get(key)
        if g is None or not self._fresh(g, now):
            wider = self._covering(key, now)
            if wider is not None:
                g = wider
                wider.keys.add(key)
                self._index[key] = wider
        if g is None:
            g = self._add(key, duration)
        served = await self._serve(g)
        if g.key != key and self._index.get(key) is not g:
            # a borrowed grant renewed to a narrower scope that no longer covers this target: its own grant
            g = self._add(key, duration)
            served = await self._serve(g)
        g.last_used = self.clock.time()
        # remembered only while the grant is still cached (another sign-in meanwhile drops it)
        if request is not None and self._index.get(key) is g and g.served is served and len(g.requests) < MAX_REQUESTS:
            if len(self._by_request) >= MAX_REQUESTS:
                self._by_request.clear()  # only an index: requests rebuild it
            self._by_request[request] = g
            g.requests[request] = key
        return served

    def _fresh(self, g: Grant, now: float) -> bool:
        return g.served is not None and g.windows.verdict(g.served.creds.expires_at, now) is Verdict.SERVE

    def _covering(self, key: GrantKey, now: float) -> Grant | None:
        """A fresh grant whose scope covers the key's target, asked with the same permission, privilege and
        target type. Only for privilege Default: Minimal credentials reach just the target they were asked for."""
        if key.privilege != "Default":
            return None
        found = [g for g in self._grants.values()
                 if g.key[1:] == key[1:] and g.matched is not None and covers(g.matched, key.target)
                 and self._fresh(g, now)]
        return max(found, key=lambda g: g.served.creds.expires_at if g.served else 0.0) if found else None

    async def _serve(self, g: Grant) -> Served:
        now = self.clock.time()
        s = g.served
        verdict = g.windows.verdict(s.creds.expires_at if s is not None else None, now)
        if s is not None and verdict is not Verdict.RENEW:
            if verdict is Verdict.SERVE_AND_RENEW:
                self.schedule.wake()  # serve it now, let the scheduler renew it behind
            return s
        if g.refused is not None and now < g.refused_until:
            raise g.refused
        failing = g.stage.backing_off(now)
        if failing is not None:
            raise failing
        return (await g.stage.refresh()).value

    # -- the upstream call -----------------------------------------------------------------
    def _add(self, key: GrantKey, duration: int) -> Grant:
        if len(self._grants) >= MAX_GRANTS:
            idle = [g for g in self._grants.values() if not g.stage.refreshing]
            if idle:
                self._drop(min(idle, key=lambda g: g.last_used))
        g = Grant(key, duration, self._fetch, self.clock, self.settings.rotate_remaining)
        self._grants[key] = self._index[key] = g
        self.schedule.wake()
        return g

    async def _fetch(self, g: Grant) -> tuple[Served, float]:
        from .session import Served

        session = self.session
        enhanced = (await session.credentials()).creds
        account = session.profile.account_id or enhanced.account_id
        if not account:
            raise ConfigError(f"cannot tell the account of the S3 Access Grants instance: set account_id in "
                              f"[profiles.{session.name}]")
        k = g.key
        try:
            creds, matched = await self.aws.get_data_access(
                region=session.profile.region, creds=enhanced, account_id=account, target=k.target,
                permission=k.permission, privilege=k.privilege, target_type=k.target_type or None,
                duration=g.duration)
        except TipdError as e:
            if e.permanent:  # refused: stop serving what was granted before, and remember it a while
                g.refused, g.refused_until = e, self.clock.time() + REFUSAL_TTL
                g.served = None
                self._forget_requests(g)
            raise
        now = self.clock.time()
        g.refused = None
        if matched != g.matched:
            g.matched = matched
            for other in [x for x in g.keys if x != k and not covers(matched, x.target)]:
                self._forget_key(g, other)
        g.served = Served.render(creds, now)
        # as for sessions: at a 1 h lifetime, renew with 30 min left and never serve below 20 min; a shorter
        # lifetime is served for its first two thirds
        g.windows = Windows(advisory=min(self.settings.min_remaining, (creds.expires_at - now) / 3),
                            mandatory=self.session.windows.mandatory)
        log.info("profile %s: S3 Access Grants credentials for %s %s (grant %s), valid until %s", session.name,
                 k.permission, k.target, matched, iso_utc(creds.expires_at))
        return g.served, creds.expires_at

    # -- bookkeeping -----------------------------------------------------------------------
    def _check_identity(self) -> None:
        identity = (self.session.user, self.session.idc_user_id)
        if identity != self.identity:
            if self._grants:
                log.info("profile %s: the signed-in user changed; dropping %d cached S3 Access Grants",
                         self.session.name, len(self._grants))
            self._grants.clear()
            self._index.clear()
            self._by_request.clear()
            self.identity = identity

    def _forget_key(self, g: Grant, key: GrantKey) -> None:
        g.keys.discard(key)
        if self._index.get(key) is g:
            del self._index[key]
        for q in [q for q, k in g.requests.items() if k == key]:
            del g.requests[q]
            if self._by_request.get(q) is g:
                del self._by_request[q]

    def _forget_requests(self, g: Grant) -> None:
        for q in g.requests:
            if self._by_request.get(q) is g:
                del self._by_request[q]
        g.requests.clear()

    def _drop(self, g: Grant) -> None:
        if self._grants.get(g.key) is g:
            del self._grants[g.key]
        for k in list(g.keys):
            self._forget_key(g, k)
        self._forget_requests(g)

    # -- the schedule ----------------------------------------------------------------------
    def _next(self, now: float) -> tuple[Grant | None, str, float]:
        """(grant, "refresh" or "drop", now), or (None, "", when something is next due)."""
        self._check_identity()
        nxt = float("inf")
        for g in list(self._grants.values()):
            st = g.stage
            if st.refreshing:
                nxt = min(nxt, now + TICK)
                continue
            if g.served is None:  # never granted, refused or failing: kept a while so requests get the answer
                at = max(g.last_used + REFUSAL_TTL, g.refused_until, st.next_attempt or 0.0)
                if at <= now:
                    return g, "drop", now
                nxt = min(nxt, at)
                continue
            expires = g.served.creds.expires_at
            if expires <= now + g.windows.mandatory:
                return g, "drop", now
            due = st.due_at()
            assert due is not None
            if due <= now:
                # renewed while used within one lifetime: an SDK holding these credentials comes back before
                # they expire. Left alone that long, the grant is dropped instead of renewed for ever.
                lifetime = expires - (st.held.obtained_at if st.held else now)
                return g, ("refresh" if now - g.last_used <= lifetime else "drop"), now
            nxt = min(nxt, due, expires - g.windows.mandatory)
        return None, "", nxt

    async def run(self) -> None:
        """The schedule: renew the grants in use ahead of expiry, drop the others (tipd/refresh.py's loop)."""
        await self.schedule.run(self._step)

    async def _step(self) -> float | None:
        """One round: None when it did something, else the seconds until the next thing (math.inf when nothing
        is cached: only a new grant wakes the loop)."""
        now = self.clock.time()
        g, action, when = self._next(now)
        if g is None:
            return when - now if not math.isinf(when) else math.inf
        if action == "drop":
            log.debug("profile %s: dropping the cached grant for %s", self.session.name, g.key.target)
            self._drop(g)
        else:
            try:
                await g.stage.refresh()
            except TipdError as e:
                log.warning("profile %s: renewing S3 Access Grants credentials for %s failed: %s",
                            self.session.name, g.key.target, e.message)
        return None

    # -- status ----------------------------------------------------------------------------
    def listing(self) -> list[dict[str, Any]]:
        """The cached grants, never their credentials."""
        self._check_identity()

        def t(x: float | None) -> str | None:
            return iso_utc(x) if x is not None else None

        out = []
        for g in sorted(self._grants.values(), key=lambda g: g.key):
            err = g.refused or g.stage.last_error
            out.append({
                "target": g.key.target, "permission": g.key.permission, "privilege": g.key.privilege,
                "target_type": g.key.target_type or None, "duration": g.duration,
                "matched_grant_target": g.matched,
                "expires": t(g.served.creds.expires_at) if g.served else None,
                "next_refresh": t(g.stage.due_at()) if g.served else None,
                "last_used": t(g.last_used),
                "also_serves": sorted(k.target for k in g.keys if k != g.key),
                "last_error": err.message if err else None,
            })
        return out
