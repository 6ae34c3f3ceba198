"""Checks every credential request passes before anything else happens. Cheap by design: a dict
lookup, a header scan and one constant-time compare (no I/O, no other crypto)."""
from __future__ import annotations

import hmac
import json
import os
import socket
import struct

from aiohttp import web

#: headers browsers add and SDKs never send: a request carrying one came from a web page
BROWSER_MARKERS = ("Origin", "Sec-Fetch-Site", "Sec-Fetch-Mode", "Sec-Fetch-Dest", "Referer")


def error(status: int, code: str, message: str) -> web.Response:
    return web.Response(status=status, body=json.dumps({"code": code, "message": message}).encode(),
                        content_type="application/json")


class Guard:
    def __init__(self, token: bytes, port: int) -> None:
        self.token = token
        #: DNS rebinding: a page at evil.example resolving to 127.0.0.1 still sends Host: evil.example
        self.hosts = frozenset({f"127.0.0.1:{port}", f"localhost:{port}"})

    def rotate(self, token: bytes) -> None:
        self.token = token

    def refuse(self, request: web.Request) -> web.Response | None:
        """None when the request may proceed, else the refusal to send."""
        headers = request.headers
        if headers.get("Host") not in self.hosts:
            return error(403, "Forbidden", "request refused")
        for marker in BROWSER_MARKERS:
            if marker in headers:
                return error(403, "Forbidden", "request refused")
        presented = headers.get("Authorization")
        if presented is None or not hmac.compare_digest(presented.encode("utf-8", "surrogateescape"), self.token):
            return error(401, "Unauthorized", "missing or wrong authorization token")
        return None


def peer_uid(request: web.Request) -> int | None:
    """The uid of the process at the other end of a unix socket (SO_PEERCRED / getpeereid)."""
    sock: socket.socket | None = request.transport.get_extra_info("socket") if request.transport else None
    if sock is None:
        return None
    if hasattr(socket, "SO_PEERCRED"):
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return struct.unpack("3i", creds)[1]
    try:  # macOS / BSD
        return os.getpeereid(sock.fileno())  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        return None
