"""A small client for the daemon's control socket: HTTP/1.1 over AF_UNIX with the stdlib only,
so quick commands (status, env, credential-process) do not pay for importing aiohttp."""
from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path
from typing import Any

from ..errors import TipdError


class DaemonNotRunning(TipdError):
    code = "DaemonNotRunning"
    status = 503


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


class ControlClient:
    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        self.path = path
        self.timeout = timeout

    def request(self, method: str, url: str, body: Any = None, timeout: float | None = None) -> Any:
        conn = _UnixConnection(str(self.path), timeout or self.timeout)
        headers = {"Host": "tipd"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, url, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except (FileNotFoundError, ConnectionRefusedError):
            raise DaemonNotRunning(
                "tipd is not running (nothing answers on its control socket). Start it with `tipd` in another "
                "terminal, or once and for all with `tipctl service install`.") from None
        except socket.timeout:
            raise TipdError("tipd did not answer in time; see its log (`journalctl --user -u tipd` when it runs "
                            "as a service)") from None
        finally:
            conn.close()
        try:
            payload = json.loads(raw)
        except ValueError:
            raise TipdError(f"tipd sent an unreadable answer (HTTP {resp.status})") from None
        if resp.status >= 400:
            msg = payload.get("message") if isinstance(payload, dict) else None
            raise TipdError(msg or f"tipd answered HTTP {resp.status}",
                            code=(payload.get("code") if isinstance(payload, dict) else None) or "Error",
                            status=resp.status)
        return payload
