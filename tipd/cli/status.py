"""`tipctl status`: who is signed in, and what is fresh."""
from __future__ import annotations

import argparse

HELP = "show each profile's state, user and credential expiry"


def add_parser(sub) -> None:
    p = sub.add_parser("status", help=HELP, description=HELP + ". Exit code 0 when every signed-in profile is "
                       "fresh, 1 when one needs attention, 3 when tipd is not running.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=run)


def render(status: dict) -> str:
    from .common import when

    rows = [("PROFILE", "USER", "STATE", "CREDENTIALS VALID UNTIL", "NEXT REFRESH")]
    notes = []
    for p in status["profiles"]:
        user = p["user"] or "-"
        if p.get("identity_center_user_id"):
            user += f" ({p['identity_center_user_id']})"
        rows.append((p["profile"], user, p["state"], when(p["credentials_expire"]), when(p["next_refresh"])))
        if p.get("last_error"):
            notes.append(f"{p['profile']}: {p['last_error']}")
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    if notes:
        lines += [""] + notes
    clients = status.get("recent_clients") or []
    if clients:
        lines += ["", "Recent clients:"]
        for c in clients[:5]:
            who = f"pid {c['pid']} {c['exe']}" if c["pid"] is not None else "an unidentified process"
            lines.append(f"  {when(c['time'])}  {c['profile']} via {c['endpoint']}: {who} ({c['count']}x)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from .common import client, print_json
    from .control import DaemonNotRunning

    try:
        status = client(timeout=5).request("GET", "/v1/status")
    except DaemonNotRunning as e:
        if args.json:
            print_json({"running": False, "message": e.message})
        else:
            print(e.message)
        return 3
    status["running"] = True
    if args.json:
        print_json(status)
    else:
        print(render(status))
    bad = [p for p in status["profiles"] if p["state"] not in ("fresh", "signed-out", "refreshing")]
    return 1 if bad else 0
