"""`tipctl`: the command-line client. Each command lives in its own module and imports what it
needs only when it runs, so quick commands stay quick."""
from __future__ import annotations

import argparse
import importlib
import sys

from .. import __version__

COMMANDS = [
    "configure",
    "profiles",
    "login",
    "logout",
    "status",
    "env",
    "prompt",
    "completion",
    "credential_process",
    "exec",
    "aws_config",
    "accounts",
    "console",
    "s3ag",
    "service",
    "tray",
    "diag",
    "cfn_template",
    "rotate_token",
    "reload",
]


def parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser. When `argv` names a command, only that command's module is imported (a shell
    prompt may run `tipctl status` often: it should not pay for importing every other command)."""
    p = argparse.ArgumentParser(
        prog="tipctl",
        description="Control tipd, the daemon that serves identity-enhanced AWS credentials (IAM Identity Center "
                    "trusted identity propagation) to every AWS SDK on this machine.",
        epilog="Typical first use: `tipd &` (or `tipctl service install`), `tipctl login`, then "
               "`eval \"$(tipctl env)\"` and use any AWS tool.")
    p.add_argument("--version", action="version", version=f"tipctl {__version__}")
    sub = p.add_subparsers(title="commands", metavar="COMMAND")
    first = next((a for a in (argv or []) if not a.startswith("-")), None)
    wanted = first.replace("-", "_") if first else None
    for name in [wanted] if wanted in COMMANDS else COMMANDS:
        importlib.import_module(f"{__package__}.{name}").add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    from ..errors import TipdError

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["__complete"]:  # hidden, called by the completion scripts at each Tab: no parser, no imports
        from .completion import complete

        return complete(argv[1:])
    p = parser(argv)
    args = p.parse_args(argv)
    if not hasattr(args, "run"):
        p.print_help()
        return 2
    try:
        rc: int = args.run(args)
        return rc
    except TipdError as e:
        print(f"tipctl: {e.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("tipctl: cancelled", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
