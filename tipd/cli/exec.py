"""`tipctl exec PROFILE -- COMMAND...`: run one command against one profile's credential endpoint.

The command gets the endpoint's URL and the path of the token file, never a credential: it fetches
credentials from tipd like any SDK, so they stay fresh however long it runs. tipctl then becomes the command
(execvpe: same pid, so signals, job control and the exit status are the command's own). A quick command:
the standard library only."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any

HELP = "run a command with one profile's credential endpoint in its environment (tipctl exec PROFILE -- CMD ...)"
#: variables that would win over the container endpoint in the SDKs' credential chains (static keys, a named
#: profile, web identity, a relative container URI, an inline endpoint token that Java reads before the file)
SHADOWING = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
             "AWS_CREDENTIAL_EXPIRATION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
             "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
             "AWS_CONTAINER_AUTHORIZATION_TOKEN")
#: a command that is not there, or not executable: the shell's exit statuses
NOT_FOUND, NOT_EXECUTABLE = 127, 126


def add_parser(sub: Any) -> None:
    p = sub.add_parser("exec", help=HELP, description=HELP + ". The command's environment points every AWS SDK "
                       "at the profile's endpoint (AWS_CONTAINER_CREDENTIALS_FULL_URI and the token file), without "
                       "any credential in it; variables that would take precedence (AWS_ACCESS_KEY_ID, AWS_PROFILE, "
                       "...) are removed. The command replaces tipctl: its exit status and signals are its own. "
                       "PROFILE may be left out when a default profile is set (`tipctl exec -- CMD`).",
                       usage="tipctl exec [--config PATH] [PROFILE] -- COMMAND [ARG ...]")
    p.add_argument("words", nargs=argparse.REMAINDER, metavar="PROFILE -- COMMAND", help=argparse.SUPPRESS)
    p.set_defaults(run=run)


def split_words(words: list[str]) -> tuple[str | None, list[str]]:
    """(profile, command) from `[PROFILE] -- COMMAND...` or `PROFILE COMMAND...`."""
    from ..errors import TipdError

    if "--" in words:
        i = words.index("--")
        head, command = words[:i], words[i + 1:]
    else:
        head, command = words[:1], words[1:]
    if len(head) > 1:
        raise TipdError(f"one profile before `--`, not {len(head)} words ({' '.join(head)}): "
                        "tipctl exec PROFILE -- COMMAND ...", code="BadRequest", status=400)
    if not command:
        raise TipdError("no command to run: tipctl exec PROFILE -- COMMAND ...", code="BadRequest", status=400)
    return (head[0] if head else None), command


def environment(profile: str | None, config_path: str | None, base: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The profile's name and the command's environment: `base` without the shadowing variables, with the
    endpoint variables (one computation with `tipctl env`) and the profile's region when the caller set none."""
    from ..config_file import read_config_file
    from ..paths import Paths
    from ..quickconfig import endpoint_facts
    from ..sdkenv import container_variables

    endpoint = endpoint_facts(config_path)
    name = endpoint.profile(profile)
    env = {k: v for k, v in base.items() if k not in SHADOWING}
    env.update(container_variables(endpoint, Paths.default(), name))
    env.update(default_profile_cover(base, name))
    region = _region(read_config_file(config_path)[0], name)
    if region and not (base.get("AWS_REGION") or base.get("AWS_DEFAULT_REGION")):
        env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = region
    return name, env




def default_profile_cover(base: dict[str, str], name: str) -> dict[str, str]:
    """Keep the AWS files' default profile from taking the command over: every SDK takes `[default]`'s credentials
    (~/.aws/credentials, then ~/.aws/config) before the container endpoint, so the command would run as another
    identity. The credentials file is hidden from the command (it holds keys only); a config whose default has a
    credential source is refused, unless the profile is one of tipd's block in that file: then AWS_PROFILE names
    it (its credential_process is this profile's)."""
    from pathlib import Path

    from ..awsconfig import config_file, default_credentials, read, sections, split
    from ..errors import ConfigError, TipdError

    cover: dict[str, str] = {}
    creds = Path(os.path.expanduser(base.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials"))
    if creds.exists():
        cover["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    path = config_file(base)
    try:
        text = read(path)
        block = split(text, path)[1]
    except ConfigError:
        return cover  # a file no SDK can read either
    found = default_credentials(text)
    if found is None:
        return cover
    if block is not None and name in sections(block):
        cover["AWS_PROFILE"] = name
        return cover
    raise TipdError(f"{path}: its default profile has credentials of its own ({found}), which every AWS SDK "
                    f"takes before tipd's endpoint: the command would not run as {name}. Run `tipctl aws-config "
                    f"sync` (then tipctl exec uses AWS_PROFILE={name}), or move those settings to a named profile",
                    code="DefaultProfileShadows", status=400)


def _region(raw: dict[str, Any], name: str) -> str | None:
    tables = raw.get("profiles", {})
    table = tables.get(name, {}) if isinstance(tables, dict) else {}
    region = table.get("region")
    source = table.get("source")
    if not region and isinstance(source, str) and isinstance(tables.get(source), dict):
        region = tables[source].get("region")
    return region if isinstance(region, str) else None


def readiness_warning(name: str) -> str | None:
    """A sentence when the profile cannot serve yet (tipd down, signed out, sign-in needed), else None. The
    command runs anyway: it may not need AWS at all, and tipd may be started or signed in meanwhile."""
    from .common import client
    from .control import DaemonNotRunning

    try:
        summary = client(timeout=2).request("GET", "/v1/summary")
    except DaemonNotRunning:
        return ("tipd is not running: the command gets no AWS credentials until it is "
                "(`tipd`, or `tipctl service install`)")
    except Exception:  # a slow or odd daemon: say nothing rather than hold the command up
        return None
    for p in summary.get("profiles", []):
        if p.get("profile") == name and p.get("state") in ("signed-out", "login-required"):
            return f"profile {name} is {p['state']}: run `tipctl login {name}` or the command gets no AWS credentials"
    return None


def run(args: argparse.Namespace) -> int:
    profile, command = split_words(args.words)
    name, env = environment(profile, args.config, dict(os.environ))
    warning = readiness_warning(name)
    if warning:
        print(f"tipctl: warning: {warning}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(command[0], command, env)
    except FileNotFoundError:
        print(f"tipctl: {command[0]}: command not found", file=sys.stderr)
        return NOT_FOUND
    except PermissionError:
        print(f"tipctl: {command[0]}: permission denied", file=sys.stderr)
        return NOT_EXECUTABLE
    except OSError as e:
        print(f"tipctl: {command[0]}: cannot run it: {e.strerror}", file=sys.stderr)
        return NOT_EXECUTABLE
