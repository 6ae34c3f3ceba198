"""`tipctl reload`: have the running tipd re-read its config (the same as `kill -HUP`, with an answer)."""
from __future__ import annotations

import argparse
from pathlib import Path

HELP = "re-read the config in the running tipd: new profiles start, removed ones stop, changed ones restart"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("reload", help=HELP, description=HELP + "; unchanged profiles keep serving without a gap. "
                       "A config with an error is refused (the error is printed, exit code 1) and tipd keeps "
                       "running the one it has. Changes to [server] or [store] need a restart of tipd.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from .common import client, print_json

    # a removed or changed profile may first finish a refresh under way (up to 30 s each)
    result = client(timeout=300).request("POST", "/v1/reload")
    if args.json:
        print_json(result)
        return 0
    print(f"Reloaded {result['config']}.")
    if args.config and Path(args.config).expanduser().resolve() != Path(result["config"]).resolve():
        print(f"  note: tipd reads {result['config']}, not {args.config}: a running tipd keeps the config it was "
              "started with (start it with --config to change that)")
    for key, label in (("added", "started"), ("removed", "stopped"), ("restarted", "restarted"),
                       ("unchanged", "unchanged"), ("new_client_secret", "new client secret")):
        if result.get(key):
            print(f"  {label}: {', '.join(result[key])}")
    if result["needs_restart"]:
        sections = ", ".join(f"[{s}]" for s in result["needs_restart"])
        # under socket activation a plain restart keeps the old port's socket, which tipd then refuses (exit 2)
        print(f"  {sections} changed: restart tipd to apply (as a service: `systemctl --user restart tipd`; "
              "for a new port `tipctl service install`, which moves the service's socket to it)")
    return 0
