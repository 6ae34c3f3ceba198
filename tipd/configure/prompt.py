"""The interactive questions of `tipctl configure`: one value at a time, the default in brackets, a wrong
value asked again with the reason. It reads lines (not a terminal's raw keys), so a test can drive it through
a pipe; end of input raises EOFError and the command cancels without writing anything."""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TextIO

from ..config import PROVIDER_KEYS, profile_defaults
from ..errors import ConfigError
from ..profiles import PROVIDERS
from .presets import (
    BY_NAME,
    EXACT_PORT,
    FIXED_ISSUER,
    PRESET_INPUTS,
    REQUIRED_PRESET,
    FieldError,
    auth0_issuer,
    base_url,
    cognito_domain,
    cognito_pool,
    derive_issuer,
    entra_issuer,
    keycloak_issuer,
    okta_issuer,
    okta_org_url,
    onelogin_issuer,
    pingone_issuer,
    preset_inputs,
)
from .profile import PROFILE_KEYS, Draft, build, check_field, check_issuer, check_name, cognito_domain_of, parse_text
from .tomlfile import ConfigFile


class Prompter:
    def __init__(self, stdin: TextIO | None = None, out: TextIO | None = None) -> None:
        self.stdin = stdin or sys.stdin
        self.out = out or sys.stderr  # stdout stays for the result (--json)

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def line(self, question: str) -> str:
        self.out.write(question)
        self.out.flush()
        line = self.stdin.readline()
        if not line:
            raise EOFError
        return line.strip()

    def ask(self, question: str, default: str | None = None, parse: Callable[[str], Any] = str,
            required: bool = True) -> Any:
        """Ask until `parse` accepts the answer (Enter takes the default); None for an optional value left
        empty."""
        while True:
            text = self.line(f"{question}{f' [{default}]' if default else ''}: ") or (default or "")
            if not text:
                if not required:
                    return None
                self.say("  a value is needed")
                continue
            try:
                return parse(text)
            except FieldError as e:
                self.say(f"  {e.reason}")

    def secret(self, question: str) -> str:
        """A secret, not echoed in a terminal (read as a line from a pipe)."""
        if self.stdin is sys.stdin and sys.stdin.isatty():
            import getpass

            value = getpass.getpass(question, stream=self.out)
        else:
            value = self.line(question)
        return value.strip()

    def confirm(self, question: str, default: bool) -> bool:
        while True:
            text = self.line(f"{question} [{'Y/n' if default else 'y/N'}]: ").lower()
            if not text:
                return default
            if text in ("y", "yes", "n", "no"):
                return text.startswith("y")
            self.say("  answer y or n")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return " ".join(value) if isinstance(value, list) else str(value)


def ask_profile(p: Prompter, cf: ConfigFile, given: dict[str, Any], name: str | None = None,
                check: bool = True) -> Draft:
    """Ask for a profile's values; `given` (flags, a --from file) and an existing profile of that name are
    the defaults. With `check`, the issuer's discovery document is fetched as soon as the issuer is known."""
    if name is None:
        name = p.ask("Profile name", cf.data.get("default_profile") or next(iter(cf.profiles), "work"), check_name)
    else:
        name = check_name(name)
    existing = cf.profile(name) or {}
    if existing:
        p.say(f"Profile {name} exists in {cf.path}: Enter keeps each of its values.")
    provider = p.ask(f"IdP ({', '.join(PROVIDERS[:-1])}, or oidc for any other)",
                     given.get("provider") or existing.get("provider") or "oidc",
                     lambda s: check_field("provider", s.strip().lower()))

    defaults: dict[str, Any] = {}
    if existing.get("provider", "oidc") == provider:
        defaults.update(existing)
        defaults.update(preset_inputs(provider, existing.get("issuer", "")))
    else:
        defaults.update({k: v for k, v in existing.items() if k not in ("provider", "issuer", *PROVIDER_KEYS)})
    defaults.update({k: v for k, v in given.items() if v is not None})
    defaults.setdefault("authorization_server", "default")
    defaults.setdefault("pingone_region", "com")

    answers: dict[str, Any] = {"provider": provider}
    while True:
        answers.update(_ask_issuer(p, provider, defaults))
        issuer = derive_issuer(provider, answers)
        if PRESET_INPUTS[provider]:
            p.say(f"  issuer: {issuer}")
        if not check:
            break
        try:
            domain = answers.get("cognito_domain")
            check_issuer(provider, issuer, cognito_domain_of(issuer, domain) if domain else None)
        except ConfigError as e:
            p.say(f"  {e.message.splitlines()[0]}")
            p.say("  Correct it (Ctrl-C stops; --no-check skips this check when the IdP cannot be reached).")
            defaults.update(answers)
            continue
        p.say("  found its discovery document")
        break

    absent = profile_defaults(provider)
    for k in PROFILE_KEYS[2:]:
        default = defaults.get(k)
        if default is None:
            default = absent.get(k)
        if not BY_NAME[k].asked:  # flags only: the provider's default, or what the profile has
            answers[k] = default
            continue
        if k == "redirect_port" and provider in EXACT_PORT:
            host = answers.get("redirect_host") or "127.0.0.1"
            p.say(f"  {EXACT_PORT[provider]} compares the redirect URI exactly: give the port of the one registered "
                  f"with the app (http://{host}:PORT/callback)")
        def parse(s: str, k: str = k) -> Any:
            return check_field(k, parse_text(k, s), provider)

        answers[k] = p.ask(BY_NAME[k].prompt, _text(default), parse)
    return build(name, answers, existing)


def _ask_issuer(p: Prompter, provider: str, defaults: dict[str, Any]) -> dict[str, Any]:
    """The preset's values (or the issuer itself for oidc), each checked as typed."""
    out: dict[str, Any] = {}
    if provider in FIXED_ISSUER:
        return out  # one issuer for everyone
    if not PRESET_INPUTS[provider]:
        out["issuer"] = p.ask(BY_NAME["issuer"].prompt, _text(defaults.get("issuer")),
                              lambda s: check_field("issuer", s.strip()))
        return out
    parse: dict[str, Callable[[str], Any]] = {
        "org_url": okta_org_url,
        "authorization_server": lambda s: (okta_issuer(out["org_url"], s), s.strip())[1],
        "tenant": lambda s: (entra_issuer(s), s.strip())[1],
        "keycloak_url": lambda s: base_url("keycloak_url", s, "https://sso.example.com"),
        "realm": lambda s: (keycloak_issuer(out["keycloak_url"], s), s.strip())[1],
        "auth0_domain": lambda s: (auth0_issuer(s), s.strip())[1],
        "pingfederate_url": lambda s: base_url("pingfederate_url", s, "https://sso.example.com"),
        "pingone_region": lambda s: (pingone_issuer(s, "00000000-0000-0000-0000-000000000000"), s.strip().lower())[1],
        "environment_id": lambda s: (pingone_issuer(out.get("pingone_region"), s), s.strip().lower())[1],
        "onelogin_subdomain": lambda s: (onelogin_issuer(s), s.strip())[1],
        "user_pool_id": lambda s: cognito_pool(s)[1],
        "cognito_domain": lambda s: (cognito_domain(s, cognito_pool(out["user_pool_id"])[0]), s.strip())[1],
    }
    for k in PRESET_INPUTS[provider]:
        if not BY_NAME[k].asked:
            continue
        value = p.ask(BY_NAME[k].prompt, _text(defaults.get(k)), parse[k], required=k in REQUIRED_PRESET[provider]
                      or k == "authorization_server")
        if value is not None:
            out[k] = value
    return out
