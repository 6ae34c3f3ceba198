"""`tipctl accounts add` and `tipctl accounts sync`: account profiles written into the config file.

A sync names one profile per account and role the sign-in reaches (a template over the account's name and id
and the role's name), adds the ones the file lacks, and removes the ones it made earlier (`synced = true`) that
are no longer assigned. Profiles written by hand are never removed; a name the file already uses for something
else is skipped with a reason. The file is edited as text (tipd/configure/tomledit.py: everything else stays
byte for byte), the result validated as tipd will read it, then written atomically."""
from __future__ import annotations

import re
import string
import tomllib
from dataclasses import dataclass, field
from typing import Any

from .config import parse_config
from .configure import tomledit
from .configure.tomlfile import ConfigFile
from .errors import ConfigError
from .profiles import PROFILE_NAME

DEFAULT_TEMPLATE = "{account_name}-{role_name}"
#: the names a template may use
FIELDS = ("account_name", "account_id", "account_email", "role_name")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Assignment:
    account_id: str
    account_name: str
    account_email: str
    role_name: str


@dataclass
class Plan:
    source: str
    #: profile name -> its table
    added: dict[str, dict[str, Any]] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    #: account profiles of the source no longer assigned that sync did not make (left alone)
    kept: list[str] = field(default_factory=list)
    #: (profile name, why it was not added or removed)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def changes(self) -> bool:
        return bool(self.added or self.removed)

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "added": list(self.added), "removed": self.removed,
                "unchanged": self.unchanged, "kept": self.kept,
                "skipped": [{"profile": n, "reason": r} for n, r in self.skipped]}


def check_template(template: str) -> None:
    """A usage error unless the template names only FIELDS (and names at least one role or account)."""
    try:
        fields = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(template) if f is not None]
    except ValueError as e:
        raise ConfigError(f"--template {template[:80]!r} is not a template ({e}); e.g. {DEFAULT_TEMPLATE!r}") from None
    if any(spec or conv for _, spec, conv in fields):  # `{account_name:>99999999999}` pads to any width
        raise ConfigError(f"--template takes plain fields such as {{account_name}}, without a format spec or "
                          f"conversion (`:...`, `!r`) (default {DEFAULT_TEMPLATE!r})")
    names = [f for f, _, _ in fields]
    bad = [n for n in names if n not in FIELDS]
    if bad or not names:
        raise ConfigError(f"--template may use {', '.join('{' + f + '}' for f in FIELDS)}"
                          + (f", not {{{bad[0]}}}" if bad else "") + f" (default {DEFAULT_TEMPLATE!r})")


def profile_name(template: str, a: Assignment) -> str:
    """The template filled in, made a valid profile name: other characters become '-', at most 64."""
    raw = template.format(account_name=a.account_name or a.account_id, account_id=a.account_id,
                          account_email=a.account_email, role_name=a.role_name)
    name = _UNSAFE.sub("-", raw).strip("-._")[:64].rstrip("-._")
    return name or f"{a.account_id}-{_UNSAFE.sub('-', a.role_name)}"[:64]


def assignments(listing: list[dict[str, Any]]) -> list[Assignment]:
    """The control API's account listing (GET /v1/accounts/{profile}) as one entry per account and role."""
    out = []
    for acct in listing:
        for role in acct.get("roles") or []:
            out.append(Assignment(str(acct["account_id"]), str(acct.get("name") or ""),
                                  str(acct.get("email") or ""), str(role)))
    return out


def plan_sync(profiles: dict[str, Any], default_profile: str | None, source: str, assigned: list[Assignment],
              template: str = DEFAULT_TEMPLATE, allow_empty: bool = False) -> Plan:
    """What a sync changes, from the config's [profiles.*] tables as written.

    An empty listing removes nothing unless `allow_empty`: a portal that answers "no accounts" for a moment (an
    assignment being re-provisioned, a directory sync in progress) must not wipe every synced profile."""
    check_template(template)
    plan = Plan(source)
    mine = {n: t for n, t in profiles.items() if isinstance(t, dict) and t.get("source") == source}
    have = {(str(t.get("account_id")), str(t.get("role_name"))): n for n, t in mine.items()}
    wanted = set()
    for a in assigned:
        key = (a.account_id, a.role_name)
        wanted.add(key)
        if key in have:
            plan.unchanged.append(have[key])
            continue
        name = profile_name(template, a)
        if not PROFILE_NAME.fullmatch(name):
            plan.skipped.append((name, "the template gives no usable profile name for it"))
        elif name in profiles or name in plan.added:
            plan.skipped.append((name, f"the name is taken (role {a.role_name} in account {a.account_id} was not "
                                       "added): choose another --template, or rename that profile"))
        else:
            plan.added[name] = {"source": source, "account_id": a.account_id, "role_name": a.role_name,
                                "synced": True}
    for key, name in have.items():
        if key in wanted:
            continue
        if mine[name].get("synced") is not True:
            plan.kept.append(name)
        elif name == default_profile:
            plan.skipped.append((name, "no longer assigned, but it is the default_profile: not removed"))
        elif not assigned and not allow_empty:
            plan.skipped.append((name, "the portal listed no accounts at all: not removed (run again later, or "
                                       "with --allow-empty if every assignment really is gone)"))
        else:
            plan.removed.append(name)
    return plan


def apply(cfg: ConfigFile, plan: Plan) -> str:
    """The config text with the plan's changes, validated as tipd will read it (a ConfigError otherwise)."""
    text = cfg.text
    for name in plan.removed:
        text = tomledit.remove_table(text, name)
    for name, table in plan.added.items():
        text = tomledit.set_table(text, name, table, {})
    check(cfg, text)
    return text


def add_text(cfg: ConfigFile, name: str, table: dict[str, Any]) -> str:
    """The config text with one more account profile (an error for a name that is taken)."""
    if name in cfg.profiles:
        raise ConfigError(f"{cfg.path} already has a profile {name!r}; choose another name")
    text = tomledit.set_table(cfg.text, name, table, {})
    check(cfg, text)
    return text


def check(cfg: ConfigFile, text: str) -> None:
    try:
        parse_config(tomllib.loads(text), str(cfg.path))
    except tomllib.TOMLDecodeError as e:  # the editor's fault, but never written
        raise ConfigError(f"{cfg.path}: the edit would not be valid TOML ({e}); nothing was saved") from None
    except ConfigError as e:
        raise ConfigError(f"{e.message}\nNothing was saved: the file would not load.") from None
