"""`tipctl configure --show`: the effective config as plain data, secrets shown as "***", and as TOML-like text."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, SecretBytes, SecretStr

from ..secret import Secret
from . import tomledit

REDACTED = "***"


def redacted(model: BaseModel) -> dict[str, Any]:
    """A model as plain data, with every secret shown as "***": a field whose type is a secret, or that is
    marked `Field(json_schema_extra={"secret": True})`."""
    out: dict[str, Any] = {}
    for name, field in type(model).model_fields.items():
        v = getattr(model, name)
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if v is not None and (extra.get("secret") or isinstance(v, (Secret, SecretStr, SecretBytes))):
            out[name] = REDACTED
        else:
            out[name] = _plain(v)
    return out


def _plain(v: Any) -> Any:
    if isinstance(v, BaseModel):
        return redacted(v)
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def render(data: dict[str, Any], keys: tuple[str, ...] = ()) -> str:
    """Plain data as TOML-like text: values that are not set are shown as comments."""
    lines = []
    values = {k: v for k, v in data.items() if not isinstance(v, dict)}
    if keys and (values or not data):
        lines.append("[" + ".".join(tomledit.toml_key(k) for k in keys) + "]")
    for k, v in values.items():
        lines.append(f"# {tomledit.toml_key(k)}: not set" if v is None else
                     f"{tomledit.toml_key(k)} = {tomledit.toml_value(v)}")
    for k, v in data.items():
        if isinstance(v, dict):
            if lines:
                lines.append("")
            lines.append(render(v, (*keys, k)))
    return "\n".join(lines)
