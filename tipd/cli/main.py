"""`tipctl`: the command-line client. Each command lives in its own module and imports what it
needs only when it runs, so quick commands stay quick."""
from __future__ import annotations

import argparse
import difflib
import importlib
import re
import sys
from typing import NoReturn

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
    "ssh",
    "aws_config",
    "accounts",
    "console",
    "s3ag",
    "service",
    "tray",
    "diag",
    "cfn_template",
    "rotate_token",
    "grant",
    "reload",
]


CONFIG_HELP = "the config file (default: $TIPD_CONFIG, else the per-user config directory's tipd/config.toml)"


class Parser(argparse.ArgumentParser):
    """argparse with "did you mean": a mistyped command or option names the nearest one (Python 3.14's
    `suggest_on_error` does this for commands only)."""

    def error(self, message: str) -> NoReturn:
        m = re.match(r"argument .*?: invalid choice: '([^']*)' \(choose from (.*)\)$", message)
        if m:
            choices = re.findall(r"'([^']*)'", m[2])
            near = difflib.get_close_matches(m[1], choices, n=1)
            if near:
                message += f"; did you mean '{near[0]}'?"
        super().error(message)

    def unrecognized(self, extras: list[str]) -> NoReturn:
        """The error for arguments no option or positional took, with the nearest option of this command."""
        options = [o for a in self._actions for o in a.option_strings if o.startswith("--")]
        hints = []
        for extra in extras:
            word = extra.split("=", 1)[0]
            near = difflib.get_close_matches(word, options, n=1, cutoff=0.6) if word.startswith("-") else []
            if near:
                hints.append(f"did you mean {near[0]}?" if len(extras) == 1 else f"{word}: did you mean {near[0]}?")
        self.error("unrecognized arguments: " + " ".join(extras) + "".join(f"; {h}" for h in hints))


def _subparsers(p: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    out: list[argparse.ArgumentParser] = []
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases map to the same parser
                out += [child, *_subparsers(child)]
    return out


def _every_command_takes_config(p: argparse.ArgumentParser) -> None:
    """`--config PATH` before the command or after it, on every command (one that has its own keeps its help).
    SUPPRESS: a command's default would otherwise overwrite a --config given before it."""
    for child in [p, *_subparsers(p)]:
        child.set_defaults(_parser=child)
        own = next((a for a in child._actions if "--config" in a.option_strings), None)
        if own is None:
            child.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help=CONFIG_HELP)
        elif child is not p:
            own.default = argparse.SUPPRESS


def _profile_also_as_option(p: argparse.ArgumentParser) -> None:
    """`--profile NAME` wherever a command takes PROFILE (status, env, login, logout, credential-process, ...), as
    configure, cfn-template and s3ag spell it and the AWS CLI does; PROFILE stays. `main` merges the two."""
    for child in _subparsers(p):
        takes = any(a.dest == "profile" and not a.option_strings for a in child._actions)
        if takes and not any("--profile" in a.option_strings for a in child._actions):
            child.add_argument("--profile", dest="profile_option", metavar="NAME", default=None,
                               help="the same as PROFILE")


def _merge_profile_option(args: argparse.Namespace, p: argparse.ArgumentParser) -> None:
    given = getattr(args, "profile_option", None)
    if given is None:
        return
    if args.profile not in (None, given):
        p.error(f"the profile is named twice ({args.profile} and --profile {given}): name it once")
    args.profile = given


def _command(argv: list[str]) -> str | None:
    """The command `argv` names (the first word that is not an option or the value of --config)."""
    words = iter(argv)
    for a in words:
        if a == "--config":
            next(words, None)
        elif not a.startswith("-"):
            return a.replace("-", "_")
    return None


def parser(argv: list[str] | None = None) -> Parser:
    """The argument parser. When `argv` names a command, only that command's module is imported (a shell
    prompt may run `tipctl status` often: it should not pay for importing every other command)."""
    p = Parser(
        prog="tipctl",
        description="Control tipd, the daemon that serves identity-enhanced AWS credentials (IAM Identity Center "
                    "trusted identity propagation) to every AWS SDK on this machine.",
        epilog="Typical first use: `tipd &` (or `tipctl service install`), `tipctl login`, then "
               "`eval \"$(tipctl env)\"` and use any AWS tool.")
    p.add_argument("--version", action="version", version=f"tipctl {__version__}")
    p.add_argument("--config", metavar="PATH", default=None, help=CONFIG_HELP)
    sub = p.add_subparsers(title="commands", metavar="COMMAND")
    wanted = _command(argv or [])
    for name in [wanted] if wanted in COMMANDS else COMMANDS:
        importlib.import_module(f"{__package__}.{name}").add_parser(sub)
    _every_command_takes_config(p)
    _profile_also_as_option(p)
    return p


def with_default_action(argv: list[str]) -> list[str]:
    """`tipctl accounts [PROFILE]` is `tipctl accounts list [PROFILE]`: a command with actions (its module's
    ACTIONS) gets its DEFAULT_ACTION when no action is named."""
    words = _words(argv)
    if not words or argv[words[0]] != "accounts":
        return argv
    from . import accounts

    i = words[0]
    if (len(words) > 1 and argv[words[1]] in accounts.ACTIONS) or any(a in ("-h", "--help") for a in argv[i + 1:]):
        return argv
    return [*argv[:i + 1], accounts.DEFAULT_ACTION, *argv[i + 1:]]


def _words(argv: list[str]) -> list[int]:
    """Where the words that are not options (nor the value of --config) are."""
    out, skip = [], False
    for n, a in enumerate(argv):
        if skip:
            skip = False
        elif a == "--config":
            skip = True
        elif not a.startswith("-"):
            out.append(n)
    return out


def main(argv: list[str] | None = None) -> int:
    from ..errors import TipdError

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["__complete"]:  # hidden, called by the completion scripts at each Tab: no parser, no imports
        from .completion import complete

        return complete(argv[1:])
    argv = with_default_action(argv)
    p = parser(argv)
    args, extras = p.parse_known_args(argv)
    if extras:
        chosen = getattr(args, "_parser", p)
        (chosen if isinstance(chosen, Parser) else p).unrecognized(extras)
    if not hasattr(args, "run"):
        p.print_help()
        return 2
    chosen = getattr(args, "_parser", p)
    _merge_profile_option(args, chosen if isinstance(chosen, argparse.ArgumentParser) else p)
    try:
        rc: int = args.run(args)
        sys.stdout.flush()  # a reader that has gone shows here, not as an "Exception ignored" at exit
        return rc
    except TipdError as e:
        print(f"tipctl: {e.message}", file=sys.stderr)
        code: int = getattr(e, "exit_code", 1)  # 3: tipd is not running (cli/control.py DaemonNotRunning)
        return code
    except KeyboardInterrupt:
        print("tipctl: cancelled", file=sys.stderr)
        return 130
    except BrokenPipeError:
        if not reader_gone():  # from elsewhere (a socket): an error
            raise
        # `tipctl status --json | head -1`: the reader took what it wanted and left; no traceback for that
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        return rc if "rc" in locals() else 0


def reader_gone() -> bool:
    """Whether stdout is a pipe nobody reads any more (a BrokenPipeError from elsewhere, such as a socket, is
    still an error)."""
    import select

    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poll.poll(0))
    except (OSError, ValueError, AttributeError):  # no poll (Windows) or no real stdout
        return False


if __name__ == "__main__":
    sys.exit(main())
