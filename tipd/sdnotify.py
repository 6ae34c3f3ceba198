"""systemd's readiness protocol (sd_notify(3)) in the standard library: one datagram to $NOTIFY_SOCKET.

Under `Type=notify` the service manager counts tipd as started only when READY=1 arrives, so
`systemctl --user start tipd` returns once the endpoint and the control socket listen, and units
ordered after tipd find it serving. Outside systemd (no NOTIFY_SOCKET) every call does nothing."""
from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


def notify(*fields: str, environ: dict[str, str] | None = None) -> bool:
    """Send `fields` (e.g. "READY=1", "STATUS=...") as one message; True if it was sent. Never raises:
    a failure is logged, since the manager would otherwise wait for READY=1 until its start timeout."""
    target = (os.environ if environ is None else environ).get("NOTIFY_SOCKET")
    if not target:
        return False
    if target.startswith("@"):
        address = "\0" + target[1:]  # an abstract socket: no file, the name starts with a NUL byte
    elif target.startswith("/"):
        address = target
    else:
        log.warning("NOTIFY_SOCKET %r is neither a path nor an abstract socket; not notifying", target)
        return False
    message = "\n".join(fields).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(address)
            s.sendall(message)
    except OSError as e:
        log.warning("could not notify the service manager through %s: %s", target, e.strerror or e)
        return False
    return True
