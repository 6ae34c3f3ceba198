"""`tipctl login`: sign in through the browser and hand the tokens to the daemon."""
from __future__ import annotations

import argparse
import asyncio
import sys

HELP = "sign in to a profile's IdP in the browser (authorization code + PKCE) and start serving credentials"


def add_parser(sub) -> None:
    p = sub.add_parser("login", help=HELP, description=HELP + ". The browser opens on the IdP's sign-in page "
                       "(set BROWSER to choose it); the redirect comes back to a one-shot listener on 127.0.0.1.")
    p.add_argument("profile", nargs="?", help="profile (default: the default profile)")
    p.add_argument("--no-browser", action="store_true", help="only print the sign-in URL")
    p.add_argument("--timeout", type=float, default=300, metavar="SECONDS",
                   help="how long to wait for the sign-in to complete (default 300)")
    p.add_argument("--json", action="store_true", help="print the resulting status as JSON")
    p.set_defaults(run=run)


async def _sign_in(profile: dict, args: argparse.Namespace):
    import aiohttp

    from ..idp import oidc
    from ..idp.browser import browser_login
    from ..idp.verify import verify_id_token

    async with aiohttp.ClientSession() as http:
        meta = await oidc.discover(http, profile["issuer"])
        tokens, req = await browser_login(
            http, meta, profile["client_id"], profile["scopes"], port=profile["redirect_port"],
            timeout=args.timeout, open_browser=not args.no_browser,
            show=lambda s: print(s, file=sys.stderr))
        if tokens.id_token is None:
            from ..errors import LoginError

            raise LoginError("the IdP returned no id_token: the profile's scopes must include openid")
        jwks = await oidc.fetch_jwks(http, meta.jwks_uri)
        verify_id_token(tokens.id_token.reveal(), jwks, issuer=meta.issuer, client_id=profile["client_id"],
                        nonce=req.nonce)
    return tokens


def run(args: argparse.Namespace) -> int:
    from .common import client, print_json, resolve_profile, when

    ctl = client(timeout=120)
    name, profile = resolve_profile(ctl, args.profile)
    tokens = asyncio.run(_sign_in(profile, args))
    handoff = {"access_token": tokens.access_token.reveal(), "id_token": tokens.id_token.reveal(),
               "refresh_token": tokens.refresh_token.reveal() if tokens.refresh_token else None,
               "expires_in": tokens.expires_in}
    print("Signed in at the IdP; getting identity-enhanced AWS credentials...", file=sys.stderr)
    status = ctl.request("POST", f"/v1/login/{name}", handoff)
    if args.json:
        print_json(status)
    else:
        print(f"Signed in to {name} as {status['user']} (Identity Center user {status['identity_center_user_id']}).")
        print(f"Role: {status['role_arn']}")
        print(f"Credentials valid until {when(status['credentials_expire'])}; tipd renews them by itself.")
    return 0
