"""`tipctl accounts`: the AWS accounts and roles a sign-in reaches through Identity Center account access."""
from __future__ import annotations

import argparse
from typing import Any

HELP = "list the AWS accounts and roles (permission sets) your sign-in reaches through Identity Center"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("accounts", help=HELP, description=HELP + ". tipd asks the Identity Center portal API "
                       "(ListAccounts, ListAccountRoles) with the profile's Identity Center token: no second "
                       "sign-in. It needs the sso:account:access scope on the application (an Identity Center "
                       "administrator enables it; organization instances only): see docs/accounts.md. "
                       "The listing is cached for a minute; --fresh asks again.")
    p.add_argument("profile", nargs="?", metavar="PROFILE", help="the sign-in profile (default: the default profile)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--fresh", action="store_true", help="ask Identity Center again instead of the minute-old listing")
    p.set_defaults(run=run)


def render(accounts: list[dict[str, Any]]) -> str:
    if not accounts:
        return "Identity Center assigns you no AWS account (ask its administrator for a permission set assignment)."
    head = ("ACCOUNT ID", "NAME", "E-MAIL", "ROLES")
    table = [head] + [(a["account_id"], a["name"], a["email"], ", ".join(a["roles"]) or "-") for a in accounts]
    widths = [max(len(r[i]) for r in table) for i in range(len(head) - 1)]
    return "\n".join(" ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + " " + r[-1] for r in table)


def run(args: argparse.Namespace) -> int:
    from urllib.parse import quote

    from .common import client, print_json, resolve_profile

    ctl = client(timeout=120)  # 100 accounts take a few seconds; a throttled portal longer
    name, _ = resolve_profile(ctl, args.profile)
    answer = ctl.request("GET", f"/v1/accounts/{quote(name, safe='')}" + ("?fresh=1" if args.fresh else ""))
    if args.json:
        print_json(answer)
    else:
        print(render(answer["accounts"]))
    return 0
