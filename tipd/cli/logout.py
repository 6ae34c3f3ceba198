"""`tipctl logout`: forget a profile's tokens and revoke the refresh token at the IdP."""
from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import Config

HELP = "sign out: forget the tokens (keyring/file and memory) and revoke the refresh token at the IdP"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("logout", help=HELP, description=HELP + ". When tipd is not running, the stored sign-in "
                       "is forgotten and revoked all the same (with the config's [store]).")
    p.add_argument("profile", nargs="?", help="profile (default: the default profile)")
    p.add_argument("--all", action="store_true", help="sign out of every profile that is signed in")
    p.add_argument("--json", action="store_true", help="machine-readable output (with --all: a list)")
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
    from .common import client, print_json
    from .control import DaemonNotRunning

    if args.all and args.profile:
        from ..errors import TipdError

        raise TipdError("name a profile or give --all, not both", code="BadRequest", status=400)
    ctl = client()
    try:
        results = _with_daemon(ctl, args)
    except DaemonNotRunning:
        results = _without_daemon(args)
    if args.json:
        print_json(results if args.all else results[0])
    elif not results:
        print("No profile is signed in; there was nothing to sign out of.")
    for r in [] if args.json else results:
        # a daemon of before the `revocation` field: only the boolean
        revocation = r.get("revocation") or ("revoked" if r.get("revoked_at_idp") else "unsupported")
        print(outcome_sentence(r["profile"], revocation, r.get("revocation_detail") or ""))
    return 0


def _with_daemon(ctl: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    from .common import resolve_profile

    if args.all:
        profiles = ctl.request("GET", "/v1/status")["profiles"]
        names = [p["profile"] for p in profiles if p["state"] != "signed-out"]
    else:
        names = [resolve_profile(ctl, args.profile, signs_in=True)[0]]  # an account profile: its source
    return [ctl.request("POST", f"/v1/logout/{name}") for name in names]


def _without_daemon(args: argparse.Namespace) -> list[dict[str, Any]]:
    """tipd is not running: forget the stored sign-in (and revoke its refresh token) from here."""
    import asyncio

    from ..config import load_config

    config = load_config(args.config, missing_ok=True)[0]
    if args.all:
        names = list(config.idp_profiles)
    else:
        name = config.profile_name(args.profile)
        account = config.accounts.get(name)
        names = [account.source if account is not None else name]  # an account profile signs in as its source
    print("tipd is not running: signing out from the stored sign-ins.", file=sys.stderr)
    results = asyncio.run(_forget(config, names))
    return [r for r in results if r["revocation"] != "not-signed-in"] if args.all else results


async def _forget(config: Config, names: list[str]) -> list[dict[str, Any]]:
    from ..errors import TipdError
    from ..idp.oidc import NOT_SIGNED_IN, IdpClient, Revocation, new_session
    from ..paths import Paths
    from ..store import client_secret, open_store

    store = open_store(config.store.backend, Paths.default().tokens_dir, keeps=False)  # no keyring note: it forgets
    out: list[dict[str, Any]] = []
    async with new_session() as http:
        for name in names:
            profile = config.idp_profile(name)
            grant = await store.load(name)  # a damaged record reads as None, and is removed all the same
            try:
                await store.delete(name)
            except OSError as e:
                raise TipdError(f"cannot remove the stored sign-in of {name} ({e.strerror}): remove "
                                f"{e.filename or 'it'}") from None
            revocation = NOT_SIGNED_IN
            if grant is not None:
                if grant.bound_to(profile.issuer, profile.client_id):  # never send it to another issuer
                    try:
                        secret = await client_secret(store, name, profile)
                        revocation = await IdpClient(http, profile, secret).revoke(grant.refresh_token)
                    except TipdError as e:
                        revocation = Revocation("failed", e.message)
                else:
                    revocation = Revocation("failed", "the profile's issuer or client changed since the sign-in, "
                                                      "so the old refresh token was not sent to it")
            out.append({"profile": name, "signed_out": True, "revoked_at_idp": revocation.outcome == "revoked",
                        "revocation": revocation.outcome, "revocation_detail": revocation.detail})
    return out
