"""The Identity Center portal API (botocore service `sso`) and the console federation endpoint, for the AWS fake.

moto has neither. A test assigns accounts and roles to Identity Center users on the running fake::

    fake.portal.account("111111111111", "prod", "prod@example.com")
    fake.portal.assign("9067e4a2-alice", "111111111111", "AdministratorAccess")
    fake.config.applications[APP_ARN].scopes.append(ACCOUNT_ACCESS)  # the administrator enables the scope

The portal API (https://docs.aws.amazon.com/singlesignon/latest/PortalAPIReference/, shapes from botocore's
`sso` model): ListAccounts (GET /assignment/accounts), ListAccountRoles (GET /assignment/roles?account_id=) and
GetRoleCredentials (GET /federation/credentials?account_id=&role_name=), unsigned, the token in the
`x-amz-sso_bearer_token` header; pages of `max_result` (1-100) with an opaque `next_token`.

Answered only for an Identity Center access token this fake issued from CreateTokenWithIAM, unexpired, that
carries the `sso:account:access` scope. "Enable AWS account access for customer managed applications"
(https://docs.aws.amazon.com/singlesignon/latest/userguide/enable-account-access-customer-managed-apps.html):
the administrator enables that scope on the application, on organization instances only; the token from
CreateTokenWithIAM (jwt-bearer) then calls ListAccounts, ListAccountRoles and GetRoleCredentials. The fake
grants the scope only while the application has it and the instance is an organization instance
(`FakeConfig.instance_kind`, the switch for an account instance: there the scope never comes back).

Errors as the real service sends them (rest-json, code in x-amzn-ErrorType): a missing, unknown or expired token
is UnauthorizedException (401) "Session token not found or invalid" (the message the aws CLI shows for an
expired `aws sso login`); a role the user is not assigned is ForbiddenException (403) "No access" (likewise).
A token without the scope: what the real service answers is not documented; the fake answers
`PortalDirectory.scope_error` (UnauthorizedException by default; ForbiddenException is the other variant),
so a client must treat both alike. TooManyRequestsException (429) comes from `fake.inject`.

GetRoleCredentials' credentials are moto's AssumeRole of the permission set's role in that account
(`aws-reserved/sso.amazonaws.com/AWSReservedSSO_<permission set>_<16 hex>`, session name the user's
e-mail as Identity Center names it), so GetCallerIdentity tells two account/role pairs apart; `expiration` is
epoch milliseconds; the lifetime is the permission set's session duration (default 1 h; 15 min to 12 h).

The federation endpoint (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_providers_enable-console-custom-url.html):
`GET /federation?Action=getSigninToken&Session=<JSON sessionId/sessionKey/sessionToken>[&SessionDuration=900..43200]`
answers `{"SigninToken": ...}` for credentials this fake saw issued (and unexpired); `SessionDuration` with
role-chained credentials (an AssumeRole made with temporary credentials) is refused with a 400, as users of
the real endpoint found (aws-sso-cli PR 1247, https://github.com/synfinatic/aws-sso-cli/pull/1247; Teleport
PR 9792, https://github.com/gravitational/teleport/pull/9792). `Action=login&Issuer=&Destination=&SigninToken=`
redirects (302) to Destination for a token issued in the last 15 minutes. Every issued sign-in token is kept in
`issued_signin_tokens` so a test can look for it in logs.
"""
from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .aws import ACCOUNT_ACCESS

if TYPE_CHECKING:
    from .aws import FakeAWS, _Identified

__all__ = ["ACCOUNT_ACCESS", "PortalAccount", "PortalDirectory"]

PAGE_DEFAULT = 20  # the real default page size is not documented
SIGNIN_TOKEN_TTL = 15 * 60  # "The sign-in token is valid for 15 minutes" (the federation endpoint's page)


@dataclass
class PortalAccount:
    account_id: str
    name: str
    email: str


@dataclass
class PortalDirectory:
    """Accounts, assignments and the answers of the portal API; mutable while the fake runs."""

    fake: FakeAWS
    accounts: dict[str, PortalAccount] = field(default_factory=dict)
    #: Identity Center user id -> account id -> permission set names
    assignments: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    #: permission set name -> session duration in seconds (default 3600)
    session_durations: dict[str, int] = field(default_factory=dict)
    #: the answer to a token without sso:account:access (undocumented: UnauthorizedException or ForbiddenException)
    scope_error: str = "UnauthorizedException"
    #: sign-in tokens this fake issued (to search logs for), and when
    issued_signin_tokens: dict[str, float] = field(default_factory=dict)
    #: a hostile or broken portal: pages of this many items whatever `max_result` asks (None: as asked)
    forced_page_size: int | None = None
    #: GetRoleCredentials answers: (account id, role name, access key id)
    vended: list[tuple[str, str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _role_suffix: dict[tuple[str, str], str] = field(default_factory=dict)

    # -- set-up ----------------------------------------------------------------------------------
    def account(self, account_id: str, name: str | None = None, email: str | None = None) -> PortalAccount:
        acct = PortalAccount(account_id, name or f"account-{account_id}", email or f"aws+{account_id}@example.com")
        with self._lock:
            self.accounts[account_id] = acct
        return acct

    def assign(self, user_id: str, account_id: str, *roles: str) -> None:
        if account_id not in self.accounts:
            self.account(account_id)
        with self._lock:
            have = self.assignments.setdefault(user_id, {}).setdefault(account_id, [])
            have.extend(r for r in roles if r not in have)

    def unassign(self, user_id: str, account_id: str, role: str | None = None) -> None:
        with self._lock:
            roles = self.assignments.get(user_id, {}).get(account_id)
            if roles is None:
                return
            if role is None or roles == [role]:
                del self.assignments[user_id][account_id]
            elif role in roles:
                roles.remove(role)

    def clear(self) -> None:
        with self._lock:
            self.accounts.clear()
            self.assignments.clear()
            self.session_durations.clear()
            self.issued_signin_tokens.clear()
            self.vended.clear()
            self.forced_page_size = None
            self.scope_error = "UnauthorizedException"

    def role_arn(self, account_id: str, role: str) -> str:
        """The IAM role Identity Center provisions for a permission set in an account."""
        with self._lock:
            suffix = self._role_suffix.setdefault((account_id, role), secrets.token_hex(8))
        return f"arn:aws:iam::{account_id}:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_{role}_{suffix}"

    # -- the portal API ----------------------------------------------------------------------------
    async def handle(self, request: web.Request, info: _Identified) -> web.Response:
        from .aws import _AwsError

        user_id = self._authenticate(request)
        q = request.query
        if info.operation == "ListAccounts":
            with self._lock:
                mine = sorted(a for a, roles in self.assignments.get(user_id, {}).items() if roles)
                items = [{"accountId": a, "accountName": self.accounts[a].name,
                          "emailAddress": self.accounts[a].email} for a in mine]
            page, token = _page(items, q, self.forced_page_size)
            return _ok({"accountList": page, **({"nextToken": token} if token else {})})
        account_id = q.get("account_id", "")
        if not (account_id.isdigit() and len(account_id) == 12):
            raise _AwsError("InvalidRequestException", "account_id must be a 12-digit AWS account id", 400)
        with self._lock:
            roles = list(self.assignments.get(user_id, {}).get(account_id, []))
        if info.operation == "ListAccountRoles":
            # an account the user has no role in: an empty list (the real answer is not documented)
            page, token = _page([{"roleName": r, "accountId": account_id} for r in roles], q, self.forced_page_size)
            return _ok({"roleList": page, **({"nextToken": token} if token else {})})
        if info.operation == "GetRoleCredentials":
            role = q.get("role_name", "")
            if not role:
                raise _AwsError("InvalidRequestException", "role_name is required", 400)
            if role not in roles:
                raise _AwsError("ForbiddenException", "No access", 403)
            return _ok({"roleCredentials": await self._credentials(user_id, account_id, role)})
        raise _AwsError("InvalidRequestException", f"unknown operation {info.operation}", 400)

    def _authenticate(self, request: web.Request) -> str:
        from .aws import _AwsError

        token = request.headers.get("x-amz-sso_bearer_token", "")
        known = self.fake.access_token(token) if token else None
        if known is None:
            raise _AwsError("UnauthorizedException", "Session token not found or invalid", 401)
        user_id, scopes = known
        if ACCOUNT_ACCESS not in scopes:
            status = 403 if self.scope_error == "ForbiddenException" else 401
            raise _AwsError(self.scope_error, "the access token does not carry the sso:account:access scope", status)
        return user_id

    async def _credentials(self, user_id: str, account_id: str, role: str) -> dict[str, Any]:
        from .aws import _AwsError
        from .fake_s3control import _moto_sts

        if self.fake.moto_url is None:
            raise _AwsError("InternalServerException", "the fake has no moto to vend credentials from", 500)
        duration = self.session_durations.get(role, 3600)
        session = next((claim for claim, uid in self.fake.config.users.items() if uid == user_id), user_id)
        sts = _moto_sts(self.fake.moto_url)
        r = await asyncio.get_running_loop().run_in_executor(None, functools.partial(
            sts.assume_role, RoleArn=self.role_arn(account_id, role), RoleSessionName=session[:64],
            DurationSeconds=duration))
        c = r["Credentials"]
        expires = c["Expiration"].timestamp()
        from .aws import _Creds

        # known to the federation endpoint (and to nothing that wants Identity Center)
        self.fake.record_issued(c["AccessKeyId"], _Creds("GetRoleCredentials", c["SecretAccessKey"],
                                                         c["SessionToken"], expires))
        with self._lock:
            self.vended.append((account_id, role, c["AccessKeyId"]))
        return {"accessKeyId": c["AccessKeyId"], "secretAccessKey": c["SecretAccessKey"],
                "sessionToken": c["SessionToken"], "expiration": int(expires * 1000)}

    # -- the federation endpoint -------------------------------------------------------------------
    async def federation(self, request: web.Request) -> web.Response:
        q = request.query
        action = q.get("Action")
        if action == "getSigninToken":
            return self._signin_token(q)
        if action == "login":
            token = q.get("SigninToken", "")
            destination = q.get("Destination", "")
            with self._lock:
                issued = self.issued_signin_tokens.get(token)
            if issued is None or time.time() - issued > SIGNIN_TOKEN_TTL:
                return _federation_error("Invalid SigninToken")
            if not destination.startswith("https://"):
                return _federation_error("Invalid Destination")
            return web.Response(status=302, headers={"Location": destination})
        return _federation_error("Invalid Action")

    def _signin_token(self, q: Any) -> web.Response:
        try:
            session = json.loads(q.get("Session", ""))
        except ValueError:
            return _federation_error("Invalid Session parameter")
        if not isinstance(session, dict) or set(session) != {"sessionId", "sessionKey", "sessionToken"} or \
                not all(isinstance(v, str) for v in session.values()):
            return _federation_error("Invalid Session parameter")
        creds = self.fake.issued(session["sessionId"])
        chained = creds is not None and creds.chained
        if creds is None or creds.secret_access_key != session["sessionKey"] or \
                creds.session_token != session["sessionToken"] or time.time() >= creds.expiration:
            return _federation_error("Invalid credentials parameter")
        if "SessionDuration" in q:
            raw = q["SessionDuration"]
            if not raw.isdigit() or not 900 <= int(raw) <= 43200:
                return _federation_error("Invalid SessionDuration parameter")
            if chained:
                return _federation_error("Invalid credentials parameter")
        token = secrets.token_urlsafe(96)
        with self._lock:
            self.issued_signin_tokens[token] = time.time()
        return web.Response(status=200, text=json.dumps({"SigninToken": token}), content_type="application/json")


def _page(items: list[dict[str, str]], q: Any, forced: int | None = None) -> tuple[list[dict[str, str]], str | None]:
    from .aws import _AwsError

    raw = q.get("max_result")
    size = PAGE_DEFAULT
    if raw is not None:
        if not raw.isdigit() or not 1 <= int(raw) <= 100:
            raise _AwsError("InvalidRequestException", "max_result must be between 1 and 100", 400)
        size = int(raw)
    size = forced or size
    start = 0
    if q.get("next_token"):
        try:
            start = int(urllib.parse.unquote(q["next_token"]).split(":", 1)[1])
        except (IndexError, ValueError):
            raise _AwsError("InvalidRequestException", "invalid next_token", 400) from None
    end = start + size
    token = f"{hashlib.sha256(str(end).encode()).hexdigest()[:8]}:{end}" if end < len(items) else None
    return items[start:end], token


def _ok(data: dict[str, Any]) -> web.Response:
    return web.Response(status=200, text=json.dumps(data), content_type="application/json",
                        headers={"x-amzn-RequestId": secrets.token_hex(16)})


def _federation_error(message: str) -> web.Response:
    # the real endpoint answers a 400 with a short HTML page naming the parameter it did not like
    return web.Response(status=400, text=f"<html><body><h1>400 Bad Request</h1><p>{message}</p></body></html>",
                        content_type="text/html")
