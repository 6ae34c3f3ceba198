"""The variables that point AWS SDKs at tipd: one computation for `tipctl env`, `tipctl s3ag env`, the systemd
environment.d file and the macOS `launchctl setenv` (so a shell and the installed service can never disagree)."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .paths import Paths
    from .profiles import Endpoint

FULL_URI = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
TOKEN_FILE = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"


def container_variables(endpoint: Endpoint, paths: Paths, profile: str | None = None, *,
                        kind: str = "credentials", query: str = "") -> dict[str, str]:
    """The container-credentials variables for `profile` (default: the configured default profile); `kind`
    and `query` pick the endpoint (`s3ag` with its target and permission for S3 Access Grants)."""
    url = f"http://127.0.0.1:{endpoint.port}/v1/{kind}/{endpoint.profile(profile)}" + (f"?{query}" if query else "")
    return {FULL_URI: url, TOKEN_FILE: str(paths.token_file)}


def imds_variables(endpoint: Endpoint, profile: str | None = None) -> dict[str, str]:
    """For tools that only know the EC2 instance metadata service (IMDSv2 serves the default profile)."""
    endpoint.profile(profile)  # an unknown profile is an error here too
    return {"AWS_EC2_METADATA_SERVICE_ENDPOINT": f"http://127.0.0.1:{endpoint.port}/",
            "AWS_EC2_METADATA_DISABLED": "false"}
