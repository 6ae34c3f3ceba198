"""AWS account access from the same sign-in: the Identity Center portal API (botocore service `sso`).

Since 2025 an Identity Center administrator can enable the `sso:account:access` scope on a customer managed
application (organization instances only); the Identity Center access token tipd already gets from
CreateTokenWithIAM (jwt-bearer) then calls the portal API: ListAccounts, ListAccountRoles, GetRoleCredentials,
the token travelling in the `x-amz-sso_bearer_token` header (botocore's `accessToken` parameter); the calls are
unsigned. Source: IAM Identity Center user guide, "Enable AWS account access for customer managed applications",
https://docs.aws.amazon.com/singlesignon/latest/userguide/enable-account-access-customer-managed-apps.html ;
shapes and errors: https://docs.aws.amazon.com/singlesignon/latest/PortalAPIReference/ (botocore's `sso` model:
pages of at most 100, `nextToken`; UnauthorizedException 401, TooManyRequestsException 429,
ResourceNotFoundException 404, InvalidRequestException 400; the service also answers ForbiddenException 403
"No access" for a role the user is not assigned).

The access token is a bearer secret: it stays a `Secret` until botocore puts it in the header, and no message
here names it (tipd logs botocore at WARNING and above only, so its debug dump of headers never runs)."""
from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from dataclasses import dataclass
from typing import Any

from .clock import local_expiry
from .errors import TipdError, UpstreamError
from .exchange import AwsChain, AwsCredentials, IdcToken, _boto, _server_time, explain
from .secret import Secret

ACCOUNT_ACCESS = "sso:account:access"
#: ListAccountRoles calls in flight at once while listing (botocore's pool holds as many connections)
CONCURRENCY = 10
#: how long a listing is reused (the command is interactive; assignments change rarely)
CACHE_SECONDS = 60.0
#: pages read at most per list (100 items each): a nextToken that never ends cannot loop forever
MAX_PAGES = 100
#: the portal API's page size limit (MaxResultType, 1-100)
PAGE_SIZE = 100
#: a portal's answers are bounded and checked before use (a hostile or broken one must not cost unbounded calls,
#: memory or a bad profile name): at most this many accounts, and roles per account
MAX_ACCOUNTS = 10_000
MAX_ROLES = 1_000
#: an account name is shown and fills name templates only: Organizations allows 50 printable ASCII characters
#: (https://docs.aws.amazon.com/organizations/latest/APIReference/API_CreateAccount.html); this is generous
MAX_NAME = 256
#: an account id is 12 digits; a permission set name 1-32 of [\w+=,.@-] (CreatePermissionSet,
#: https://docs.aws.amazon.com/singlesignon/latest/APIReference/API_CreatePermissionSet.html); tipd's config
#: takes up to 64. Anything else cannot be asked for credentials, so it is skipped.
ACCOUNT_ID = re.compile(r"\d{12}")
ROLE_NAME = re.compile(r"[\w+=,.@-]{1,64}", re.ASCII)  # AWS's \w is Java's: ASCII (no look-alike letters)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Account:
    account_id: str
    name: str
    email: str


@dataclass(frozen=True)
class AccountRoles:
    account: Account
    roles: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        a = self.account
        return {"account_id": a.account_id, "name": a.name, "email": a.email, "roles": list(self.roles)}


class AccountAccessNotEnabled(TipdError):
    """The application's tokens carry no `sso:account:access`: only an Identity Center administrator can fix it."""

    code = "AccountAccessNotEnabled"
    status = 403
    permanent = True


def account_access_sentence(application_arn: str) -> str:
    return (f"This sign-in has no AWS account access: an Identity Center administrator (of the management or "
            f"delegated administrator account) must enable the {ACCOUNT_ACCESS} scope on application "
            f"{application_arn}, which only an organization instance of Identity Center allows (an account "
            "instance cannot).")


def require_account_access(token: IdcToken, application_arn: str) -> None:
    """Refuse before any call when CreateTokenWithIAM said which scopes it granted and this one is not among
    them (an application without the scope, or an account instance, where it cannot be enabled)."""
    if token.scopes and ACCOUNT_ACCESS not in token.scopes:
        raise AccountAccessNotEnabled(account_access_sentence(application_arn))


def _token_key(token: IdcToken, region: str) -> str:
    return hashlib.sha256(token.access_token.reveal().encode()).hexdigest() + "/" + region


class Portal:
    """The three portal calls with one profile's Identity Center token; listings cached for CACHE_SECONDS."""

    def __init__(self, chain: AwsChain, *, concurrency: int = CONCURRENCY,
                 cache_seconds: float = CACHE_SECONDS) -> None:
        self.chain = chain
        self.concurrency = concurrency
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, list[AccountRoles]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def _client(self, region: str) -> Any:
        boto = _boto()
        cfg = boto.AioConfig(
            region_name=region, signature_version=boto.UNSIGNED,  # the bearer token is the authentication
            retries={"mode": "standard", "max_attempts": 3},  # standard mode retries TooManyRequestsException
            connect_timeout=5, read_timeout=15, max_pool_connections=self.concurrency,
            http_session_cls=boto.SharedTLSSession,  # answers bounded to exchange.MAX_RESPONSE_BYTES
        )
        return self.chain.session.create_client("sso", region_name=region, config=cfg)

    # -- listing -------------------------------------------------------------------------------------------
    async def accounts(self, token: IdcToken, *, region: str, application_arn: str,
                       fresh: bool = False) -> list[AccountRoles]:
        """Every account the user is assigned, with the role (permission set) names in each, sorted by name."""
        require_account_access(token, application_arn)
        key = _token_key(token, region)
        # the locks of renewed-away tokens go with their expired listings (one more every hour otherwise)
        self._locks = {k: v for k, v in self._locks.items() if k in self._cache or v.locked()}
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # one listing at a time per token: a second caller waits and takes the first's result
            now = self.chain.clock.time()
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
            hit = self._cache.get(key)
            if hit is not None and not fresh:
                return hit[1]
            result = await self._list(token, region, application_arn)
            self._cache[key] = (self.chain.clock.time() + self.cache_seconds, result)
            return result

    async def _list(self, token: IdcToken, region: str, application_arn: str) -> list[AccountRoles]:
        bearer = token.access_token
        try:
            async with self._client(region) as sso:
                accounts = _accounts(await _pages(sso.list_accounts, "accountList", access_token=bearer,
                                                  most=MAX_ACCOUNTS, what="accounts"))
                gate = asyncio.Semaphore(self.concurrency)

                async def roles(account: Account) -> AccountRoles:
                    async with gate:
                        found = await _pages(sso.list_account_roles, "roleList", access_token=bearer,
                                             most=MAX_ROLES, what=f"roles in account {account.account_id}",
                                             accountId=account.account_id)
                    names = {str(r.get("roleName", "")) for r in found}
                    good = {n for n in names if ROLE_NAME.fullmatch(n)}
                    if len(good) != len(names):
                        log.warning("the portal listed %d role name(s) in account %s that are not permission set "
                                    "names; skipped", len(names) - len(good), account.account_id)
                    return AccountRoles(account, tuple(sorted(good)))

                listed = await asyncio.gather(*(roles(a) for a in accounts))
        except _boto().errors as e:
            raise self._explain("listing your AWS accounts", e, token.scopes, application_arn) from None
        return sorted(listed, key=lambda ar: (ar.account.name.lower(), ar.account.account_id))

    # -- credentials -----------------------------------------------------------------------------------------
    async def get_role_credentials(self, *, region: str, access_token: Secret, account_id: str, role_name: str,
                                   scopes: tuple[str, ...] = (), application_arn: str = "") -> AwsCredentials:
        """Credentials of `role_name` (a permission set) in `account_id`, for as long as the permission set's
        session duration (1-12 h); `expiration` comes in epoch milliseconds. `scopes` (the Identity Center
        token's, when known) and `application_arn` make the refusals' sentences exact. A token the portal no
        longer accepts is an UpstreamError with code UnauthorizedException: renew the token and try once more."""
        if scopes and ACCOUNT_ACCESS not in scopes:
            raise AccountAccessNotEnabled(account_access_sentence(application_arn or "of this profile"))
        stage = f"GetRoleCredentials ({role_name} in {account_id})"
        try:
            async with self._client(region) as sso:
                r = await sso.get_role_credentials(accessToken=access_token.reveal(), accountId=account_id,
                                                   roleName=role_name)
        except _boto().errors as e:
            raise self._explain(stage, e, scopes, application_arn, account_id=account_id, role=role_name) from None
        c = r.get("roleCredentials") or {}
        try:
            expires = int(c["expiration"]) / 1000
            creds = AwsCredentials(access_key_id=str(c["accessKeyId"]),
                                   secret_access_key=Secret(str(c["secretAccessKey"])),
                                   session_token=Secret(str(c["sessionToken"])),
                                   expires_at=0.0, account_id=account_id)
        except (KeyError, TypeError, ValueError):
            raise UpstreamError(f"{stage}: the portal answered without usable credentials; retrying",
                                code="BadAnswer") from None
        now = self.chain.clock.time()
        sent = _server_time(r)
        if expires <= (sent if sent is not None else now):
            raise UpstreamError(f"{stage}: the portal returned credentials that had already expired; retrying",
                                code="ExpiredCredentials")
        return AwsCredentials(access_key_id=creds.access_key_id, secret_access_key=creds.secret_access_key,
                              session_token=creds.session_token, expires_at=local_expiry(expires, sent, now),
                              account_id=account_id)

    # -- errors -----------------------------------------------------------------------------------------------
    def _explain(self, stage: str, e: Exception, scopes: tuple[str, ...], application_arn: str, *,
                 account_id: str | None = None, role: str | None = None) -> TipdError:
        boto = _boto()
        code = str(e.response.get("Error", {}).get("Code", "")) if isinstance(e, boto.ClientError) else ""
        app = application_arn or "of this profile"
        if code == "ForbiddenException" and role is not None and ACCOUNT_ACCESS in scopes:
            return UpstreamError(f"{stage} refused: you have no role {role!r} in account {account_id} (ask an "
                                 "Identity Center administrator for that permission set assignment, or see "
                                 "`tipctl accounts` for yours).", code=code, permanent=True, status=403)
        if code in ("UnauthorizedException", "ForbiddenException", "AccessDeniedException"):
            if scopes and ACCOUNT_ACCESS not in scopes:
                return AccountAccessNotEnabled(account_access_sentence(app))
            if ACCOUNT_ACCESS in scopes:
                return UpstreamError(f"{stage} refused ({code}): Identity Center no longer accepts this sign-in's "
                                     "token (expired or revoked); tipd renews it, and if this persists sign in "
                                     "again with `tipctl login`.", code=code, permanent=False, status=401)
            # the token's scopes were not reported: the missing scope is the usual cause, an expired token the other
            return UpstreamError(account_access_sentence(app)[:-1] + " (or the sign-in's Identity Center token "
                                 f"expired: {code}).", code=code, permanent=True, status=403)
        if code == "TooManyRequestsException":
            return UpstreamError(f"{stage}: the Identity Center portal API is throttling requests "
                                 "(TooManyRequestsException); try again in a moment.", code=code, status=503)
        return explain(stage, e)


def _accounts(items: list[dict[str, Any]]) -> list[Account]:
    """The listed accounts whose id is an account id (one that is not cannot be asked about: its ListAccountRoles
    would fail the whole listing), names and e-mails cut to MAX_NAME, each account once."""
    out: dict[str, Account] = {}
    for a in items:
        account_id = str(a.get("accountId", ""))
        if ACCOUNT_ID.fullmatch(account_id) is None:
            log.warning("the portal listed an account whose id is not a 12-digit account id; skipped")
            continue
        out[account_id] = Account(account_id, _shown(a.get("accountName", "")), _shown(a.get("emailAddress", "")))
    return list(out.values())


def _shown(value: object) -> str:
    """A name as tipctl will print it to a terminal: at most MAX_NAME characters, control characters (an escape
    sequence could rewrite the screen or, with OSC 52, the clipboard) as '?'. Organizations allows printable ASCII
    only in account names (CreateAccount's AccountName pattern)."""
    return "".join(c if c.isprintable() else "?" for c in str(value)[:MAX_NAME])


async def _pages(call: Any, key: str, *, access_token: Secret, most: int, what: str,
                 **kw: str) -> list[dict[str, Any]]:
    """Every item of a paginated portal list, following nextToken (at most MAX_PAGES pages), and at most `most` of
    them: more is refused with a sentence (a listing cut short would make `accounts sync` remove profiles)."""
    items: list[dict[str, Any]] = []
    seen: set[str] = set()
    token: str | None = None
    for _ in range(MAX_PAGES):
        args: dict[str, Any] = dict(kw, accessToken=access_token.reveal(), maxResults=PAGE_SIZE)
        if token:
            args["nextToken"] = token
        r = await call(**args)
        items += [i for i in r.get(key) or [] if isinstance(i, dict)]
        if len(items) > most:
            raise UpstreamError(f"the Identity Center portal listed more than {most} {what}, more than tipd takes; "
                                "nothing was changed", code="TooManyItems", permanent=True, status=502)
        token = r.get("nextToken") or None
        if token is None or token in seen:
            break
        seen.add(token)
    return items
