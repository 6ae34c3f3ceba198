"""Consumer tokens (`tipctl grant`) in the test stack: a second profile to be refused, making a grant, and
the real SDKs asking the credentials endpoint with a grant's token file."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from .stack import ENHANCED_ROLE, Home, tipctl

BOTO3_KEY = "import boto3; print(boto3.Session().get_credentials().get_frozen_credentials().access_key)"


def add_profile(home: Home, name: str) -> None:
    """A second IdP profile, like `work` (written before tipd starts)."""
    text = home.config_file.read_text()
    work = text[text.index("[profiles.work]"):]
    home.config_file.write_text(text + "\n" + work.replace("[profiles.work]", f"[profiles.{name}]", 1))


def make_grant(home: Home, name: str, *profiles: str, ttl: str = "8h") -> dict[str, Any]:
    args = [a for p in profiles for a in ("--profile", p)]
    grant: dict[str, Any] = json.loads(tipctl(home, "grant", name, *args, "--ttl", ttl, "--json").stdout)
    return grant


def sdk_env(home: Home, url: str, token_file: Path | str) -> dict[str, str]:
    return dict(home.env, AWS_CONTAINER_CREDENTIALS_FULL_URI=url,
                AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=str(token_file))


def boto3_key(env: dict[str, str], prefix: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    """A fresh boto3 process resolving credentials through the container provider; stdout: the access key id."""
    return subprocess.run([*(prefix or []), "python", "-c", BOTO3_KEY], env=env, capture_output=True, text=True,
                          timeout=120)


def is_enhanced(arn: str) -> bool:
    """An assumed-role ARN of the identity-enhanced role."""
    return ":assumed-role/" + ENHANCED_ROLE.rsplit("/", 1)[1] + "/" in arn
