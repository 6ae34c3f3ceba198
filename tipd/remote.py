"""`tipctl ssh HOST`: a session on HOST whose AWS SDKs fetch this machine's credentials through the SSH connection,
with a consumer token (tipd/consumers.py) that dies with the session. docs/remote.md has the design and why.

One SSH connection (a ControlMaster this module starts and ends), several uses of it:
1. the master authenticates (the user's ssh options, prompts on the terminal) and holds the connection;
2. `-O forward -R 127.0.0.1:0:RELAY_SOCKET`: sshd picks a free loopback port on HOST and ssh prints it ("When used
   together with -O forward, the allocated port will be printed to the standard output", ssh(1), -R);
3. the token goes to HOST on ssh's stdin into a 0600 file in a fresh 0700 directory (never in a command line:
   every user of HOST can read the command lines of its processes);
4. the session: /bin/sh exports the variables, runs the command or the login shell, and removes the directory
   when it ends (a trap on EXIT, HUP, INT and TERM);
5. afterwards tipctl removes the directory again (if the shell was killed before its trap ran), ends the master
   (which closes the forward) and revokes the grant.
Nothing needs the server's configuration: no AcceptEnv (SendEnv/SetEnv are ignored without it), no
StreamLocalBindUnlink, no GatewayPorts (the remote forward binds 127.0.0.1 as asked).
"""
from __future__ import annotations

import contextlib
import re
import secrets
import shlex
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import TipdError

#: what ssh's remote shell runs: sh whatever the user's login shell is (fish and csh read `exec /bin/sh -c '...'`
#: alike). $1: the token directory, $2: the port, $3: the profile, $4: its region or "", then the command, if any.
SCRIPT = r"""d=$1 port=$2 profile=$3 region=$4
shift 4
trap 'rm -rf -- "$d"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_SECURITY_TOKEN AWS_CREDENTIAL_EXPIRATION \
  AWS_PROFILE AWS_DEFAULT_PROFILE AWS_WEB_IDENTITY_TOKEN_FILE AWS_ROLE_ARN AWS_ROLE_SESSION_NAME \
  AWS_CONTAINER_CREDENTIALS_RELATIVE_URI AWS_CONTAINER_AUTHORIZATION_TOKEN
export AWS_CONTAINER_CREDENTIALS_FULL_URI="http://127.0.0.1:$port/v1/credentials/$profile"
export AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE="$d/token"
export TIPD_SSH_PORT="$port"
if [ -n "$region" ] && [ -z "${AWS_REGION:-}${AWS_DEFAULT_REGION:-}" ]; then
  export AWS_REGION="$region" AWS_DEFAULT_REGION="$region"
fi
if [ $# -gt 0 ]; then "$@"; else "${SHELL:-/bin/sh}" -l; fi"""
#: writes stdin (the token) to a 0600 file in a new 0700 directory on HOST, prints the directory
WRITE_TOKEN = ('umask 077 && d=$(mktemp -d "${TMPDIR:-/tmp}/tipd-ssh.XXXXXXXXXX") && cat > "$d/token" && '
               'printf "%s\\n" "$d"')
#: what the directory mktemp made may look like (it is quoted anyway; this refuses surprises)
REMOTE_DIR = re.compile(r"/[A-Za-z0-9_./-]{1,200}/tipd-ssh\.[A-Za-z0-9]{10}")
#: the ssh options that shape a session (not the connection): they belong to the session, not to the master
SESSION_FLAGS = frozenset({"-t", "-tt", "-T"})
#: ssh options that would fight the connection tipctl runs (its own master, its own command)
REFUSED = frozenset({"-f", "-M", "-N", "-O", "-S", "-W", "-G", "-V", "-s"})
#: ssh options that take a value (ssh(1) SYNOPSIS), so that the value is not read as the host
VALUE_OPTIONS = frozenset("BbcDEeFIiJLlmOoPpQRSWw")
#: how often the master's readiness is polled while it authenticates (prompts may take minutes)
POLL = 0.1


class SshError(TipdError):
    code = "SshFailed"
    status = 502


def grant_name(host: str) -> str:
    """A grant name for a session to `host`: ssh-HOST-RANDOM, in the grant names' alphabet."""
    word = re.sub(r"[^a-z0-9.-]+", "-", host.rsplit("@", 1)[-1].lower()).strip(".-")[:40] or "host"
    return f"ssh-{word}-{secrets.token_hex(3)}"


def split_ssh_args(words: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    """(connection options, session flags, command) from `[SSH_OPTION ...] [-- COMMAND ...]`."""
    words = list(words)
    command: list[str] = []
    if "--" in words:
        i = words.index("--")
        words, command = words[:i], words[i + 1:]
    options: list[str] = []
    session: list[str] = []
    it = iter(words)
    for w in it:
        if w in SESSION_FLAGS:
            session.append(w)
        elif w[:2] in REFUSED:
            raise SshError(f"ssh option {w[:2]} cannot be used with tipctl ssh: it runs its own connection "
                           "(a ControlMaster) and its own remote command", status=400)
        elif w.startswith("-") and len(w) == 2 and w[1] in VALUE_OPTIONS:
            value = next(it, None)
            if value is None:
                raise SshError(f"ssh option {w} needs a value", status=400)
            options += [w, value]
        elif w.startswith("-"):
            options.append(w)
        else:
            raise SshError(f"{w!r} is not an ssh option: put the remote command after `--` "
                           "(tipctl ssh HOST [SSH_OPTION ...] -- COMMAND ...)", status=400)
    return options, session, command


def remote_command(remote_dir: str, port: int, profile: str, region: str | None, command: Sequence[str]) -> str:
    """The command ssh sends: the user's login shell on HOST runs it (sshd: `$SHELL -c COMMAND`)."""
    return "exec /bin/sh -c " + shlex.join([SCRIPT, "tipd-ssh", remote_dir, str(port), profile, region or "",
                                            *command])


@dataclass
class Session:
    """One `tipctl ssh` run: the master connection and what runs over it. `run` returns the session's status."""

    host: str
    options: list[str]
    relay_socket: Path
    control_dir: Path
    ssh: str = "ssh"
    #: lines tipctl tells the user (on stderr)
    say: Callable[[str], None] = field(default=lambda _line: None)
    master: subprocess.Popen[bytes] | None = None
    remote_dir: str | None = None

    @property
    def control_path(self) -> str:
        return str(self.control_dir / "master")

    def _mux(self, *args: str) -> list[str]:
        """An ssh over the master connection (no second login)."""
        config = [a for i, a in enumerate(self.options) if i > 0 and self.options[i - 1] == "-F"]
        return [self.ssh, *(["-F", config[-1]] if config else []), "-S", self.control_path, "-o", "ControlMaster=no",
                *args]

    def connect(self) -> None:
        """Start the master and wait until it is logged in (or has failed)."""
        self.master = subprocess.Popen(
            [self.ssh, *self.options, "-M", "-S", self.control_path, "-N", "-o", "ControlPersist=no",
             "-o", "ExitOnForwardFailure=yes", self.host], stdin=subprocess.DEVNULL)
        while True:
            check = subprocess.run(self._mux("-O", "check", self.host), capture_output=True)
            if check.returncode == 0:
                return
            if self.master.poll() is not None:
                raise SshError(f"ssh could not connect to {self.host} (exit status {self.master.returncode}; "
                               "its message is above)")
            time.sleep(POLL)

    def forward(self) -> int:
        """The loopback port on HOST that sshd forwards to tipd's relay socket."""
        r = subprocess.run(self._mux("-O", "forward", "-R", f"127.0.0.1:0:{self.relay_socket}", self.host),
                           capture_output=True, text=True)
        port = r.stdout.strip()
        if r.returncode != 0 or not port.isdigit() or not 0 < int(port) < 65536:
            raise SshError(f"{self.host} refused to forward a port to tipd ({_first_line(r.stderr)}); "
                           "its sshd may forbid remote forwarding (AllowTcpForwarding)")
        return int(port)

    def send_token(self, token: str) -> str:
        """The token into a private directory on HOST; returns the directory. No newline after it: botocore sends
        the file as it is and refuses a header value with one ("Auth token value is not a legal header value")."""
        r = subprocess.run(self._mux("-T", "-o", "RemoteCommand=none", "-o", "ClearAllForwardings=yes", self.host,
                                     WRITE_TOKEN), input=token, capture_output=True, text=True)
        d = r.stdout.strip()
        if r.returncode != 0 or REMOTE_DIR.fullmatch(d) is None:
            raise SshError(f"could not write the session's token on {self.host} "
                           f"({_first_line(r.stderr) or 'no directory came back'})")
        self.remote_dir = d
        return d

    def session(self, port: int, profile: str, region: str | None, flags: list[str], command: list[str],
                interactive: bool) -> int:
        assert self.remote_dir is not None
        tty = flags or (["-t"] if interactive and not command else [])
        rc = subprocess.run(self._mux(*tty, "-o", "RemoteCommand=none", "-o", "ClearAllForwardings=yes",
                                      self.host, remote_command(self.remote_dir, port, profile, region, command))
                            ).returncode
        return 128 - rc if rc < 0 else rc  # ssh killed by a signal: the shell's convention

    def close(self) -> None:
        """Remove the token directory (again), end the master. Best effort: the token is revoked anyway."""
        if self.master is None:
            return
        if self.master.poll() is None:
            steps = [self._mux("-O", "exit", self.host)]
            if self.remote_dir is not None:
                steps.insert(0, self._mux("-T", "-o", "RemoteCommand=none", "-o", "ClearAllForwardings=yes",
                                          self.host, "rm -rf -- " + shlex.quote(self.remote_dir)))
            for step in steps:
                with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                    subprocess.run(step, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        try:
            self.master.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.master.kill()
            self.master.wait()


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")[:200]
