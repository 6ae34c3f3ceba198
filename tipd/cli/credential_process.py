"""`tipctl credential-process`: the credential_process bridge for ~/.aws/config."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

HELP = "print credentials in the credential_process format (for ~/.aws/config)"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("credential-process", help=HELP, description=HELP + ". Example:\n\n"
                       "  [profile work]\n  credential_process = tipctl credential-process work\n",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("profile", nargs="?", help="tipd profile (default: the default profile)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from .common import client, resolve_profile

    ctl = client()
    name, _ = resolve_profile(ctl, args.profile)
    print_process_credentials(ctl.request("GET", f"/v1/credentials/{name}"))
    return 0


def print_process_credentials(c: dict[str, Any]) -> None:
    """Container-credentials JSON `c`, printed in the credential_process format (Version 1)."""
    json.dump({"Version": 1, "AccessKeyId": c["AccessKeyId"], "SecretAccessKey": c["SecretAccessKey"],
               "SessionToken": c["Token"], "Expiration": c["Expiration"]}, sys.stdout)
    sys.stdout.write("\n")
