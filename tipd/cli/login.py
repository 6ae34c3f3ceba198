"""`tipctl login`: sign in through the browser (or with a device code) and hand the tokens to the daemon."""
from __future__ import annotations

import argparse
import shlex
import sys
from typing import TYPE_CHECKING, Any

from ..errors import TipdError

if TYPE_CHECKING:
    from ..config import Profile
    from ..idp.oidc import TokenResponse
    from ..secret import Secret
    from .control import ControlClient

HELP = "sign in to a profile's IdP (browser, or --device for a code) and start serving credentials"
BROWSER_TIMEOUT = 300
#: a day: longer is a typo, and NaN or a negative wait would make the sentence meaningless
MAX_TIMEOUT = 86400


def seconds(text: str) -> float:
    """--timeout: a finite number of seconds, 1 to a day."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 1 <= value <= MAX_TIMEOUT:  # False for NaN too
        raise argparse.ArgumentTypeError(f"{text!r} must be between 1 and {MAX_TIMEOUT} seconds")
    return value


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("login", help=HELP, description=HELP + ". The browser opens on the IdP's sign-in page "
                       "(set BROWSER to choose it); the redirect comes back to a one-shot listener on 127.0.0.1 "
                       "(on the profile's redirect_port, or any free port when it is 0). Over SSH or on a machine "
                       "without a browser, --device prints a URL and a code to enter on any other device. "
                       "Ctrl-C cancels; nothing reaches the daemon then.")
    p.add_argument("profile", nargs="?", help="profile (default: the default profile)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--device", action="store_true",
                     help="use the device authorization grant: sign in on another device with a code")
    how.add_argument("--no-browser", action="store_true", help="only print the sign-in URL (to open in a browser "
                     "of this machine yourself)")
    p.add_argument("--force", action="store_true", help="sign in again even when the profile's credentials are "
                   "fresh")
    p.add_argument("--timeout", type=seconds, default=None, metavar="SECONDS",
                   help=f"how long to wait for the sign-in to complete (default {BROWSER_TIMEOUT}; "
                        "with --device, until the code expires)")
    p.add_argument("--json", action="store_true", help="print the resulting status as JSON")
    p.set_defaults(run=run)


class Phase:
    """What the sign-in is doing, for the sentence when --timeout ends it."""

    def __init__(self) -> None:
        self.now = "starting"


async def _sign_in(profile: Profile, args: argparse.Namespace, phase: Phase,
                   client_secret: Secret | None = None) -> TokenResponse:
    """Sign in at the profile's IdP and verify the id_token; returns the token response."""
    from ..errors import LoginError
    from ..idp.oidc import IdpClient, new_session

    def show(text: str) -> None:  # stderr: stdout carries only the result (--json)
        print(text, file=sys.stderr, flush=True)

    async with new_session() as http:
        idp = IdpClient(http, profile, client_secret)
        phase.now = f"reading the IdP's discovery document at {profile.issuer}"
        await idp.metadata()
        if args.device:
            from ..idp.device import device_login

            phase.now = "waiting for the device sign-in"
            tokens = await device_login(idp, timeout=args.timeout, show=show)
            nonce = None  # the device grant has no authorization request to carry one
        else:
            from ..idp.browser import browser_login

            phase.now = "waiting for the browser sign-in"
            tokens, req = await browser_login(idp, timeout=args.timeout or BROWSER_TIMEOUT,
                                              open_browser=not args.no_browser, show=show)
            nonce = req.nonce
        if tokens.id_token is None:
            raise LoginError("the IdP returned no id_token: the profile's scopes must include openid")
        phase.now = "checking the id_token against the IdP's signing keys"
        await idp.verify_id_token(tokens.id_token.reveal(), nonce)
    return tokens


async def _within(name: str, profile: Profile, args: argparse.Namespace) -> TokenResponse:
    """The sign-in, bounded by --timeout as a whole (a slow IdP ends in a sentence, not a traceback)."""
    import asyncio

    from ..errors import LoginError

    phase = Phase()
    # before any browser opens: a missing one is a sentence
    client_secret = await _stored_secret(name, profile, args.config)
    if not args.timeout:
        return await _sign_in(profile, args, phase, client_secret)
    try:
        # a little over --timeout: the flows' own waits end first, with their more precise sentences
        async with asyncio.timeout(args.timeout + 2):
            return await _sign_in(profile, args, phase, client_secret)
    except TimeoutError:
        raise LoginError(f"the sign-in did not complete within {args.timeout:g} s (still {phase.now}); check that "
                         "the IdP is reachable, or allow more time with --timeout") from None


async def _stored_secret(name: str, profile: Profile, config: str | None) -> Secret | None:
    """The client secret the profile's IdP app requires (None for a public client), from where `tipctl
    configure` stored it: the store of the config's [store] backend (OS keyring, else a 0600 file)."""
    if profile.client_auth == "none":
        return None
    from ..config import load_config
    from ..errors import ConfigError
    from ..paths import Paths
    from ..store import client_secret, open_store

    try:
        backend = load_config(config, missing_ok=True)[0].store.backend
    except ConfigError:
        backend = "auto"  # the daemon runs with a config this process cannot read: the default store
    return await client_secret(open_store(backend, Paths.default().tokens_dir), name, profile)


def _profile(settings: dict[str, Any]) -> Profile:
    """The daemon's view of the profile as a config.Profile (defaults for settings an older daemon lacks)."""
    from ..config import Profile

    return Profile.model_validate(settings)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from .common import client, print_json, resolve_profile, when

    ctl = client(timeout=120)
    # asks the daemon first: when it is not running, say so before any browser opens or code is issued
    name, profile = resolve_profile(ctl, args.profile, signs_in=True)  # an account profile: its source
    if not args.force:
        now = profile_status(ctl, name)
        if now is not None and now["state"] == "fresh":
            if args.json:
                print_json(now)
            else:
                print(f"Already signed in to {name} as {now['user']}; credentials valid until "
                      f"{when(now['credentials_expire'])}, and tipd renews them by itself. "
                      f"`tipctl login --force{' ' + name if args.profile else ''}` signs in again.")
            return 0
    # Ctrl-C: asyncio.run cancels the sign-in (closing the loopback listener) and raises KeyboardInterrupt,
    # which main turns into `tipctl: cancelled` and exit 130, before anything is handed to the daemon
    tokens = asyncio.run(_within(name, _profile(profile), args))
    assert tokens.id_token is not None  # _sign_in refuses an answer without one
    handoff = {"access_token": tokens.access_token.reveal(), "id_token": tokens.id_token.reveal(),
               "refresh_token": tokens.refresh_token.reveal() if tokens.refresh_token else None,
               "expires_in": tokens.expires_in, "scope": tokens.scope}  # the grant: a refresh never asks for more
    print("Signed in at the IdP; getting identity-enhanced AWS credentials...", file=sys.stderr)
    status = ctl.request("POST", f"/v1/login/{name}", handoff)
    if args.json:
        print_json(status)
    else:
        print(f"Signed in to {name} as {status['user']} (Identity Center user {status['identity_center_user_id']}).")
        print(f"Role: {status['role_arn']}")
        print(f"Credentials valid until {when(status['credentials_expire'])}; tipd renews them by itself.")
        # the profile asked for: an account profile is used by its own name, though its source signed in
        hint = usage_hint(args.profile or name, args.profile is not None, args.config)
        if hint:
            print(hint)
    return 0


def profile_status(ctl: ControlClient, name: str) -> dict[str, Any] | None:
    """The daemon's status of one profile (None when it has none)."""
    profiles: list[dict[str, Any]] = ctl.request("GET", "/v1/status")["profiles"]
    return next((p for p in profiles if p["profile"] == name), None)


def usage_hint(name: str, named: bool, config: str | None) -> str | None:
    """How to use the profile from this shell, unless its variables point there already (a service installed
    with `tipctl service install` sets them for the whole session)."""
    import os

    from ..paths import Paths
    from ..quickconfig import endpoint_facts
    from ..sdkenv import FULL_URI, container_variables

    try:
        wanted = container_variables(endpoint_facts(config), Paths.default(), name)
    except TipdError:
        wanted = None
    if wanted is not None and os.environ.get(FULL_URI) == wanted[FULL_URI]:
        return None
    command = "tipctl env" + (f" {name}" if named else "") + (f" --config {shlex.quote(config)}" if config else "")
    return f'Use it in this shell: eval "$({command})" (or run a command with `tipctl exec {name} -- COMMAND`).'
