"""One profile's live state: IdP tokens -> bootstrap session -> Identity Center token -> enhanced session."""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from .clock import ClockLike, iso_utc, local_expiry, numeric_date
from .config import Profile, RefreshConfig
from .errors import LoginRequired, TipdError, UpstreamError
from .exchange import AwsCredentials, Chain, IdcToken, session_name
from .fsutil import crash_point
from .idp.oidc import NOT_SIGNED_IN, Idp, OAuthError, Revocation, TokenResponse
from .refresh import TICK, Held, Stage, Verdict, WakeOrTick, Windows
from .secret import Secret
from .store import ClientSecret, Grant, StoreError, TokenStore, client_secret

log = logging.getLogger(__name__)


def unverified_claims(token: str) -> dict[str, Any]:
    """idp.verify's, imported at the first use: PyJWT (with cryptography) is not needed on tipd's way to
    listening."""
    from .idp.verify import unverified_claims as claims

    return claims(token)


#: a dependency must stay valid at least this long for the next stage to use it
DEPENDENCY_MARGIN = 60
#: below this, credentials are not served even when nothing fresher can be had (clock skew would
#: make them expired on arrival)
HARD_MIN_REMAINING = 10
#: the longest lifetime taken from an IdP's expires_in (a day): larger ones are not believed
MAX_LIFETIME = 86400
#: a record the store refused is saved again after 1, 2, 4, ... seconds, at most this long apart
SAVE_RETRY_CAP = 60.0
#: a refused Identity Center refresh grant: exchange a fresh IdP token instead
FALLBACK_CODES = {"InvalidGrantException", "ExpiredTokenException", "UnsupportedGrantTypeException",
                  "UnauthorizedClientException"}


class State(StrEnum):
    SIGNED_OUT = "signed-out"
    SIGNING_IN = "signing-in"
    FRESH = "fresh"
    REFRESHING = "refreshing"
    DEGRADED = "degraded"
    LOGIN_REQUIRED = "login-required"


@dataclass
class IdpTokens:
    """What the last IdP answer gave the chain: the JWT that goes to AWS (the id_token, or the access token
    when the profile says `exchange_token = "access_token"`), or None when a refresh returned none."""

    assertion: Secret | None
    claims: dict[str, Any]
    #: when the assertion expires (its `exp`)
    assertion_expires: float = 0.0
    #: Identity Center rejects a JWT it has already exchanged: each one goes to it at most once
    exchanged: bool = False

    @property
    def id_token(self) -> Secret | None:  # the name of before, for readers that inspect the JWT (diag)
        return self.assertion

    def __repr__(self) -> str:
        return f"IdpTokens(sub={self.claims.get('sub')!r}, exchanged={self.exchanged})"


def _looks_like_jwt(token: str) -> bool:
    parts = token.split(".")
    return len(parts) == 3 and all(parts[:2])


#: what makes an IdP issue a refresh token, by provider (the sentence when a sign-in brought none)
NO_REFRESH_TOKEN = {
    "google": "the sign-in must ask for access_type=offline, and prompt=consent to get one again after an earlier "
              "consent (the google preset's auth_params do)",
    "cognito": "the app client must allow the authorization code grant (Cognito then always issues one)",
    "oidc": "the app must allow the refresh_token grant and the profile's scopes must include offline_access",
}

#: Entra ID never lists offline_access in a token response's `scope`, yet granted it when it issued a refresh
#: token (https://learn.microsoft.com/en-us/answers/questions/806413/scope-offline-access-isnt-being-returned-in-the-to)
SCOPE_NEVER_LISTED = {"entra": "offline_access"}


@dataclass(frozen=True)
class Served:
    """What the credential endpoints hand out, rendered once when the session is made."""

    creds: AwsCredentials
    body: bytes  # container-credentials JSON
    imds_body: bytes = b""  # IMDS security-credentials/<name>
    imds_extended_body: bytes = b""  # IMDS security-credentials-extended/<name> (with AccountId)

    @classmethod
    def render(cls, creds: AwsCredentials, now: float) -> Served:
        c = creds.container_json()
        imds = {"Code": "Success", "LastUpdated": iso_utc(now), "Type": "AWS-HMAC",
                "AccessKeyId": c["AccessKeyId"], "SecretAccessKey": c["SecretAccessKey"], "Token": c["Token"],
                "Expiration": c["Expiration"]}
        return cls(creds, json.dumps(c).encode(), json.dumps(imds).encode(),
                   json.dumps(dict(imds, AccountId=c["AccountId"])).encode())


class ServesFromMemory:
    """The serving check shared by every kind of profile session: `served` is what is in memory, `windows` the
    serving policy (tipd/refresh.py); the hot path reads only these two and the clock."""

    served: Served | None
    windows: Windows
    clock: ClockLike
    floor: float

    def start_serving(self, clock: ClockLike, refresh: RefreshConfig) -> None:
        """Nothing in memory yet; served while `min_remaining` is left, renewed behind a request below it,
        never served below `floor`."""
        self.clock = clock
        self.floor = min(HARD_MIN_REMAINING, refresh.min_remaining / 2)
        self.windows = Windows(advisory=refresh.min_remaining, mandatory=self.floor)
        self.served = None

    def fresh(self) -> Served | None:
        """What is in memory with at least the advisory window (`min_remaining`) left, else None."""
        s = self.served
        if s is not None and s.creds.expires_at - self.clock.time() >= self.windows.advisory:
            return s
        return None

    def serving_verdict(self) -> tuple[Served | None, float, Verdict]:
        """What is in memory, the time now, and whether to serve it, serve and renew it, or renew first."""
        s = self.served
        now = self.clock.time()
        return s, now, self.windows.verdict(s.creds.expires_at if s is not None else None, now)


class ProfileSession(ServesFromMemory):
    def __init__(self, name: str, profile: Profile, refresh: RefreshConfig, *, store: TokenStore, aws: Chain,
                 idp: Idp, clock: ClockLike, notify: Callable[[str, str], None] | None = None,
                 on_change: Callable[[], None] | None = None) -> None:
        self.name = name
        self.profile = profile
        self.settings = refresh
        self.store = store
        self.aws = aws
        self.idp_client = idp
        self.notify = notify or (lambda title, body: None)
        #: told whenever something a status reader sees changes (the control API's event stream)
        self.on_change = on_change or (lambda: None)
        # margins scale down with (test-sized) lifetimes; at the defaults they are 60 s and 10 s
        self.margin = min(DEPENDENCY_MARGIN, refresh.min_remaining / 4)
        self.start_serving(clock, refresh)
        self.refresh_token: Secret | None = None
        #: the scope the IdP granted (from the sign-in or the last refresh that said), space-separated
        self.granted_scope: str | None = None
        #: the stored record was written before records were bound to their issuer: bind it at the next save
        self._grant_unbound = False
        #: the Identity Center refresh token found in the store at start (the idc stage holds the live one)
        self._stored_idc_refresh: Secret | None = None
        self._store_lock = asyncio.Lock()
        #: the session's sign-in (refresh token, scope, Identity Center refresh token) differs from the stored
        #: record: a write failed (disk full, read-only, keyring refused) or is under way. The values are in
        #: memory and in use; `run` retries the write with backoff until it lands
        self._dirty = False
        self.save_error: TipdError | None = None
        self._save_failures = 0
        self._save_retry_at = 0.0
        #: how this IdP takes a refresh's scope when it refused the profile's way once ("omit" / "granted")
        self._scope_mode: str | None = None
        #: reading the stored sign-in at start-up, when it runs behind the listeners (the daemon's start): a
        #: request waits for it rather than hear "not signed in"
        self.loading: asyncio.Task[None] | None = None
        self.signing_in = False
        #: set while no sign-in runs (a reload waits for one under way before replacing the session)
        self.no_sign_in_running = asyncio.Event()
        self.no_sign_in_running.set()
        self.login_required: TipdError | None = None
        self.user: str | None = None
        self.idc_user_id: str | None = None
        #: counts sign-outs (and sign-ins as another person): credentials got with an older one are never kept
        self.sign_in_epoch = 0
        #: told at a sign-out or a sign-in as another person (the account profiles drop their credentials)
        self.sign_in_listeners: list[Callable[[], None]] = []
        #: the schedule's loop (`run`); a request that served something short wakes it
        self.schedule = WakeOrTick(clock)
        ahead = refresh.rotate_remaining
        changed = self._changed
        self.idp: Stage[IdpTokens] = Stage("idp-tokens", self._fetch_idp, clock, ahead, on_change=changed)
        self.bootstrap: Stage[AwsCredentials] = Stage("bootstrap-session", self._fetch_bootstrap, clock, ahead,
                                                      on_change=changed)
        self.idc: Stage[IdcToken] = Stage("identity-center-token", self._fetch_idc, clock, ahead, on_change=changed)
        self.enhanced: Stage[AwsCredentials] = Stage("identity-enhanced-session", self._fetch_enhanced, clock, ahead,
                                                     on_change=changed)
        #: the chain in order (each stage holds its own kind of value)
        self.stages: tuple[Stage[Any], ...] = (self.idp, self.bootstrap, self.idc, self.enhanced)
        self._told_state = self.state

    # -- the stages ------------------------------------------------------------------------
    async def _fetch_idp(self) -> tuple[IdpTokens, float]:
        if self.refresh_token is None:
            raise LoginRequired(f"not signed in: run `tipctl login {self.name}`")
        # never more than the grant: no `scope` (the grant stays as it is), or exactly what was granted
        scope = self._refresh_scope()
        try:
            tokens = await self.idp_client.refresh(self.refresh_token, scope=scope)
        except OAuthError as e:
            other = self._other_refresh_scope(scope, e)
            if other is False:
                raise
            tokens = await self.idp_client.refresh(self.refresh_token, scope=other or None)
            crash_point("rotation:received")
            self._scope_mode = "omit" if other is None else "granted"
            log.warning("profile %s: the IdP refused a refresh %s (%s); it takes one %s: set refresh_scope = \"%s\" "
                        "in the profile", self.name, "without a scope" if scope is None else "with the granted scope",
                        e.error, "with the granted scope" if other else "without a scope", self._scope_mode)
            scope = other
        else:
            crash_point("rotation:received")
        granted = self._granted(tokens, asked=scope)
        rotated = tokens.refresh_token is not None and tokens.refresh_token != self.refresh_token
        if rotated or granted != self.granted_scope or self._grant_unbound:
            # A rotated token: the old one is dead now. It is the session's at once, and persisted before
            # anything uses it, so a crash at any later point still leaves a token that works; a store that
            # refuses it (disk full, read-only) costs nothing: renewals go on with it, the write is retried.
            await self._persist(refresh_token=tokens.refresh_token if rotated else None, scope=granted)
            crash_point("rotation:saved")
        return self._idp_tokens(tokens)

    def _refresh_scope(self) -> str | None:
        if self._scope_mode is None:
            return self.profile.refresh_scope_for(self.granted_scope)
        return None if self._scope_mode == "omit" else (self.granted_scope or " ".join(self.profile.scopes))

    def _other_refresh_scope(self, sent: str | None, e: OAuthError) -> str | Literal[False] | None:
        """The other way to ask, when the IdP's refusal says it wants it (once per session: the answer is kept):
        the granted scope after a refusal of a refresh without one (Entra's AADSTS90023), no scope after a
        refusal of the granted one (a grant narrower than it said, an IdP that takes none). False: the refusal
        is about something else."""
        about_scope = e.error == "invalid_scope" or (e.error == "invalid_request"
                                                     and "scope" in (e.description or "").lower())
        if self._scope_mode is not None or not about_scope:
            return False
        return (self.granted_scope or " ".join(self.profile.scopes)) if sent is None else None

    def _granted(self, tokens: TokenResponse, asked: str | None) -> str:
        """The scope the IdP granted: its answer's `scope`, else what was asked (RFC 6749 section 5.1: the
        scope may be left out when it is the one requested), else what was granted before."""
        scope = tokens.scope.strip() if isinstance(tokens.scope, str) and tokens.scope.strip() else None
        if scope is None:
            return asked or self.granted_scope or " ".join(self.profile.scopes)
        unlisted = SCOPE_NEVER_LISTED.get(self.profile.provider)
        if (unlisted and tokens.refresh_token is not None and unlisted in self.profile.scopes
                and unlisted not in scope.split()):
            scope += " " + unlisted
        return scope

    async def _persist(self, *, refresh_token: Secret | None = None, scope: str | None = None,
                       idc_refresh: Secret | None = None) -> bool:
        """Make the given values the session's own at once (a rotated refresh token is the only live one: it
        must never wait on a disk), then store the sign-in record, bound to this issuer, client and application,
        built from the latest values. One write at a time, each from the latest values, so a slower write can
        never put back a token that an IdP already rotated. Never raises: a refused write is retried by `run`
        with backoff and shown in the status. Shielded: a cancelled caller does not abandon a write."""
        if self.refresh_token is None:
            return True  # signed out meanwhile: never bring a sign-in back
        self.refresh_token = refresh_token or self.refresh_token
        self.granted_scope = scope or self.granted_scope
        self._stored_idc_refresh = idc_refresh or self._stored_idc_refresh
        self._grant_unbound = False
        self._dirty = True
        return await asyncio.shield(self._write_record())

    async def _write_record(self) -> bool:
        async with self._store_lock:
            if not self._dirty or self.refresh_token is None:
                return True  # a write that started later already stored these values
            self._dirty = False  # a change during the write sets it again
            record = Grant(self.refresh_token, self.profile.issuer, self.profile.client_id, self.granted_scope
                           ).with_idc(self._stored_idc_refresh, self.profile.application_arn)
            try:
                await self.store.save(self.name, record)
            except Exception as e:  # whatever the store's failure, the sign-in stays in memory
                self._dirty = True
                self._save_failures += 1
                delay = min(SAVE_RETRY_CAP, 2.0 ** (self._save_failures - 1))
                self._save_retry_at = self.clock.time() + delay
                msg = e.message if isinstance(e, TipdError) else f"cannot save the sign-in ({type(e).__name__})"
                self.save_error = StoreError(f"{msg}; the sign-in is kept in memory and saved again in {delay:.0f} s "
                                             "(free some space or make the directory writable)")
                log.error("profile %s: %s", self.name, self.save_error.message)
                self._changed()
                return False
            if self.save_error is not None:
                log.info("profile %s: the sign-in is saved again", self.name)
                self.save_error = None
                self._save_failures = 0
                self._changed()
            return True

    def keep_unsaved(self, old: ProfileSession) -> bool:
        """At a reload, take over the sign-in the store refused to save while it lived only in `old`'s memory
        (the IdP may already have rotated the stored token away: reading the store would lose the sign-in),
        when it came from this issuer and client. This session keeps trying to save it."""
        if (not old._dirty or old.refresh_token is None or old.profile.issuer != self.profile.issuer
                or old.profile.client_id != self.profile.client_id):
            return False
        self.refresh_token, self.granted_scope = old.refresh_token, old.granted_scope
        same_app = old.profile.application_arn == self.profile.application_arn
        self._stored_idc_refresh = old._stored_idc_refresh if same_app else None
        self._grant_unbound, self.login_required = False, None
        self._dirty, self.save_error, self._save_retry_at = True, old.save_error, self.clock.time()
        self._changed()
        return True

    async def flush(self) -> bool:
        """Try once more to store a record the store refused (at shutdown); False if it is still unsaved."""
        return not self._dirty or await self._write_record()

    def _idp_tokens(self, tokens: TokenResponse) -> tuple[IdpTokens, float]:
        """The idp stage's value. A refresh without the JWT the chain exchanges is not an error by itself:
        the one at hand stays in use while it is valid; only when AWS needs a new one does its absence fail
        (`_assertion`). The stage's own expiry then follows the access token."""
        now = self.clock.time()
        if tokens.id_token is not None:  # the person shown in the status
            id_claims = unverified_claims(tokens.id_token.reveal())
            self.user = id_claims.get("email") or id_claims.get("preferred_username") or id_claims.get("sub")
        assertion = self._assertion_of(tokens)
        if assertion is None:
            prev = self.idp.held.value if self.idp.held else None
            kept = (IdpTokens(prev.assertion, prev.claims, prev.assertion_expires, prev.exchanged)
                    if prev is not None and prev.assertion is not None and prev.assertion_expires > now
                    else IdpTokens(None, {}))
            return kept, now + max(60, min(tokens.expires_in or 300, MAX_LIFETIME))
        claims = unverified_claims(assertion.reveal())
        if self.profile.exchange_token == "access_token" and self.user is None:
            self.user = claims.get("email") or claims.get("preferred_username") or claims.get("sub")
        # a string, a boolean or 1e400 (infinity) here must not break status for good: not believed
        exp, iat = numeric_date(claims.get("exp")), numeric_date(claims.get("iat"))
        lifetime = min(tokens.expires_in or 300, MAX_LIFETIME)
        if exp is None:
            expires = now + lifetime
        elif iat is None and tokens.expires_in:
            expires = local_expiry(exp, exp - lifetime, now)
        else:  # the IdP's own iat..exp, counted from now when its clock and ours disagree (clock.local_expiry)
            expires = local_expiry(exp, iat, now)
        if expires <= now:
            raise UpstreamError("the IdP issued a token that had already expired (its exp is not after its iat)",
                                code="IdPError")
        return IdpTokens(assertion, claims, expires), expires

    def _assertion_of(self, tokens: TokenResponse) -> Secret | None:
        if self.profile.exchange_token == "id_token":
            return tokens.id_token
        if not _looks_like_jwt(tokens.access_token.reveal()):
            raise UpstreamError(
                f'the IdP\'s access token is not a JWT, so profile {self.name} (exchange_token = "access_token") '
                "cannot exchange it with AWS: make the IdP issue JWT access tokens to this client, or set "
                'exchange_token = "id_token"', permanent=True, code="IdPError")
        return tokens.access_token

    def _no_assertion(self) -> UpstreamError:
        if self.profile.exchange_token == "access_token":
            what = "the IdP returned no access token that AWS can take"
            fix = "check the IdP's access token settings for this client"
        else:
            what = "the IdP returned no id_token when tipd renewed the sign-in"
            fix = ("make the IdP return an id_token on a refresh grant (PingFederate: OpenID Connect Policy "
                   "Management > the policy > 'Return ID Token On Refresh Grant'), or set "
                   f'exchange_token = "access_token" in profile {self.name} if its access tokens are JWTs')
        return UpstreamError(f"{what}, and AWS needs a new token now: {fix}", permanent=True,
                             code="NoIdTokenOnRefresh")

    async def _assertion(self, margin: float, *, unexchanged: bool = False) -> IdpTokens:
        """The JWT for AWS, valid at least `margin` more seconds (and never shown to Identity Center when
        `unexchanged`): the one at hand, else a refresh grant's; the IdP is asked only when the chain needs it."""
        def usable(v: IdpTokens | None) -> bool:
            return (v is not None and v.assertion is not None
                    and v.assertion_expires - self.clock.time() >= margin and not (unexchanged and v.exchanged))

        value = self.idp.held.value if self.idp.held else None
        if not usable(value):
            value = (await self.idp.refresh()).value
            if not usable(value):
                raise self._no_assertion()
        assert value is not None
        return value

    async def _fresh_assertion(self) -> Secret:
        """A JWT Identity Center has never seen (a refresh grant unless one is at hand)."""
        value = await self._assertion(self.margin / 2, unexchanged=True)
        value.exchanged = True
        assert value.assertion is not None
        return value.assertion

    async def _fetch_bootstrap(self) -> tuple[AwsCredentials, float]:
        tokens = await self._assertion(self.margin)
        assert tokens.assertion is not None
        creds = await self.aws.assume_role_with_web_identity(
            region=self.profile.region, role_arn=self.profile.oidc_role_arn, id_token=tokens.assertion,
            session=session_name(str(tokens.claims.get("sub", self.name))),
            duration=self.settings.session_duration)
        return creds, creds.expires_at

    async def _fetch_idc(self) -> tuple[IdcToken, float]:
        boot = await self.bootstrap.get(self.margin)
        previous = self.idc.held.value.refresh_token if self.idc.held else self._stored_idc_refresh
        token: IdcToken | None = None
        if previous is not None:
            try:  # no IdP round trip needed
                token = await self.aws.create_token_with_iam(
                    region=self.profile.region, creds=boot, application_arn=self.profile.application_arn,
                    refresh_token=previous)
            except UpstreamError as e:
                if e.code not in FALLBACK_CODES:
                    raise
                log.info("profile %s: the Identity Center refresh token was refused (%s); "
                         "exchanging a fresh IdP token instead", self.name, e.code)
        if token is None:
            token = await self.aws.create_token_with_iam(
                region=self.profile.region, creds=boot, application_arn=self.profile.application_arn,
                assertion=await self._fresh_assertion())
        self.idc_user_id = token.user_id or self.idc_user_id
        if token.refresh_token is not None and token.refresh_token != previous and self.refresh_token is not None:
            # kept with the sign-in, so a restart renews without a new jwt-bearer exchange. Best effort: a lost
            # one only costs that exchange (a refused refresh grant falls back to it)
            await self._persist(idc_refresh=token.refresh_token)
        return token, token.expires_at

    async def _fetch_enhanced(self) -> tuple[AwsCredentials, float]:
        boot = await self.bootstrap.get(self.margin)
        idc = await self.idc.get(self.margin)
        creds = await self.aws.assume_role_with_context(
            region=self.profile.region, creds=boot, role_arn=self.profile.identity_enhanced_role_arn,
            session=session_name(idc.user_id or "unknown"), identity_context=idc.identity_context,
            duration=self.settings.session_duration)
        now = self.clock.time()
        if creds.expires_at - now <= self.floor:  # never hand out what is (nearly) expired, whatever STS says
            raise UpstreamError(f"STS issued credentials valid for only {creds.expires_at - now:.0f} s; retrying",
                                code="ExpiredCredentials")
        self.served = Served.render(creds, now)
        log.info("profile %s: identity-enhanced session ready for %s, valid until %s", self.name,
                 self.user, iso_utc(creds.expires_at))
        return creds, creds.expires_at

    # -- serving ---------------------------------------------------------------------------
    def cached_body(self) -> bytes | None:
        """The hot path: credentials with at least `min_remaining` left, from memory, or None."""
        s = self.fresh()
        return s.body if s is not None else None

    async def credentials(self) -> Served:
        """Credentials to serve, refreshing only when nothing valid is at hand."""
        s, now, verdict = self.serving_verdict()
        if s is not None and verdict is not Verdict.RENEW:
            if verdict is Verdict.SERVE_AND_RENEW:
                self.schedule.wake()  # serve it now, let the scheduler refresh behind
            return s
        if self.loading is not None and not self.loading.done():
            await asyncio.wait([self.loading])  # its own failure is logged by the daemon; the state says the rest
            return await self.credentials()
        if self.login_required is not None:
            raise LoginRequired(self.login_required.message)
        if self.refresh_token is None:
            raise LoginRequired(f"not signed in: run `tipctl login {self.name}`")
        stage = self.enhanced
        failing = stage.backing_off(now)
        if failing is not None:
            raise failing
        try:
            await stage.refresh()
        except TipdError as e:
            self._note_failure(e)
            raise
        assert self.served is not None
        return self.served

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        try:
            grant = await self.store.load(self.name)
        except Exception as e:
            log.warning("profile %s: cannot read the stored refresh token (%s)", self.name, type(e).__name__)
            grant = None
        if grant is None:
            return
        if not grant.bound_to(self.profile.issuer, self.profile.client_id):
            # never send a token anywhere but where it came from: a config pointed elsewhere (edited, or
            # changed by someone else) must not receive it. The record stays for a config that is put back.
            self.login_required = LoginRequired(
                f"the stored sign-in of profile {self.name} came from issuer {grant.issuer} (client "
                f"{grant.client_id}), but the config now names issuer {self.profile.issuer} (client "
                f"{self.profile.client_id}); tipd does not send it there: sign in again (`tipctl login {self.name}`)")
            log.warning("profile %s: %s", self.name, self.login_required.message)
            return
        self.refresh_token = grant.refresh_token
        self.granted_scope = grant.scope
        self._grant_unbound = grant.legacy
        self._stored_idc_refresh = grant.idc_for(self.profile.application_arn)
        log.info("profile %s: found a stored sign-in; refreshing in the background", self.name)

    async def login(self, tokens: TokenResponse) -> dict[str, Any]:
        """Take the tokens of a fresh sign-in and run the whole chain once."""
        if tokens.refresh_token is None:
            how = NO_REFRESH_TOKEN.get(self.profile.provider, NO_REFRESH_TOKEN["oidc"])
            raise UpstreamError(f"the IdP issued no refresh token: {how}", permanent=True, code="NoRefreshToken",
                                status=400)
        if self.profile.client_auth != "none":
            # `tipctl configure` may have stored (or replaced) the app's secret since tipd started
            self.idp_client.client_secret = await client_secret(self.store, self.name, self.profile)
        self.signing_in = True
        self.no_sign_in_running.clear()
        self._changed()
        try:
            # the new sign-in runs its whole chain beside the current one, with a store that writes nothing
            trial = ProfileSession(self.name, self.profile, self.settings, store=_Unstored(), aws=self.aws,
                                   idp=self.idp_client, clock=self.clock)
            trial.refresh_token = tokens.refresh_token
            trial.granted_scope = trial._granted(tokens, asked=" ".join(self.profile.scopes))
            held, exp = trial._idp_tokens(tokens)
            trial.idp.held = Held(held, exp, self.clock.time())
            try:
                await trial.enhanced.refresh()  # raises: nothing of ours was touched
            except TipdError as e:
                if self.refresh_token is None:  # no sign-in to keep serving: the status says why this one failed
                    self._note_failure(e)
                raise
            self._adopt(trial)
            crash_point("login:adopted")
            await self._persist()
        finally:
            self.signing_in = False
            self.no_sign_in_running.set()
            self._changed()
        self.schedule.wake()
        return self.status()

    def _adopt(self, trial: ProfileSession) -> None:
        """Take over a successful sign-in's state in one step (no await): a refresh of the old one under way is
        cancelled, so it can overwrite neither the new stages nor the new record."""
        other_person = self.refresh_token is not None and (self.user, self.idc_user_id) != (trial.user,
                                                                                             trial.idc_user_id)
        for mine, theirs in zip(self.stages, trial.stages, strict=True):
            mine.adopt(theirs)
        self.refresh_token, self.granted_scope = trial.refresh_token, trial.granted_scope
        self._stored_idc_refresh = trial.idc.held.value.refresh_token if trial.idc.held else None
        self._scope_mode = trial._scope_mode
        self.served = trial.served
        self.user, self.idc_user_id = trial.user, trial.idc_user_id
        self.login_required = None
        if other_person:
            self._signed_out()

    def _signed_out(self) -> None:
        """What was got with the sign-in before is no longer this profile's to hand out."""
        self.sign_in_epoch += 1
        for listener in list(self.sign_in_listeners):
            listener()

    async def logout(self) -> Revocation:
        """Forget everything; revoke the refresh token at the IdP when it offers revocation. The outcome says
        what the IdP did (nothing to revoke when not signed in: a second logout blames no one)."""
        revoked = NOT_SIGNED_IN
        token, self.refresh_token = self.refresh_token, None
        self.granted_scope = self._stored_idc_refresh = None
        self._dirty, self.save_error = False, None
        for st in self.stages:
            st.clear()
        self.served = None
        self.login_required = None
        self.user = self.idc_user_id = None
        self._signed_out()
        self._changed()
        kept: Exception | None = None
        async with self._store_lock:  # after a write under way, never before it
            try:
                await self.store.delete(self.name)
            except Exception as e:  # a read-only disk, a directory in the way: the record stays, so revoke it
                kept = e
        if token is not None:
            try:
                revoked = await self.idp_client.revoke(token)
            except TipdError as e:  # the IdP client says what happened rather than raise; this is a backstop
                revoked = Revocation("failed", e.message)
            if revoked.outcome in ("refused", "failed"):
                log.warning("profile %s: signed out locally; revoking at the IdP: %s %s", self.name,
                            revoked.outcome, revoked.detail)
        if kept is not None:
            why = getattr(kept, "strerror", None) or getattr(kept, "message", None) or type(kept).__name__
            where = getattr(kept, "filename", None)
            message = (f"profile {self.name} is signed out in tipd"
                       f"{' and its refresh token revoked at the IdP' if revoked.outcome == 'revoked' else ''}, "
                       f"but its stored sign-in could not be removed ({why})"
                       + (f": remove {where}" if where else "")
                       + ("" if revoked.outcome == "revoked"
                          else "; until then tipd signs in with it at its next start"))
            log.error("%s", message)
            raise StoreError(message)
        return revoked

    async def fresh_id_token(self) -> Secret:
        """A new IdP id_token for `tipctl diag` to inspect, refreshed through the idp stage (so a rotated
        refresh token is saved as usual). It leaves the daemon, so the chain never exchanges it itself."""
        if self.refresh_token is None:
            raise LoginRequired(f"not signed in: run `tipctl login {self.name}`")
        value = (await self.idp.refresh()).value
        if value.assertion is None:
            raise self._no_assertion()
        value.exchanged = True
        return value.assertion

    async def identity_center_token(self) -> IdcToken:
        """The sign-in's Identity Center token, valid at least `margin` more seconds: what the portal API takes
        (account listing, account profiles). The idc stage renews it with the rest of the chain."""
        if self.loading is not None and not self.loading.done():
            await asyncio.wait([self.loading])
        if self.login_required is not None:
            raise LoginRequired(self.login_required.message)
        if self.refresh_token is None:
            raise LoginRequired(f"not signed in: run `tipctl login {self.name}`")
        return await self.idc.get(self.margin)

    def _note_failure(self, e: TipdError) -> None:
        if e.permanent and self.login_required is None:
            self.login_required = e  # stops the schedule: no retry storm against a refusing upstream
            log.error("profile %s: sign-in needed: %s", self.name, e.message)
            self.notify(f"tipd: sign in to {self.name} again", e.message)
            self._changed()

    def _changed(self) -> None:
        self._told_state = self.state
        self.on_change()

    def _notice_time(self) -> None:
        """Time alone can change the state (after a suspend or a clock jump, credentials are too short to
        serve before any renewal has run): nothing else signals that, so the scheduler's tick does."""
        if self.state != self._told_state:
            self._changed()

    async def run(self) -> None:
        """The proactive schedule: refresh each stage ahead of its expiry (tipd/refresh.py's loop)."""
        if self.loading is not None:
            await asyncio.wait([self.loading])
        await self.schedule.run(self._step)

    async def _step(self) -> float | None:
        """One round of the schedule: None when it did something, else the seconds until the next thing."""
        self._notice_time()
        delay = TICK
        if self._dirty and not self._store_lock.locked():
            wait = self._save_retry_at - self.clock.time()
            if wait <= 0:
                await self._write_record()
                return None
            delay = min(delay, wait)
        if self.refresh_token is not None and self.login_required is None and not self.signing_in:
            now = self.clock.time()
            due = self._due_stage(now)
            if due is not None:
                try:
                    await due.refresh()
                except TipdError as e:
                    self._note_failure(e)
                return None
            nxt = min((d for st in self.stages if (d := st.due_at()) is not None), default=now + TICK)
            delay = min(delay, max(0.0, nxt - now))
        return delay

    def _due_stage(self, now: float) -> Stage[Any] | None:
        if self.enhanced.held is None:
            enhanced = self.enhanced
            return enhanced if enhanced.next_attempt is None or enhanced.next_attempt <= now else None
        # The IdP stage is renewed ahead of its expiry like the others, not only when AWS needs a new JWT:
        # refresh tokens with an idle lifetime (Keycloak's SSO Session Idle, 30 min by default; Okta's and
        # PingOne's idle windows) die if tipd stays quiet, and an IdP outage shows in the status while the
        # AWS stages can still ride it out.
        for st in self.stages:
            due = st.due_at()
            if due is not None and due <= now and not st.refreshing:
                return st
        return None

    # -- status ----------------------------------------------------------------------------
    @property
    def state(self) -> State:
        if self.signing_in:
            return State.SIGNING_IN
        if self.login_required is not None:
            return State.LOGIN_REQUIRED
        if self.refresh_token is None and self.served is None:
            return State.SIGNED_OUT
        if any(st.refreshing for st in self.stages):
            return State.REFRESHING
        if (any(st.last_error is not None for st in self.stages) or self.save_error is not None
                or self.cached_body() is None):
            return State.DEGRADED
        return State.FRESH

    def status(self) -> dict[str, Any]:
        def t(x: float | None) -> str | None:
            return iso_utc(x) if x is not None else None

        err = (self.login_required or next((st.last_error for st in reversed(self.stages) if st.last_error), None)
               or self.save_error)
        return {
            "profile": self.name,
            "state": str(self.state),
            "user": self.user,
            "identity_center_user_id": self.idc_user_id,
            "role_arn": self.served.creds.arn if self.served else None,
            "credentials_expire": t(self.served.creds.expires_at) if self.served else None,
            "next_refresh": t(self.enhanced.due_at()),
            "last_error": err.message if err else None,
            "sign_in_saved": not self._dirty,
            "stages": {
                st.name: {
                    "expires": t(st.held.expires_at) if st.held else None,
                    "last_refresh": t(st.held.obtained_at) if st.held else None,
                    "refreshes": st.calls,
                    "last_error": st.last_error.message if st.last_error else None,
                    "next_attempt": t(st.due_at()),
                } for st in self.stages
            },
        }


class _Unstored:
    """The store of a sign-in on trial: nothing is written until the sign-in is adopted (then saved) or
    dropped."""

    name = "trial"

    async def load(self, profile: str) -> Grant | None:
        return None

    async def save(self, profile: str, grant: Grant) -> None:
        pass

    async def delete(self, profile: str) -> None:
        pass

    async def load_secret(self, profile: str) -> ClientSecret | None:
        return None

    async def save_secret(self, profile: str, secret: ClientSecret) -> None:
        pass

    async def delete_secret(self, profile: str) -> None:
        pass
