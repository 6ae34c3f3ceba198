"""What the tray shows, from the daemon's brief status: the colour of the worst state, a tooltip, and the
menu (each profile's user and expiry, Sign in, Sign out, Open status, Quit). No GUI import here."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

#: the daemon is not there: not one of its states, the tray's own
NOT_RUNNING = "not-running"

#: the icon's colour per (worst) state. Refreshing is routine (credentials are still served): it looks fresh.
COLOURS: dict[str, tuple[int, int, int]] = {
    "fresh": (40, 167, 69),  # green
    "refreshing": (40, 167, 69),
    "signing-in": (33, 118, 232),  # blue: a sign-in is under way
    "degraded": (230, 145, 0),  # amber: served for now, renewals failing
    "login-required": (214, 40, 57),  # red: sign in again
    "signed-out": (140, 150, 160),  # grey: nothing signed in
    NOT_RUNNING: (90, 90, 90),  # dark grey, drawn as a ring
}
UNKNOWN_COLOUR = COLOURS["degraded"]  # a state this tray does not know (a newer daemon): look at it
#: a menu line is no place for a paragraph: `tipctl status` shows the whole error
MAX_ERROR = 80


@dataclass(frozen=True)
class Action:
    kind: str  # "sign-in", "sign-out", "open-status", "quit"
    profile: str | None = None


@dataclass(frozen=True)
class Entry:
    """One menu line: a label, and the action it runs (None: an information line, shown greyed out)."""

    label: str
    action: Action | None = None
    enabled: bool = True
    default: bool = False  # what a (left) click on the icon itself runs


SEPARATOR = Entry("-", None, enabled=False)


@dataclass(frozen=True)
class ProfileView:
    name: str
    state: str
    user: str | None
    expires: str | None  # ISO UTC, as the daemon sends it
    last_error: str | None


@dataclass(frozen=True)
class View:
    state: str
    profiles: tuple[ProfileView, ...] = ()
    message: str | None = None  # why the daemon is not there

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> View:
        return cls(summary["state"], tuple(
            ProfileView(p["profile"], p["state"], p.get("user"), p.get("credentials_expire"), p.get("last_error"))
            for p in summary["profiles"]))

    @classmethod
    def not_running(cls, message: str) -> View:
        return cls(NOT_RUNNING, (), message)

    @property
    def running(self) -> bool:
        return self.state != NOT_RUNNING

    @property
    def colour(self) -> tuple[int, int, int]:
        return COLOURS.get(self.state, UNKNOWN_COLOUR)

    @property
    def title(self) -> str:
        """The tooltip: the overall state and who is signed in where."""
        if not self.running:
            return f"tipd: {self.message or 'not running'}"
        return "\n".join([f"tipd: {self.state}"] + [describe(p) for p in self.profiles])

    def primary(self) -> Action:
        """What a click on the icon itself does: sign in where a sign-in is needed, else show the status.
        (Where pystray has no menu, as with its plain-X backend, this is the only action.)"""
        needs = [p for p in self.profiles if p.state == "login-required"]
        if not needs and self.profiles and all(p.state == "signed-out" for p in self.profiles):
            needs = list(self.profiles)
        return Action("sign-in", needs[0].name) if needs else Action("open-status")

    def menu(self) -> list[Entry]:
        primary = self.primary()
        if not self.running:
            entries = [Entry(f"tipd: {self.message or 'not running'}", enabled=False), SEPARATOR]
        else:
            entries = []
            one = len(self.profiles) == 1
            for p in self.profiles:
                entries.append(Entry(describe(p), enabled=False))
                sign_in = Action("sign-in", p.name)
                entries.append(Entry("Sign in" if one else f"Sign in to {p.name}", sign_in,
                                     enabled=p.state != "signing-in", default=sign_in == primary))
                entries.append(Entry("Sign out" if one else f"Sign out of {p.name}", Action("sign-out", p.name),
                                     enabled=p.state != "signed-out"))
                entries.append(SEPARATOR)
            if not self.profiles:
                entries += [Entry("No profiles configured (tipctl configure)", enabled=False), SEPARATOR]
        open_status = Action("open-status")
        return [*entries, Entry("Open status", open_status, default=open_status == primary),
                Entry("Quit", Action("quit"))]

    def text(self) -> str:
        """The status as a few lines (the notification when no terminal can be opened)."""
        return self.title


def describe(p: ProfileView) -> str:
    """'work: alice@example.com, fresh, until 17:05'"""
    parts = [p.user or "not signed in", p.state]
    if p.expires and p.state != "signed-out":
        parts.append(f"until {local_time(p.expires)}")
    line = f"{p.name}: " + ", ".join(parts)
    if p.last_error and p.state in ("degraded", "login-required"):
        err = p.last_error if len(p.last_error) <= MAX_ERROR else p.last_error[:MAX_ERROR - 1] + "…"
        line += f" ({err})"
    return line


def local_time(iso: str) -> str:
    t = datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return t.astimezone().strftime("%H:%M")
