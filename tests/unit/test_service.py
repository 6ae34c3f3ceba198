"""`tipctl service`: the files it writes (checked by systemd's own tools where this machine has them), the
service-manager commands it runs (fake `systemctl` / `launchctl` scripts on PATH that record their
arguments), uninstall leaving nothing behind, and the templates shipped in the wheel."""
from __future__ import annotations

import json
import os
import plistlib
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from tests.support.stack import BIN, ROOT

PORT = 9931
CONFIG = f"""
[server]
port = {PORT}

[profiles.work]
issuer = "https://idp.example.com"
client_id = "cid"
application_arn = "arn:aws:sso::123456789012:application/ssoins-1111222233334444/apl-aaaabbbbccccdddd"
oidc_role_arn = "arn:aws:iam::123456789012:role/oidc"
identity_enhanced_role_arn = "arn:aws:iam::123456789012:role/enhanced"
region = "us-east-1"
"""
TEMPLATES = {"systemd": ["tipd.service.in", "tipd.socket.in", "60-tipd.conf.in"],
             "launchd": ["tipd.plist.in", "tipd.env.plist.in"]}
ENV_GENERATOR = "/usr/lib/systemd/user-environment-generators/30-systemd-environment-d-generator"

FAKE_SYSTEMCTL = """#!{python}
# records its arguments; answers like a user manager where tipd.service is enabled and active
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(json.dumps(["systemctl", *args]) + "\\n")
if os.environ.get("FAKE_FAIL") in args:
    print("Job for tipd.service failed because the control process exited with error code.", file=sys.stderr)
    sys.exit(1)
if "show" in args:
    print("Version=252")
elif "is-enabled" in args:
    print("enabled")
elif "is-active" in args:
    print("active")
"""

FAKE_LAUNCHCTL = """#!{python}
# records its arguments and keeps launchd's state (loaded labels, the domain's environment) in a file
import json, os, plistlib, sys
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(json.dumps(["launchctl", *args]) + "\\n")
path = os.environ["FAKE_STATE"]
state = json.load(open(path)) if os.path.exists(path) else {{"loaded": [], "env": {{}}}}
cmd, rest = args[0], args[1:]
rc = 0
if cmd == "bootstrap":
    label = plistlib.load(open(rest[1], "rb"))["Label"]
    if label in state["loaded"]:
        print("Bootstrap failed: 5: Input/output error", file=sys.stderr)
        rc = 5
    else:
        state["loaded"].append(label)
elif cmd == "bootout":
    label = rest[0].split("/", 2)[2]
    if label in state["loaded"]:
        state["loaded"].remove(label)
    else:
        print("Boot-out failed: 3: No such process", file=sys.stderr)
        rc = 3
elif cmd == "setenv":
    state["env"][rest[0]] = rest[1]
elif cmd == "unsetenv":
    state["env"].pop(rest[0], None)
elif cmd == "getenv":
    print(state["env"].get(rest[0], ""))
elif cmd == "print":
    label = rest[0].split("/", 2)[2]
    if label in state["loaded"]:
        print(rest[0] + " = {{\\n\\tactive count = 1\\n\\tstate = running\\n}}")
    else:
        print("Could not find service", file=sys.stderr)
        rc = 113
json.dump(state, open(path, "w"))
sys.exit(rc)
"""


class User:
    """A private HOME / XDG tree with a tipd config, and PATH holding only the fakes a test asks for."""

    def __init__(self, base: Path, fakes: tuple[str, ...] = ("systemctl",)) -> None:
        self.root = base
        self.home = base / "home"
        self.config_home = base / "config"
        self.state_home = base / "state"
        self.runtime = base / "run"
        for d in (self.home, self.config_home, self.state_home, self.runtime):
            d.mkdir(mode=0o700, parents=True)
        self.config_file = self.config_home / "tipd" / "config.toml"
        self.config_file.parent.mkdir(mode=0o700)
        self.config_file.write_text(CONFIG)
        bin_dir = base / "bin"
        bin_dir.mkdir()
        for name, script in (("systemctl", FAKE_SYSTEMCTL), ("launchctl", FAKE_LAUNCHCTL)):
            if name in fakes:
                exe = bin_dir / name
                exe.write_text(script.format(python=sys.executable))
                exe.chmod(0o755)
        self.log = base / "calls.jsonl"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TIPD_", "XDG_", "DBUS_"))}
        self.env.update({
            "HOME": str(self.home), "XDG_CONFIG_HOME": str(self.config_home),
            "XDG_STATE_HOME": str(self.state_home), "XDG_RUNTIME_DIR": str(self.runtime),
            "PATH": str(bin_dir),  # tipctl finds tipd beside its own interpreter, not on PATH
            "FAKE_LOG": str(self.log), "FAKE_STATE": str(base / "launchd.json"),
        })

    def tipctl(self, *args: str, expect: int = 0, **env: str) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([str(BIN / "tipctl"), *args], env=dict(self.env, **env), capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == expect, f"tipctl {' '.join(args)}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
        return r

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        calls: list[list[str]] = [json.loads(line) for line in self.log.read_text().splitlines()]
        self.log.unlink()
        return calls

    def tree(self) -> set[str]:
        """Every file, directory and link under the tree, except the fakes' own bookkeeping."""
        skip = {self.log, self.root / "launchd.json"}
        return {str(p.relative_to(self.root)) for p in self.root.rglob("*") if p not in skip}

    def sdk_env(self) -> dict[str, str]:
        env: dict[str, str] = json.loads(self.tipctl("env", "--json").stdout)
        return env

    @property
    def unit(self) -> Path:
        return self.config_home / "systemd" / "user" / "tipd.service"

    @property
    def socket_unit(self) -> Path:
        return self.config_home / "systemd" / "user" / "tipd.socket"

    @property
    def env_file(self) -> Path:
        return self.config_home / "environment.d" / "60-tipd.conf"

    @property
    def agents(self) -> Path:
        return self.home / "Library" / "LaunchAgents"


@pytest.fixture
def base():
    d = Path(tempfile.mkdtemp(prefix="svc-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def user(base):
    return User(base)


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def need(tool: str) -> str:
    """A systemd tool this test checks with; CI must have it (tests/run.sh installs it), elsewhere skip."""
    found = shutil.which(tool) or (tool if os.path.exists(tool) else None)
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail(f"{tool} is missing in CI: tests/run.sh should have installed Debian's systemd package")
    pytest.skip(f"{tool} is not installed")


# ---- the templates ------------------------------------------------------------------------------------

def test_templates_in_the_package_are_the_repository_ones():
    packaged = ROOT / "tipd" / "templates"
    assert sorted(p.name for p in packaged.iterdir()) == sorted([n for names in TEMPLATES.values() for n in names])
    for directory, names in TEMPLATES.items():
        assert (ROOT / directory / "README.md").is_file()
        for name in names:
            assert (ROOT / directory / name).read_bytes() == (packaged / name).read_bytes(), (
                f"{directory}/{name} and tipd/templates/{name} differ: copy the edited one over the other")


def test_the_wheel_carries_the_templates(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "tipd", src / "tipd", ignore=shutil.ignore_patterns("__pycache__"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"),
                        str(src)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    (wheel,) = (tmp_path / "dist").glob("tipd-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"tipd/templates/{n}" for n in [n for names in TEMPLATES.values() for n in names]} <= names


# ---- Linux: systemd -----------------------------------------------------------------------------------

def test_install_writes_the_unit_and_environment_file_then_enables_tipd(user):
    before = user.tree()
    out = user.tipctl("service", "install", "--platform", "linux").stdout
    assert f"wrote: {user.unit}" in out and f"wrote: {user.env_file}" in out
    for check in ("systemctl --user status tipd", "journalctl --user -u tipd -f", "tipctl status"):
        assert check in out
    assert user.calls() == [["systemctl", "--user", "show", "--property=Version"],
                            ["systemctl", "--user", "daemon-reload"],
                            ["systemctl", "--user", "enable", "--now", "tipd.socket", "tipd.service"]]
    assert mode(user.unit) == 0o600 and mode(user.env_file) == 0o600 and mode(user.socket_unit) == 0o600
    # the port is the socket unit's, on loopback only, held across restarts; tipd.service needs it
    assert f"\nListenStream=127.0.0.1:{PORT}\n" in user.socket_unit.read_text()
    assert "\nWantedBy=sockets.target\n" in user.socket_unit.read_text()

    unit = user.unit.read_text()
    state = user.state_home / "tipd"
    assert f"\nExecStart={BIN / 'tipd'}\n" in unit and (BIN / "tipd").is_file()
    assert f"\nEnvironment=XDG_CONFIG_HOME={user.config_home} XDG_STATE_HOME={user.state_home}\n" in unit
    assert f"\nReadWritePaths={state}\n" in unit and state.is_dir() and mode(state) == 0o700
    for line in ("Type=notify", "Restart=on-failure", "NoNewPrivileges=yes", "ProtectSystem=strict",
                 "PrivateTmp=yes", "PrivateUsers=yes", "RuntimeDirectory=tipd", "WantedBy=default.target",
                 "Requires=tipd.socket", "After=tipd.socket", "Also=tipd.socket",
                 "ExecReload=/bin/kill -HUP $MAINPID"):
        assert f"\n{line}\n" in unit
    assert "NotifyAccess" not in unit  # the main process itself sends READY=1

    sdk = user.sdk_env()  # what `tipctl env` prints: the one computation both use
    assert sdk == {"AWS_CONTAINER_CREDENTIALS_FULL_URI": f"http://127.0.0.1:{PORT}/v1/credentials/work",
                   "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(state / "endpoint-token")}
    lines = [line for line in user.env_file.read_text().splitlines() if line and not line.startswith("#")]
    assert lines == [f"{k}={v}" for k, v in sdk.items()]

    assert "port held:   yes (tipd.socket is active)" in user.tipctl("service", "status").stdout
    st = json.loads(user.tipctl("service", "status", "--json").stdout)
    assert st["installed"] and st["enabled"] == "enabled" and st["active"] == "active" and st["socket"] == "active"
    assert st["environment"]["exists"] and st["environment"]["matches"] is True
    assert ["systemctl", "--user", "is-enabled", "tipd.service"] in user.calls()

    out = user.tipctl("service", "uninstall").stdout
    assert f"removed: {user.unit}" in out and f"removed: {user.env_file}" in out
    assert f"removed: {user.socket_unit}" in out
    assert user.calls() == [["systemctl", "--user", "show", "--property=Version"],
                            ["systemctl", "--user", "disable", "--now", "tipd.service", "tipd.socket"],
                            ["systemctl", "--user", "daemon-reload"]]
    # nothing left but the state directory, which holds sign-ins (tipctl logout forgets those)
    assert user.tree() - before == {"state/tipd"}

    again = user.tipctl("service", "uninstall").stdout  # idempotent: nothing to stop, nothing to remove
    assert f"absent: {user.unit}" in again and f"absent: {user.env_file}" in again
    assert user.calls() == [["systemctl", "--user", "show", "--property=Version"]]
    st = json.loads(user.tipctl("service", "status", "--json", expect=1).stdout)
    assert not st["installed"] and st["environment"]["exists"] is False


def test_the_unit_passes_systemd_analyze_verify_with_awkward_paths(base):
    tool = need("systemd-analyze")
    user = User(base / "dir with space")
    user.env["XDG_STATE_HOME"] = str(user.state_home / "100%")  # % is a unit-file specifier
    user.tipctl("service", "install")
    unit = user.unit.read_text()
    assert f'ReadWritePaths="{user.state_home}/100%%/tipd"' in unit
    r = subprocess.run([tool, "--user", "verify", str(user.unit), str(user.socket_unit)], capture_output=True,
                       text=True, timeout=60, env=dict(os.environ, XDG_RUNTIME_DIR=str(user.runtime)))
    assert r.returncode == 0 and r.stdout + r.stderr == "", r.stdout + r.stderr
    # and the check is real: a unit naming a program that does not exist fails it
    broken = base / "broken" / "tipd.service"
    broken.parent.mkdir()
    broken.write_text(unit.replace(f"ExecStart={shlex.quote(str(BIN / 'tipd'))}", "ExecStart=/nonexistent/tipd"))
    r = subprocess.run([tool, "--user", "verify", str(broken)], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, XDG_RUNTIME_DIR=str(user.runtime)))
    assert r.returncode != 0 and "/nonexistent/tipd" in r.stderr


def test_systemds_generator_reads_the_environment_file_as_tipctl_env_says(base):
    generator = need(ENV_GENERATOR)
    user = User(base / "a b")  # a path with a space: the file must quote it
    user.tipctl("service", "install")
    r = subprocess.run([generator], capture_output=True, text=True, timeout=60,
                       env={"XDG_CONFIG_HOME": str(user.config_home), "HOME": str(user.home)})
    assert r.returncode == 0, r.stderr
    seen = dict(shlex.split(line)[0].split("=", 1) for line in r.stdout.splitlines())
    sdk = user.sdk_env()
    assert {k: seen.get(k) for k in sdk} == sdk


def test_a_changed_unit_restarts_the_running_tipd(user):
    user.tipctl("service", "install")
    user.calls()
    other = user.root / "other.toml"
    other.write_text(CONFIG)
    user.tipctl("service", "install", TIPD_CONFIG=str(other))  # tipd must now be started with --config
    assert f"\nExecStart={BIN / 'tipd'} --config {other}\n" in user.unit.read_text()
    assert user.calls()[1:] == [["systemctl", "--user", "daemon-reload"],
                                ["systemctl", "--user", "try-restart", "tipd.service"],
                                ["systemctl", "--user", "enable", "--now", "tipd.socket", "tipd.service"]]
    out = user.tipctl("service", "install", TIPD_CONFIG=str(other)).stdout  # the same again: no restart
    assert f"unchanged: {user.unit}" in out
    assert ["systemctl", "--user", "try-restart", "tipd.service"] not in user.calls()


def test_status_notices_an_environment_file_that_no_longer_matches_the_config(user):
    user.tipctl("service", "install")
    assert "variables:   matches the config" in user.tipctl("service", "status").stdout
    user.config_file.write_text(CONFIG.replace(f"port = {PORT}", "port = 9932"))
    out = user.tipctl("service", "status", expect=1).stdout
    assert "run `tipctl service install` again" in out
    user.tipctl("service", "install")
    env = json.loads(user.tipctl("service", "status", "--json").stdout)["environment"]
    assert env["matches"] is True and ":9932/" in user.env_file.read_text()


def test_without_systemctl_it_writes_the_files_and_says_what_to_run(base):
    user = User(base, fakes=())
    out = user.tipctl("service", "install").stdout
    assert user.unit.is_file() and user.env_file.is_file()
    assert "not done: systemctl is not installed" in out
    assert "  systemctl --user daemon-reload\n  systemctl --user enable --now tipd.socket tipd.service\n" in out
    st = json.loads(user.tipctl("service", "status", "--json").stdout)
    assert st["manager_unavailable"] == "systemctl is not installed" and st["enabled"] is None
    # `systemctl enable` made this link earlier; with no systemctl to `disable`, uninstall removes it
    link = user.unit.parent / "default.target.wants" / "tipd.service"
    link.parent.mkdir()
    link.symlink_to(user.unit)
    socket_link = user.unit.parent / "sockets.target.wants" / "tipd.socket"
    socket_link.parent.mkdir()
    socket_link.symlink_to(user.socket_unit)
    out = user.tipctl("service", "uninstall").stdout
    assert not user.unit.exists() and not user.env_file.exists() and not link.is_symlink()
    assert not user.socket_unit.exists() and not socket_link.is_symlink()
    assert "systemctl --user stop tipd.service tipd.socket" in out


def test_a_failed_start_is_reported_with_where_to_look(user):
    r = user.tipctl("service", "install", expect=1, FAKE_FAIL="enable")
    assert "tipctl: Job for tipd.service failed" in r.stderr
    assert "ran: systemctl --user enable --now tipd.socket tipd.service (exit 1, failed)" in r.stdout
    assert "journalctl --user -u tipd -n 50" in r.stdout
    assert user.unit.is_file()  # the files stay, to fix and retry


@pytest.mark.parametrize("platform", ["linux", "macos"])
def test_dry_run_prints_the_files_and_changes_nothing(base, platform):
    user = User(base, fakes=("systemctl", "launchctl"))
    before = user.tree()
    out = user.tipctl("service", "install", "--dry-run", "--platform", platform).stdout
    data = json.loads(user.tipctl("service", "install", "--dry-run", "--json", "--platform", platform).stdout)
    assert user.tree() == before and user.calls() == []
    assert data["dry_run"] and data["commands"] == [] and len(data["files"]) == (3 if platform == "linux" else 2)
    for f in data["files"]:
        assert f["action"] == "would write" and f"--- {f['path']} (mode 0600, would write)\n{f['content']}" in out
    assert data["run_by_hand"][0] in out
    user.tipctl("service", "install", "--platform", platform)
    user.calls()
    installed = user.tree()
    out = user.tipctl("service", "uninstall", "--dry-run", "--platform", platform).stdout
    data = json.loads(user.tipctl("service", "uninstall", "--dry-run", "--json", "--platform", platform).stdout)
    assert user.tree() == installed and user.calls() == [] and "would remove: " in out
    assert [f["action"] for f in data["files"]] == ["would remove"] * len(data["files"]) and data["run_by_hand"]


# ---- macOS: launchd -----------------------------------------------------------------------------------

def test_macos_agents_launchctl_and_a_clean_uninstall(base):
    user = User(base, fakes=("launchctl",))
    before = user.tree()
    out = user.tipctl("service", "install", "--platform", "macos").stdout
    agent, env_agent = user.agents / "tipd.plist", user.agents / "tipd.env.plist"
    uid = os.getuid()
    sdk = user.sdk_env()  # on Linux; the macOS paths differ: read them from the file
    env = plistlib.loads(env_agent.read_bytes())["EnvironmentVariables"]
    assert env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] == sdk["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
    assert env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"].endswith("/tipd/endpoint-token")
    assert user.calls() == [
        ["launchctl", "bootstrap", f"gui/{uid}", str(env_agent)],
        ["launchctl", "bootstrap", f"gui/{uid}", str(agent)],
        ["launchctl", "setenv", "AWS_CONTAINER_CREDENTIALS_FULL_URI", env["AWS_CONTAINER_CREDENTIALS_FULL_URI"]],
        ["launchctl", "setenv", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
         env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]],
    ]
    assert f"launchctl print gui/{uid}/tipd" in out and "restart them" in out
    assert mode(agent) == 0o600 and mode(env_agent) == 0o600

    st = json.loads(user.tipctl("service", "status", "--platform", "macos", "--json").stdout)
    assert st["installed"] and st["enabled"] == "loaded" and st["active"] == "running"
    assert st["environment"]["matches"] is True and st["environment"]["live"] is True
    user.calls()

    out = user.tipctl("service", "uninstall", "--platform", "macos").stdout
    assert f"removed: {agent}" in out and f"removed: {env_agent}" in out
    assert user.calls() == [["launchctl", "bootout", f"gui/{uid}/tipd"],
                            ["launchctl", "bootout", f"gui/{uid}/tipd.env"],
                            ["launchctl", "unsetenv", "AWS_CONTAINER_CREDENTIALS_FULL_URI"],
                            ["launchctl", "unsetenv", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]]
    assert json.loads((base / "launchd.json").read_text()) == {"loaded": [], "env": {}}
    assert user.tree() - before == {"state/tipd"}
    user.tipctl("service", "uninstall", "--platform", "macos")  # again: nothing to unload or remove
    assert [c[1] for c in user.calls()] == ["unsetenv", "unsetenv"]


def test_macos_reinstall_reloads_only_what_changed(base):
    user = User(base, fakes=("launchctl",))
    user.tipctl("service", "install", "--platform", "macos")
    uid = os.getuid()
    agent, env_agent = user.agents / "tipd.plist", user.agents / "tipd.env.plist"
    user.calls()
    user.tipctl("service", "install", "--platform", "macos")  # nothing changed, both loaded: no reload
    assert [c[1:] for c in user.calls() if c[1] != "setenv"] == [["print", f"gui/{uid}/tipd.env"],
                                                                  ["print", f"gui/{uid}/tipd"]]
    user.config_file.write_text(CONFIG.replace(f"port = {PORT}", "port = 9932"))
    user.tipctl("service", "install", "--platform", "macos")  # the variables and the agent's socket changed
    assert [c[1:] for c in user.calls() if c[1] != "setenv"] == [
        ["bootout", f"gui/{uid}/tipd.env"], ["bootstrap", f"gui/{uid}", str(env_agent)],
        ["bootout", f"gui/{uid}/tipd"], ["bootstrap", f"gui/{uid}", str(agent)]]
    assert plistlib.loads(agent.read_bytes())["Sockets"]["Listeners"]["SockServiceName"] == "9932"
    user.config_file.write_text(CONFIG.replace(f"port = {PORT}", "port = 9932").replace('"cid"', '"cid2"'))
    user.tipctl("service", "install", "--platform", "macos")  # nothing the files carry changed: no reload
    assert [c[1] for c in user.calls() if c[1] != "setenv"] == ["print", "print"]
    assert json.loads((base / "launchd.json").read_text())["env"]["AWS_CONTAINER_CREDENTIALS_FULL_URI"] == \
        "http://127.0.0.1:9932/v1/credentials/work"
    assert agent.is_file()


def test_the_agent_plist_has_what_launchd_needs(base):
    user = User(base, fakes=())
    out = user.tipctl("service", "install", "--platform", "macos").stdout
    assert "not done: launchctl is not available" in out and f"launchctl bootstrap gui/{os.getuid()} " in out
    agent = plistlib.loads((user.agents / "tipd.plist").read_bytes())
    assert agent["Label"] == "tipd" and agent["RunAtLoad"] is True
    assert agent["KeepAlive"] == {"SuccessfulExit": False}
    # launchd holds the credential port (on loopback) across restarts; tipd asks for "Listeners"
    assert agent["Sockets"] == {"Listeners": {"SockNodeName": "127.0.0.1", "SockServiceName": str(PORT),
                                              "SockType": "stream", "SockFamily": "IPv4"}}
    program = Path(agent["ProgramArguments"][0])
    assert program.is_absolute() and program == BIN / "tipd" and program.is_file()
    assert agent["StandardErrorPath"] == agent["StandardOutPath"] == str(user.state_home / "tipd" / "tipd.log")
    env = plistlib.loads((user.agents / "tipd.env.plist").read_bytes())
    assert env["Label"] == "tipd.env" and env["RunAtLoad"] is True and env["ProgramArguments"][0] == "/bin/sh"
    # the environment agent's script, run as launchd would, sets exactly the two variables
    fake = base / "bin" / "launchctl"
    fake.write_text(FAKE_LAUNCHCTL.format(python=sys.executable))
    fake.chmod(0o755)
    script = env["ProgramArguments"][2].replace("/bin/launchctl", str(fake))
    r = subprocess.run(["/bin/sh", "-c", script], env=dict(user.env, **env["EnvironmentVariables"]))
    assert r.returncode == 0
    assert json.loads((base / "launchd.json").read_text())["env"] == env["EnvironmentVariables"]
    other = base / "elsewhere.toml"  # a config in another place: tipd is started with it
    other.write_text(CONFIG)
    user.tipctl("service", "install", "--platform", "macos", "--config", str(other))
    assert plistlib.loads((user.agents / "tipd.plist").read_bytes())["ProgramArguments"] == [
        str(BIN / "tipd"), "--config", str(other)]
    plutil = shutil.which("plutil")
    if plutil:  # macOS only
        for name in ("tipd.plist", "tipd.env.plist"):
            assert subprocess.run([plutil, "-lint", str(user.agents / name)]).returncode == 0


# ---- errors ---------------------------------------------------------------------------------------------

def test_without_a_profile_install_says_so_in_one_line(user):
    user.config_file.write_text("[server]\nport = 9931\n")
    r = user.tipctl("service", "install", expect=1)
    assert r.stderr == "tipctl: no profiles are configured: add one with `tipctl configure`\n"
    assert not user.unit.exists()


def test_a_path_the_files_cannot_carry_is_refused(user):
    r = user.tipctl("service", "install", expect=1, XDG_STATE_HOME=str(user.state_home / "$x"))
    assert r.stderr.startswith("tipctl: ") and "contains $" in r.stderr and r.stderr.count("\n") == 1
    assert not user.unit.exists() and user.calls() == []


def test_service_without_an_action_prints_its_help(user):
    r = user.tipctl("service", expect=2)
    assert "install" in r.stdout and "uninstall" in r.stdout and "status" in r.stdout


def test_a_changed_port_moves_the_socket_unit_with_tipd_stopped_first(user):
    """The socket unit holds the port; a new port can be bound only once the running tipd let go of it."""
    user.tipctl("service", "install")
    user.calls()
    user.config_file.write_text(CONFIG.replace(f"port = {PORT}", "port = 9932"))
    user.tipctl("service", "install")
    assert "\nListenStream=127.0.0.1:9932\n" in user.socket_unit.read_text()
    assert user.calls()[1:] == [["systemctl", "--user", "daemon-reload"],
                                ["systemctl", "--user", "stop", "tipd.service", "tipd.socket"],
                                ["systemctl", "--user", "enable", "--now", "tipd.socket", "tipd.service"]]


def test_an_install_from_before_socket_activation_stops_tipd_so_the_socket_can_bind(user):
    user.tipctl("service", "install")
    user.socket_unit.unlink()  # as an older tipctl installed it: no socket unit, tipd bound the port itself
    user.calls()
    user.tipctl("service", "install")
    assert ["systemctl", "--user", "stop", "tipd.service", "tipd.socket"] in user.calls()
