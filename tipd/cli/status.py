"""`tipctl status`: who is signed in, and what is fresh; `--watch` follows the daemon's change stream."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

HELP = "show each profile's state, user and credential expiry"
#: how often `--watch` tries again while tipd is not there
RETRY = 1.0
CLEAR = "\x1b[H\x1b[2J"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("status", help=HELP, description=HELP + ". Exit code 0 when every signed-in profile is "
                       "fresh, 1 when one needs attention, 3 when tipd is not running.")
    p.add_argument("profile", nargs="?", help="show only this profile (default: every profile)")
    p.add_argument("--json", action="store_true", help="machine-readable output (with --watch: one JSON object "
                   "per line, each the whole status)")
    p.add_argument("--watch", action="store_true", help="stay and show the status again whenever it changes "
                   "(redrawn in a terminal, appended otherwise); waits for tipd when it is not running. Ctrl-C "
                   "stops.")
    p.set_defaults(run=run)


def render(status: dict[str, Any]) -> str:
    from .common import when

    if not status["profiles"] and not status.get("failed_tasks"):
        return "No profiles are configured: add one with `tipctl configure` (see docs/quickstart.md)."
    rows: list[tuple[str, ...]] = [("PROFILE", "USER", "STATE", "CREDENTIALS VALID UNTIL", "NEXT REFRESH")]
    errors = []
    for p in status["profiles"]:
        user = p["user"] or "-"
        if p.get("identity_center_user_id"):
            user += f" ({p['identity_center_user_id']})"
        rows.append((p["profile"], user, p["state"], when(p["credentials_expire"]), when(p["next_refresh"])))
        if p.get("last_error"):
            errors.append(f"  {p['profile']}: {p['last_error']}")
        rows += _account_rows(p.get("accounts") or [], errors)
    widths = [max(len(r[i]) for r in rows if len(r) > 1) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in rows]
    if len(rows) > 2 and status.get("state"):
        lines += ["", f"Worst state: {status['state']}"]
    if errors:
        lines += ["", "Last error:", *errors]
    # tipd's own tasks (a profile's show in its last error): a stopped one needs a restart
    failed = [f for f in status.get("failed_tasks") or [] if f.get("profile") is None]
    if failed:
        lines += ["", "Background tasks that stopped:"] + [f"  {when(f['at'])}  {f['detail']}" for f in failed]
    clients = status.get("recent_clients") or []
    if clients:
        lines += ["", "Recent clients:"]
        for c in clients[:5]:
            who = f"pid {c['pid']} {c['exe']}" if c["pid"] is not None else "an unidentified process"
            lines.append(f"  {when(c['time'])}  {c['profile']} via {c['endpoint']}: {who} ({c['count']}x)")
    return "\n".join(lines)


def _account_rows(accounts: list[dict[str, Any]], errors: list[str]) -> list[tuple[str, ...]]:
    """A source's account profiles, under it: each one fetched so far on a row, the cold ones (never used since
    tipd started: no upstream call yet) counted on one line."""
    from .common import when

    rows: list[tuple[str, ...]] = []
    cold = [a for a in accounts if a["state"] == "cold" and not a.get("last_error")]
    for a in accounts:
        if a in cold:
            continue
        rows.append((f"  {a['profile']}", f"{a['role_name']} @ {a['account_id']}", a["state"],
                     when(a["credentials_expire"]), when(a["next_refresh"])))
        if a.get("last_error"):
            errors.append(f"  {a['profile']}: {a['last_error']}")
    if cold:
        names = ", ".join(a["profile"] for a in cold[:3]) + (", ..." if len(cold) > 3 else "")
        rows.append((f"  + {len(cold)} account profile{'s' if len(cold) > 1 else ''} not used yet ({names})",))
    return rows


#: the states that need nothing from the person
CALM = ("fresh", "signed-out", "refreshing")


def needs_attention(status: dict[str, Any], profile: str | None = None) -> bool:
    """Something needs the person: a stopped task, or a profile (the one asked about) that is not calm."""
    if profile is not None:  # `tipctl status PROFILE`: that profile's state (see only())
        return status["state"] not in CALM
    return bool(status.get("failed_tasks")) or any(p["state"] not in CALM for p in status["profiles"])


def run(args: argparse.Namespace) -> int:
    from ..errors import UnknownProfile
    from .common import client, print_json
    from .control import DaemonNotRunning

    if args.watch:
        return watch(args)
    try:
        status = only(client(timeout=5).request("GET", "/v1/status"), args.profile)
    except UnknownProfile as e:
        if not args.json:
            raise
        # a script reading stdout gets an object here too, as when tipd is down; the sentence still goes to stderr
        print_json({"running": True, **e.to_json()})
        print(f"tipctl: {e.message}", file=sys.stderr)
        return 1
    except DaemonNotRunning as e:
        squatter = port_squatter(args.config)
        if args.json:
            print_json({"running": False, "message": e.message,
                        "port_held_by_other_user": squatter[1] if squatter else None})
        else:
            print(e.message)
            if squatter:
                port, uids = squatter
                print(f"Warning: port {port}, tipd's credential port, is held by another user (uid "
                      f"{', '.join(map(str, uids))}): an SDK pointed at tipd would send that user your endpoint "
                      "token. Do not use AWS tools until tipd holds it; `tipctl service install` makes the service "
                      "manager hold the port, or choose another [server] port.", file=sys.stderr)
        return 3
    status["running"] = True
    if args.json:
        print_json(status)
    else:
        print(render(status))
    return 1 if needs_attention(status, args.profile) else 0


def only(status: dict[str, Any], profile: str | None) -> dict[str, Any]:
    """The status with only `profile` in it (all of it for None); an unknown profile is an error."""
    if profile is None:
        return status
    from ..errors import UnknownProfile
    from ..profiles import unknown_profile

    mine: list[dict[str, Any]] = []
    names: list[str] = []
    for p in status["profiles"]:
        accounts = p.get("accounts") or []
        names += [p["profile"], *(a["profile"] for a in accounts)]
        if p["profile"] == profile:
            mine.append(p)
        elif any(a["profile"] == profile for a in accounts):  # an account profile: shown under its source
            mine.append(dict(p, accounts=[a for a in accounts if a["profile"] == profile]))
    if not mine:
        raise UnknownProfile(unknown_profile(profile, names))
    state = next((a["state"] for a in mine[0].get("accounts") or [] if a["profile"] == profile), mine[0]["state"])
    return dict(status, profiles=mine, state=state,
                recent_clients=[c for c in status.get("recent_clients") or [] if c.get("profile") == profile])


def port_squatter(config: str | None = None) -> tuple[int, list[int]] | None:
    """(port, uids) when another user listens on the configured credential port (Linux), else None."""
    import os

    from ..errors import TipdError
    from ..portowner import listener_uids
    from ..quickconfig import endpoint_facts

    try:
        port = endpoint_facts(config).port
    except TipdError:
        return None
    others = sorted(listener_uids(port) - {os.getuid()})
    return (port, others) if others else None


def watch(args: argparse.Namespace) -> int:
    """Show the status at once and again on every change event, until Ctrl-C; ride out daemon restarts."""
    import time

    from .common import client
    from .control import DaemonNotRunning

    out = sys.stdout
    tty = out.isatty()

    def show(status: dict[str, Any]) -> None:
        if args.json:
            out.write(json.dumps(status, separators=(",", ":")) + "\n")
        else:
            head = f"tipd status at {time.strftime('%H:%M:%S')}" + ("  (Ctrl-C to stop)" if tty else "")
            out.write((CLEAR if tty else "") + head + "\n\n" + render(status) + "\n" + ("" if tty else "\n"))
        out.flush()

    def gone(message: str) -> None:
        if args.json:
            show({"running": False, "message": message})
        else:
            print(f"tipctl: {message}", file=sys.stderr, flush=True)

    ctl = client()
    connected = lost = False
    try:
        while True:
            last = None
            try:
                for event, data in ctl.events("/v1/events"):
                    if event == "status":
                        last = dict(only(json.loads(data), args.profile), running=True)
                        if lost and not args.json:
                            print("tipctl: tipd is back", file=sys.stderr, flush=True)
                        connected, lost = True, False
                        show(last)
                    elif event == "keep-alive" and tty and last is not None and not args.json:
                        show(last)  # keeps "in 12 min" true while nothing changes
            except DaemonNotRunning:
                if not lost:
                    gone("tipd is not running; waiting for it (Ctrl-C to stop)")
                    lost = True
            else:
                if not lost:
                    gone("lost the connection to tipd (it stopped or restarted); reconnecting" if connected
                         else "tipd closed the status stream; reconnecting")
                    lost = True
            time.sleep(RETRY)  # a retry interval while tipd is away
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # `tipctl status --watch | head`: the reader is done
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())  # no second error when Python flushes at exit
        return 0
