"""A real Secret Service for tests: a private D-Bus session bus with gnome-keyring-daemon on it, its "login"
collection created with a password and unlocked (as a desktop's PAM login does), lockable at will.

    with SecretService(tmp_dir) as ss:
        env.update(ss.env)            # DBUS_SESSION_BUS_ADDRESS and the keyring backend for tipd
        ss.lock()                     # the collection is locked: reads and writes raise KeyringLocked
        ss.unlock()
        ss.get("tipd", "work")        # read an item as any Secret Service client would (secretstorage)

Needs Debian's gnome-keyring and dbus-daemon (tests/run.sh installs them). Without a display the unlock
prompt (gcr-prompter) cannot open, so a locked collection refuses at once instead of waiting on a person.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

TOOLS = ("dbus-daemon", "gnome-keyring-daemon")
PASSWORD = "tipd-test-login-password"
BACKEND = "keyring.backends.SecretService.Keyring"

_CLIENT = r"""
import json, sys, secretstorage
op, args = sys.argv[1], sys.argv[2:]
conn = secretstorage.dbus_init()
col = secretstorage.get_default_collection(conn)
if op == "lock":
    col.lock()
elif op == "unlock":
    # gnome-keyring's own (non-prompting) unlock with the password:
    # org.gnome.keyring.InternalUnsupportedGuiltRiddenInterface
    from secretstorage.dhcrypto import Session
    from secretstorage.util import DBusAddressWrapper, open_session, format_secret
    session = open_session(conn)
    iface = DBusAddressWrapper("/org/freedesktop/secrets",
                               "org.gnome.keyring.InternalUnsupportedGuiltRiddenInterface", conn)
    iface.call("UnlockWithMasterPassword", "o(oayays)", col.collection_path,
               format_secret(session, args[0].encode(), "text/plain"))
elif op == "get":
    items = list(col.search_items({"service": args[0], "username": args[1]}))
    print(json.dumps(items[0].get_secret().decode() if items else None))
elif op == "locked":
    print(json.dumps(col.is_locked()))
"""


def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None]


class SecretService:
    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.bus: subprocess.Popen[str] | None = None
        self.daemon: subprocess.Popen[bytes] | None = None
        self.env: dict[str, str] = {}

    def __enter__(self) -> SecretService:
        home = self.dir / "keyring-home"
        run = self.dir / "keyring-run"
        for d in (home, run):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("DBUS_", "DISPLAY", "WAYLAND_"))}
        base.update(HOME=str(home), XDG_DATA_HOME=str(home / "data"), XDG_RUNTIME_DIR=str(run))
        self.bus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--nopidfile", "--print-address=1"],
                                    env=base, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.bus.stdout is not None
        address = self.bus.stdout.readline().strip()
        if not address:
            self.__exit__()
            raise RuntimeError("dbus-daemon printed no address")
        base["DBUS_SESSION_BUS_ADDRESS"] = address
        # --unlock reads the login password on stdin and creates/unlocks the "login" collection with it
        self.daemon = subprocess.Popen(["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"],
                                       env=base, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        assert self.daemon.stdin is not None
        self.daemon.stdin.write(PASSWORD.encode())
        self.daemon.stdin.close()
        self._base = base
        self.env = {"DBUS_SESSION_BUS_ADDRESS": address, "PYTHON_KEYRING_BACKEND": BACKEND}
        self._client("locked", timeout=30)  # waits until the daemon owns org.freedesktop.secrets
        return self

    def _client(self, op: str, *args: str, timeout: float = 30) -> str:
        r = subprocess.run([sys.executable, "-c", _CLIENT, op, *args], env=self._base, capture_output=True,
                           text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"secret service client {op}: {r.stderr.strip()[-500:]}")
        return r.stdout.strip()

    def lock(self) -> None:
        self._client("lock")

    def unlock(self) -> None:
        self._client("unlock", PASSWORD)

    def locked(self) -> bool:
        return self._client("locked") == "true"

    def get(self, service: str, username: str) -> str | None:
        import json

        password: str | None = json.loads(self._client("get", service, username))
        return password

    def __exit__(self, *exc: object) -> None:
        for p in (self.daemon, self.bus):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(5)
