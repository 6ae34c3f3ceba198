"""S3 Access Grants for the AWS fake: s3control GetDataAccess, answered strictly (moto has no S3 Access Grants).

A test configures grants on the running fake::

    g = fake.access_grants.grant("9067e4a2-alice", "s3://bucket/prefix/*", "READ")
    ...
    fake.access_grants.clear()

The caller must sign (SigV4, checked with the secret) with an identity-enhanced session this fake saw issued:
an AssumeRole carrying an Identity Center context it proxied. The grantee is that context's user. The grant
that matches is the most specific one of that user whose scope holds the target and whose permission includes
the one asked (READWRITE includes READ and WRITE); none matching is AccessDenied, as is any other caller.

Simplifications (deliberate): one S3 Access Grants instance, in ``FakeConfig.account_id``; directory users as
grantees (no groups, no IAM principals); no registered locations: each grant names the role its credentials
come from. Those credentials are moto's AssumeRole of that role with the requested DurationSeconds, so they work
against moto's S3, which enforces no permissions: they are not scoped down to the grant."""
from __future__ import annotations

import asyncio
import datetime as dt
import functools
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from aiohttp import web

if TYPE_CHECKING:
    from .aws import FakeAWS, _Identified

PERMISSIONS = ("READ", "WRITE", "READWRITE")
XMLNS = "http://awss3control.amazonaws.com/doc/2018-08-20/"


@dataclass(frozen=True)
class AccessGrant:
    grantee: str  # Identity Center user id
    scope: str  # s3://bucket/prefix/*, s3://bucket/*, s3://* or one object's s3:// URL
    permission: str  # READ, WRITE or READWRITE
    role_arn: str  # the role S3 Access Grants assumes to vend the credentials

    def holds(self, target: str) -> bool:
        if self.scope.endswith("*"):
            return target.startswith(self.scope[:-1])
        return target == self.scope

    def allows(self, permission: str) -> bool:
        return self.permission == permission or self.permission == "READWRITE"


class AccessGrants:
    def __init__(self, fake: FakeAWS) -> None:
        self.fake = fake
        self._lock = threading.Lock()
        self._grants: list[AccessGrant] = []
        #: every GetDataAccess that passed authentication: its parameters, the caller's user and the outcome
        self.requests: list[dict[str, Any]] = []

    def grant(self, grantee: str, scope: str, permission: str = "READ", role_arn: str | None = None) -> AccessGrant:
        if permission not in PERMISSIONS or not scope.startswith("s3://"):
            raise ValueError(f"bad grant {scope!r} {permission!r}")
        g = AccessGrant(grantee, scope, permission,
                        role_arn or f"arn:aws:iam::{self.fake.config.account_id}:role/s3ag-location")
        with self._lock:
            self._grants.append(g)
        return g

    def revoke(self, grant: AccessGrant) -> None:
        with self._lock:
            self._grants.remove(grant)

    def clear(self) -> None:
        with self._lock:
            self._grants.clear()
            self.requests.clear()

    # -- the operation -------------------------------------------------------------------------
    async def get_data_access(self, request: web.Request, body: bytes, info: _Identified) -> web.Response:
        from .aws import _AwsError

        user = self._authenticate(request, body, info)
        q = request.query
        target, permission = q.get("target", ""), q.get("permission", "")
        privilege, target_type = q.get("privilege", "Default"), q.get("targetType")
        record = {"user": user, "target": target, "permission": permission, "privilege": privilege,
                  "target_type": target_type, "duration": q.get("durationSeconds"), "outcome": None}
        with self._lock:
            self.requests.append(record)
        if not target.startswith("s3://") or permission not in PERMISSIONS or privilege not in ("Default", "Minimal") \
                or target_type not in (None, "Object"):
            record["outcome"] = "InvalidRequest"
            raise _AwsError("InvalidRequest", "invalid target, permission, privilege or targetType", 400)
        duration = int(q.get("durationSeconds", "3600"))
        if not 900 <= duration <= 43200:
            record["outcome"] = "InvalidRequest"
            raise _AwsError("InvalidRequest", "durationSeconds must be between 900 and 43200", 400)
        account = request.headers.get("x-amz-account-id")
        if account != self.fake.config.account_id:
            record["outcome"] = "AccessDenied"
            raise _AwsError("AccessDenied", f"there is no S3 Access Grants instance in account {account}", 403)
        with self._lock:
            matching = [g for g in self._grants if g.grantee == user and g.holds(target) and g.allows(permission)]
        if not matching:
            record["outcome"] = "AccessDenied"
            raise _AwsError("AccessDenied", "You do not have permission to access the data at the requested target",
                            403)
        grant = max(matching, key=lambda g: len(g.scope))
        creds = await self._assume(grant, user, duration)
        matched = grant.scope if privilege == "Default" else target
        record["outcome"] = "granted"
        record["matched"] = matched
        xml = (f'<?xml version="1.0" encoding="UTF-8"?><GetDataAccessResult xmlns="{XMLNS}"><Credentials>'
               f"<AccessKeyId>{escape(creds['AccessKeyId'])}</AccessKeyId>"
               f"<SecretAccessKey>{escape(creds['SecretAccessKey'])}</SecretAccessKey>"
               f"<SessionToken>{escape(creds['SessionToken'])}</SessionToken>"
               f"<Expiration>{creds['Expiration'].strftime('%Y-%m-%dT%H:%M:%SZ')}</Expiration></Credentials>"
               f"<MatchedGrantTarget>{escape(matched)}</MatchedGrantTarget>"
               f"<Grantee><GranteeType>DIRECTORY_USER</GranteeType><GranteeIdentifier>{escape(user)}"
               f"</GranteeIdentifier></Grantee></GetDataAccessResult>")
        return web.Response(status=200, body=xml.encode(), content_type="application/xml")

    def _authenticate(self, request: web.Request, body: bytes, info: _Identified) -> str:
        """The Identity Center user of the identity-enhanced session that signed the request."""
        from .aws import _AwsError, _verify_sigv4

        scope = info.scope
        if scope is None:
            raise _AwsError("AccessDenied", "missing authentication: the request is not SigV4-signed", 403)
        if scope.service != "s3":
            raise _AwsError("SignatureDoesNotMatch", "Credential should be scoped to correct service: 's3'.", 403)
        creds = self.fake.issued(scope.access_key_id)
        if creds is None:
            raise _AwsError("InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.",
                            403)
        if request.headers.get("X-Amz-Security-Token") != creds.session_token:
            raise _AwsError("InvalidToken", "The provided token is malformed or otherwise invalid.", 400)
        if time.time() >= creds.expiration:
            raise _AwsError("ExpiredToken", "The provided token has expired.", 400)
        if not _verify_sigv4(request.method, request.raw_path, request.headers, body, scope, creds.secret_access_key):
            raise _AwsError("SignatureDoesNotMatch",
                            "The request signature we calculated does not match the signature you provided.", 403)
        if creds.identity_user is None:
            raise _AwsError("AccessDenied", f"the caller ({creds.action} credentials) is not an identity-enhanced "
                            "session: it carries no Identity Center user, and no grant here is for an IAM principal",
                            403)
        return creds.identity_user

    async def _assume(self, grant: AccessGrant, user: str, duration: int) -> dict[str, Any]:
        if self.fake.moto_url is None:
            from .aws import _AwsError

            raise _AwsError("InternalError", "the fake has no moto to vend credentials from", 500)
        sts = _moto_sts(self.fake.moto_url)
        r = await asyncio.get_running_loop().run_in_executor(None, functools.partial(
            sts.assume_role, RoleArn=grant.role_arn, RoleSessionName=f"s3ag-{user}"[:64], DurationSeconds=duration))
        creds: dict[str, Any] = r["Credentials"]
        exp = creds["Expiration"]
        creds["Expiration"] = exp.astimezone(dt.UTC) if exp.tzinfo else exp.replace(tzinfo=dt.UTC)
        return creds


@functools.cache
def _moto_sts(moto_url: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("sts", endpoint_url=moto_url, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing", config=Config(retries={"max_attempts": 1}))
