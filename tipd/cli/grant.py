"""`tipctl grant`: consumer tokens (tipd/consumers.py) for containers, remote sessions and agents: named, limited
to some profiles, expiring, revocable. Managed over the control socket only."""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

HELP = "make, list, rotate and revoke consumer tokens: credentials for some profiles only, until they expire"
ACTIONS = ("list", "revoke", "rotate", "docker-flags")
#: where the relay listens inside a container unless told otherwise (docs/containers.md)
RELAY_PORT = 9911
#: where a container sees the grant's token directory and the relay socket's directory
CONTAINER_TOKEN_DIR = "/run/tipd"
CONTAINER_RELAY_DIR = "/run/tipd-relay"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "grant", help=HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
        description=HELP + ".\n\n"
        "  tipctl grant NAME --profile P [--profile Q] [--ttl 8h]   make one; its token goes to a file\n"
        "  tipctl grant list                                          the grants, their expiry and last use\n"
        "  tipctl grant rotate NAME                                   a new token (the old one dies at once)\n"
        "  tipctl grant revoke NAME                                   the token stops working at once\n"
        "  tipctl grant docker-flags NAME [--profile P] [--compose]   `docker run` flags (or compose services)\n\n"
        "The token is written (0600) to the grant's directory, by default in tipd's state directory "
        "(grants/NAME/token); mount that directory (not the file) into a container so that a rotation reaches it. "
        "tipd keeps only a SHA-256 of each token. See docs/containers.md and docs/security.md.")
    p.add_argument("words", nargs="+", metavar="NAME | list | revoke NAME | rotate NAME | docker-flags NAME")
    p.add_argument("--profile", "-p", action="append", default=[], metavar="P",
                   help="a profile the token may fetch (repeat for several)")
    p.add_argument("--ttl", default="8h", help="how long the token lives: e.g. 30m, 8h, 7d (1 minute to 90 days; "
                   "default 8h)")
    p.add_argument("--dir", metavar="DIR", help="write the token to DIR/token (default: the grant's directory in "
                   "tipd's state directory)")
    p.add_argument("--port", type=int, default=RELAY_PORT, help=f"docker-flags: the relay's port in the container "
                   f"(default {RELAY_PORT})")
    p.add_argument("--compose", action="store_true", help="docker-flags: print a compose snippet (a relay sidecar "
                   "whose network namespace the app shares) instead of `docker run` flags")
    p.add_argument("--json", action="store_true", help="machine-readable output (make and rotate include the token)")
    p.set_defaults(run=run)


def grant_dir(name: str, given: str | None) -> Path:
    from ..paths import Paths

    return Path(given).expanduser() if given else Paths.default().state_dir / "grants" / name


def write_token(directory: Path, token: str) -> Path:
    """The token to DIR/token, atomically (a container that mounts DIR sees the old file or the new one)."""
    from ..errors import TipdError
    from ..fsutil import private_dir, write_private

    try:
        private_dir(directory)
        write_private(directory / "token", token.encode())
    except OSError as e:
        raise TipdError(f"cannot write the token to {directory}: {e.strerror or e}") from None
    return directory / "token"


def run(args: argparse.Namespace) -> int:
    from ..errors import TipdError
    from .common import client, print_json

    words: list[str] = args.words
    action, rest = (words[0], words[1:]) if words[0] in ACTIONS else ("make", words)
    if action == "list":
        if rest:
            raise TipdError("tipctl grant list takes no name")
        listing: list[dict[str, Any]] = client().request("GET", "/v1/grants")["grants"]
        if args.json:
            print_json({"grants": listing})
        else:
            _print_list(listing)
        return 0
    if len(rest) != 1:
        raise TipdError(f"tipctl grant {'' if action == 'make' else action + ' '}needs exactly one NAME")
    name = rest[0]
    if action == "docker-flags":
        make = compose_snippet if args.compose else docker_flags
        print(make(name, args.profile, grant_dir(name, args.dir or recorded_dir(name)), args.port))
        return 0
    ctl = client()
    if action == "revoke":
        ctl.request("DELETE", f"/v1/grants/{_quote(name)}")
        if args.json:
            print_json({"name": name, "revoked": True})
        else:
            print(f"Grant {name} revoked: its token no longer fetches anything.")
        return 0
    if action == "rotate":
        answer = ctl.request("POST", f"/v1/grants/{_quote(name)}/rotate")
    else:
        from ..consumers import parse_ttl

        if not args.profile:
            raise TipdError("name the profiles the token may fetch: --profile P (repeat for several)")
        chosen = str(Path(args.dir).expanduser().absolute()) if args.dir else None
        answer = ctl.request("POST", "/v1/grants", {"name": name, "profiles": args.profile,
                                                    "ttl_seconds": parse_ttl(args.ttl), "token_dir": chosen})
    # a rotation writes where the grant's token was written when it was made (a container mounts that directory)
    path = write_token(grant_dir(name, args.dir or answer.get("token_dir")), answer["token"])
    if args.json:
        print_json({**answer, "token_file": str(path)})
    else:
        verb = "rotated" if action == "rotate" else "made"
        print(f"Grant {name} {verb}: profiles {', '.join(answer['profiles'])}, expires {answer['expires']}.")
        print(f"Its token is in {path}; mount {path.parent} into a container (`tipctl grant docker-flags {name}`).")
    return 0


def recorded_dir(name: str) -> str | None:
    """The --dir the grant was made with, as tipd recorded it; None when it was made without one, or tipd is not
    running (then the default directory is meant, or --dir must be given again)."""
    from .common import client
    from .control import DaemonNotRunning

    try:
        listing: list[dict[str, Any]] = client().request("GET", "/v1/grants")["grants"]
    except DaemonNotRunning:
        return None
    return next((g.get("token_dir") for g in listing if g["name"] == name), None)


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


def _print_list(listing: list[dict[str, Any]]) -> None:
    from .common import when

    if not listing:
        print("No grants. Make one with `tipctl grant NAME --profile P`.")
        return
    for g in listing:
        state = "expired" if g["expired"] else f"expires {when(g['expires'])}"
        used = f"last used {when(g['last_used'])}, {g['uses']} fetches" if g["last_used"] else "never used"
        where = f"; token in {g['token_dir']}" if g.get("token_dir") else ""
        print(f"{g['name']}: {', '.join(g['profiles'])}; {state}; {used}{where}")


def docker_flags(name: str, profiles: list[str], token_dir: Path, port: int) -> str:
    """The `docker run` flags that give a container the grant's credentials through the relay: the grant's token
    directory and tipd's relay directory mounted (directories, so a rotation and a tipd restart reach the running
    container), the relay script itself, and the SDK's two variables."""
    from .. import relay
    from ..paths import Paths

    relay_dir = Paths.default().relay_dir
    profile = profiles[0] if profiles else "PROFILE"
    flags = [
        "-v", f"{token_dir}:{CONTAINER_TOKEN_DIR}:ro",
        # read-only: connecting needs no write, and no container can replace the socket that the others share
        "-v", f"{relay_dir}:{CONTAINER_RELAY_DIR}:ro",
        "-v", f"{Path(relay.__file__).resolve()}:/opt/tipd-relay/relay.py:ro",
        "-e", f"AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:{port}/v1/credentials/{profile}",
        "-e", f"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE={CONTAINER_TOKEN_DIR}/token",
        "-e", f"TIPD_RELAY_SOCKET={CONTAINER_RELAY_DIR}/credentials.sock",
        "-e", f"TIPD_RELAY_LISTEN=127.0.0.1:{port}",
    ]
    lines = " \\\n  ".join(shlex.join(flags[i:i + 2]) for i in range(0, len(flags), 2))
    if not token_dir.joinpath("token").exists():
        print(f"note: {token_dir}/token does not exist yet: make the grant first (`tipctl grant {name} --profile "
              f"{profile}`)", file=sys.stderr)
    return (f"# docker run flags for grant {name} (Linux Docker; docs/containers.md has compose, devcontainer.json\n"
            f"# and Docker Desktop). The container starts the relay beside its program (python3 in the image):\n"
            f"#   docker run ...flags... IMAGE sh -c 'python3 /opt/tipd-relay/relay.py & exec YOUR-COMMAND'\n"
            f"  {lines}")


def compose_snippet(name: str, profiles: list[str], token_dir: Path, port: int) -> str:
    """A compose snippet: the relay as a sidecar (python:3-alpine), the app in its network namespace."""
    from .. import relay
    from ..paths import Paths

    profile = profiles[0] if profiles else "PROFILE"
    return f'''# compose services for grant {name} (docs/containers.md); replace YOUR-IMAGE
services:
  tipd-relay:
    image: python:3-alpine
    command: ["python", "/opt/tipd-relay/relay.py", "--listen", "127.0.0.1:{port}"]
    volumes:
      - {Paths.default().relay_dir}:{CONTAINER_RELAY_DIR}:ro
      - {Path(relay.__file__).resolve()}:/opt/tipd-relay/relay.py:ro
  app:
    image: YOUR-IMAGE
    network_mode: "service:tipd-relay"
    volumes:
      - {token_dir}:{CONTAINER_TOKEN_DIR}:ro
    environment:
      AWS_CONTAINER_CREDENTIALS_FULL_URI: "http://127.0.0.1:{port}/v1/credentials/{profile}"
      AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: "{CONTAINER_TOKEN_DIR}/token"'''
