"""tipd as a per-user service, and the variables that point every AWS SDK at it, set once for the user.

Linux: a systemd user unit (`tipd.service`, Type=notify, sandboxed), a socket unit (`tipd.socket`) that
holds the credential port across restarts, and an environment.d(5) file.
macOS: a launchd agent that runs tipd (its `Sockets` hold the port), and a second one that
`launchctl setenv`s the variables at each login (launchctl setenv alone lasts only until logout).

The templates are package data (tipd/templates/) so that a wheel install has them; the repository's
systemd/ and launchd/ directories hold the same text for people who install by hand, and a test keeps
the two identical. (setuptools data-files would land somewhere under sys.prefix that a program cannot
find reliably, and nowhere at all in an editable install.)"""
from __future__ import annotations

import os
import plistlib
import re
import shlex
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ConfigError, TipdError
from .paths import APP, Paths
from .sdkenv import FULL_URI, TOKEN_FILE

PLATFORMS = ("linux", "macos")
UNIT = "tipd.service"
SOCKET = "tipd.socket"
LABEL = "tipd"
ENV_LABEL = "tipd.env"
#: `systemctl --user enable --now` waits for READY=1 (the unit's start timeout is 90 s)
COMMAND_TIMEOUT = 120.0


def running_platform() -> str:
    return "macos" if sys.platform == "darwin" else "linux"


def template(name: str) -> str:
    return (resources.files(__package__) / "templates" / name).read_text(encoding="utf-8")


def paths_for(platform: str) -> Paths:
    """Where tipd keeps its files on `platform`: the running OS's real answer, or (to generate the other
    platform's files, for tests and dry runs) what platformdirs would say there."""
    if platform == running_platform():
        return Paths.default()
    import platformdirs.macos
    import platformdirs.unix

    dirs = platformdirs.macos.MacOS(APP) if platform == "macos" else platformdirs.unix.Unix(APP)
    with warnings.catch_warnings():  # the runtime directory is not used for the other platform's files
        warnings.simplefilter("ignore")
        return Paths(config_dir=Path(dirs.user_config_dir), state_dir=Path(dirs.user_state_dir),
                     runtime_dir=Path(dirs.user_runtime_dir))


def tipd_executable() -> Path:
    """The tipd installed beside this tipctl (same venv), else the one on PATH; absolute."""
    beside = Path(sys.executable).parent / "tipd"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside.absolute()
    found = shutil.which("tipd")
    if found:
        return Path(found).absolute()
    raise ConfigError(f"cannot find the tipd executable (not in {beside.parent}, not on PATH): "
                      "install tipd first (python3 -m pip install .)")


@dataclass(frozen=True)
class Layout:
    """The files `install` writes for one platform, by role. Uninstall and status need only this."""

    platform: str
    paths: Paths

    @classmethod
    def of(cls, platform: str) -> Layout:
        if platform not in PLATFORMS:
            raise ConfigError(f"unknown platform {platform!r} (choose {' or '.join(PLATFORMS)})")
        return cls(platform, paths_for(platform))

    @property
    def files(self) -> dict[str, Path]:
        if self.platform == "linux":
            config_home = self.paths.config_dir.parent  # $XDG_CONFIG_HOME, as tipd itself resolves it
            return {"unit": config_home / "systemd" / "user" / UNIT,
                    "socket": config_home / "systemd" / "user" / SOCKET,
                    "environment": config_home / "environment.d" / "60-tipd.conf"}
        agents = Path.home() / "Library" / "LaunchAgents"
        return {"agent": agents / f"{LABEL}.plist", "environment": agents / f"{ENV_LABEL}.plist"}

    @property
    def base(self) -> Path:
        """The directory the files' own directories live in (uninstall removes no higher)."""
        return self.paths.config_dir.parent if self.platform == "linux" else Path.home()

    @property
    def wants_links(self) -> dict[str, Path]:
        """The symlinks `systemctl --user enable` makes (Linux), by the role of the file they point to."""
        if self.platform != "linux":
            return {}
        units = self.files["unit"].parent
        return {"unit": units / "default.target.wants" / UNIT, "socket": units / "sockets.target.wants" / SOCKET}

    @property
    def check(self) -> list[str]:
        """Commands a person runs to see the service."""
        if self.platform == "linux":
            return ["systemctl --user status tipd", "journalctl --user -u tipd -f", "tipctl status"]
        return [f"launchctl print gui/{os.getuid()}/{LABEL}", f"tail -f {shlex.quote(str(self.paths.log_file))}",
                "tipctl status"]


# ---- rendering ------------------------------------------------------------------------------------------

def render(layout: Layout, config_path: str | None = None,
           profile: str | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """The content of every file install writes, by role, and the SDK variables they set (what
    `tipctl env` prints). Reads the config: its port and default profile."""
    from .config import load_config
    from .sdkenv import container_variables

    config, path = load_config(config_path)
    variables = container_variables(config.endpoint(), layout.paths, profile)
    args = [str(tipd_executable())]
    if config_path or os.environ.get("TIPD_CONFIG"):  # the service will not have $TIPD_CONFIG: pass it on
        args += ["--config", str(path.absolute())]
    port = str(config.server.port)
    if layout.platform == "linux":
        files = {"unit": _unit(layout.paths, args), "socket": _fill(template("tipd.socket.in"), {"PORT": port}),
                 "environment": _environment_d(variables)}
    else:
        files = {"agent": _agent_plist(layout.paths, args, port), "environment": _env_agent_plist(variables)}
    return files, variables


def _fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    left = re.search(r"@[A-Z_]+@", text)
    assert left is None, f"template value {left.group()} not filled"
    return text


def _sd_quote(value: str) -> str:
    """One word of a unit file setting: % is a specifier there, whitespace splits words."""
    _plain_path_chars(value)
    value = value.replace("%", "%%")
    return f'"{value}"' if re.search(r"[\s']", value) else value


def _plain_path_chars(value: str) -> None:
    bad = sorted(set(value) & set('$"\\`\n\r'))
    if bad:
        raise ConfigError(f"{value!r} contains {' '.join(bad)}, which the service files cannot carry "
                          "literally; use a path without it")


def _unit(paths: Paths, args: list[str]) -> str:
    return _fill(template("tipd.service.in"), {
        "EXEC_START": " ".join(_sd_quote(a) for a in args),
        "XDG_CONFIG_HOME": _sd_quote(f"XDG_CONFIG_HOME={paths.config_dir.parent}"),
        "XDG_STATE_HOME": _sd_quote(f"XDG_STATE_HOME={paths.state_dir.parent}"),
        "STATE_DIR": _sd_quote(str(paths.state_dir)),
    })


def _environment_d(variables: dict[str, str]) -> str:
    def value(v: str) -> str:  # environment.d expands $ and strips quotes like a shell
        _plain_path_chars(v)
        return f'"{v}"' if re.search(r"[\s'#]", v) else v

    return _fill(template("60-tipd.conf.in"), {"FULL_URI": value(variables[FULL_URI]),
                                               "TOKEN_FILE": value(variables[TOKEN_FILE])})


def _plist(name: str, values: dict[str, Any]) -> dict[str, Any]:
    def sub(v: Any) -> Any:
        if isinstance(v, str):
            return values[v.strip("@")] if re.fullmatch(r"@[A-Z_]+@", v) else v
        if isinstance(v, list):
            return [sub(x) for x in v]
        if isinstance(v, dict):
            return {k: sub(x) for k, x in v.items()}
        return v

    data: dict[str, Any] = sub(plistlib.loads(template(name).encode()))
    return data


def _agent_plist(paths: Paths, args: list[str], port: str) -> str:
    data = _plist("tipd.plist.in", {"LABEL": LABEL, "TIPD": args[0], "LOG_FILE": str(paths.log_file), "PORT": port})
    data["ProgramArguments"] += args[1:]  # --config PATH, when given
    return plistlib.dumps(data, sort_keys=False).decode()


def _env_agent_plist(variables: dict[str, str]) -> str:
    data = _plist("tipd.env.plist.in", {"LABEL": ENV_LABEL, "FULL_URI": variables[FULL_URI],
                                        "TOKEN_FILE": variables[TOKEN_FILE]})
    return plistlib.dumps(data, sort_keys=False).decode()


def installed_variables(layout: Layout) -> dict[str, str] | None:
    """The SDK variables in the installed environment file, or None when there is none."""
    path = layout.files["environment"]
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    if layout.platform == "macos":
        try:
            return dict(plistlib.loads(raw).get("EnvironmentVariables", {}))
        except Exception:  # not a plist any more: it matches nothing
            return {}
    words = (shlex.split(line) for line in raw.decode(errors="replace").splitlines()
             if line.strip() and not line.startswith("#"))
    return dict(w[0].split("=", 1) for w in words if w and "=" in w[0])


# ---- the service manager ---------------------------------------------------------------------------------

@dataclass
class Step:
    """One service-manager command and its outcome (returncode None: not found or timed out)."""

    argv: list[str]
    returncode: int | None = None
    output: str = ""  # stdout and stderr, for people
    stdout: str = ""
    #: a failure here is expected and harmless (e.g. unloading an agent that is not loaded)
    may_fail: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 or self.may_fail

    def to_json(self) -> dict[str, Any]:
        return {"command": self.argv, "returncode": self.returncode, "output": self.output}


def _run(step: Step) -> Step:
    exe = shutil.which(step.argv[0])
    if exe is None:
        step.output = f"{step.argv[0]}: not found"
        return step
    try:
        r = subprocess.run([exe, *step.argv[1:]], capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        step.output = f"timed out after {COMMAND_TIMEOUT:.0f} s"
        return step
    step.returncode = r.returncode
    step.stdout = r.stdout
    step.output = (r.stdout + r.stderr).strip()
    return step


def manager_unavailable(platform: str) -> str | None:
    """None when the service manager can be driven, else why not (containers and CI often have none)."""
    if platform == "linux":
        if shutil.which("systemctl") is None:
            return "systemctl is not installed"
        probe = _run(Step(["systemctl", "--user", "show", "--property=Version"]))
        if probe.returncode != 0:
            first = probe.output.splitlines()[0] if probe.output else f"exit status {probe.returncode}"
            return f"no systemd user manager is reachable ({first})"
        return None
    if shutil.which("launchctl") is None:
        return "launchctl is not available (this is not macOS)"
    return None


def _gui(label: str | None = None) -> str:
    return f"gui/{os.getuid()}" + (f"/{label}" if label else "")


# ---- install / uninstall / status ------------------------------------------------------------------------

@dataclass
class Report:
    platform: str
    dry_run: bool = False
    #: role, path, what happened ("written", "unchanged", "removed", "absent", "would write"...), content
    files: list[dict[str, Any]] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    #: why the service manager was not driven, and what to run once it can be
    not_done: str | None = None
    by_hand: list[str] = field(default_factory=list)
    check: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps)

    def to_json(self) -> dict[str, Any]:
        return {"platform": self.platform, "dry_run": self.dry_run, "ok": self.ok, "files": self.files,
                "commands": [s.to_json() for s in self.steps], "not_done": self.not_done,
                "run_by_hand": self.by_hand, "check": self.check, "notes": self.notes}


def _write(path: Path, content: str) -> None:
    from .fsutil import write_private

    if not path.parent.is_dir():
        path.parent.mkdir(mode=0o700, parents=True)
    write_private(path, content.encode())


def _load_steps(layout: Layout, before: dict[str, str], variables: dict[str, str],
                loaded: Callable[[str], bool] | None = None) -> list[Step]:
    """The commands that (re)load the service; `before` says per role whether the file is new, changed
    or unchanged, `loaded` asks launchd whether a label is loaded (None: cannot ask, assume not)."""
    files = layout.files
    if layout.platform == "linux":
        steps = [Step(["systemctl", "--user", "daemon-reload"])]
        if before["socket"] != "unchanged" and before["unit"] != "new":
            # a new or changed port under an installed tipd: the socket unit can bind it only once that tipd
            # (which holds it, itself or through the old socket unit) has let go
            steps.append(Step(["systemctl", "--user", "stop", UNIT, SOCKET], may_fail=True))
        elif before["unit"] == "changed":  # a running tipd keeps its old definition until restarted
            steps.append(Step(["systemctl", "--user", "try-restart", UNIT]))
        return [*steps, Step(["systemctl", "--user", "enable", "--now", SOCKET, UNIT])]
    steps = []
    for role, label in (("environment", ENV_LABEL), ("agent", LABEL)):
        if before[role] == "unchanged" and loaded is not None and loaded(label):
            continue  # already running this very definition
        if before[role] != "new":  # bootstrap refuses a loaded label: unload the old definition first
            steps.append(Step(["launchctl", "bootout", _gui(label)], may_fail=True))
        steps.append(Step(["launchctl", "bootstrap", _gui(), str(files[role])]))
    # for this session, now (the environment agent does it at each login)
    steps += [Step(["launchctl", "setenv", k, v]) for k, v in variables.items()]
    return steps


def _command_lines(steps: list[Step]) -> list[str]:
    return [" ".join(shlex.quote(a) for a in s.argv) for s in steps]


def install(platform: str, *, config_path: str | None = None, profile: str | None = None,
            dry_run: bool = False) -> Report:
    """Write the service files and have the service manager start tipd now and at every login; when no
    service manager can be driven, write the files and say what to run."""
    layout = Layout.of(platform)
    contents, variables = render(layout, config_path, profile)
    report = Report(platform, dry_run=dry_run, check=layout.check)
    if platform == "macos":
        report.notes.append("applications started before this (GUI apps, open terminals) keep their old "
                            "environment: restart them to use tipd")
    else:
        report.notes.append("new login sessions and this user's services get the variables; in a shell that "
                            "is already open run: eval \"$(tipctl env)\"")
    before = {}
    for role, path in layout.files.items():
        try:
            installed = path.read_text()
        except (FileNotFoundError, UnicodeDecodeError):
            installed = None
        before[role] = "new" if installed is None else "unchanged" if installed == contents[role] else "changed"
        entry = {"role": role, "path": str(path), "mode": "0600",
                 "action": "unchanged" if before[role] == "unchanged" else "would write" if dry_run else "written"}
        if dry_run:
            entry["content"] = contents[role]
        report.files.append(entry)
    if dry_run:
        report.by_hand = _command_lines(_load_steps(layout, before, variables))
        return report

    from .fsutil import private_dir

    private_dir(layout.paths.state_dir)  # the unit's ReadWritePaths, and launchd's log file, need it
    for role, path in layout.files.items():
        _write(path, contents[role])
    report.not_done = manager_unavailable(platform)
    if report.not_done:
        report.by_hand = _command_lines(_load_steps(layout, before, variables))
        return report
    for step in _load_steps(layout, before, variables, loaded=_launchd_has):
        report.steps.append(_run(step))
        if not step.ok:
            report.check.insert(0, "journalctl --user -u tipd -n 50" if platform == "linux"
                                else f"tail -n 50 {shlex.quote(str(layout.paths.log_file))}")
            break
    return report


def _launchd_has(label: str) -> bool:
    return _run(Step(["launchctl", "print", _gui(label)])).returncode == 0


def uninstall(platform: str, *, dry_run: bool = False) -> Report:
    """Stop tipd, remove it from the logins, and delete exactly the files install writes (and the
    directories that held only them). Idempotent. The state directory (sign-ins, endpoint token) stays:
    `tipctl logout` forgets sign-ins."""
    layout = Layout.of(platform)
    files = layout.files
    present = {role for role, path in files.items() if path.exists() or path.is_symlink()}
    if platform == "linux":
        before = ([Step(["systemctl", "--user", "disable", "--now", UNIT, SOCKET])]
                  if present & {"unit", "socket"} else [])
        after = [Step(["systemctl", "--user", "daemon-reload"])] if present else []
    else:
        before = [Step(["launchctl", "bootout", _gui(label)], may_fail=True)
                  for role, label in (("agent", LABEL), ("environment", ENV_LABEL)) if role in present]
        before += [Step(["launchctl", "unsetenv", k]) for k in (FULL_URI, TOKEN_FILE)]
        after = []
    report = Report(platform, dry_run=dry_run)
    report.not_done = None if dry_run else manager_unavailable(platform)
    if dry_run or report.not_done:
        if report.not_done and platform == "linux" and present:  # the unit file will be gone: stop what is loaded
            before = [Step(["systemctl", "--user", "stop", UNIT, SOCKET])]
        report.by_hand = _command_lines(before + after)
        before = after = []
    for step in before:
        report.steps.append(_run(step))
    for role, path in files.items():
        if role in present and not dry_run:
            path.unlink(missing_ok=True)
            _prune(path.parent, layout.base)
        report.files.append({"role": role, "path": str(path),
                             "action": ("would remove" if dry_run else "removed") if role in present else "absent"})
    for role, link in layout.wants_links.items():
        if not dry_run and link.is_symlink() and Path(os.readlink(link)) == files[role]:
            link.unlink()  # `systemctl enable` made it and `disable` could not run to remove it
            _prune(link.parent, layout.base)
    for step in after:
        report.steps.append(_run(step))
    return report


def _prune(directory: Path, stop: Path) -> None:
    """Remove `directory` and its parents while they are empty, up to (not including) `stop`."""
    while directory != stop and stop in directory.parents:
        try:
            directory.rmdir()
        except OSError:  # not empty (or not ours to remove): leave it
            return
        directory = directory.parent


def status(platform: str, *, config_path: str | None = None) -> dict[str, Any]:
    """Installed? Enabled and active (when the service manager can be asked)? Does the environment file
    exist, and say what `tipctl env` would say now (port, profile, token file)?"""
    layout = Layout.of(platform)
    files = {role: {"path": str(p), "exists": p.exists()} for role, p in layout.files.items()}
    out: dict[str, Any] = {"platform": platform, "installed": all(f["exists"] for f in files.values()),
                           "files": files, "enabled": None, "active": None}
    reason = manager_unavailable(platform)
    out["manager_unavailable"] = reason
    if reason is None and platform == "linux":
        for key in ("enabled", "active"):  # their first line: enabled/disabled/..., active/inactive/failed/...
            out[key] = (_run(Step(["systemctl", "--user", f"is-{key}", UNIT])).stdout.split() or ["unknown"])[0]
        # listening (holding the port across restarts), or not
        out["socket"] = (_run(Step(["systemctl", "--user", "is-active", SOCKET])).stdout.split() or ["unknown"])[0]
    elif reason is None:
        shown = _run(Step(["launchctl", "print", _gui(LABEL)]))
        out["enabled"] = "loaded" if shown.returncode == 0 else "not loaded"
        state = re.search(r"^\s*state = (\S+)", shown.output, re.M) if shown.returncode == 0 else None
        out["active"] = state.group(1) if state else ("unknown" if shown.returncode == 0 else "not running")
    out["environment"] = _environment_status(layout, config_path, reason)
    return out


def _environment_status(layout: Layout, config_path: str | None, manager_reason: str | None) -> dict[str, Any]:
    from .config import load_config
    from .sdkenv import container_variables

    path = layout.files["environment"]
    env: dict[str, Any] = {"path": str(path), "exists": path.exists(), "matches": None, "detail": None}
    have = installed_variables(layout)
    if have is None:
        env["detail"] = "not installed"
        return env
    m = re.search(r"/v1/credentials/([^/]+)$", have.get(FULL_URI, ""))
    try:
        config, _ = load_config(config_path)
        want = container_variables(config.endpoint(), layout.paths, m.group(1) if m else None)
    except TipdError as e:
        env["detail"] = e.message
        return env
    env["matches"] = have == want
    if not env["matches"]:
        env["detail"] = "differs from what `tipctl env` says now: run `tipctl service install` again"
    if layout.platform == "macos" and manager_reason is None:
        live = {k: _run(Step(["launchctl", "getenv", k])).stdout.strip() for k in want}
        env["live"] = live == want
    return env

