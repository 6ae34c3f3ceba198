"""`tipctl ssh HOST [SSH_OPTION ...] [-- COMMAND ...]`: a session on HOST whose AWS SDKs get this machine's
credentials through the SSH connection, with a consumer token that dies with the session (tipd/remote.py)."""
from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

HELP = "log into HOST with ssh; AWS SDKs there get this machine's credentials for the session only"
DEFAULT_TTL = "4h"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "ssh", help=HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="tipctl ssh [--profile P] [--ttl 4h] HOST [SSH_OPTION ...] [-- COMMAND [ARG ...]]",
        description=HELP + ".\n\n"
        "  tipctl ssh build-box                          a login shell on build-box\n"
        "  tipctl ssh --profile prod build-box -p 2222   profile prod; ssh's own options after HOST\n"
        "  tipctl ssh build-box -- aws sts get-caller-identity\n\n"
        "tipctl makes a consumer token for the session (`tipctl grant`: the chosen profiles only, expiring after "
        "--ttl), opens one SSH connection, asks sshd on HOST to forward a free port on HOST's 127.0.0.1 to tipd "
        "(ssh -R), writes the token into a private directory on HOST (0700, only your user and root can read it) "
        "and runs the command, or your login shell, with AWS_CONTAINER_CREDENTIALS_FULL_URI="
        "http://127.0.0.1:PORT/v1/credentials/PROFILE and AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE set. When the "
        "session ends (or tipctl is interrupted or terminated) the directory is removed, the forward closed and "
        "the token revoked; if tipctl is killed outright (SIGKILL) the token still expires after --ttl.\n\n"
        "The COMMAND after `--` runs as its words are (no remote shell re-reads them; use `-- sh -c '...'` for a "
        "pipeline). Nothing is needed on HOST but sshd allowing TCP forwarding (its default) and /bin/sh. "
        "See docs/remote.md.")
    p.add_argument("--profile", action="append", default=[], metavar="P",
                   help="a profile the session may use (repeat for several; the first is the one "
                   "AWS_CONTAINER_CREDENTIALS_FULL_URI names; default: the default profile)")
    p.add_argument("--ttl", default=DEFAULT_TTL, help="the session token's lifetime, the backstop if tipctl cannot "
                   f"revoke it: e.g. 30m, 4h, 1d (default {DEFAULT_TTL})")
    p.add_argument("--ssh", default="ssh", metavar="PATH", help="the ssh client to run (default: ssh on PATH)")
    p.add_argument("host", metavar="HOST", help="the host, as you would give it to ssh ([user@]host or a Host alias)")
    p.add_argument("ssh_args", nargs=argparse.REMAINDER, metavar="SSH_OPTION ... -- COMMAND ...",
                   help="ssh options (e.g. -p 2222 -i KEY -o Name=value -J jump), then `--` and the remote command")
    p.set_defaults(run=run)


def _terminated(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def run(args: argparse.Namespace) -> int:
    from ..consumers import parse_ttl
    from ..errors import TipdError
    from ..paths import Paths
    from ..remote import Session, SshError, grant_name, split_ssh_args
    from .common import client, resolve_profile

    if shutil.which(args.ssh) is None:
        raise TipdError(f"no ssh client ({args.ssh}) found: install OpenSSH's client or pass --ssh PATH")
    if args.host.startswith("-"):
        raise SshError(f"{args.host!r} is not a host: tipctl's options come before HOST, ssh's after it "
                       "(tipctl ssh [--profile P] HOST [SSH_OPTION ...] [-- COMMAND ...])", status=400)
    options, flags, command = split_ssh_args(args.ssh_args)
    ttl = parse_ttl(args.ttl)
    ctl = client()
    profiles = list(dict.fromkeys(resolve_profile(ctl, p)[0] for p in (args.profile or [None])))
    paths = Paths.default()
    relay = paths.relay_socket
    if not relay.exists():
        raise TipdError(f"tipd's relay socket {relay} is missing: is this tipd older than `tipctl ssh`? "
                        "Restart it (`tipctl service restart`, or `tipd`)")
    name = grant_name(args.host)
    answer: dict[str, Any] = ctl.request("POST", "/v1/grants", {"name": name, "profiles": profiles,
                                                                "ttl_seconds": ttl})
    # SIGTERM and SIGHUP (the terminal closed) end tipctl through its cleanup, like ssh's own exit would
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _terminated)
    control_dir = Path(tempfile.mkdtemp(prefix="tipd-ssh-"))  # 0700; short: the control socket's path is limited
    session = Session(args.host, options, relay, control_dir, ssh=args.ssh)
    try:
        session.connect()
        port = session.forward()
        session.send_token(answer["token"])
        print(f"tipctl: {args.host}: AWS credentials of {', '.join(profiles)} on 127.0.0.1:{port} until the session "
              f"ends (grant {name}, at most until {answer['expires']})", file=sys.stderr)
        # Ctrl-C reaches ssh (the foreground process group); tipctl waits for it and then cleans up
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            return session.session(port, profiles[0], _region_of(args.config, profiles[0]), flags, command,
                                   interactive=sys.stdin.isatty())
        finally:
            signal.signal(signal.SIGINT, previous)
    finally:
        with contextlib.suppress(Exception):
            session.close()
        shutil.rmtree(control_dir, ignore_errors=True)
        try:
            ctl.request("DELETE", f"/v1/grants/{name}")
        except TipdError as e:
            print(f"tipctl: could not revoke the session's token (grant {name}): {e.message}; it expires at "
                  f"{answer['expires']}, or run `tipctl grant revoke {name}`", file=sys.stderr)


def _region_of(config: str | None, profile: str) -> str | None:
    """The profile's region (exported on HOST unless the session sets one), as `tipctl exec` finds it."""
    from ..config_file import read_config_file
    from .exec import _region

    try:
        return _region(read_config_file(config)[0], profile)
    except Exception:  # a convenience: a config this cannot read costs only the region
        return None
