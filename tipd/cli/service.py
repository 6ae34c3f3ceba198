"""`tipctl service`: tipd as a per-user service that starts at login (systemd user unit on Linux, launchd
agent on macOS), with the variables that point AWS SDKs at it set once for the user's sessions."""
from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..service import Report

HELP = "install, remove or check tipd as a per-user service that starts at login"
PLATFORMS = ("linux", "macos")  # tipd.service.PLATFORMS; not imported here so `tipctl --help` stays quick


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("service", help=HELP, description=HELP + ". Linux: a sandboxed systemd user unit "
                       "(tipd.service) and ~/.config/environment.d/60-tipd.conf; macOS: launchd agents in "
                       "~/Library/LaunchAgents and `launchctl setenv`. See docs/service.md.")
    actions = p.add_subparsers(title="actions", metavar="ACTION")
    i = actions.add_parser("install", help="write the service files, then enable and start tipd",
                           description="Write the service files and the SDK variables (the ones `tipctl env` "
                           "prints), then enable and start tipd. Where no service manager can be used "
                           "(containers, CI) it writes the files and says what to run. Run it again after "
                           "changing the port, the default profile or where tipd is installed.")
    i.add_argument("profile", nargs="?", help="profile the SDK variables name (default: the default profile)")
    i.add_argument("--config", metavar="PATH", help="config file tipd is to use (default: $TIPD_CONFIG or the "
                   "per-user one)")
    i.add_argument("--dry-run", action="store_true", help="print the files and commands; change nothing")
    i.set_defaults(run=run_install)
    u = actions.add_parser("uninstall", help="stop tipd and remove the files install wrote",
                           description="Stop and disable tipd, unset the SDK variables and remove exactly the "
                           "files `install` writes; running it again does nothing. Sign-ins and the endpoint "
                           "token stay (`tipctl logout` forgets sign-ins).")
    u.add_argument("--dry-run", action="store_true", help="print what would be removed and run; change nothing")
    u.set_defaults(run=run_uninstall)
    s = actions.add_parser("status", help="is tipd installed, enabled, running; are the variables current?",
                           description="Whether the service is installed, enabled and active, and whether the "
                           "SDK variables it sets still match the config. Exit code 0 when all is well, 1 "
                           "otherwise.")
    s.add_argument("--config", metavar="PATH", help="config file to compare with (default: $TIPD_CONFIG or the "
                   "per-user one)")
    s.set_defaults(run=run_status)
    for a in (i, u, s):
        a.add_argument("--platform", choices=PLATFORMS, help="the platform's files (default: this machine's); "
                       "the other one's can be generated with --dry-run, to read or test")
        a.add_argument("--json", action="store_true", help="machine-readable output")

    def usage(args: argparse.Namespace) -> int:
        p.print_help()
        return 2

    p.set_defaults(run=usage)


def _platform(args: argparse.Namespace) -> str:
    from ..service import running_platform

    return args.platform or running_platform()


def run_install(args: argparse.Namespace) -> int:
    from ..service import install

    r = install(_platform(args), config_path=args.config, profile=args.profile, dry_run=args.dry_run)
    if args.json:
        from .common import print_json

        print_json(r.to_json())
        return 0 if r.ok else 1
    if r.dry_run:
        for f in r.files:
            print(f"--- {f['path']} (mode {f['mode']}, {f['action']})")
            print(f["content"], end="" if f["content"].endswith("\n") else "\n")
        print("--- then run:")
        for c in r.by_hand:
            print(f"  {c}")
        return 0
    for f in r.files:
        print(f"{'wrote' if f['action'] == 'written' else 'unchanged'}: {f['path']}")
    _print_steps(r)
    if r.not_done:
        print(f"not done: {r.not_done}. Once it is available, run:")
        for c in r.by_hand:
            print(f"  {c}")
    elif r.ok:
        print("tipd runs now, and at every login.")
    for note in r.notes:
        print(f"note: {note}")
    print("check it with:")
    for c in r.check:
        print(f"  {c}")
    return 0 if r.ok else 1


def run_uninstall(args: argparse.Namespace) -> int:
    from ..service import uninstall

    r = uninstall(_platform(args), dry_run=args.dry_run)
    if args.json:
        from .common import print_json

        print_json(r.to_json())
        return 0 if r.ok else 1
    for f in r.files:
        print(f"{f['action']}: {f['path']}")
    if r.dry_run:
        print("then run:" if r.by_hand else "nothing to run")
        for c in r.by_hand:
            print(f"  {c}")
        return 0
    _print_steps(r)
    if r.not_done and r.by_hand:
        print(f"not done: {r.not_done}. If tipd still runs there, run:")
        for c in r.by_hand:
            print(f"  {c}")
    return 0 if r.ok else 1


def _print_steps(r: Report) -> None:
    for s in r.steps:
        line = "ran: " + " ".join(s.argv)
        if s.returncode != 0:
            line += f" (exit {s.returncode}{'' if s.may_fail else ', failed'})"
        print(line)
        if not s.ok and s.output:
            print(f"tipctl: {s.output}", file=sys.stderr)


def run_status(args: argparse.Namespace) -> int:
    from ..service import status

    st = status(_platform(args), config_path=args.config)
    env = st["environment"]
    active_ok = st["active"] in (None, "active", "running")
    healthy = st["installed"] and env["matches"] is True and active_ok and env.get("live", True)
    if args.json:
        from .common import print_json

        print_json(st)
        return 0 if healthy else 1
    rows = [(role, f"{f['path']} ({'present' if f['exists'] else 'missing'})") for role, f in st["files"].items()]
    unknown = f"unknown: {st['manager_unavailable']}" if st["manager_unavailable"] else "unknown"
    rows += [("enabled", st["enabled"] or unknown), ("active", st["active"] or unknown)]
    if "socket" in st:  # Linux: tipd.socket holds the port across restarts
        rows.append(("port held", "yes (tipd.socket is active)" if st["socket"] == "active"
                     else f"no (tipd.socket is {st['socket']}): `systemctl --user start tipd.socket`"))
    if env["matches"] is True:
        state = "matches the config"
    elif env["matches"] is False:
        state = env["detail"]
    else:
        state = env["detail"] or "unknown"
    rows.append(("variables", state))
    if "live" in env:
        rows.append(("launchd env", "set" if env["live"] else "not set in this session: run `tipctl service "
                                                               "install` again"))
    width = max(len(k) for k, _ in rows)
    print(f"platform: {st['platform']}")
    for k, v in rows:
        print(f"{k + ':':<{width + 1}} {v}")
    return 0 if healthy else 1
