"""Installing as people do: the README's set-up commands, run from a fresh clone with the system /usr/bin/python3
of a stock Debian 12 (whose Python, like Ubuntu 24.04's and Homebrew's, refuses `pip install` outside a virtual
environment: PEP 668), in an empty home and with a PATH that holds only the system's directories. docs/install.md
cites what Debian, Ubuntu and Homebrew recommend (pipx for applications)."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.stack import ROOT
from tipd import __version__

pytestmark = pytest.mark.acceptance
SYSTEM_PYTHON = Path("/usr/bin/python3")
#: what a person's shell would pass on to pip: its settings, proxies and CA bundles (no PATH, no venv)
PASSED_ON = re.compile(r"PIP_\w+|(?i:https?_proxy|no_proxy)|SSL_CERT_\w+|REQUESTS_CA_BUNDLE")


def set_up_section() -> str:
    return (ROOT / "README.md").read_text().split("\n## Set up\n", 1)[1].split("\n## ", 1)[0]


def set_up_commands() -> list[str]:
    """The README's set-up commands: the indented code blocks of its "Set up" section."""
    return [line.strip() for line in set_up_section().splitlines() if line.startswith("    ") and line.strip()]


def needs(*tools: str) -> None:
    """Outside CI a machine without the system Python, pipx or python3-venv skips; in CI that is a failure
    (tests/run.sh installs them)."""
    missing = [t for t in tools if not Path(t).exists()]
    if missing:
        message = f"needs {', '.join(missing)} (apt-get install pipx python3-venv)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    src = tmp_path / "tipd"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(src)], check=True, timeout=120)
    return src


@pytest.fixture
def person(tmp_path: Path) -> dict[str, str]:
    """An empty home and the system's PATH: nothing of the test's own environment (.venv) is found."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if PASSED_ON.fullmatch(k)}
    # the wheels this machine has already downloaded: the test times the install, not the network
    env["PIP_CACHE_DIR"] = os.environ.get("PIP_CACHE_DIR") or str(Path.home() / ".cache" / "pip")
    env.update(HOME=str(home), PATH="/usr/bin:/bin", LANG="C.UTF-8")
    return env


def run(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/bin/sh", "-c", command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=900)


def installed_with_the_system_python(home: Path) -> None:
    cfgs = list(home.glob("**/tipd/pyvenv.cfg"))
    assert len(cfgs) == 1, cfgs
    assert "home = /usr/bin\n" in cfgs[0].read_text(), cfgs[0].read_text()


def test_the_readme_has_two_set_up_commands_the_install_and_the_test_suite():
    commands = set_up_commands()
    assert len(commands) == 2, commands
    assert commands[0].endswith("tipd") and commands[1] == "bash tests/run.sh", commands


def test_the_system_python_refuses_the_old_command(clone, person):
    """The reason for the README's command: `python3 -m pip install .` stops here (no pip at all on a stock Debian;
    with python3-pip, the PEP 668 refusal)."""
    needs(str(SYSTEM_PYTHON))
    r = run("python3 -m pip install --dry-run --no-deps .", clone, person)
    assert r.returncode != 0
    assert "externally-managed-environment" in r.stderr or "No module named pip" in r.stderr, r.stderr


def test_the_readme_command_installs_with_pipx_from_a_fresh_clone(clone, person):
    needs(str(SYSTEM_PYTHON), "/usr/bin/pipx")
    steps = set_up_commands()[0].split(" && ")
    assert steps[0] == "sudo apt install pipx", steps  # done by tests/run.sh as root: pipx is the Debian package's
    owner = subprocess.run(["dpkg", "-S", "/usr/bin/pipx"], capture_output=True, text=True)
    assert owner.stdout.startswith("pipx: "), owner.stdout + owner.stderr
    assert steps[-1] == "~/.local/bin/tipd", steps
    r = run(" && ".join(steps[1:]) + " --version", clone, person)  # the daemon would run in the foreground
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().splitlines()[-1] == f"tipd {__version__}", r.stdout
    home = Path(person["HOME"])
    r = run("~/.local/bin/tipctl --help", clone, person)
    assert r.returncode == 0 and r.stdout.startswith("usage: tipctl"), r.stdout + r.stderr
    installed_with_the_system_python(home)


def test_the_plain_virtual_environment_the_readme_offers_installs_too(clone, person):
    needs(str(SYSTEM_PYTHON))
    m = re.search(r"a plain virtual environment does the same:\s*`([^`]+)`", set_up_section())
    assert m, "the README's plain-venv alternative"
    command = m.group(1)
    assert command.startswith("python3 -m venv ") and command.endswith("/bin/tipd"), command
    if subprocess.run([str(SYSTEM_PYTHON), "-c", "import ensurepip"], capture_output=True).returncode:
        needs("python3-venv")  # Debian's venv without its package: skip, or fail in CI
    r = run(command + " --version", clone, person)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().splitlines()[-1] == f"tipd {__version__}", r.stdout
    r = run("~/.venvs/tipd/bin/tipctl --help", clone, person)
    assert r.returncode == 0 and r.stdout.startswith("usage: tipctl"), r.stdout + r.stderr
    installed_with_the_system_python(Path(person["HOME"]))
