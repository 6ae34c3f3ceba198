"""`tipctl rotate-token`: replace the endpoint token."""
from __future__ import annotations

import argparse

HELP = "replace the credential endpoint's token (the file is replaced atomically; running SDKs keep working)"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("rotate-token", help=HELP, description=HELP + ". SDKs re-read "
                       "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE on every fetch, so nothing needs restarting; a copy "
                       "of the old token stops working at once.")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from .common import client

    client().request("POST", "/v1/rotate-token")
    print("The endpoint token was replaced.")
    return 0
