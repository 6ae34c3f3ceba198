"""Inputs (flags, a --from file, answers) -> a profile's settings, validated by the pydantic models of
tipd.config (the one source of truth); and the discovery check of its issuer."""
from __future__ import annotations

import asyncio
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from ..config import PROVIDER_KEYS, Profile, describe_error, profile_default
from ..errors import ConfigError, TipdError
from ..profiles import PROFILE_NAME, PROVIDERS
from .presets import (
    BY_NAME,
    FIXED_ISSUER,
    PRESET_INPUTS,
    REQUIRED_PRESET,
    FieldError,
    cognito_domain,
    cognito_pool,
    derive_issuer,
    preset_inputs,
)

if TYPE_CHECKING:
    from ..idp.oidc import ProviderMetadata

#: good values for every required field, so that one field can be validated on its own by the model
_PLACEHOLDER = {
    "issuer": "https://idp.example.com",
    "client_id": "x",
    "application_arn": "arn:aws:sso::111122223333:application/ssoins-0000000000000000/apl-0000000000000000",
    "oidc_role_arn": "arn:aws:iam::111122223333:role/x",
    "identity_enhanced_role_arn": "arn:aws:iam::111122223333:role/x",
    "region": "us-east-1",
}


#: the settings of an IdP profile, in the order configure writes them: the model's (it leaves any other key as it is)
PROFILE_KEYS = tuple(Profile.model_fields)


@dataclass(frozen=True)
class Draft:
    """A profile ready to be saved: its settings (in file order) and what the discovery check needs."""

    name: str
    settings: dict[str, Any]
    #: the Cognito domain's host, checked against the discovery document's authorization_endpoint
    cognito_domain: str | None = None


def check_name(name: str) -> str:
    name = name.strip()
    if not PROFILE_NAME.fullmatch(name):
        raise FieldError("profile", "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return name


def parse_text(field: str, text: str) -> Any:
    """A typed answer or flag value -> the value the profile holds."""
    text = text.strip()
    if field == "scopes":
        return [s for s in re.split(r"[\s,]+", text) if s]
    if field == "redirect_port":
        if not re.fullmatch(r"\d{1,5}", text):
            raise FieldError(field, "must be a port number (0-65535; 0 = any free port)")
        return int(text)
    if field == "auth_params":
        out: dict[str, str] = {}
        for item in (i for i in re.split(r"[\s,]+", text) if i):
            key, eq, value = item.partition("=")
            if not eq or not key:
                raise FieldError(field, f"{item!r}: give KEY=VALUE pairs, such as access_type=offline")
            out[key] = value
        return out
    return text


def check_field(field: str, value: Any, provider: str = "oidc") -> Any:
    """Validate one profile setting with the config model; the reason when it is wrong is the one a config
    file with that value would get."""
    if field == "provider":
        if value not in PROVIDERS:
            raise FieldError(field, f"must be one of {', '.join(PROVIDERS)}")
        return value
    data = dict(_PLACEHOLDER, provider=provider if provider in PROVIDERS else "oidc")
    data[field] = value
    try:
        return getattr(Profile.model_validate(data), field)
    except ValidationError as e:
        for err in e.errors(include_url=False, include_input=False):
            if err["loc"][:1] == (field,):
                raise FieldError(field, describe_error(err).split(": ", 1)[1]) from None
        raise


#: a --from file's size limit (one profile's values fit in a few KiB)
MAX_FROM_FILE = 1024 * 1024


def read_from_file(path: str) -> dict[str, Any]:
    """A --from FILE: JSON or TOML, one profile's inputs (`profile`, `provider`, the preset inputs, the
    profile settings, `default`)."""
    p = Path(path).expanduser()
    try:
        with p.open("rb") as f:
            data = f.read(MAX_FROM_FILE + 1)  # bounded: /dev/zero or a huge file by mistake was a MemoryError
        if len(data) > MAX_FROM_FILE:
            raise ConfigError(f"{p}: larger than {MAX_FROM_FILE // 1024} KiB; is it the right file?")
        raw = data.decode("utf-8")
    except OSError as e:
        raise ConfigError(f"{p}: cannot read it ({e.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not UTF-8 text") from None
    try:
        if p.suffix.lower() == ".json" or (p.suffix.lower() != ".toml" and raw.lstrip().startswith("{")):
            parsed: object = json.loads(raw)
        else:
            parsed = tomllib.loads(raw)
    except (ValueError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{p}: neither valid JSON nor valid TOML ({e})") from None
    except RecursionError:  # both parsers recurse into nested arrays and objects
        raise ConfigError(f"{p}: its arrays or objects nest too deeply") from None
    if not isinstance(parsed, dict):
        raise ConfigError(f"{p}: expected an object of a profile's values")
    known = {"profile", "provider", "default"} | set(BY_NAME)
    values: dict[str, Any] = {str(k).replace("-", "_"): v for k, v in parsed.items()}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{p}: unknown keys {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    out: dict[str, Any] = {}
    for k, v in values.items():
        if k == "default":
            if not isinstance(v, bool):
                raise ConfigError(f"{p}: default must be true or false")
            out[k] = v
        elif k == "scopes" and isinstance(v, list):
            out[k] = [str(s) for s in v]
        elif k == "redirect_port" and isinstance(v, int) and not isinstance(v, bool):
            out[k] = v
        elif k == "auth_params" and isinstance(v, dict) and all(isinstance(x, str) for x in v.values()):
            out[k] = {str(a): x for a, x in v.items()}
        elif isinstance(v, str):
            out[k] = parse_text(k, v) if k in ("scopes", "redirect_port", "auth_params") else v
        else:
            raise ConfigError(f"{p}: {k} must be a string")
    return out


def build(name: str, inputs: dict[str, Any], existing: dict[str, Any] | None = None) -> Draft:
    """The profile `inputs` describe; values not given come from the `existing` profile of that name, then
    from the provider's defaults. Every missing or invalid value is reported in one error."""
    name = check_name(name)
    given = {k: v for k, v in inputs.items() if v is not None and v != ""}
    existing = existing or {}
    provider = given.get("provider") or existing.get("provider") or "oidc"
    check_field("provider", provider)
    for k in given:
        info = BY_NAME.get(k)
        if info is not None and k != "issuer" and provider not in info.providers:
            raise FieldError(k, f"{info.flag} is for --provider {' or '.join(info.providers)}, not {provider}")

    same_provider = existing.get("provider", "oidc") == provider
    missing: list[str] = []
    errors: list[str] = []
    issuer = None
    issuer_inputs = [k for k in PRESET_INPUTS[provider] if k != "cognito_domain"]
    if any(k in given for k in issuer_inputs):
        # the preset's values: those given, the rest as the existing profile's issuer was made
        known = preset_inputs(provider, existing["issuer"]) if same_provider and existing.get("issuer") else {}
        known.update({k: given[k] for k in issuer_inputs if k in given})
        missing += [k for k in REQUIRED_PRESET[provider] if k not in known]
        if not missing:
            try:
                issuer = derive_issuer(provider, known)
            except FieldError as e:
                errors.append(e.message)
        if issuer and given.get("issuer") and given["issuer"] != issuer:
            errors.append(f"issuer: {given['issuer']} is not {issuer}, the issuer the {provider} values make; "
                          "give one or the other")
    elif given.get("issuer"):
        issuer = given["issuer"]
    elif existing.get("issuer") and same_provider:
        issuer = existing["issuer"]
    elif provider in FIXED_ISSUER:
        issuer = FIXED_ISSUER[provider]
    else:
        missing += list(REQUIRED_PRESET[provider])

    settings: dict[str, Any] = {"provider": provider, "issuer": issuer}
    for k in PROFILE_KEYS[2:]:
        if k in given:
            settings[k] = given[k]
        elif k in existing and (same_provider or k not in PROVIDER_KEYS):
            settings[k] = existing[k]
        elif k in PROVIDER_KEYS:
            settings[k] = profile_default(provider, k)
        elif Profile.model_fields[k].is_required():
            missing.append(k)
        else:
            settings[k] = profile_default(provider, k)
    if missing:
        errors.insert(0, "missing: " + ", ".join(f"{k} ({BY_NAME[k].flag})" for k in missing))
    for k in PROFILE_KEYS[1:]:  # each value given, on its own, so that all the problems show at once
        if settings.get(k) is not None and (k in given or k == "issuer"):
            try:
                check_field(k, settings[k], provider)
            except FieldError as e:
                errors.append(e.message)
    if not errors:
        try:
            settings = Profile.model_validate(settings).model_dump()
            settings = {k: settings[k] for k in PROFILE_KEYS if settings[k] is not None}  # None: not set
        except ValidationError as e:
            errors += [describe_error(err) for err in e.errors(include_url=False, include_input=False)]
    domain = None
    if not errors and given.get("cognito_domain"):
        try:
            domain = cognito_domain_of(settings["issuer"], given["cognito_domain"])
        except FieldError as e:
            errors.append(e.message)
    if errors:
        raise ConfigError(f"profile {name!r} cannot be saved:\n  " + "\n  ".join(errors))
    return Draft(name, settings, domain)


def cognito_domain_of(issuer: str, domain: str) -> str:
    """The host of a Cognito user pool domain, checked against the pool's region."""
    pool = preset_inputs("cognito", issuer).get("user_pool_id")
    if pool is None:
        raise FieldError("cognito_domain", f"{issuer} is not a Cognito user pool's issuer")
    return cognito_domain(domain, cognito_pool(pool)[0])


# -- the discovery check --------------------------------------------------------------------------------
async def _discover(issuer: str) -> ProviderMetadata:
    import aiohttp

    from ..idp import oidc

    async with aiohttp.ClientSession() as http:
        try:
            return await oidc.discover(http, issuer)
        except TimeoutError:
            url = issuer.rstrip("/") + "/.well-known/openid-configuration"
            raise ConfigError(f"discovery at {url}: no answer within {oidc.TIMEOUT.total:.0f} s") from None


def check_issuer(provider: str, issuer: str, cognito_domain: str | None = None) -> None:
    """Fetch the issuer's discovery document: it must exist, name exactly this issuer, and have the
    endpoints a sign-in uses (and, for Cognito with a domain given, send sign-ins to that domain)."""
    try:
        meta = asyncio.run(_discover(issuer))
    except TipdError as e:
        source = "" if provider == "oidc" else f" (or the {provider} values it was made from)"
        raise ConfigError(f"the issuer check failed: {e.message}.\nNothing was saved: correct the issuer{source}, "
                          "or pass --no-check to save without checking (when the IdP cannot be reached from "
                          "here).") from None
    if not meta.authorization_endpoint or not meta.token_endpoint:
        hint = (" The user pool has no domain: add one (App integration > Domain) so it can sign users in."
                if provider == "cognito" else "")
        raise ConfigError(f"the issuer check failed: the discovery document of {issuer} has no "
                          f"authorization_endpoint or token_endpoint, so no one can sign in there.{hint}")
    if cognito_domain:
        host = urlsplit(meta.authorization_endpoint).hostname
        if host != cognito_domain:
            raise ConfigError(f"the issuer check failed: the user pool signs users in at {host}, not at "
                              f"{cognito_domain} (the domain of another user pool?)")
