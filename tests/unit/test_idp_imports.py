"""The quick commands (`tipctl env`, `status`, `credential-process`) run in shell start-up files and for
every SDK credential fetch: they must not import the OAuth layer (authlib, joserfc, PyJWT, aiohttp)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.profiles import GOOD_CONFIG

HEAVY = ("authlib", "joserfc", "jwt", "aiohttp")
PROBE = ("import atexit, sys\n"
         f"atexit.register(lambda: print('IMPORTED', sorted(m for m in {HEAVY!r} if m in sys.modules),"
         " file=sys.stderr))\n"
         "from tipd.cli.main import main\n"
         "sys.exit(main(sys.argv[1:]))\n")


def imported(tmp_path, *args: str) -> str:
    cfg = tmp_path / "config.toml"
    cfg.write_text(GOOD_CONFIG)
    cfg.chmod(0o600)
    env = dict(os.environ, TIPD_CONFIG=str(cfg), XDG_RUNTIME_DIR=str(tmp_path), XDG_STATE_HOME=str(tmp_path))
    r = subprocess.run([sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True, timeout=60)
    line = [ln for ln in r.stderr.splitlines() if ln.startswith("IMPORTED")]
    assert line, r.stderr
    return line[-1]


@pytest.mark.parametrize("args", [("env",), ("status",), ("status", "--json"), ("credential-process", "work"),
                                  ("exec", "work", "--", "/nonexistent/command")])
def test_quick_commands_do_not_import_the_oauth_layer(tmp_path, args):
    assert imported(tmp_path, *args) == "IMPORTED []"  # (no tipd runs here: status says so, importing nothing)


def test_the_probe_sees_the_oauth_layer_where_it_is_used():
    code = PROBE.replace("from tipd.cli.main import main\nsys.exit(main(sys.argv[1:]))\n", "import tipd.idp.oidc\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "'authlib'" in r.stderr and "'aiohttp'" in r.stderr, r.stderr
