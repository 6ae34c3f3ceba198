"""`tipctl logout`: forget a profile's tokens and revoke the refresh token at the IdP."""
from __future__ import annotations

import argparse

HELP = "sign out: forget the tokens (keyring/file and memory) and revoke the refresh token at the IdP"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("logout", help=HELP, description=HELP + ".")
    p.add_argument("profile", nargs="?", help="profile (default: the default profile)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=run)


def outcome_sentence(name: str, revocation: str, detail: str = "") -> str:
    """What became of the sign-in, in words. The tokens are gone from this machine in every case."""
    forgotten = f"Signed out of {name}: the tokens are forgotten on this machine"
    if revocation == "revoked":
        return f"Signed out of {name}. The refresh token was revoked at the IdP."
    if revocation == "not-signed-in":
        return f"{name} was not signed in; there was nothing to sign out of."
    if revocation == "unsupported":
        return (f"{forgotten}. The IdP offers no revocation endpoint, so the refresh token stays valid there "
                "until it expires or you sign out at the IdP.")
    if revocation == "refused":
        return (f"{forgotten}. The IdP did not accept the revocation ({detail or 'an error'}), so the refresh "
                "token may stay valid there until it expires.")
    return (f"{forgotten}. Revoking the refresh token at the IdP did not work ({detail or 'no answer'}), so it may "
            "stay valid there until it expires.")


def run(args: argparse.Namespace) -> int:
    from .common import client, print_json, resolve_profile

    ctl = client()
    name, _ = resolve_profile(ctl, args.profile)
    r = ctl.request("POST", f"/v1/logout/{name}")
    if args.json:
        print_json(r)
    else:
        # a daemon of before the `revocation` field: only the boolean
        revocation = r.get("revocation") or ("revoked" if r.get("revoked_at_idp") else "unsupported")
        print(outcome_sentence(name, revocation, r.get("revocation_detail") or ""))
    return 0
