"""`tipctl completion bash|zsh|fish`: a completion script for the commands, their flags and choices, and the
profile names. The commands and flags are taken from tipctl's own argument parser when the script is made;
profile names are read when Tab is pressed, by the hidden `tipctl __complete profiles`, which reads the config
file and nothing else (no daemon, no validation library)."""
from __future__ import annotations

import argparse
import sys
from typing import Any

HELP = "print a shell completion script for bash, zsh or fish"
SHELLS = ("bash", "zsh", "fish")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("completion", help=HELP, description=HELP + " (commands, flags, their choices and your "
                       "profile names). Install: bash: `tipctl completion bash > ~/.local/share/bash-completion/"
                       "completions/tipctl`; zsh: `tipctl completion zsh > \"${fpath[1]}/_tipctl\"` (or `source "
                       "<(tipctl completion zsh)` after compinit in ~/.zshrc); fish: `tipctl completion fish > "
                       "~/.config/fish/completions/tipctl.fish`. See docs/shell.md.")
    p.add_argument("shell", choices=SHELLS, help="the shell")
    p.set_defaults(run=run)


# -- the hidden, fast side: called at every Tab that wants a profile name ------------------------------------
def complete(argv: list[str]) -> int:
    """`tipctl __complete profiles [--config PATH]`: the configured profile names, one a line; nothing (and
    exit 0) when the config cannot be read: a completion never prints an error into the command line."""
    if not argv or argv[0] != "profiles":
        return 2
    path = argv[2] if len(argv) >= 3 and argv[1] == "--config" else None
    try:
        from ..config_file import read_config_file
        from ..profiles import PROFILE_NAME

        raw, _ = read_config_file(path)
        profiles = raw.get("profiles", {})
    except Exception:  # noqa: BLE001 -- any failure means "no names", never a traceback at the prompt
        return 0
    if isinstance(profiles, dict):
        print("\n".join(n for n in profiles if isinstance(n, str) and PROFILE_NAME.fullmatch(n)))
    return 0


# -- the spec: what the parser accepts ----------------------------------------------------------------------
class Command:  # not a dataclass: importing dataclasses would slow `tipctl __complete` down
    def __init__(self, key: str) -> None:
        self.key = key  # "" for tipctl itself, "s3ag env" for a subcommand
        self.flags: list[str] = []  # every option string
        self.values: dict[str, str] = {}  # option that takes a value -> "profile", "file", "choices" or "any"
        self.choices: dict[str, list[str]] = {}
        self.subs: dict[str, str] = {}  # subcommand -> its help
        self.profile_arg = False  # its first positional is a profile name
        self.arg_choices: list[str] = []  # its first positional's choices


def _kind(action: argparse.Action) -> str:
    if action.choices is not None:
        return "choices"
    if action.dest == "profile":
        return "profile"
    if "PATH" in str(action.metavar or "") or action.dest in ("config", "output", "path"):
        return "file"
    return "any"


def spec() -> list[Command]:
    from .main import parser

    out: list[Command] = []

    def walk(p: argparse.ArgumentParser, key: str) -> None:
        cmd = Command(key)
        out.append(cmd)
        positionals = 0
        for a in p._actions:  # argparse has no public walk; shtab and argcomplete read the same
            if isinstance(a, argparse._SubParsersAction):
                helps = {c.dest: c.help or "" for c in a._choices_actions}
                for name, child in a.choices.items():
                    cmd.subs[name] = helps.get(name, "")
                    walk(child, f"{key} {name}".strip())
            elif a.option_strings:
                cmd.flags += a.option_strings
                if a.nargs != 0:
                    for o in a.option_strings:
                        cmd.values[o] = _kind(a)
                        if a.choices is not None:
                            cmd.choices[o] = [str(c) for c in a.choices]
            else:
                if positionals == 0 and a.dest == "profile":
                    cmd.profile_arg = True
                if positionals == 0 and a.choices is not None:
                    cmd.arg_choices = [str(c) for c in a.choices]
                positionals += 1

    walk(parser(None), "")
    return out


# -- the scripts -------------------------------------------------------------------------------------------
def _sh_words(words: list[str]) -> str:
    return " ".join(words)  # flags, commands and choices are plain words (checked in the tests)


def _spec_function(cmds: list[Command]) -> str:
    """A POSIX `case` both bash and zsh run: sets opts, valopts, subs, posprof, fileopts, profopts."""
    lines = ["_tipctl_spec() {", "  opts= valopts= subs= posprof= poschoices= fileopts= profopts=", "  case $1 in"]
    for c in cmds:
        kinds = c.values
        lines.append(f'    "{c.key}")')
        lines.append(f"      opts='{_sh_words(c.flags)}'; subs='{_sh_words(list(c.subs))}'")
        lines.append(f"      valopts='{_sh_words(list(kinds))}'; posprof={1 if c.profile_arg else ''}; "
                     f"poschoices='{_sh_words(c.arg_choices)}'")
        lines.append(f"      fileopts='{_sh_words([o for o, k in kinds.items() if k == 'file'])}'")
        lines.append(f"      profopts='{_sh_words([o for o, k in kinds.items() if k == 'profile'])}' ;;")
    lines += ["  esac", "}", "_tipctl_choices() {", '  case "$1|$2" in']
    for c in cmds:
        for o, ch in c.choices.items():
            lines.append(f"    \"{c.key}|{o}\") echo '{_sh_words(ch)}' ;;")
    lines += ["  esac", "}"]
    return "\n".join(lines)


# The walk over the words typed so far, shared by bash and zsh: the subcommand path (`key`), the --config
# given (profile names come from that file), how many positionals were typed; a flag's value is skipped.
_WALK = r"""  _tipctl_spec ""
  key= skip= config= npos=0
  for w in "$@"; do
    if [ -n "$skip" ]; then
      [ "$skip" = --config ] && config=$w
      skip=; continue
    fi
    case $w in
      --*=*) ;;
      -*) case " $valopts " in *" $w "*) skip=$w ;; esac ;;
      *) case " $subs " in
           *" $w "*) key=${key:+$key }$w; _tipctl_spec "$key" ;;
           *) npos=$((npos + 1)) ;;
         esac ;;
    esac
  done"""

#: what the bash and zsh scripts share: the command table, the profile names, the walk over the words typed
_COMMON = r"""@SPEC@
_tipctl_profiles() {
  command tipctl __complete profiles ${1:+--config "$1"} 2>/dev/null
}
_tipctl_walk() {
@WALK@
}"""

_BASH = r"""# tipctl completion for bash (tipctl completion bash); profile names from `tipctl __complete profiles`
@COMMON@
_tipctl() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
  local opts valopts subs posprof poschoices fileopts profopts key skip config npos w IFS=$' \t\n'
  _tipctl_walk "${COMP_WORDS[@]:1:COMP_CWORD-1}"
  COMPREPLY=()
  if [ -n "$skip" ]; then
    case " $profopts " in *" $prev "*)
      COMPREPLY=($(compgen -W "$(_tipctl_profiles "$config")" -- "$cur")); return ;; esac
    case " $fileopts " in *" $prev "*) COMPREPLY=($(compgen -f -- "$cur")); return ;; esac
    COMPREPLY=($(compgen -W "$(_tipctl_choices "$key" "$prev")" -- "$cur"))
    return
  fi
  case $cur in -*) COMPREPLY=($(compgen -W "$opts" -- "$cur")); return ;; esac
  if [ -n "$subs" ]; then
    COMPREPLY=($(compgen -W "$subs" -- "$cur"))
  elif [ -n "$posprof" ] && [ "$npos" = 0 ]; then
    COMPREPLY=($(compgen -W "$(_tipctl_profiles "$config")" -- "$cur"))
  elif [ -n "$poschoices" ] && [ "$npos" = 0 ]; then
    COMPREPLY=($(compgen -W "$poschoices" -- "$cur"))
  fi
}
complete -o bashdefault -o default -F _tipctl tipctl
"""

_ZSH = r"""#compdef tipctl
# tipctl completion for zsh (tipctl completion zsh); profile names from `tipctl __complete profiles`
@COMMON@
_tipctl() {
  local cur=${words[CURRENT]} prev=${words[CURRENT-1]}
  local opts valopts subs posprof poschoices fileopts profopts key skip config npos w
  _tipctl_walk "${(@)words[2,CURRENT-1]}"
  if [[ -n $skip ]]; then
    if [[ " $profopts " == *" $prev "* ]]; then compadd -- ${(f)"$(_tipctl_profiles "$config")"}
    elif [[ " $fileopts " == *" $prev "* ]]; then _files
    else compadd -- ${=$(_tipctl_choices "$key" "$prev")}
    fi
    return
  fi
  if [[ $cur == -* ]]; then compadd -- ${=opts}
  elif [[ -n $subs ]]; then compadd -- ${=subs}
  elif [[ -n $posprof && $npos == 0 ]]; then compadd -- ${(f)"$(_tipctl_profiles "$config")"}
  elif [[ -n $poschoices && $npos == 0 ]]; then compadd -- ${=poschoices}
  else _files
  fi
}
if [[ ${zsh_eval_context[-1]} == loadautofunc ]]; then
  _tipctl "$@"
else
  compdef _tipctl tipctl
fi
"""


def _fish_quote(s: str) -> str:
    from ..shells import quote

    return quote("fish", s)


def _fish(cmds: list[Command]) -> str:
    keyed = [c.key for c in cmds if c.key]
    lines = [
        "# tipctl completion for fish (tipctl completion fish); profile names from `tipctl __complete profiles`",
        "complete -c tipctl -f",
        "function __tipctl_key --description 'the tipctl subcommand typed so far'",
        "    set -l key ''",
        "    for w in (commandline -opc)[2..-1]",
        '        set -l next (string trim -- "$key $w")',
        "        if contains -- $next " + " ".join(_fish_quote(k) for k in keyed),
        "            set key $next",
        "        end",
        "    end",
        "    echo $key",
        "end",
        "function __tipctl_is",
        "    set -l key (__tipctl_key)",
        '    test "$key" = "$argv[1]"',
        "end",
    ]
    profiles = "(tipctl __complete profiles 2>/dev/null)"
    for c in cmds:
        cond = f"-n {_fish_quote('__tipctl_is ' + _fish_quote(c.key))}"
        for name, help_text in c.subs.items():
            lines.append(f"complete -c tipctl {cond} -a {_fish_quote(name)} -d {_fish_quote(help_text[:80])}")
        if c.profile_arg:
            lines.append(f"complete -c tipctl {cond} -a {_fish_quote(profiles)}")
        if c.arg_choices:
            lines.append(f"complete -c tipctl {cond} -a {_fish_quote(' '.join(c.arg_choices))}")
        for flag in c.flags:
            spec = f"-l {flag[2:]}" if flag.startswith("--") else f"-s {flag[1:]}"
            kind = c.values.get(flag)
            if kind == "profile":
                spec += f" -x -a {_fish_quote(profiles)}"
            elif kind == "file":
                spec += " -r -F"
            elif kind == "choices":
                spec += f" -x -a {_fish_quote(' '.join(c.choices[flag]))}"
            elif kind == "any":
                spec += " -x"
            lines.append(f"complete -c tipctl {cond} {spec}")
    return "\n".join(lines) + "\n"


def script(shell: str) -> str:
    cmds = spec()
    if shell == "fish":
        return _fish(cmds)
    template = _ZSH if shell == "zsh" else _BASH
    return template.replace("@COMMON@", _COMMON).replace("@SPEC@", _spec_function(cmds)).replace("@WALK@", _WALK)


def run(args: argparse.Namespace) -> int:
    sys.stdout.write(script(args.shell))
    return 0
