"""Every file location tipd uses, derived from platformdirs (which honours XDG_* on Linux)."""
from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path
from typing import NamedTuple

import platformdirs

APP = "tipd"


class Paths(NamedTuple):  # not a dataclass: importing dataclasses costs tipctl status 10 ms
    config_dir: Path
    state_dir: Path
    runtime_dir: Path

    @classmethod
    def default(cls) -> Paths:
        state = Path(platformdirs.user_state_dir(APP))
        with warnings.catch_warnings():  # it warns when XDG_RUNTIME_DIR is unset; we fall back below
            warnings.simplefilter("ignore")
            runtime = Path(platformdirs.user_runtime_dir(APP))
        # A unix socket path must be short and its directory must exist and be ours; without a
        # usable runtime base (no XDG_RUNTIME_DIR, no /run/user/UID) fall back to the state dir.
        if not _usable_base(runtime.parent):
            runtime = state / "run"
        return cls(config_dir=Path(platformdirs.user_config_dir(APP)), state_dir=state, runtime_dir=runtime)

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def token_file(self) -> Path:
        """The endpoint token SDKs read through AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE."""
        return self.state_dir / "endpoint-token"

    @property
    def control_socket(self) -> Path:
        return self.runtime_dir / "control.sock"

    @property
    def grants_file(self) -> Path:
        """The consumer tokens' grants (`tipctl grant`): names, profiles, expiry, SHA-256 of each token."""
        return self.state_dir / "grants.json"

    @property
    def relay_dir(self) -> Path:
        """The directory a container mounts to reach tipd (the relay socket alone: never the control socket)."""
        return self.runtime_dir / "relay"

    @property
    def relay_socket(self) -> Path:
        """The credentials endpoint on a unix socket, for consumer tokens only (tipd/relay.py forwards to it)."""
        return self.relay_dir / "credentials.sock"

    @property
    def prompt_dir(self) -> Path:
        """What shell prompts show, kept current by tipd (tipd/promptfile.py; nothing secret)."""
        return self.runtime_dir / "prompt"

    @property
    def tokens_dir(self) -> Path:
        """Refresh tokens, when no OS keyring is usable."""
        return self.state_dir / "tokens"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "tipd.log"


def _usable_base(p: Path) -> bool:
    try:
        st = p.stat()
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and os.access(p, os.W_OK)
