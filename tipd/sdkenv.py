"""The variables that point AWS SDKs at tipd: one computation for `tipctl env`, the systemd environment.d
file and the macOS `launchctl setenv` (so a shell and the installed service can never disagree)."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import Config
    from .paths import Paths

FULL_URI = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
TOKEN_FILE = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"


def container_variables(config: "Config", paths: "Paths", profile: str | None = None) -> dict[str, str]:
    """The container-credentials variables for `profile` (default: the configured default profile)."""
    name = config.profile_name(profile)
    return {
        FULL_URI: f"http://127.0.0.1:{config.server.port}/v1/credentials/{name}",
        TOKEN_FILE: str(paths.token_file),
    }


def imds_variables(config: "Config") -> dict[str, str]:
    """For tools that only know the EC2 instance metadata service (IMDSv2 serves the default profile)."""
    return {"AWS_EC2_METADATA_SERVICE_ENDPOINT": f"http://127.0.0.1:{config.server.port}/",
            "AWS_EC2_METADATA_DISABLED": "false"}
