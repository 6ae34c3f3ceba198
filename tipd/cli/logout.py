"""`tipctl logout`: forget a profile's tokens and revoke the refresh token at the IdP."""
from __future__ import annotations

import argparse

HELP = "sign out: forget the tokens (keyring/file and memory) and revoke the refresh token at the IdP"


def add_parser(sub) -> None:
    p = sub.add_parser("logout", help=HELP, description=HELP + ".")
    p.add_argument("profile", nargs="?", help="profile (default: the default profile)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from .common import client, print_json, resolve_profile

    ctl = client()
    name, _ = resolve_profile(ctl, args.profile)
    r = ctl.request("POST", f"/v1/logout/{name}")
    if args.json:
        print_json(r)
    else:
        print(f"Signed out of {name}." + (" The refresh token was revoked at the IdP." if r["revoked_at_idp"] else
                                         " (The IdP offers no revocation endpoint; the token was forgotten.)"))
    return 0
