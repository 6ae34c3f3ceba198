"""`tipctl console`: the AWS console in a browser as an account profile's role (the federation endpoint)."""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

HELP = "open the AWS console as an account profile's role (or print its sign-in URL)"
#: a redirect page older than this is removed at the next run (the browser has read it long before)
STALE_PAGE = 60.0

IDENTITY_ENHANCED = (
    "{name} is an identity-enhanced session (trusted identity propagation), which tipd does not open in the "
    "console: that session is role-chained and limited to the services of AWSIAMIdentityCenterAllowListForIdentity"
    "Context, and AWS documents no console sign-in for it; open the console with an account profile instead "
    "(`tipctl accounts {name}` lists your roles, docs/accounts.md).")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "console", help=HELP,
        description=HELP + ". tipd's credentials for the profile are exchanged at the AWS federation endpoint "
        "(getSigninToken) for a sign-in URL valid 15 minutes, opened in $BROWSER or the default browser. The "
        "URL is a bearer secret: it is never logged, and the browser is handed a private file that redirects to "
        "it rather than the URL on its command line.")
    p.add_argument("profile", nargs="?", metavar="PROFILE", help="an account profile (default: the default profile)")
    p.add_argument("--print", action="store_true", dest="print_url",
                   help="write only the sign-in URL to stdout instead of opening a browser")
    p.add_argument("--service", help="land on this service's console (s3, ec2, cloudwatch...; default: console home)")
    p.add_argument("--region", help="the console's region (default: the profile's region, else $AWS_REGION, "
                   "$AWS_DEFAULT_REGION or us-east-1)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from urllib.parse import quote

    from ..console import FEDERATION_ENV, redirect_page, signin_url
    from ..errors import TipdError
    from ..paths import Paths
    from .common import client, resolve_profile

    ctl = client()
    name, profile = resolve_profile(ctl, args.profile)  # the one rule of which profile is meant
    if profile and not (profile.get("source") or profile.get("role_name")):
        raise TipdError(IDENTITY_ENHANCED.format(name=name), code="NotForConsole", status=400)
    creds = ctl.request("GET", f"/v1/credentials/{quote(name, safe='')}")
    region = (args.region or profile.get("region") or _account_region(name) or os.environ.get("AWS_REGION")
              or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1")
    url = signin_url(creds, region=region, service=args.service, federation=os.environ.get(FEDERATION_ENV) or None)
    if args.print_url:
        print(url.reveal())
        return 0
    return _open(url, Paths.default().runtime_dir / "console", redirect_page)


def _account_region(name: str) -> str | None:
    """An account profile's region from the config file (its own, else its source sign-in's), if it has one."""
    from ..config import load_config
    from ..errors import TipdError

    try:
        config, _ = load_config(None, missing_ok=True)
    except TipdError:
        return None
    account = (getattr(config, "accounts", None) or {}).get(name)
    if account is None:
        return None
    source = config.profiles.get(getattr(account, "source", ""))
    region = getattr(account, "region", None) or (source.region if source is not None else None)
    return str(region) if region else None


def _open(url: Any, folder: Path, page: Any) -> int:
    import secrets
    import webbrowser

    from ..errors import TipdError
    from ..fsutil import private_dir, write_private

    private_dir(folder)
    for old in folder.glob("console-*.html"):  # earlier runs' pages: read by their browser long ago
        try:
            if time.time() - old.stat().st_mtime > STALE_PAGE:
                old.unlink()
        except OSError:
            pass
    path = folder / f"console-{secrets.token_hex(8)}.html"
    write_private(path, page(url), tag="console page")
    try:
        opened = webbrowser.open(path.as_uri())
    except webbrowser.Error:
        opened = False
    if not opened:
        path.unlink(missing_ok=True)
        raise TipdError("no browser could be opened: set BROWSER, or use --print and open the URL yourself")
    print("Opened the AWS console in your browser (the sign-in link is valid for 15 minutes).")
    return 0
