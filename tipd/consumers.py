"""Consumer tokens (`tipctl grant`): named, unguessable tokens that fetch credentials for some profiles only,
until they expire or are revoked. A container, a remote session or an agent gets one instead of the user's own
endpoint token (docs/security.md says exactly what one allows).

At rest (a 0600 JSON file in the state directory) only the SHA-256 of each token is kept: a copy of the file
fetches nothing. A request presenting a token that is not the user's costs one SHA-256 and a dict lookup by the
digest; the timing of that lookup can tell an attacker about the digest of what they sent, not about a token
(finding a token from its digest is a preimage attack on SHA-256). A compare_digest confirms the match."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .clock import iso_utc
from .errors import TipdError
from .fsutil import write_private

if TYPE_CHECKING:
    from .config import Config

log = logging.getLogger("tipd.consumers")

#: a grant's name: it appears in audit lines, file names and `docker run` flags
NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
MAX_GRANTS = 100
MAX_PROFILES = 32
MIN_TTL = 60.0
MAX_TTL = 90 * 86400.0
DEFAULT_TTL = 8 * 3600.0
#: a token as tipd makes them: 32 random bytes, base64url without padding
TOKEN_LENGTH = 43
_TTL = re.compile(r"(\d{1,7})([smhd]?)")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def definitions(config: Config) -> dict[str, str]:
    """{profile name: SHA-256 of its definition} (an account profile's includes its source's). A grant is bound to
    its profiles as they were defined when it was made: a profile removed and another later given its name, or
    one changed to another role or account, is not what the grant was given for, and the grant no longer opens
    it (make the grant again)."""
    out = {n: hashlib.sha256(b"idp\0" + p.model_dump_json().encode()).hexdigest()
           for n, p in config.idp_profiles.items()}
    for n, a in config.accounts.items():
        out[n] = hashlib.sha256(b"account\0" + a.model_dump_json().encode() + b"\0"
                                + out.get(a.source, "").encode()).hexdigest()
    return out


class GrantError(TipdError):
    code = "BadGrant"
    status = 400


def parse_ttl(text: str) -> float:
    """'90s', '30m', '8h', '7d' or plain seconds, between a minute and 90 days."""
    m = _TTL.fullmatch(text.strip().lower())
    if m is None:
        raise GrantError(f"--ttl {text[:40]!r} is not a duration: use e.g. 30m, 8h or 7d")
    seconds = float(int(m[1]) * _UNIT[m[2]])
    check_ttl(seconds)
    return seconds


def check_ttl(seconds: float) -> None:
    if not MIN_TTL <= seconds <= MAX_TTL:
        raise GrantError("a grant lasts between 1 minute and 90 days")


def check_name(name: str) -> str:
    if not isinstance(name, str) or NAME.fullmatch(name) is None:
        raise GrantError("a grant's name is 1-63 characters: lowercase letters, digits, '.', '_' and '-', "
                         "starting with a letter or digit")
    return name


#: the longest token directory a grant records (PATH_MAX)
MAX_DIR = 4096


def valid_dir(path: str) -> bool:
    """An absolute path, bounded, with no NUL (the grants file and the control API take nothing else)."""
    return path.startswith("/") and len(path) <= MAX_DIR and "\0" not in path


def digest(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


def new_token() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


@dataclass
class Grant:
    name: str
    profiles: tuple[str, ...]
    created: float
    expires: float
    #: SHA-256 of the token; the token itself is never kept
    token_hash: bytes
    last_used: float | None = None
    uses: int = 0
    #: each profile's definition when the grant was made (`definitions`)
    bound: dict[str, str] = field(default_factory=dict)
    #: the directory `tipctl grant --dir` wrote the token to (None: the default one), where a rotation writes too
    token_dir: str | None = None

    def to_json(self, now: float) -> dict[str, Any]:  # Any: a JSON object
        return {"name": self.name, "profiles": list(self.profiles), "created": iso_utc(self.created),
                "expires": iso_utc(self.expires), "expired": now >= self.expires,
                "last_used": iso_utc(self.last_used) if self.last_used is not None else None, "uses": self.uses,
                "token_dir": self.token_dir}

    def stored(self) -> dict[str, Any]:
        return {"name": self.name, "profiles": list(self.profiles), "created": self.created, "expires": self.expires,
                "sha256": self.token_hash.hex(), "last_used": self.last_used, "uses": self.uses,
                "bound": self.bound, "token_dir": self.token_dir}


class Consumers:
    """The grants, by name and by token digest; saved to `path` on every change (and last use at shutdown)."""

    def __init__(self, path: Path, now: Callable[[], float]) -> None:
        self.path = path
        self.now = now
        self.by_name: dict[str, Grant] = {}
        self.by_hash: dict[bytes, Grant] = {}
        #: every configured profile's definition now (`definitions`), set at start and at each reload
        self.current: dict[str, str] = {}

    def allows(self, g: Grant, profile: str) -> bool:
        """The grant names `profile`, and it is still the profile the grant was made for."""
        bound = g.bound.get(profile)
        return profile in g.profiles and bound is not None and bound == self.current.get(profile)

    def load(self) -> None:
        try:
            raw = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as e:
            log.error("cannot read the grants file %s (%s): no consumer token works until it is fixed or removed",
                      self.path, e)
            return
        for item in raw.get("grants", []) if isinstance(raw, dict) else []:
            try:
                g = Grant(check_name(item["name"]), tuple(str(p) for p in item["profiles"]), float(item["created"]),
                          float(item["expires"]), bytes.fromhex(item["sha256"]),
                          float(item["last_used"]) if item.get("last_used") is not None else None, int(item["uses"]))
            except (KeyError, TypeError, ValueError, TipdError):
                log.error("the grants file %s has an unreadable entry; it is skipped", self.path)
                continue
            bound = item.get("bound")
            if isinstance(bound, dict):
                g.bound = {str(k): str(v) for k, v in bound.items() if k in g.profiles}
            else:  # a grant saved before grants were bound: to its profiles as they are now
                g.bound = {p: self.current[p] for p in g.profiles if p in self.current}
            token_dir = item.get("token_dir")
            g.token_dir = token_dir if isinstance(token_dir, str) and valid_dir(token_dir) else None
            if len(g.token_hash) == 32:
                self.by_name[g.name] = g
                self.by_hash[g.token_hash] = g

    def save(self) -> None:
        data = {"grants": [g.stored() for g in self.by_name.values()]}
        try:
            write_private(self.path, json.dumps(data, indent=1).encode(), tag="grants")
        except OSError as e:
            raise TipdError(f"cannot write the grants file {self.path}: {e.strerror or e}", status=503) from None

    def match(self, presented: bytes) -> Grant | None:
        """The live grant whose token was presented, else None (hot path: one SHA-256, one lookup)."""
        if len(presented) != TOKEN_LENGTH:
            return None
        h = digest(presented)
        g = self.by_hash.get(h)
        if g is None or not hmac.compare_digest(g.token_hash, h) or self.now() >= g.expires:
            return None
        return g

    def used(self, g: Grant) -> None:
        """A request the grant authorised (what `tipctl grant list` shows as last use)."""
        g.last_used = self.now()
        g.uses += 1

    def create(self, name: str, profiles: list[str], ttl: float, token_dir: str | None = None) -> tuple[Grant, str]:
        check_name(name)
        check_ttl(ttl)
        if token_dir is not None and not valid_dir(token_dir):
            raise GrantError(f"token_dir must be an absolute path of at most {MAX_DIR} characters")
        if not profiles or len(profiles) > MAX_PROFILES:
            raise GrantError(f"a grant names 1 to {MAX_PROFILES} profiles (--profile P, repeated)")
        if name in self.by_name:
            raise GrantError(f"a grant named {name} exists: revoke it first, or `tipctl grant rotate {name}`",
                             status=409)
        now = self.now()
        for old in [g for g in self.by_name.values() if now >= g.expires]:  # expired ones make room
            self._drop(old)
        if len(self.by_name) >= MAX_GRANTS:
            raise GrantError(f"there are {MAX_GRANTS} grants already: revoke some (`tipctl grant list`)",
                             status=409)
        token = new_token()
        g = Grant(name, tuple(dict.fromkeys(profiles)), now, now + ttl, digest(token.encode()))
        g.bound = {p: self.current[p] for p in g.profiles if p in self.current}
        g.token_dir = token_dir
        self.by_name[name] = g
        self.by_hash[g.token_hash] = g
        self.save()
        log.info("grant %s made: profiles %s, expires %s", name, ", ".join(g.profiles), iso_utc(g.expires))
        return g, token

    def rotate(self, name: str) -> tuple[Grant, str]:
        """A new token for the grant (same profiles and expiry); the old one stops working at once."""
        g = self.get(name)
        token = new_token()
        del self.by_hash[g.token_hash]
        g.token_hash = digest(token.encode())
        self.by_hash[g.token_hash] = g
        self.save()
        log.info("grant %s: token rotated", name)
        return g, token

    def revoke(self, name: str) -> Grant:
        g = self.get(name)
        self._drop(g)
        self.save()
        log.info("grant %s revoked", name)
        return g

    def get(self, name: str) -> Grant:
        g = self.by_name.get(name)
        if g is None:
            raise GrantError(f"no grant named {name[:63]!r} (`tipctl grant list` shows them)", code="NoSuchGrant",
                             status=404)
        return g

    def _drop(self, g: Grant) -> None:
        self.by_name.pop(g.name, None)
        self.by_hash.pop(g.token_hash, None)

    def listing(self) -> list[dict[str, Any]]:
        now = self.now()
        return [g.to_json(now) for g in sorted(self.by_name.values(), key=lambda g: g.name)]
