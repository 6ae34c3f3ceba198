"""`tipctl prompt`: the shell code of a prompt segment (profile, state, minutes left) that reads the file tipd
keeps current (tipd/promptfile.py) with shell built-ins: no Python, no daemon round trip per prompt."""
from __future__ import annotations

import argparse
from typing import Any

HELP = "print a prompt segment for bash, zsh, fish or starship: the profile, its state and minutes left"
SHELLS = ("bash", "zsh", "fish", "starship")

# The segment, in POSIX sh (bash and zsh run it too): the profile this shell's
# AWS_CONTAINER_CREDENTIALS_FULL_URI names (else tipd's default), looked up in the file; shown only while the
# tipd that wrote the file is alive (`kill -0`, a built-in). Numbers are checked before any arithmetic (bash
# evaluates array subscripts inside $((...))). The time is $EPOCHSECONDS (bash 5, zsh/datetime) when the
# shell has it, else one `date`.
_BODY = r"""__tipd_prompt_update() {
  TIPD_PROMPT=
  local f=@FILE@ kind name st ex want def pid line left now
  [ -r "$f" ] || return 0
  want=${AWS_CONTAINER_CREDENTIALS_FULL_URI:-}
  case $want in
    http://127.0.0.1:*/v1/*/*) want=${want%%\?*}; want=${want##*/} ;;
    *) want= ;;
  esac
  pid= line= left=0
  { while read -r kind name st ex; do
      case $kind in
        tipd-prompt) [ "$name" = 1 ] || return 0; pid=$st ;;
        default) [ -n "$want" ] || want=$name ;;
        profile) [ "$name" = "$want" ] && line="$name $st" && left=$ex ;;
      esac
    done < "$f"; } 2>/dev/null
  case $pid in ''|*[!0-9]*) return 0 ;; esac
  [ -n "$line" ] && kill -0 "$pid" 2>/dev/null || return 0
  case $left in ''|0|*[!0-9]*) ;; *)
    now=${EPOCHSECONDS:-}
    case $now in ''|*[!0-9]*) now=$(date +%s) ;; esac
    left=$((left - now))
    if [ "$left" -gt 0 ]; then line="$line $((left / 60))m"; else line="$line expired"; fi ;;
  esac
  TIPD_PROMPT=$line
}"""

_BASH = """# tipd prompt segment for bash (tipctl prompt --shell bash). Reads @FILE@ with built-ins only.
# $TIPD_PROMPT is set before each prompt: "PROFILE STATE 42m", or empty when tipd is not running.
@BODY@
case ";${PROMPT_COMMAND:-};" in
  *";__tipd_prompt_update;"*) ;;
  *) PROMPT_COMMAND="__tipd_prompt_update${PROMPT_COMMAND:+;$PROMPT_COMMAND}" ;;
esac
# Show it: PS1='${TIPD_PROMPT:+[$TIPD_PROMPT] }'"$PS1"
"""

_ZSH = """# tipd prompt segment for zsh (tipctl prompt --shell zsh). Reads @FILE@ with built-ins only.
# $TIPD_PROMPT is set before each prompt: "PROFILE STATE 42m", or empty when tipd is not running.
zmodload -F zsh/datetime p:EPOCHSECONDS 2>/dev/null
@BODY@
autoload -Uz add-zsh-hook && add-zsh-hook precmd __tipd_prompt_update
# Show it: setopt PROMPT_SUBST; PROMPT='${TIPD_PROMPT:+[$TIPD_PROMPT] }'"$PROMPT"
"""

# fish has no clock built-in (one `date` per prompt, only while credentials are held); `string`, `read`,
# `test` and `math` are built-ins, and a function called in a command substitution runs in the shell itself.
_FISH = r"""# tipd prompt segment for fish (tipctl prompt --shell fish). Reads @FILE@ with built-ins only.
# `tipd_prompt` prints "PROFILE STATE 42m", or nothing when tipd is not running.
function tipd_prompt --description 'tipd: the profile this shell uses, its state and minutes left'
    set -l f @FILE@
    test -r $f; or return 0
    set -l want
    if string match -qr '^http://127\.0\.0\.1:[0-9]+/v1/[^/]+/' -- "$AWS_CONTAINER_CREDENTIALS_FULL_URI"
        set want (string replace -r '\?.*$' '' -- "$AWS_CONTAINER_CREDENTIALS_FULL_URI" | string replace -r '^.*/' '')
    end
    set -l pid ''
    set -l line ''
    set -l left 0
    begin
        while read -l kind name st ex
            switch $kind
                case tipd-prompt
                    test "$name" = 1; or return 0
                    set pid $st
                case default
                    test -n "$want"; or set want $name
                case profile
                    if test "$name" = "$want"
                        set line "$name $st"
                        set left $ex
                    end
            end
        end <$f
    end 2>/dev/null
    string match -qr '^[0-9]+$' -- "$pid"; or return 0
    test -n "$line"; or return 0
    if test -d /proc/self
        test -d /proc/$pid; or return 0
    else
        command kill -0 $pid 2>/dev/null; or return 0
    end
    if string match -qr '^[1-9][0-9]*$' -- "$left"
        set left (math $left - (date +%s))
        if test $left -gt 0
            set line "$line "(math -s0 "$left / 60")m
        else
            set line "$line expired"
        end
    end
    printf '%s' $line
end
# Show it, e.g.: function fish_right_prompt; tipd_prompt; end
"""

_STARSHIP = """# tipd prompt segment for starship (tipctl prompt --shell starship): add to ~/.config/starship.toml.
# One `sh` per prompt reads @FILE@ with built-ins (and one `date`); empty output hides the module.
[custom.tipd]
description = "tipd: the profile this shell uses, its state and minutes left"
when = true
shell = ["sh"]
format = "[$output]($style) "
style = "bold yellow"
command = '''
@BODY@
__tipd_prompt_update
printf '%s' "$TIPD_PROMPT"
'''
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("prompt", help=HELP, description=HELP + ". tipd keeps a small file current (only profile "
                       "names, states and expiry times: nothing secret); the printed shell code reads it with shell "
                       "built-ins, so a prompt starts no Python and asks the daemon nothing. It shows the profile "
                       "this shell's AWS_CONTAINER_CREDENTIALS_FULL_URI names (else the default one), and nothing "
                       "while tipd is not running. Install: bash/zsh: add the output to ~/.bashrc or ~/.zshrc "
                       "(or `eval \"$(tipctl prompt --shell bash)\"` there), fish: `tipctl prompt --shell fish > "
                       "~/.config/fish/functions/tipd_prompt.fish`, starship: append it to ~/.config/starship.toml. "
                       "See docs/shell.md.")
    p.add_argument("--shell", choices=SHELLS, help="the shell (default: detected like `tipctl env` does)")
    p.set_defaults(run=run)


def snippet(shell: str, path: str) -> str:
    from ..shells import quote

    if shell == "fish":
        return _FISH.replace("@FILE@", quote("fish", path))
    body = _BODY.replace("@FILE@", quote("sh", path))
    if shell == "starship":
        if "'''" in body:  # a path with three quotes in a row cannot sit in a TOML literal string
            from ..errors import ConfigError

            raise ConfigError(f"the runtime directory's path ({path}) cannot be written into starship's config")
        return _STARSHIP.replace("@BODY@", body).replace("@FILE@", path.replace("\n", " "))
    return (_ZSH if shell == "zsh" else _BASH).replace("@BODY@", body).replace("@FILE@", path.replace("\n", " "))


def run(args: argparse.Namespace) -> int:
    from ..paths import Paths
    from ..shells import detect

    shell = args.shell
    if shell is None:
        shell = detect()
        shell = shell if shell in SHELLS else "bash"  # sh and PowerShell: the bash code is the nearest
    print(snippet(shell, str(Paths.default().prompt_file)), end="")
    return 0
