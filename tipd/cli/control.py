"""A small client for the daemon's control socket: HTTP/1.1 over AF_UNIX with the stdlib only,
so quick commands (status, env, credential-process) do not pay for importing aiohttp."""
from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import TipdError


class DaemonNotRunning(TipdError):
    code = "DaemonNotRunning"
    status = 503


NOT_RUNNING = ("tipd is not running (nothing answers on its control socket). Start it with `tipd` in another "
               "terminal, or once and for all with `tipctl service install`.")
#: no byte for this long on an event stream (it sends a keep-alive every 15 s): the daemon is hung or gone
STREAM_TIMEOUT = 45.0


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
            raise DaemonNotRunning(NOT_RUNNING) from None
        except socket.timeout:
            raise TipdError("tipd did not answer in time; see its log (`journalctl --user -u tipd` when it runs "
                            "as a service)") from None
        finally:
            conn.close()
        return _payload(resp.status, raw)

    def events(self, url: str, timeout: float = STREAM_TIMEOUT) -> Iterator[tuple[str, str]]:
        """Follow a server-sent event stream: yields (event, data) per event and ("keep-alive", "") per
        comment. Ends when the stream does (the daemon stopped, or went silent for `timeout` seconds);
        raises DaemonNotRunning when nothing answers at all."""
        conn = _UnixConnection(str(self.path), timeout)
        try:
            try:
                conn.request("GET", url, headers={"Host": "tipd", "Accept": "text/event-stream"})
                resp = conn.getresponse()
            except (FileNotFoundError, ConnectionRefusedError):
                raise DaemonNotRunning(NOT_RUNNING) from None
            except (OSError, http.client.HTTPException):
                return  # it went away between connecting and answering
            if resp.status >= 400:
                _payload(resp.status, resp.read())
            event, data = "message", []
            while True:
                try:
                    line = resp.readline()
                except (OSError, http.client.HTTPException):
                    return
                if not line:
                    return
                line = line.decode("utf-8", "replace").rstrip("\r\n")
                if not line:  # a blank line ends an event
                    if data:
                        yield event, "\n".join(data)
                    event, data = "message", []
                elif line.startswith(":"):
                    yield "keep-alive", ""
                else:
                    name, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if name == "event":
                        event = value
                    elif name == "data":
                        data.append(value)
        finally:
            conn.close()


def _payload(status: int, raw: bytes) -> Any:
    try:
        payload = json.loads(raw)
    except ValueError:
        raise TipdError(f"tipd sent an unreadable answer (HTTP {status})") from None
    if status >= 400:
        msg = payload.get("message") if isinstance(payload, dict) else None
        raise TipdError(msg or f"tipd answered HTTP {status}",
                        code=(payload.get("code") if isinstance(payload, dict) else None) or "Error", status=status)
    return payload
