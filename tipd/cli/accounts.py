"""`tipctl accounts`: the AWS accounts and roles a sign-in reaches through Identity Center account access."""
from __future__ import annotations

import argparse
import sys
from typing import Any

HELP = "list the AWS accounts and roles (permission sets) your sign-in reaches through Identity Center"
#: `tipctl accounts [PROFILE]` is `tipctl accounts list [PROFILE]` (tipd/cli/main.py inserts it)
ACTIONS = ("list", "add", "sync")
DEFAULT_ACTION = "list"


def add_parser(sub: Any) -> None:
    top = sub.add_parser("accounts", help=HELP + "; add account profiles (add, sync)",
                         description="The AWS accounts and roles your sign-in reaches through Identity Center, and "
                         "account profiles for them. `tipctl accounts [PROFILE]` lists them; `tipctl accounts add` "
                         "and `tipctl accounts sync` write account profiles into the config. See docs/accounts.md.")
    actions = top.add_subparsers(title="actions", metavar="ACTION")
    p = actions.add_parser("list", help=HELP, description=HELP + ". tipd asks the Identity Center portal API "
                           "(ListAccounts, ListAccountRoles) with the profile's Identity Center token: no second "
                           "sign-in. It needs the sso:account:access scope on the application (an Identity Center "
                           "administrator enables it; organization instances only): see docs/accounts.md. "
                           "The listing is cached for a minute; --fresh asks again.")
    p.add_argument("profile", nargs="?", metavar="PROFILE", help="the sign-in profile (default: the default profile)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--fresh", action="store_true", help="ask Identity Center again instead of the minute-old listing")
    p.set_defaults(run=run)

    a = actions.add_parser("add", help="add one account profile (a role in an account, through a sign-in)",
                           description="Add an account profile to the config: credentials of ROLE in ACCOUNT_ID, "
                           "got with the Identity Center sign-in of --source (default: the default sign-in "
                           "profile). tipd serves it on /v1/credentials/NAME once reloaded (done for you when it "
                           "runs); nothing is fetched until a client asks.")
    a.add_argument("name", metavar="NAME", help="the new profile's name")
    a.add_argument("--account-id", required=True, help="the 12-digit AWS account id")
    a.add_argument("--role-name", required=True, help="the permission set's name (see `tipctl accounts`)")
    a.add_argument("--source", help="the sign-in profile it goes through (default: the default sign-in profile)")
    a.add_argument("--region", help="the region SDKs use with it (default: the source's)")
    a.add_argument("--json", action="store_true", help="print what was added as JSON")
    a.set_defaults(run=run_add)

    y = actions.add_parser("sync", help="one account profile per account and role you are assigned",
                           description="Write one account profile per account and role the sign-in PROFILE "
                           "reaches (default: the default sign-in profile), named by --template; add the new ones, "
                           "remove the ones an earlier sync made that are no longer assigned (profiles you added "
                           "yourself stay), and say what changed. tipd is told to reload. Run it again whenever "
                           "your assignments change.")
    y.add_argument("profile", nargs="?", metavar="PROFILE", help="the sign-in profile (default: the default one)")
    y.add_argument("--template", default=None, help="how profiles are named, from {account_name}, {account_id}, "
                   "{account_email} and {role_name} (default '{account_name}-{role_name}'); other characters "
                   "than letters, digits, '.', '_' and '-' become '-'")
    y.add_argument("--dry-run", action="store_true", help="say what would change; write nothing")
    y.add_argument("--allow-empty", action="store_true", help="when the portal lists no accounts at all, remove "
                   "the synced profiles anyway (by default an empty listing removes nothing)")
    y.add_argument("--json", action="store_true", help="print what changed as JSON")
    y.set_defaults(run=run_sync)
    top.set_defaults(run=lambda args: (top.print_help(), 2)[1])


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


def _source(cfg: Any, asked: str | None) -> str:
    """The sign-in profile meant: the one named, else the default profile (or an account profile's source when
    that is the default), else the only sign-in profile."""
    from ..errors import ConfigError
    from ..profiles import pick_profile

    tables: dict[str, Any] = cfg.profiles
    idp = [n for n, t in tables.items() if isinstance(t, dict) and "source" not in t]
    default = cfg.data.get("default_profile")
    name = pick_profile(asked, None, list(tables)) if asked is not None else (
        default if isinstance(default, str) and default in tables else pick_profile(None, None, idp))
    table = tables[name]
    if isinstance(table, dict) and "source" in table:
        if asked is not None:
            raise ConfigError(f"{name} is an account profile: name the sign-in profile it goes through "
                              f"({table['source']})")
        name = str(table["source"])
    return name


def _reload(quiet: bool) -> bool:
    """Tell a running tipd to read the config again; False when it is not running."""
    from .common import client
    from .control import DaemonNotRunning

    try:
        client(timeout=60).request("POST", "/v1/reload")
    except DaemonNotRunning:
        if not quiet:
            print("tipd is not running: it reads the new profiles when it starts", file=sys.stderr)
        return False
    return True


def run_add(args: argparse.Namespace) -> int:
    from ..accountsync import add_text
    from ..configure.tomlfile import ConfigFile
    from .common import print_json

    cfg = ConfigFile.read(args.config)
    source = _source(cfg, args.source)
    table = {"source": source, "account_id": args.account_id, "role_name": args.role_name}
    if args.region:
        table["region"] = args.region
    cfg.write(add_text(cfg, args.name, table))
    reloaded = _reload(quiet=args.json)
    if args.json:
        print_json({"added": args.name, "profile": table, "config": str(cfg.path), "reloaded": reloaded})
    else:
        print(f"Added account profile {args.name} ({args.role_name} in {args.account_id}, through {source}) to "
              f"{cfg.path}. Use it with `eval \"$(tipctl env {args.name})\"` or `tipctl exec {args.name} -- ...`.")
        _aws_config_hint()
    return 0


def run_sync(args: argparse.Namespace) -> int:
    from urllib.parse import quote

    from ..accountsync import DEFAULT_TEMPLATE, apply, assignments, check_template, plan_sync
    from ..configure.tomlfile import ConfigFile
    from .common import client, print_json

    template = args.template or DEFAULT_TEMPLATE
    check_template(template)  # a usage error before anything is asked
    cfg = ConfigFile.read(args.config)
    source = _source(cfg, args.profile)
    listing = client(timeout=120).request("GET", f"/v1/accounts/{quote(source, safe='')}?fresh=1")
    plan = plan_sync(cfg.profiles, cfg.data.get("default_profile"), source, assignments(listing["accounts"]),
                     template, allow_empty=args.allow_empty)
    reloaded = False
    if plan.changes and not args.dry_run:
        cfg.write(apply(cfg, plan))
        reloaded = _reload(quiet=args.json)
    if args.json:
        print_json(dict(plan.to_json(), config=str(cfg.path), dry_run=args.dry_run, reloaded=reloaded))
        return 0
    verb = ("would add", "would remove") if args.dry_run else ("added", "removed")
    parts = [f"{v} {', '.join(names)}" for v, names in zip(verb, (list(plan.added), plan.removed), strict=True)
             if names]
    tail = f" ({len(plan.unchanged)} unchanged)" if plan.unchanged else ""
    print(f"{cfg.path}: " + ("; ".join(parts) if parts else "up to date") + tail
          + (" -- dry run, nothing written" if args.dry_run and plan.changes else ""))
    for name in plan.kept:
        print(f"  kept {name}: no longer assigned, but added by hand (remove it yourself if you wish)")
    for name, why in plan.skipped:
        print(f"  skipped {name}: {why}")
    if plan.changes and not args.dry_run:
        _aws_config_hint()
    return 0


def _aws_config_hint() -> None:
    from ..awsconfig import stale_hint

    hint = stale_hint()
    if hint:
        print(hint)
