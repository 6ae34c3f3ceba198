"""The AWS console as a role: a sign-in URL from role credentials, through the federation endpoint.

How (IAM user guide, "Enable custom identity broker access to the AWS console",
https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_providers_enable-console-custom-url.html):
`GET https://signin.aws.amazon.com/federation?Action=getSigninToken&Session=<JSON>` where the JSON holds the
credentials as `sessionId` (access key id), `sessionKey` (secret key) and `sessionToken`, answers
`{"SigninToken": ...}`; the browser then opens
`.../federation?Action=login&Issuer=<who sends it>&Destination=<console URL>&SigninToken=<token>`.
The sign-in token is valid for 15 minutes and the URL is a bearer secret: whoever has it is signed in as the
role. So it is a `Secret` here, never logged, and the browser is handed a 0600 file that redirects to it, not
the URL itself (a command line is readable by every local user in /proc).

`SessionDuration` (900-43200 s) is left out: credentials got by role chaining (AssumeRole with temporary
credentials) make the endpoint refuse it with a 400 (aws-sso-cli, https://github.com/synfinatic/aws-sso-cli/pull/1247;
Teleport, https://github.com/gravitational/teleport/pull/9792), and without it the console session lasts as long
as the credentials, which for an account profile is the permission set's session duration.

Stdlib only: `tipctl console` imports neither botocore nor aiohttp."""
from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from .errors import TipdError
from .secret import Secret

#: test stacks and private partitions point the federation endpoint elsewhere (the URL up to `/federation`)
FEDERATION_ENV = "TIPD_FEDERATION_URL"
_PARTITIONS = {  # partition -> (federation endpoint, console)
    "aws": ("https://signin.aws.amazon.com/federation", "https://console.aws.amazon.com"),
    "aws-us-gov": ("https://signin.amazonaws-us-gov.com/federation", "https://console.amazonaws-us-gov.com"),
    "aws-cn": ("https://signin.amazonaws.cn/federation", "https://console.amazonaws.cn"),
}
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")
_SERVICE = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
#: the endpoint's answer is a few hundred bytes; read no more than this
MAX_ANSWER = 64 * 1024
ISSUER = "tipd"


def partition(region: str) -> str:
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    if region.startswith("cn-"):
        return "aws-cn"
    return "aws"


def destination(region: str, service: str | None) -> str:
    """The console page to land on: a service's home, or the console home, in `region`."""
    if not _REGION.fullmatch(region):
        raise TipdError(f"--region {region!r} is not an AWS region name (like eu-west-1)")
    if service is not None and not _SERVICE.fullmatch(service):
        raise TipdError(f"--service {service!r} is not a console service name (like s3, ec2 or cloudwatch)")
    console = _PARTITIONS[partition(region)][1]
    return f"{console}/{service or 'console'}/home?region={region}"


def signin_url(credentials: dict[str, Any], *, region: str, service: str | None = None,
               federation: str | None = None, timeout: float = 15.0) -> Secret:
    """The console sign-in URL for these credentials (the container-credentials JSON tipd serves)."""
    dest = destination(region, service)
    endpoint = federation or _PARTITIONS[partition(region)][0]
    try:
        session = json.dumps({"sessionId": credentials["AccessKeyId"], "sessionKey": credentials["SecretAccessKey"],
                              "sessionToken": credentials["Token"]})
    except KeyError:
        raise TipdError("tipd's answer holds no credentials to sign in to the console with") from None
    query = urllib.parse.urlencode({"Action": "getSigninToken", "Session": session})
    try:
        with urllib.request.urlopen(f"{endpoint}?{query}", timeout=timeout) as r:
            body = r.read(MAX_ANSWER + 1)
    except urllib.error.HTTPError as e:
        raise TipdError(f"the AWS sign-in endpoint refused these credentials (HTTP {e.code}); they may have expired "
                        "or come from a session the console does not take") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise TipdError(f"cannot reach the AWS sign-in endpoint {endpoint}: {reason}") from None
    try:
        token = json.loads(body[:MAX_ANSWER])["SigninToken"]
        if not isinstance(token, str) or not token:
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise TipdError("the AWS sign-in endpoint answered without a sign-in token") from None
    login = urllib.parse.urlencode({"Action": "login", "Issuer": ISSUER, "Destination": dest, "SigninToken": token})
    return Secret(f"{endpoint}?{login}")


def redirect_page(url: Secret) -> bytes:
    """A page that sends the browser on to `url` (written 0600, so only the user's own browser reads it)."""
    target = json.dumps(url.reveal())  # a JS string literal; the URL is ours, but escape it all the same
    attr = url.reveal().replace("&", "&amp;").replace('"', "&quot;")
    return (f'<!doctype html><meta charset="utf-8"><meta name="referrer" content="no-referrer">'
            f'<meta http-equiv="refresh" content="0;url={attr}"><title>AWS console</title>'
            f"<script>location.replace({target})</script>").encode()
