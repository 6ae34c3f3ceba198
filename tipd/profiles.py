"""The profiles of a config, as far as the quick commands (`tipctl env`, `status`, `credential-process`) need
them, with the standard library only: what a profile name may be, the kinds of profile and how a profile's
table says which it is, and which profile a command means. The full models (tipd/config.py) build on this and
never decide these things a second time.

A new kind of profile: a model in tipd/config.py registered in its `PROFILE_MODELS`, and here the key only
that kind has in its table (`KIND_MARKERS`)."""
from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from .errors import UnknownProfile

DEFAULT_PORT = 9911
#: profile names end up in URLs, keyring entries and file names: keep them boring
PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # always .fullmatch: `$` would let a final newline in
#: the IdP presets (`provider` of an IdP profile); tipd.config.Provider spells the same names for the model
PROVIDERS = ("okta", "entra", "cognito", "keycloak", "auth0", "pingfederate", "pingone", "google", "onelogin",
             "jumpcloud", "oidc")
#: a profile that signs in at an IdP: the kind of every profile whose table has no marker below
IDP = "idp"
#: a role in an AWS account, through the Identity Center sign-in of another profile (its `source`)
ACCOUNT = "account"
#: the other kinds of profile, by the key that only a table of that kind has
KIND_MARKERS: dict[str, str] = {"source": ACCOUNT}
#: the keys a table of each kind may have: exactly the fields of its model in tipd/config.py (a test holds the
#: two together). The quick path hands a table with any other key to the full check, which refuses it as tipd would.
PROFILE_KEYS: dict[str, frozenset[str]] = {
    IDP: frozenset({"account_id", "application_arn", "auth_params", "client_auth", "client_id", "exchange_token",
                    "identity_enhanced_role_arn", "issuer", "oidc_role_arn", "provider", "redirect_host",
                    "redirect_port", "refresh_scope", "region", "scopes"}),
    ACCOUNT: frozenset({"account_id", "region", "role_name", "source", "synced"}),
}
#: the top-level keys of a config file (the fields of tipd.config.Config)
TOP_KEYS = frozenset({"default_profile", "profiles", "refresh", "server", "store"})


def profile_kind(table: Mapping[str, object]) -> str:
    """The kind of profile a `[profiles.NAME]` table describes."""
    for key, kind in KIND_MARKERS.items():
        if key in table:
            return kind
    return IDP


def pick_profile(asked: str | None, default: str | None, names: Collection[str]) -> str:
    """The profile a command means: the one named, the configured default, or the only one."""
    if asked is not None:
        if asked not in names:
            raise UnknownProfile(unknown_profile(asked, names))
        return asked
    if default:
        return default
    if len(names) == 1:
        return next(iter(names))
    if not names:
        raise UnknownProfile("no profiles are configured: add one with `tipctl configure`")
    raise UnknownProfile("several profiles are configured and no default_profile is set: name one "
                         f"({', '.join(sorted(names))}), or set one with `tipctl configure --profile NAME --default`")


def unknown_profile(asked: str, names: Collection[str]) -> str:
    """The sentence for a profile name that is not configured, with the nearest name when one is close."""
    near = difflib.get_close_matches(asked, list(names), n=1)
    hint = f"; did you mean {near[0]!r}?" if near else ""
    return f"no profile named {asked!r} (configured: {', '.join(sorted(names)) or 'none'}){hint}"


@dataclass(frozen=True)
class Endpoint:
    """Where the credential endpoint listens and which profiles it serves."""

    port: int
    default_profile: str | None
    profiles: tuple[str, ...]

    def profile(self, asked: str | None) -> str:
        return pick_profile(asked, self.default_profile, self.profiles)
