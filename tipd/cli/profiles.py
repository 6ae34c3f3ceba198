"""`tipctl profiles`: the profiles of the config file, and (when tipd answers) each one's state and user."""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from ..config import Config

HELP = "list the configured profiles (from the config file; with their state and user when tipd is running)"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("profiles", help=HELP, description=HELP + ". The default profile is marked with *.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=run)


def listing(config: Config, status: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One row per profile of the file; state and user from the daemon's status when it has the profile."""
    from ..errors import UnknownProfile

    try:
        default = config.profile_name(None)
    except UnknownProfile:
        default = None
    from ..config import Profile

    live = {p["profile"]: p for p in (status or {}).get("profiles", [])}
    for p in list(live.values()):  # an account profile's state is listed under its source's
        live.update({a["profile"]: dict(a, user=p.get("user")) for a in p.get("accounts") or []})
    rows: list[dict[str, Any]] = []
    for name, prof in config.profiles.items():
        st = live.get(name)
        if isinstance(prof, Profile):
            facts: dict[str, str | None] = {"provider": prof.provider, "issuer": prof.issuer, "region": prof.region,
                     "client_id": prof.client_id}
        else:  # an account profile: a role in an account, through its source's sign-in
            facts = {"provider": f"account of {prof.source}", "issuer": f"{prof.account_id}/{prof.role_name}",
                     "region": prof.region or "-", "client_id": None}
        rows.append({"profile": name, "default": name == default, **facts,
                     "state": st["state"] if st else ("not-loaded" if status else None),
                     "user": st["user"] if st else None})
    return rows


def render(rows: list[dict[str, Any]], running: bool, path: Path | str) -> str:
    if not rows:
        return f"No profiles in {path}: add one with `tipctl configure`."
    head = ["", "PROFILE", "PROVIDER", "ISSUER", "REGION"] + (["STATE", "USER"] if running else [])
    table = [head]
    for r in rows:
        row: list[str] = ["*" if r["default"] else "", r["profile"], r["provider"], r["issuer"], r["region"]]
        if running:
            row += [r["state"], r["user"] or "-"]
        table.append(row)
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    lines = [" ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table]
    if not running:
        lines += ["", "(tipd is not running: no state to show)"]
    elif any(r["state"] == "not-loaded" for r in rows):
        lines += ["", "not-loaded: tipd started before the profile was added; `tipctl reload` loads it"]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..errors import TipdError
    from .common import client, print_json

    config, path = load_config(args.config, missing_ok=True)
    try:
        status = client(timeout=3).request("GET", "/v1/status")
    except TipdError:  # not running, or not answering: the file still says what is configured
        status = None
    rows = listing(config, status)
    if args.json:
        print_json({"config_file": str(path), "default_profile": next((r["profile"] for r in rows if r["default"]),
                                                                        None),
                    "tipd_running": status is not None, "profiles": rows})
    else:
        print(render(rows, status is not None, path))
    return 0
