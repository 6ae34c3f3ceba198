"""What several commands share: where the daemon is, which profile is meant, printing."""
from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

from ..paths import Paths
from .control import ControlClient


def client(timeout: float = 30.0) -> ControlClient:
    return ControlClient(Paths.default().control_socket, timeout)


def resolve_profile(ctl: ControlClient, name: str | None, *, signs_in: bool = False) -> tuple[str, dict[str, Any]]:
    """The profile a command means, as the running daemon knows it (the rule of tipd.profiles). `signs_in`: a
    command about sign-ins (login, logout), where an account profile means its source and, with no name and no
    default, the only profile that signs in is meant."""
    from ..profiles import IDP, pick_profile, profile_kind

    info = ctl.request("GET", "/v1/profiles")
    profiles: dict[str, dict[str, Any]] = info["profiles"]
    default = info.get("default_profile")
    names = tuple(profiles)
    if signs_in and name is None and not default:
        names = tuple(n for n, p in profiles.items() if profile_kind(p) == IDP)
    name = pick_profile(name, default, names)
    if signs_in and profile_kind(profiles[name]) != IDP:
        print(f"{name} is an account profile of {profiles[name]['source']}: that sign-in is meant", file=sys.stderr)
        name = profiles[name]["source"]
    return name, profiles[name]


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")


def when(iso: str | None, now: datetime | None = None) -> str:
    """'14:05:09 (in 52 min)' for a UTC ISO timestamp, in local time."""
    if not iso:
        return "-"
    t = datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    delta = int((t - now).total_seconds())
    rel = f"in {_span(delta)}" if delta >= 0 else f"{_span(-delta)} ago"
    return f"{t.astimezone().strftime('%H:%M:%S')} ({rel})"


def _span(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
