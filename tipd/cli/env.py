"""`tipctl env`: the variables that point every AWS SDK at tipd."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any

HELP = "print the shell exports that point AWS SDKs at tipd (use: eval \"$(tipctl env)\")"
USE = ("Use: bash, zsh, sh: eval \"$(tipctl env)\"; fish: tipctl env | source; PowerShell: "
       "tipctl env | Out-String | Invoke-Expression.")


def add_shell_arguments(p: argparse.ArgumentParser) -> None:
    """--shell and --unset, shared by `tipctl env` and `tipctl s3ag env`."""
    from ..shells import SHELLS

    p.add_argument("--shell", choices=SHELLS, help="the shell to print for (default: detected: the one that "
                   "runs tipctl, else $SHELL's; the whole rule is in `tipctl env --help`)")
    p.add_argument("--unset", action="store_true", help="print the commands that remove these variables again "
                   "(reads no config)")


def add_parser(sub: Any) -> None:
    from ..shells import DETECT_RULE

    p = sub.add_parser("env", help=HELP, description="Print the commands that point AWS SDKs at tipd, in the "
                       "syntax of your shell. Reads the config and file locations only; the daemon does not have to "
                       "be running. " + USE + " " + DETECT_RULE)
    p.add_argument("profile", nargs="?", help="profile to serve (default: the default profile)")
    p.add_argument("--imds", action="store_true", help="print AWS_EC2_METADATA_SERVICE_ENDPOINT for tools that only "
                   "know the EC2 instance metadata service (IMDSv2; serves the default profile)")
    p.add_argument("--json", action="store_true", help="print the variables as a JSON object")
    add_shell_arguments(p)
    p.set_defaults(run=run)


def variables(profile: str | None, config_path: str | None, imds: bool = False) -> dict[str, str]:
    from ..paths import Paths
    from ..quickconfig import endpoint_facts
    from ..sdkenv import container_variables, imds_variables

    endpoint = endpoint_facts(config_path)
    if imds:
        return imds_variables(endpoint, profile)
    return container_variables(endpoint, Paths.default(), profile)


def run(args: argparse.Namespace) -> int:
    if args.unset:
        return print_unset(args.shell, IMDS_NAMES if args.imds else CONTAINER_NAMES)
    env = variables(args.profile, args.config, args.imds)
    code = print_exports(env, args.json, imds=args.imds, shell=args.shell)
    warning = serving_warning(profile_of(env, args.profile))
    if warning:
        print(f"# tipctl: {warning}", file=sys.stderr)
    return code


def profile_of(env: dict[str, str], asked: str | None) -> str | None:
    """The profile the variables serve (None for IMDS without a name: the daemon's default)."""
    url = env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI")
    return url.rsplit("/", 1)[-1] if url else asked


#: how long `tipctl env` waits for tipd's answer before it leaves the warning out (it runs in shell start-up)
CHECK_TIMEOUT = 1.0


def serving_warning(profile: str | None) -> str | None:
    """Why the SDKs will get no credentials from these variables right now, or None. Without this an SDK finds
    out only after botocore's retries (about 3 s), with an error that does not name tipd's reason."""
    from ..errors import TipdError
    from .common import client
    from .control import DaemonNotRunning

    try:
        summary = client(timeout=CHECK_TIMEOUT).request("GET", "/v1/summary")
    except DaemonNotRunning:
        return None  # the variables are set before tipd starts (shell start-up, a service starting later)
    except TipdError:
        return None  # slow or odd: no warning rather than a slow shell start
    states = {p["profile"]: p["state"] for p in summary.get("profiles", [])}
    # IMDS without a name serves tipd's default profile (the rule of tipd.profiles, applied by tipd)
    name = profile if profile is not None else summary.get("default_profile")
    sources = {a["profile"]: a["source"] for a in summary.get("accounts", [])}
    if name in sources:  # an account profile: served while its source is signed in (fetched at first use)
        states[name] = next((s for p, s in states.items() if p == sources[name]), "signed-out")
        profile = sources[name]
    if name is None:
        return None
    if name not in states:
        return (f"tipd does not serve profile {name} (it was started with another config, or before the profile "
                "was added): run `tipctl reload`")
    if states[name] in ("signed-out", "login-required"):
        if name in sources:
            return (f"account profile {name} signs in through {profile}, which is {states[name]}, so AWS SDKs "
                    f"will get no credentials: run `tipctl login {profile}`")
        return (f"profile {name} is {states[name]}, so AWS SDKs will get no credentials: run "
                f"`tipctl login{' ' + name if profile else ''}`")
    return None


#: what `tipctl env` sets, for --unset (no config needed to name them)
CONTAINER_NAMES = ["AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]
IMDS_NAMES = ["AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_EC2_METADATA_DISABLED"]


def print_unset(shell: str | None, names: list[str]) -> int:
    from ..shells import detect, unset_vars

    print(unset_vars(shell or detect(), names))
    return 0


def print_exports(env: dict[str, str], as_json: bool, imds: bool = False, shell: str | None = None) -> int:
    """`env` as commands for `shell` (default: detected) or a JSON object; `tipctl s3ag env` prints its
    variables through this too."""
    if as_json:
        from .common import print_json

        print_json(env)
        return 0
    from ..shells import detect, set_var, unset_vars

    shell = shell or detect()
    # these would win over the chosen provider (or over the token file, for Java): clear them
    print(unset_vars(shell, ["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN"]
                     + (CONTAINER_NAMES if imds else [])))
    for k, v in env.items():
        print(set_var(shell, k, v))
    if os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE"):
        print("# note: AWS_ACCESS_KEY_ID or AWS_PROFILE is set in this shell and takes precedence over tipd; "
              "unset it to use tipd", file=sys.stderr)
    elif not imds:  # (IMDS comes after the files in every chain too, but its users asked for it knowingly)
        from ..awsconfig import shadowing_default

        if (shadow := shadowing_default(os.environ)) is not None:
            print(f"# note: {shadow}", file=sys.stderr)
    return 0
