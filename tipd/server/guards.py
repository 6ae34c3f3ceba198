"""Checks every credential request passes before anything else happens. Cheap by design: a dict
lookup, a header scan and one constant-time compare (no I/O, no other crypto)."""
from __future__ import annotations

import asyncio
import hmac
import json
import os
import socket
import struct
import weakref

from aiohttp import web

from .peer import SUPPORTED as PEER_UID_SUPPORTED
from .peer import Peer, tcp_peer

#: headers browsers add and SDKs never send: a request carrying one came from a web page
BROWSER_MARKERS = ("Origin", "Sec-Fetch-Site", "Sec-Fetch-Mode", "Sec-Fetch-Dest", "Referer")


def error(status: int, code: str, message: str) -> web.Response:
    return web.Response(status=status, body=json.dumps({"code": code, "message": message}).encode(),
                        content_type="application/json")


class Guard:
    def __init__(self, token: bytes, port: int, *, allow_other_users: bool = False) -> None:
        self.token = token
        #: DNS rebinding: a page at evil.example resolving to 127.0.0.1 still sends Host: evil.example
        self.hosts = frozenset({f"127.0.0.1:{port}", f"localhost:{port}"})
        self.check_uid = PEER_UID_SUPPORTED and not allow_other_users
        self.uid = os.getuid()
        #: the client of each connection, looked up once (a file read) and kept while it lives
        self._peers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def rotate(self, token: bytes) -> None:
        self.token = token

    def peer(self, request: web.Request) -> Peer | None:
        return self.peer_of(request.transport)

    def peer_of(self, transport: asyncio.BaseTransport | None) -> Peer | None:
        """The connection's client, looked up once (when the connection caps admit it) and cached."""
        if transport is None or not PEER_UID_SUPPORTED:
            return None
        try:
            return self._peers[transport]
        except KeyError:
            peer = tcp_peer(transport.get_extra_info("peername"), transport.get_extra_info("sockname"))
            self._peers[transport] = peer
            return peer

    def uid_of(self, transport: asyncio.BaseTransport) -> int | None:
        peer = self.peer_of(transport)
        return peer.uid if peer is not None else None

    def refuse_browser(self, request: web.Request) -> web.Response | None:
        """The checks every endpoint shares: our Host, no browser, and (Linux) the same user."""
        headers = request.headers
        if headers.get("Host") not in self.hosts:
            return error(403, "Forbidden", "request refused")
        for marker in BROWSER_MARKERS:
            if marker in headers:
                return error(403, "Forbidden", "request refused")
        return None

    def refuse_user(self, request: web.Request) -> web.Response | None:
        if self.check_uid:
            peer = self.peer(request)
            if peer is None or peer.uid != self.uid:
                return error(403, "Forbidden", "tipd serves only the user it runs as")
        return None

    def refuse(self, request: web.Request) -> web.Response | None:
        """None when a container-credentials request may proceed, else the refusal to send. The token
        is checked before the (per-connection) peer lookup, so unauthenticated floods cost no file read."""
        refused = self.refuse_browser(request)
        if refused is not None:
            return refused
        presented = request.headers.get("Authorization")
        if presented is None or not hmac.compare_digest(presented.encode("utf-8", "surrogateescape"), self.token):
            return error(401, "Unauthorized", "missing or wrong authorization token")
        return self.refuse_user(request)


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
