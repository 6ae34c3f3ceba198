"""Unit-level stand-ins: a virtual clock, and upstreams whose lifetimes follow it. Acceptance tests use
the real IdP, moto and the project's AWS fake instead."""
from __future__ import annotations

import asyncio
import heapq
import itertools

import jwt

from tipd.clock import ClockLike
from tipd.errors import UpstreamError
from tipd.exchange import AwsCredentials, IdcToken
from tipd.idp.oidc import OAuthError, Revocation, TokenResponse
from tipd.secret import Secret


class FakeClock:
    """Time that moves only when a test says so."""

    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def time(self) -> float:
        return self.t

    async def sleep(self, s: float) -> None:
        self.t += s
        await asyncio.sleep(0)


class VirtualClock:
    """Virtual time for whole schedules: `sleep` parks the caller until `run_until` advances the clock to
    its wake-up time, after letting every runnable task settle. A day passes in well under a second."""

    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t
        self._heap: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def time(self) -> float:
        return self.t

    async def sleep(self, s: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._heap, (self.t + max(0.0, s), next(self._seq), fut))
        await fut

    def jump(self, seconds: float) -> None:
        """The wall clock jumps (suspend/resume): no sleeper is woken by it."""
        self.t += seconds

    async def settle(self, rounds: int = 50) -> None:
        for _ in range(rounds):
            await asyncio.sleep(0)

    async def run_until(self, end: float) -> None:
        while True:
            await self.settle()
            while self._heap and self._heap[0][2].done():
                heapq.heappop(self._heap)  # cancelled sleepers
            if not self._heap or self._heap[0][0] > end:
                self.t = max(self.t, end)
                await self.settle()
                return
            when, _, fut = heapq.heappop(self._heap)
            self.t = max(self.t, when)
            fut.set_result(None)


class FakeIdp:
    """An IdP whose tokens live `ttl` seconds of the given clock and whose refresh tokens rotate.

    The knobs the session's IdP logic meets at real IdPs: `granted` is the scope of the grant (what a token
    response's `scope` says); `scope_rule` what a refresh's `scope` may be ("subset": within the grant, else
    invalid_scope; "required": must be sent, as Entra; "rejected": must not be sent); `id_token_on_refresh` False
    leaves id_tokens out of
    refresh answers (PingFederate's default); `jwt_access_tokens` makes access tokens JWTs."""

    def __init__(self, clock: ClockLike, ttl: int = 3600) -> None:
        self.clock = clock
        self.ttl = ttl
        #: what tipd sets when a profile's IdP app needs one (tipd.idp.oidc.Idp); the stand-in ignores it
        self.client_secret: Secret | None = None
        self.calls = 0
        self.revoked = False
        self.fail: Exception | None = None
        self.live = "rt-0"
        self.n = 0
        self.granted = "openid email offline_access"
        self.scope_rule = "subset"
        self.id_token_on_refresh = True
        self.jwt_access_tokens = False
        self.scopes_sent: list[str | None] = []
        #: how far the IdP's clock is behind ours (its iat/exp are on its clock)
        self.skew = 0.0

    def _jwt(self, kind: str) -> str:
        now = int(self.clock.time() - self.skew)
        return jwt.encode({"sub": "alice", "email": "alice@example.com", "iat": now, "exp": now + self.ttl,
                           "n": self.n, "kind": kind}, "k" * 32, algorithm="HS256")

    def tokens(self, id_token: bool = True) -> TokenResponse:
        at = self._jwt("access") if self.jwt_access_tokens else f"at-{self.n}"
        return TokenResponse(Secret(at), Secret(self._jwt("id")) if id_token else None, Secret(self.live), self.ttl,
                             self.granted)

    async def refresh(self, refresh_token: Secret, scope: str | None = None) -> TokenResponse:
        self.calls += 1
        self.scopes_sent.append(scope)
        if self.fail is not None:
            raise self.fail
        if self.revoked or refresh_token.reveal() != self.live:
            raise OAuthError("invalid_grant", "grant revoked", 400, "refreshing the IdP tokens")
        if scope is None and self.scope_rule == "required":
            raise OAuthError("invalid_request", "AADSTS90023: the scope parameter is not specified", 400,
                             "refreshing the IdP tokens")
        if scope is not None and self.scope_rule == "rejected":
            raise OAuthError("invalid_request", "scope is not allowed on a refresh request", 400,
                             "refreshing the IdP tokens")
        if scope is not None and not set(scope.split()) <= set(self.granted.split()):
            raise OAuthError("invalid_scope", "refresh token missing requested scope", 400, "refreshing the IdP tokens")
        self.n += 1
        self.live = f"rt-{self.n}"
        return self.tokens(id_token=self.id_token_on_refresh)

    async def revoke(self, token: Secret) -> Revocation:
        self.revoked = True
        return Revocation("revoked")


class FakeAws:
    """The three AWS calls with lifetimes on the given clock; counts calls per operation."""

    def __init__(self, clock: ClockLike, idc_ttl: int = 3600, bootstrap_duration: float | None = None) -> None:
        self.clock = clock
        self.idc_ttl = idc_ttl
        self.calls = {"AssumeRoleWithWebIdentity": 0, "CreateTokenWithIAM": 0, "AssumeRole": 0}
        self.assertions: list[str] = []
        self.fail: dict[str, Exception] = {}
        #: when set, every STS answer lasts this long whatever was asked (negative: expired before it arrives)
        self.sts_duration: float | None = None
        self.n = 0

    def _creds(self, duration: float, role: str) -> AwsCredentials:
        self.n += 1
        if self.sts_duration is not None:
            duration = self.sts_duration
        return AwsCredentials(f"ASIA{self.n:016d}", Secret("s"), Secret("t"), self.clock.time() + duration,
                              "111122223333", f"arn:aws:sts::111122223333:assumed-role/{role}/x")

    def _call(self, op: str) -> None:
        self.calls[op] += 1
        if op in self.fail:
            raise self.fail[op]

    async def assume_role_with_web_identity(self, *, region: str, role_arn: str, id_token: Secret, session: str,
                                            duration: int = 3600) -> AwsCredentials:
        self._call("AssumeRoleWithWebIdentity")
        return self._creds(duration, "oidc")

    async def create_token_with_iam(self, *, region: str, creds: AwsCredentials, application_arn: str,
                                    assertion: Secret | None = None,
                                    refresh_token: Secret | None = None) -> IdcToken:
        self._call("CreateTokenWithIAM")
        if assertion is not None:
            if assertion.reveal() in self.assertions:
                raise UpstreamError("replayed", code="InvalidGrantException", permanent=True)
            self.assertions.append(assertion.reveal())
        return IdcToken(Secret("idc-at"), Secret(f"idc-rt-{self.n}"), Secret("ctx"),
                        self.clock.time() + self.idc_ttl, "user-1")

    async def assume_role_with_context(self, *, region: str, creds: AwsCredentials, role_arn: str, session: str,
                                       identity_context: Secret, duration: int = 3600) -> AwsCredentials:
        self._call("AssumeRole")
        return self._creds(duration, "enhanced")
