"""`tipctl diag`: check a profile's whole trusted identity propagation set-up, link by link."""
from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..diag import Failure, Target
    from ..secret import Secret

HELP = "check a profile's IdP token, Identity Center application, trusted token issuer and IAM roles"
EPILOG = """\
Each check answers ok, warning or failure, with the fix in one sentence; docs/diag.md explains them all.
The set-up is read with YOUR AWS credentials (the usual chain: environment variables, AWS_PROFILE, or
--aws-profile), never with tipd's; they need read access to sso-admin, identitystore and IAM.

Without --jwt, tipd (running, signed in) hands over a fresh copy of the JWT the profile exchanges (its
id_token, or its access token with exchange_token = "access_token", checked against the access token's
own aud). With --jwt, tipd is not needed. Pass the token as '-' (standard input) or '@FILE' to keep it
out of the process list.

Exit status: 0 when no check failed (warnings allowed), 1 when a check failed, 2 when diag could not
run (bad arguments, unknown profile, unreadable config)."""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("diag", help=HELP, description=HELP + ".", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("profile", nargs="?", help="profile (default: the default profile)")
    p.add_argument("--jwt", metavar="TOKEN", help="the IdP id_token to check, '-' to read it from standard input, "
                                                  "'@FILE' to read it from a file (default: a fresh one from tipd)")
    p.add_argument("--application-arn", metavar="ARN", help="check this Identity Center application instead of "
                                                            "the profile's")
    p.add_argument("--region", help="call Identity Center in this region instead of the profile's")
    p.add_argument("--aws-profile", metavar="NAME", help="the AWS profile of your own (admin) credentials "
                                                         "(default: the usual credential chain)")
    p.add_argument("--clock-skew", type=float, default=60.0, metavar="SECONDS",
                   help="clock skew allowed on the token's exp/nbf/iat (default 60)")
    p.add_argument("--json", action="store_true",
                   help="machine-readable output: the profile, the counts and the list of checks")
    p.set_defaults(run=run)


def _target(args: argparse.Namespace) -> Target:
    import re

    from ..config import APPLICATION_ARN, REGION, load_config
    from ..diag import Target
    from ..errors import ConfigError

    config, _ = load_config(args.config)
    name = config.profile_name(args.profile)
    prof = config.idp_profile(name)
    if args.application_arn and not re.match(APPLICATION_ARN, args.application_arn):
        raise ConfigError("--application-arn: expected arn:aws:sso::<account>:application/ssoins-<16 hex>/apl-<16 hex>")
    if args.region and not re.match(REGION, args.region):
        raise ConfigError("--region: expected a region such as eu-west-1")
    return Target(profile=name, issuer=prof.issuer, client_id=prof.client_id,
                  application_arn=args.application_arn or prof.application_arn, oidc_role_arn=prof.oidc_role_arn,
                  enhanced_role_arn=prof.identity_enhanced_role_arn, region=args.region or prof.region,
                  session_duration=config.refresh.session_duration, exchange_token=prof.exchange_token,
                  account_profiles=sum(1 for a in (getattr(config, "accounts", None) or {}).values()
                                       if getattr(a, "source", None) == name))


#: --jwt's size limit: an id_token is a few KiB
MAX_JWT = 1024 * 1024


def _read_jwt(value: str) -> Secret:
    from ..errors import ConfigError
    from ..secret import Secret

    if value == "-":
        text = sys.stdin.read(MAX_JWT + 1)
    elif value.startswith("@"):
        try:
            with open(value[1:], encoding="utf-8") as fh:
                text = fh.read(MAX_JWT + 1)  # bounded: @/dev/zero was a MemoryError
        except OSError as e:
            raise ConfigError(f"--jwt: cannot read {value[1:]}: {e.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"--jwt: {value[1:]} is not a text file (a JWT is base64url text)") from None
    else:
        text = value
    if len(text) > MAX_JWT:
        raise ConfigError(f"--jwt: longer than {MAX_JWT // 1024} KiB, which no JWT is")
    text = text.strip()
    if not text:
        raise ConfigError("--jwt: the token is empty")
    return Secret(text)


def _token_from_tipd(name: str) -> Secret | Failure:
    """A fresh id_token from the daemon, or a Failure saying why there is none."""
    from ..diag import Failure
    from ..errors import TipdError
    from ..secret import Secret
    from .common import client

    try:
        return Secret(client(timeout=60).request("POST", f"/v1/diag/{name}/id-token")["id_token"])
    except TipdError as e:
        return Failure("tipd", e.code, e.message)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from ..clock import Clock
    from ..diag import diagnose
    from ..diag.report import exit_code, render_text, to_json
    from ..errors import TipdError
    from .common import print_json

    try:
        target = _target(args)
        token: Secret | Failure | None = _read_jwt(args.jwt) if args.jwt else None
    except TipdError as e:
        print(f"tipctl: {e.message}", file=sys.stderr)
        return 2
    if token is None:
        token = _token_from_tipd(target.profile)
    checks = asyncio.run(diagnose(target, token, aws_profile=args.aws_profile, now=Clock().time(),
                                  skew=args.clock_skew))
    if args.json:
        print_json(to_json(target, checks))
    else:
        enc = (getattr(sys.stdout, "encoding", "") or "").lower().replace("-", "")
        print(render_text(target, checks, symbols=sys.stdout.isatty() and enc == "utf8"))
    return exit_code(checks)
