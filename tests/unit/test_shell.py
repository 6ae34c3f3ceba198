"""Shell integration without a daemon: `tipctl env --shell` read back by the real shells, shell detection,
`tipctl completion` in real bash, zsh and fish, the prompt segment over prompt files written here, and the
daemon-side writer of the prompt file (tipd/promptfile.py) driven by the real change hub."""
from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.support.profiles import GOOD_CONFIG
from tests.support.shells import PROMPT_SHELLS, need, run_segment, run_starship
from tipd import promptfile, shells
from tipd.changes import Changes

CONFIG = 'default_profile = "work"' + GOOD_CONFIG + """[profiles."dev-2"]
issuer = "https://dev-123.okta.com/oauth2/default"
client_id = "0oa2"
application_arn = "arn:aws:sso::111122223333:application/ssoins-1111222233334444/apl-aaaabbbbccccdddd"
oidc_role_arn = "arn:aws:iam::111122223333:role/tip-oidc"
identity_enhanced_role_arn = "arn:aws:iam::111122223333:role/tip-enhanced"
region = "eu-west-1"
"""
TIPCTL = str(Path(sys.executable).parent / "tipctl")
NASTY = "a b'c\"d$HOME`x`\\e!f\n\u2019g\u2018 %s{}*?;|&<>"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    cfg = tmp_path / "config.toml"
    cfg.write_text(CONFIG)
    cfg.chmod(0o600)
    (tmp_path / "run").mkdir(mode=0o700)
    e = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TIPD_", "XDG_"))}
    e.update(TIPD_CONFIG=str(cfg), XDG_RUNTIME_DIR=str(tmp_path / "run"), XDG_STATE_HOME=str(tmp_path / "state"),
             HOME=str(tmp_path), PATH=f"{Path(TIPCTL).parent}{os.pathsep}{os.environ['PATH']}")
    return e


def sh(shell: str, script: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    argv = {"bash": ["bash", "--norc", "--noprofile", "-c"], "zsh": ["zsh", "-f", "-c"], "sh": ["dash", "-c"],
            "fish": ["fish", "--no-config", "-c"]}[shell]
    need(argv[0])
    return subprocess.run([*argv, script], env=env, capture_output=True, text=True, timeout=30)


# -- quoting and detection ----------------------------------------------------------------------------------
@pytest.mark.parametrize("shell", ["bash", "zsh", "sh", "fish"])
def test_each_shell_reads_back_exactly_the_value_it_was_given(shell: str) -> None:
    show = "printf %s $TIPD_T" if shell == "fish" else 'printf %s "$TIPD_T"'
    r = sh(shell, shells.set_var(shell, "TIPD_T", NASTY) + "\n" + show)
    assert r.returncode == 0 and r.stdout == NASTY and not r.stderr, r


@pytest.mark.parametrize("shell", ["bash", "zsh", "sh", "fish"])
def test_unset_removes_the_variables_and_is_quiet_when_they_are_not_set(shell: str) -> None:
    show = "set -q TIPD_A; or echo gone" if shell == "fish" else '[ -z "${TIPD_A+x}" ] && echo gone'
    script = "\n".join([shells.set_var(shell, "TIPD_A", "1"), shells.unset_vars(shell, ["TIPD_A", "TIPD_NEVER"]),
                        show])
    r = sh(shell, script)
    assert r.returncode == 0 and r.stdout == "gone\n" and not r.stderr, r


def test_powershell_single_quotes_double_every_quote_character_it_knows() -> None:
    # PowerShell is not installable here: its documented rule, checked as text (about_Quoting_Rules: the
    # typographic single quotes delimit strings too)
    assert shells.set_var("powershell", "X", "it's") == "$Env:X = 'it''s'"
    assert shells.quote("powershell", "a\u2019b\u2018c$x`") == "'a\u2019\u2019b\u2018\u2018c$x`'"
    assert shells.unset_vars("powershell", ["A", "B"]) == "Remove-Item Env:A, Env:B -ErrorAction SilentlyContinue"


@pytest.mark.parametrize(("parent", "environ", "expected"), [
    ("fish\n", {"SHELL": "/bin/bash"}, "fish"),  # the shell that runs tipctl wins over the login shell
    ("bash", {"SHELL": "/usr/bin/fish"}, "bash"),
    ("python3", {"SHELL": "/usr/bin/zsh"}, "zsh"),  # an unknown parent: $SHELL
    ("sudo", {"SHELL": "/bin/dash"}, "sh"),
    ("pwsh", {}, "powershell"),
    ("", {"PSModulePath": r"C:\x"}, "powershell"),
    ("", {}, "sh"),
    ("-zsh", {}, "zsh"),
])
def test_the_shell_is_the_parent_process_else_shell_else_powershell_else_posix(
        parent: str, environ: dict[str, str], expected: str,
) -> None:
    assert shells.detect(environ, parent=parent) == expected


def test_tipctl_env_run_by_fish_speaks_fish_and_fish_sources_it(env: dict[str, str]) -> None:
    r = sh("fish", "tipctl env | source; and printf '%s\\n' $AWS_CONTAINER_CREDENTIALS_FULL_URI "
           "$AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", env)
    assert r.returncode == 0 and not r.stderr, r
    assert r.stdout.splitlines()[0] == "http://127.0.0.1:9911/v1/credentials/work"


@pytest.mark.parametrize("shell", ["bash", "zsh", "sh"])
def test_eval_env_then_eval_unset_leaves_no_tipd_variable(env: dict[str, str], shell: str) -> None:
    r = sh(shell, f'eval "$(tipctl env --shell {shell} dev-2)"; printf "%s\\n" "$AWS_CONTAINER_CREDENTIALS_FULL_URI"; '
           f'eval "$(tipctl env --shell {shell} --unset)"; env | grep ^AWS_CONTAINER || echo none', env)
    assert r.returncode == 0 and not r.stderr, r
    assert r.stdout.splitlines() == ["http://127.0.0.1:9911/v1/credentials/dev-2", "none"]


def test_env_for_powershell_and_fish_sets_what_the_json_says(env: dict[str, str]) -> None:
    values = json.loads(subprocess.run([TIPCTL, "env", "--json"], env=env, capture_output=True, text=True).stdout)
    ps = subprocess.run([TIPCTL, "env", "--shell", "powershell"], env=env, capture_output=True, text=True).stdout
    assert ps.splitlines()[0].startswith("Remove-Item Env:AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, ")
    assert [ln for ln in ps.splitlines()[1:]] == [f"$Env:{k} = '{v}'" for k, v in values.items()]


HEAVY = ("pydantic", "aiohttp", "authlib", "jwt", "boto3", "botocore", "aiobotocore")
PROBE = ("import atexit, sys\n"
         f"atexit.register(lambda: print('IMPORTED', sorted(m for m in {HEAVY!r} if m in sys.modules), "
         "file=sys.stderr))\nfrom tipd.cli.main import main\nsys.exit(main(sys.argv[1:]))\n")


@pytest.mark.parametrize("args", [("env", "--shell", "fish"), ("env", "--unset"), ("prompt", "--shell", "zsh"),
                                  ("__complete", "profiles")])
def test_the_shell_commands_are_quick_commands(env: dict[str, str], args: tuple[str, ...]) -> None:
    r = subprocess.run([sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "IMPORTED []" in r.stderr, r


# -- completion ------------------------------------------------------------------------------------------------
def completion(shell: str, env: dict[str, str]) -> str:
    return subprocess.run([TIPCTL, "completion", shell], env=env, capture_output=True, text=True, check=True).stdout


def bash_complete(script: str, env: dict[str, str], *words: str) -> list[str]:
    quoted = " ".join(f"'{w}'" for w in words)
    r = sh("bash", script + f"\nCOMP_WORDS=(tipctl {quoted}); COMP_CWORD={len(words)}; _tipctl; "
           'printf "%s\\n" "${COMPREPLY[@]}"', env)
    assert r.returncode == 0 and not r.stderr, r
    return r.stdout.split()


def test_bash_completes_commands_subcommands_flags_choices_and_profile_names(
        env: dict[str, str], tmp_path: Path,
) -> None:
    s = completion("bash", env)
    assert "complete -o bashdefault -o default -F _tipctl tipctl" in s
    assert "prompt" in bash_complete(s, env, "") and "completion" in bash_complete(s, env, "")
    assert bash_complete(s, env, "compl") == ["completion"]
    assert bash_complete(s, env, "env", "") == ["work", "dev-2"]
    assert bash_complete(s, env, "env", "work", "") == []  # one profile is all `env` takes
    assert bash_complete(s, env, "env", "--sh") == ["--shell"]
    assert bash_complete(s, env, "env", "--shell", "") == list(shells.SHELLS)
    assert bash_complete(s, env, "s3ag", "") == ["env", "credential-process", "list"]
    assert bash_complete(s, env, "s3ag", "list", "--profile", "d") == ["dev-2"]
    assert bash_complete(s, env, "completion", "") == ["bash", "zsh", "fish"]
    other = tmp_path / "other.toml"
    other.write_text('[profiles.elsewhere]\nissuer = "x"\n')
    assert bash_complete(s, env, "profiles", "--config", str(other), "--json", "") == []
    assert bash_complete(s, env, "env", "--config", str(other), "") == ["elsewhere"]  # names from that file


def test_zsh_completion_offers_the_same(env: dict[str, str]) -> None:
    s = completion("zsh", env)
    assert s.startswith("#compdef tipctl\n")
    # compsys itself needs a terminal; its two entry points are stubbed, the script's logic runs in real zsh
    harness = ('compdef() { :; }; _files() { print -r -- FILES; }; compadd() { [[ $1 == -- ]] && shift; '
               'print -r -- "${(j: :)@}"; }\n' + s +
               '\nt() { words=(tipctl "$@"); CURRENT=${#words}; _tipctl; }\n'
               't ""; t env ""; t env --shell ""; t s3ag ""; t login --json ""; t env --config ""')
    r = sh("zsh", harness, env)
    assert r.returncode == 0 and not r.stderr, r
    lines = r.stdout.splitlines()
    assert "env" in lines[0].split() and "completion" in lines[0].split()
    assert lines[1:] == ["work dev-2", " ".join(shells.SHELLS), "env credential-process list", "work dev-2", "FILES"]


def test_zsh_compinit_finds_the_script_in_fpath_and_when_sourced(env: dict[str, str], tmp_path: Path) -> None:
    fp = tmp_path / "fpath"
    fp.mkdir()
    (fp / "_tipctl").write_text(completion("zsh", env))
    stub = 'compadd() { [[ $1 == -- ]] && shift; print -r -- "${(j: :)@}"; }'
    # the real compinit maps tipctl to _tipctl from the file's #compdef line; the first call autoloads it
    r = sh("zsh", f"fpath=({fp} $fpath); autoload -Uz compinit; compinit -u -d {tmp_path}/zcd; {stub}; "
           'print -r -- ${_comps[tipctl]}; words=(tipctl env ""); CURRENT=3; ${_comps[tipctl]}', env)
    assert r.returncode == 0 and not r.stderr and r.stdout.splitlines() == ["_tipctl", "work dev-2"], r
    r = sh("zsh", f"autoload -Uz compinit; compinit -u -d {tmp_path}/zcd2; source {fp}/_tipctl; {stub}; "
           'print -r -- ${_comps[tipctl]}; words=(tipctl s3ag ""); CURRENT=3; ${_comps[tipctl]}', env)
    assert r.returncode == 0 and not r.stderr and r.stdout.splitlines() == ["_tipctl", "env credential-process list"]


def test_fish_completion_through_fishs_own_engine(env: dict[str, str], tmp_path: Path) -> None:
    f = tmp_path / "tipctl.fish"
    f.write_text(completion("fish", env))

    def complete(line: str) -> list[str]:
        r = sh("fish", f"source {f}; complete -C {shells.quote('fish', line)}", env)
        assert r.returncode == 0 and not r.stderr, r
        return [ln.split("\t")[0] for ln in r.stdout.splitlines()]

    assert "env" in complete("tipctl ") and "prompt" in complete("tipctl ")
    assert complete("tipctl env ") == ["dev-2", "work"]
    assert complete("tipctl env --shell ") == sorted(shells.SHELLS)
    assert complete("tipctl s3ag ") == ["credential-process", "env", "list"]
    assert complete("tipctl s3ag list --profile w") == ["work"]
    assert "--unset" in complete("tipctl env --")


def test_profile_names_at_tab_time_are_fast_and_silent_on_a_broken_config(env: dict[str, str], tmp_path: Path) -> None:
    r = subprocess.run([TIPCTL, "__complete", "profiles"], env=env, capture_output=True, text=True)
    assert r.stdout.split() == ["work", "dev-2"]
    (tmp_path / "bad.toml").write_text("[profiles\n")
    for config in (str(tmp_path / "bad.toml"), str(tmp_path / "missing.toml")):
        r = subprocess.run([TIPCTL, "__complete", "profiles", "--config", config], env=env, capture_output=True,
                           text=True)
        assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


# -- the prompt segment over prompt files ------------------------------------------------------------------
def write_prompt(env: dict[str, str], files: dict[str, str]) -> Path:
    d = Path(env["XDG_RUNTIME_DIR"]) / "tipd" / "prompt"
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name, text in files.items():
        (d / name).write_text(text)
    return d


def segment(shell: str, env: dict[str, str], tmp_path: Path, **extra: str) -> str:
    code = subprocess.run([TIPCTL, "prompt", "--shell", shell], env=env, capture_output=True, text=True, check=True)
    r = run_segment(shell, code.stdout, dict(env, **extra), tmp_path)
    assert r.returncode == 0 and not r.stderr, r
    return r.stdout


@pytest.mark.parametrize("shell", PROMPT_SHELLS)
def test_the_segment_shows_the_profile_this_shell_uses_its_state_and_minutes_left(
        shell: str, env: dict[str, str], tmp_path: Path,
) -> None:
    now = int(time.time())
    files = promptfile.render(os.getpid(), "work", [("work", "fresh", now + 42 * 60 + 30),
                                                    ("dev-2", "login-required", 0), ("old", "degraded", now - 5)])
    write_prompt(env, {k: v.decode() for k, v in files.items()})
    assert segment(shell, env, tmp_path) == "work fresh 42m"
    uri = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
    dev = "http://127.0.0.1:9911/v1/credentials/dev-2"
    assert segment(shell, env, tmp_path, **{uri: dev}) == "dev-2 login-required"
    assert segment(shell, env, tmp_path, **{uri: "http://127.0.0.1:9911/v1/s3ag/old?target=s3%3A%2F%2Fb%2F"}) == \
        "old degraded expired"
    for unknown in ("gone", "_tipd", "..", "%2e%2e"):
        assert segment(shell, env, tmp_path, **{uri: f"http://127.0.0.1:9911/v1/credentials/{unknown}"}) == ""
    assert segment(shell, env, tmp_path, **{uri: "http://example.com/v1/credentials/dev-2"}) == "work fresh 42m"


@pytest.mark.parametrize("shell", PROMPT_SHELLS)
@pytest.mark.parametrize("files", [
    {},  # no files: tipd is not running
    {"_tipd": "tipd-prompt 1 {dead} work\n", "work": "fresh 0\n"},  # left by a tipd killed with SIGKILL
    {"_tipd": "tipd-prompt 2 {pid} work\n", "work": "fresh 0\n"},  # a format this segment does not know
    {"_tipd": "tipd-prompt 1 {pid} work\n", "work": "fresh 1+a[$(touch {pwned})]\n"},  # no arithmetic on junk
    {"_tipd": "tipd-prompt 1 {pid} ../../x\n"},  # a default that is no profile name
    {"_tipd": "tipd-prompt 1 {pid} work\n", "work": "$(touch {pwned}) 5\n"},
    {"_tipd": "tipd-prompt 1 {pid} work\n"},  # the profile's file not (yet) there
    {"_tipd": "\x00\xff garbage\n\n", "work": "fresh 0\n"},
    {"_tipd": ""},
])
def test_missing_stale_or_odd_files_show_nothing_and_never_an_error(
        shell: str, files: dict[str, str], env: dict[str, str], tmp_path: Path,
) -> None:
    pwned = tmp_path / "pwned"
    dead = subprocess.Popen(["true"])
    dead.wait()
    write_prompt(env, {k: v.format(dead=dead.pid, pid=os.getpid(), pwned=pwned) for k, v in files.items()})
    junk_expiry = "1+a" in files.get("work", "")
    assert segment(shell, env, tmp_path) == ("work fresh" if junk_expiry else "")
    assert not pwned.exists()


def test_the_real_starship_shows_the_module_and_hides_it_when_tipd_is_not_running(
        env: dict[str, str], tmp_path: Path,
) -> None:
    config = tmp_path / "starship.toml"
    config.write_text(subprocess.run([TIPCTL, "prompt", "--shell", "starship"], env=env, capture_output=True,
                                     text=True, check=True).stdout)
    assert run_starship(config, env).stdout == ""  # no files: the module is hidden (empty output)
    files = promptfile.render(os.getpid(), "work", [("work", "fresh", int(time.time()) + 600 + 30)])
    write_prompt(env, {k: v.decode() for k, v in files.items()})
    r = run_starship(config, env)
    assert r.returncode == 0 and r.stdout == "work fresh 10m ", r  # the format's trailing space after it


def test_the_segment_is_shown_only_where_the_prompt_puts_it(env: dict[str, str], tmp_path: Path) -> None:
    code = subprocess.run([TIPCTL, "prompt", "--shell", "bash"], env=env, capture_output=True, text=True).stdout
    assert "PROMPT_COMMAND=\"__tipd_prompt_update" in code and "\nPS1=" not in code  # the user's PS1 is theirs
    twice = run_segment("bash", code + code + 'printf "%s" "$PROMPT_COMMAND"\n', env, tmp_path)
    assert twice.stdout.count("__tipd_prompt_update") == 1  # sourcing it again does not add a second hook


# -- the writer --------------------------------------------------------------------------------------------
class _Session:
    def __init__(self, state: str, expires: str | None = None) -> None:
        self.state, self.expires = state, expires

    def status(self) -> dict[str, Any]:
        return {"state": self.state, "credentials_expire": self.expires, "user": "alice@example.com"}


class _Broker:
    def __init__(self) -> None:
        self.changes = Changes()
        self.sessions: dict[str, _Session] = {"work": _Session("signed-out")}
        self.accounts: dict[str, _Session] = {}
        self.default_profile: str | None = "work"


def test_the_writer_rewrites_a_file_only_when_what_it_says_changes_and_removes_them_at_the_end(
        tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    d = run / "prompt"
    d.mkdir()
    (d / "left-by-a-killed-tipd").write_text("fresh 1\n")

    async def scenario() -> None:
        b = _Broker()
        task = asyncio.create_task(promptfile.keep(b, d, 4242))

        async def until(pred: Any) -> None:
            # the writer writes in a worker thread: wait for what it leaves, with a deadline a loaded machine meets
            deadline = asyncio.get_running_loop().time() + 30
            while not pred():
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError("the writer did not get there")
                await asyncio.sleep(0.005)

        await until(lambda: (d / "_tipd").exists())
        assert sorted(os.listdir(d)) == ["_tipd", "work"]
        assert (d / "_tipd").read_text() == "tipd-prompt 1 4242 work\n"
        assert (d / "work").read_text() == "signed-out 0\n"
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
        assert {stat.S_IMODE((d / n).stat().st_mode) for n in os.listdir(d)} == {0o600}
        first = (d / "work").stat().st_ino, (d / "_tipd").stat().st_ino
        b.changes.signal()  # a change no prompt can see: the files stay as they are
        await until(lambda: b.changes.version == 1)
        await asyncio.sleep(0)
        assert ((d / "work").stat().st_ino, (d / "_tipd").stat().st_ino) == first
        b.sessions["work"] = _Session("fresh", "2030-01-01T00:00:00Z")
        b.sessions["bad name"] = _Session("fresh")
        b.sessions["dev"] = _Session("signed-out")
        b.accounts["prod-admin"] = _Session("fresh", "2030-01-01T00:10:00Z")  # an account profile
        b.changes.signal()
        await until(lambda: (d / "work").read_text() != "signed-out 0\n")
        assert (d / "work").read_text() == "fresh 1893456000\n"
        assert (d / "_tipd").stat().st_ino == first[1]  # unchanged: not rewritten
        await until(lambda: (d / "dev").exists())
        assert (d / "prod-admin").read_text() == "fresh 1893456600\n"
        del b.sessions["dev"], b.accounts["prod-admin"]
        b.default_profile = None
        b.changes.signal()
        await until(lambda: not (d / "dev").exists())
        assert sorted(os.listdir(d)) == ["_tipd", "work"]  # no "bad name", no temp files
        await until(lambda: (d / "_tipd").read_text() == "tipd-prompt 1 4242 -\n")
        assert "alice" not in "".join((d / n).read_text() for n in os.listdir(d))  # names, states, times only
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not d.exists()

    asyncio.run(scenario())
