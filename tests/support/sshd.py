"""A real OpenSSH server (Debian's openssh-server) on a free loopback port, with its own host key, config and
authorized key, for `tipctl ssh` to log into as the user running the tests; and the ssh client config that
reaches it (`ssh -F CONFIG testhost`)."""
from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .net import free_port
from .stack import wait_for

SSHD = "/usr/sbin/sshd"
#: the Host alias the client config gives the server
HOST = "testhost"


def available() -> str | None:
    """Why the rig cannot run here, else None."""
    if not os.path.exists(SSHD) or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        return "OpenSSH is missing (apt-get install openssh-server openssh-client; tests/run.sh does this)"
    return None


class Sshd:
    """`sshd -D` on 127.0.0.1:PORT, logging to a file; stop() ends it and removes its directory."""

    def __init__(self, extra: str = "") -> None:
        """`extra`: sshd_config lines that come first (sshd takes the first value of an option)."""
        self.dir = Path(tempfile.mkdtemp(prefix="tipd-sshd-"))
        self.port = free_port()
        self.user = getpass.getuser()
        self.log = self.dir / "sshd.log"
        self.client_config = self.dir / "ssh_config"
        self.proc: subprocess.Popen[bytes] | None = None
        host_key, user_key = self.dir / "host_key", self.dir / "user_key"
        for key in (host_key, user_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "tipd-test", "-f", str(key)],
                           check=True, capture_output=True)
        (self.dir / "authorized_keys").write_text(user_key.with_suffix(".pub").read_text())
        host_pub = host_key.with_suffix(".pub").read_text().split()
        (self.dir / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {host_pub[0]} {host_pub[1]}\n")
        (self.dir / "sshd_config").write_text(f"""{extra}
ListenAddress 127.0.0.1
Port {self.port}
HostKey {host_key}
PidFile none
AuthorizedKeysFile {self.dir}/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
AllowTcpForwarding yes
AllowStreamLocalForwarding yes
GatewayPorts no
PermitTTY yes
LogLevel VERBOSE
""")
        # no AcceptEnv at all (the sshd default): tipctl ssh must not need the server to accept variables
        self.client_config.write_text(f"""\
Host {HOST}
  HostName 127.0.0.1
  Port {self.port}
  User {self.user}
  IdentityFile {user_key}
  IdentitiesOnly yes
  UserKnownHostsFile {self.dir}/known_hosts
  StrictHostKeyChecking yes
  BatchMode yes
  ConnectTimeout 30
""")

    def start(self) -> Sshd:
        # Debian's sshd refuses to start without its privilege separation directory (the ssh service makes it)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.dir / "sshd_config")],
                                     stdout=subprocess.DEVNULL, stderr=self.log.open("wb"))
        wait_for(lambda: "Server listening on 127.0.0.1" in self.log.read_text(), timeout=30,
                 what="sshd listening", proc=self.proc)
        return self

    def ssh(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """A plain ssh to the server (no tipctl): `args` is the remote command."""
        return subprocess.run(["ssh", "-F", str(self.client_config), HOST, *args], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
