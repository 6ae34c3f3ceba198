"""Shell syntax: which shell `tipctl` is printing for, and how each one sets, clears and quotes a variable.
Standard library only: `tipctl env` is a quick command.

Quoting, per each shell's own manual:
- POSIX sh, bash, zsh: single quotes keep every character literally; a `'` is closed, escaped, reopened
  (`shlex.quote`). https://pubs.opengroup.org/onlinepubs/9699919799/utilities/V3_chap02.html#tag_18_02_02
- fish: in single quotes the only escapes are `\\'` and `\\\\`.
  https://fishshell.com/docs/current/language.html#quotes
- PowerShell: in a single-quoted (verbatim) string a quote is written twice, and the typographic single
  quotes (U+2018, U+2019, U+201A, U+201B) count as quotes too, so they are doubled as well.
  https://learn.microsoft.com/powershell/module/microsoft.powershell.core/about/about_quoting_rules"""
from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping

#: the shells `--shell` takes; `sh` is any POSIX shell (dash, ksh, busybox ash)
SHELLS = ("bash", "zsh", "sh", "fish", "powershell")
#: process names as the OS reports them, to the syntax they speak
_NAMES = {"bash": "bash", "zsh": "zsh", "fish": "fish", "sh": "sh", "dash": "sh", "ksh": "sh", "mksh": "sh",
          "ash": "sh", "busybox": "sh", "pwsh": "powershell", "powershell": "powershell"}

DETECT_RULE = ("Without --shell, the shell is the one that runs tipctl (its parent process, read from /proc on "
               "Linux), else the one $SHELL names, else PowerShell when $PSModulePath is set (Windows), else POSIX "
               "sh syntax, which bash and zsh also read.")


def known(name: str) -> str | None:
    """The syntax a shell named `name` (a path, a process name, `-bash` for a login shell) speaks."""
    base = os.path.basename(name.strip()).lstrip("-").lower()
    base = base.removesuffix(".exe")
    return _NAMES.get(base)


def _parent_name() -> str | None:
    """The parent process's name on Linux (one small read; elsewhere finding it would cost a `ps`)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        with open(f"/proc/{os.getppid()}/comm", encoding="utf-8", errors="replace") as f:
            return f.read(64)
    except OSError:
        return None


def detect(environ: Mapping[str, str] | None = None, parent: str | None = None) -> str:
    """See DETECT_RULE."""
    env = os.environ if environ is None else environ
    for name in (parent if parent is not None else _parent_name(), env.get("SHELL")):
        if name and (shell := known(name)) is not None:
            return shell
    return "powershell" if env.get("PSModulePath") and not env.get("SHELL") else "sh"


def quote(shell: str, value: str) -> str:
    if shell == "fish":
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if shell == "powershell":
        for q in ("'", "\u2018", "\u2019", "\u201a", "\u201b"):
            value = value.replace(q, q + q)
        return "'" + value + "'"
    return shlex.quote(value)


def set_var(shell: str, name: str, value: str) -> str:
    """One line that sets and exports `name` (names are plain identifiers: never quoted)."""
    if shell == "fish":
        return f"set -gx {name} {quote(shell, value)}"
    if shell == "powershell":
        return f"$Env:{name} = {quote(shell, value)}"
    return f"export {name}={quote(shell, value)}"


def unset_vars(shell: str, names: list[str]) -> str:
    """One line that removes `names` from the environment, quietly when one is not set."""
    if shell == "fish":
        return f"set -e {' '.join(names)} 2>/dev/null; true"
    if shell == "powershell":
        return f"Remove-Item {', '.join(f'Env:{n}' for n in names)} -ErrorAction SilentlyContinue"
    return f"unset {' '.join(names)}"


