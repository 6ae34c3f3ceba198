"""`tipctl prompt`: the shell code of a prompt segment (profile, state, minutes left) that reads the files tipd
keeps current (tipd/promptfile.py) with shell built-ins: no Python, no daemon round trip per prompt."""
from __future__ import annotations

import argparse
from typing import Any

HELP = "print a prompt segment for bash, zsh, fish or starship: the profile, its state and minutes left"
SHELLS = ("bash", "zsh", "fish", "starship")

# The segment, in POSIX sh (bash and zsh run it too): the profile this shell's AWS_CONTAINER_CREDENTIALS_FULL_URI
# names (else tipd's default), read from its file; shown only while the tipd that wrote the files is alive
# (`kill -0`, a built-in). Names are checked before they become a path, numbers before any arithmetic (bash
# evaluates array subscripts inside $((...))). The time is $EPOCHSECONDS (bash 5, zsh/datetime) when the
# shell has it, else one `date`.
_BODY = r"""__tipd_prompt_update() {
  TIPD_PROMPT=
  local d=@DIR@ magic ver pid want st ex now
  { read -r magic ver pid want < "$d/_tipd"; } 2>/dev/null || return 0
  [ "$magic $ver" = "tipd-prompt 1" ] || return 0
  case $pid in ''|*[!0-9]*) return 0 ;; esac
  kill -0 "$pid" 2>/dev/null || return 0
  case ${AWS_CONTAINER_CREDENTIALS_FULL_URI:-} in
    http://127.0.0.1:*/v1/*/*)
      want=${AWS_CONTAINER_CREDENTIALS_FULL_URI%%\?*}; want=${want##*/} ;;
  esac
  case $want in [A-Za-z0-9]*) ;; *) return 0 ;; esac
  case $want in */*) return 0 ;; esac
  { read -r st ex < "$d/$want"; } 2>/dev/null || return 0
  case $st in ''|*[!a-z-]*) return 0 ;; esac
  case $ex in ''|0|*[!0-9]*) TIPD_PROMPT="$want $st"; return 0 ;; esac
  now=${EPOCHSECONDS:-}
  case $now in ''|*[!0-9]*) now=$(date +%s) ;; esac
  ex=$((ex - now))
  if [ "$ex" -gt 0 ]; then TIPD_PROMPT="$want $st $((ex / 60))m"; else TIPD_PROMPT="$want $st expired"; fi
}"""

_BASH = """# tipd prompt segment for bash (tipctl prompt --shell bash). Reads @DIR@ with built-ins only.
# $TIPD_PROMPT is set before each prompt: "PROFILE STATE 42m", or empty when tipd is not running.
@BODY@
case ";${PROMPT_COMMAND:-};" in
  *";__tipd_prompt_update;"*) ;;
  *) PROMPT_COMMAND="__tipd_prompt_update${PROMPT_COMMAND:+;$PROMPT_COMMAND}" ;;
esac
# Show it: PS1='${TIPD_PROMPT:+[$TIPD_PROMPT] }'"$PS1"
"""

_ZSH = """# tipd prompt segment for zsh (tipctl prompt --shell zsh). Reads @DIR@ with built-ins only.
# $TIPD_PROMPT is set before each prompt: "PROFILE STATE 42m", or empty when tipd is not running.
zmodload -F zsh/datetime p:EPOCHSECONDS 2>/dev/null
@BODY@
autoload -Uz add-zsh-hook && add-zsh-hook precmd __tipd_prompt_update
# Show it: setopt PROMPT_SUBST; PROMPT='${TIPD_PROMPT:+[$TIPD_PROMPT] }'"$PROMPT"
"""

# fish: `string`, `read`, `test`, `math` and `path` are built-ins (a redirection that fails warns whatever
# 2>/dev/null says, hence `test -r` first), and a function called in a command
# substitution runs in the shell itself. fish has no clock variable: the time is a file's mtime plus its age
# (`path mtime`, fish 3.5+, no process), else one `date`.
_FISH = r"""# tipd prompt segment for fish (tipctl prompt --shell fish). Reads @DIR@ with built-ins only.
# `tipd_prompt` prints "PROFILE STATE 42m", or nothing when tipd is not running.
function tipd_prompt --description 'tipd: the profile this shell uses, its state and minutes left'
    set -l d @DIR@
    set -l head
    test -r $d/_tipd; and read -a head <$d/_tipd; or return 0
    test "$head[1] $head[2]" = "tipd-prompt 1"; or return 0
    string match -qr '^[0-9]+$' -- "$head[3]"; or return 0
    if test -d /proc/self
        test -d /proc/$head[3]; or return 0
    else
        command kill -0 $head[3] 2>/dev/null; or return 0
    end
    set -l want $head[4]
    if string match -qr '^http://127\.0\.0\.1:[0-9]+/v1/[^/]+/' -- "$AWS_CONTAINER_CREDENTIALS_FULL_URI"
        set want (string replace -r '\?.*$' '' -- "$AWS_CONTAINER_CREDENTIALS_FULL_URI" | string replace -r '^.*/' '')
    end
    string match -qr '^[A-Za-z0-9][A-Za-z0-9_.-]*$' -- "$want"; or return 0
    set -l rec
    test -r $d/$want; and read -a rec <$d/$want; or return 0
    string match -qr '^[a-z-]+$' -- "$rec[1]"; or return 0
    if not string match -qr '^[1-9][0-9]*$' -- "$rec[2]"
        printf '%s %s' $want $rec[1]
        return 0
    end
    set -l now
    if builtin -q path
        set now (math (path mtime $d/_tipd) + (path mtime --relative $d/_tipd))
    else
        set now (date +%s)
    end
    set -l left (math $rec[2] - $now)
    if test $left -gt 0
        printf '%s %s %sm' $want $rec[1] (math -s0 $left / 60)
    else
        printf '%s %s expired' $want $rec[1]
    end
end
# Show it, e.g.: function fish_right_prompt; tipd_prompt; end
"""

_STARSHIP = """# tipd prompt segment for starship (tipctl prompt --shell starship): add to ~/.config/starship.toml.
# One `sh` per prompt reads @DIR@ with built-ins (and one `date`); empty output hides the module.
[custom.tipd]
description = "tipd: the profile this shell uses, its state and minutes left"
when = true
shell = ["sh"]
format = "([$output]($style) )"  # the parentheses: nothing at all when $output is empty
style = "bold yellow"
command = '''
@BODY@
__tipd_prompt_update
printf '%s' "$TIPD_PROMPT"
'''
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("prompt", help=HELP, description=HELP + ". tipd keeps a few tiny files current (only "
                       "profile names, states and expiry times: nothing secret); the printed shell code reads two of "
                       "them with shell "
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
        return _FISH.replace("@DIR@", quote("fish", path))
    body = _BODY.replace("@DIR@", quote("sh", path))
    if shell == "starship":
        if "'''" in body:  # a path with three quotes in a row cannot sit in a TOML literal string
            from ..errors import ConfigError

            raise ConfigError(f"the runtime directory's path ({path}) cannot be written into starship's config")
        return _STARSHIP.replace("@BODY@", body).replace("@DIR@", path.replace("\n", " "))
    return (_ZSH if shell == "zsh" else _BASH).replace("@BODY@", body).replace("@DIR@", path.replace("\n", " "))


def run(args: argparse.Namespace) -> int:
    from ..paths import Paths
    from ..shells import detect

    shell = args.shell
    if shell is None:
        shell = detect()
        shell = shell if shell in SHELLS else "bash"  # sh and PowerShell: the bash code is the nearest
    print(snippet(shell, str(Paths.default().prompt_dir)), end="")
    return 0
