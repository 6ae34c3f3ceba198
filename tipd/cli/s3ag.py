"""`tipctl s3ag`: S3 Access Grants credentials from tipd (env exports, credential_process, the cached grants)."""
from __future__ import annotations

import argparse
from typing import Any

HELP = "S3 Access Grants: credentials for an s3:// location, from tipd's identity-enhanced session"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("s3ag", help=HELP, description=HELP + ". tipd asks S3 Access Grants (s3control "
                       "GetDataAccess) as you, caches the grant and renews it ahead of expiry. See "
                       "docs/s3-access-grants.md.")
    def commands(args: argparse.Namespace) -> int:  # `tipctl s3ag` alone: its commands
        p.print_help()
        return 2

    p.set_defaults(run=commands)
    cmds = p.add_subparsers(title="commands", metavar="COMMAND")

    env = cmds.add_parser("env", help="print the exports that point AWS SDKs at tipd's grant endpoint for a location "
                          "(use: eval \"$(tipctl s3ag env s3://bucket/prefix/)\")",
                          description="Print the exports that point AWS SDKs at tipd's S3 Access Grants endpoint for "
                          "one location. Reads the config only; the daemon does not have to be running.")
    _request_args(env)
    env.add_argument("--json", action="store_true", help="print the variables as a JSON object")
    from .env import add_shell_arguments

    add_shell_arguments(env)
    env.set_defaults(run=run_env)

    cp = cmds.add_parser("credential-process", help="print the grant's credentials in the credential_process "
                         "format (for ~/.aws/config)", formatter_class=argparse.RawDescriptionHelpFormatter,
                         description="Print the grant's credentials in the credential_process format. Example:\n\n"
                         "  [profile data]\n  credential_process = tipctl s3ag credential-process "
                         "s3://bucket/prefix/ --permission READ\n")
    _request_args(cp)
    cp.set_defaults(run=run_credential_process)

    ls = cmds.add_parser("list", help="show the grants tipd holds and when they expire (never their credentials)")
    ls.add_argument("--profile", help="tipd profile (default: the default profile)")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(run=run_list)


def _request_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", metavar="S3URL", help="the location: s3://bucket/, s3://bucket/prefix/ or an object")
    p.add_argument("--permission", default="READ", help="READ (default), WRITE or READWRITE")
    p.add_argument("--privilege", help="Default (the credentials reach the whole matched grant) or Minimal "
                   "(only the target)")
    p.add_argument("--target-type", help="Object when the target is one object")
    p.add_argument("--duration", type=int, metavar="SECONDS", help="credential lifetime, 900-43200 (default 3600)")
    p.add_argument("--profile", help="tipd profile (default: the default profile)")


def query(args: argparse.Namespace) -> str:
    """The endpoint's query string, checked here first so a mistake is reported before anything runs."""
    from urllib.parse import quote, urlencode

    from ..s3ag import parse_request

    given = [("target", args.target), ("permission", args.permission), ("privilege", args.privilege),
             ("target_type", args.target_type), ("duration", None if args.duration is None else str(args.duration))]
    pairs = [(k, v) for k, v in given if v is not None]
    key, _ = parse_request(pairs)
    canonical = dict(pairs, target=key.target, permission=key.permission)
    if args.privilege is not None:
        canonical["privilege"] = key.privilege
    if args.target_type is not None:
        canonical["target_type"] = key.target_type
    return urlencode(canonical, quote_via=quote)


def run_env(args: argparse.Namespace) -> int:
    from ..paths import Paths
    from ..quickconfig import endpoint_facts
    from ..sdkenv import container_variables
    from .env import CONTAINER_NAMES, print_exports, print_unset

    if args.unset:
        return print_unset(args.shell, CONTAINER_NAMES)
    q = query(args)
    env = container_variables(endpoint_facts(args.config), Paths.default(), args.profile, kind="s3ag", query=q)
    return print_exports(env, args.json, shell=args.shell)


def run_credential_process(args: argparse.Namespace) -> int:
    from .common import client, resolve_profile
    from .credential_process import print_process_credentials

    q = query(args)
    ctl = client()
    name, _ = resolve_profile(ctl, args.profile)
    print_process_credentials(ctl.request("GET", f"/v1/s3ag/{name}/credentials?{q}"))
    return 0


def render(grants: list[dict[str, Any]]) -> str:
    from .common import when

    if not grants:
        return "No S3 Access Grants cached."
    rows = [("TARGET", "PERMISSION", "MATCHED GRANT", "EXPIRES", "NEXT REFRESH")]
    notes = []
    for g in grants:
        perm = g["permission"] + ("" if g["privilege"] == "Default" else f" ({g['privilege']})")
        rows.append((g["target"], perm, g["matched_grant_target"] or "-", when(g["expires"]), when(g["next_refresh"])))
        if g["also_serves"]:
            notes.append(f"{g['target']} also serves: {', '.join(g['also_serves'])}")
        if g["last_error"]:
            notes.append(f"{g['target']}: {g['last_error']}")
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines + (["", *notes] if notes else []))


def run_list(args: argparse.Namespace) -> int:
    from .common import client, print_json, resolve_profile

    ctl = client()
    name, _ = resolve_profile(ctl, args.profile)
    r = ctl.request("GET", f"/v1/s3ag/{name}")
    if args.json:
        print_json(r)
    else:
        print(render(r["grants"]))
    return 0
