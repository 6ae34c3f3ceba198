"""A small client for the daemon's control socket, with sockets only: quick commands (status,
credential-process) must not pay for importing aiohttp, nor even http.client (about 20 ms with the email
parser it pulls in). Requests are HTTP/1.0, so every answer ends when the daemon closes the connection:
no keep-alive and no chunked encoding to decode, event streams included."""
from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import TipdError


class DaemonNotRunning(TipdError):
    code = "DaemonNotRunning"
    status = 503
    #: tipctl's exit code for it, on every command (as `tipctl status` had it alone): a script can tell
    #: "start tipd" from any other failure (1)
    exit_code = 3


NOT_RUNNING = ("tipd is not running (nothing answers on its control socket). Start it with `tipd` in another "
               "terminal, or once and for all with `tipctl service install`.")
#: no byte for this long on an event stream (it sends a keep-alive every 15 s): the daemon is hung or gone
STREAM_TIMEOUT = 45.0


class ControlClient:
    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        self.path = path
        self.timeout = timeout

    def request(self, method: str, url: str, body: Any = None, timeout: float | None = None) -> Any:
        try:
            with self._send(method, url, body, timeout or self.timeout) as answer:
                status, stream = _read_head(answer)
                raw = stream.read()
        except TimeoutError:
            raise TipdError("tipd did not answer in time; see its log (`journalctl --user -u tipd` when it runs "
                            "as a service)") from None
        except OSError:
            raise TipdError("tipd closed the connection without an answer; see its log") from None
        return _payload(status, raw)

    def events(self, url: str, timeout: float = STREAM_TIMEOUT) -> Iterator[tuple[str, str]]:
        """Follow a server-sent event stream: yields (event, data) per event and ("keep-alive", "") per
        comment. Ends when the stream does (the daemon stopped, or went silent for `timeout` seconds);
        raises DaemonNotRunning when nothing answers at all."""
        with self._send("GET", url, None, timeout, accept="text/event-stream") as answer:
            try:
                status, stream = _read_head(answer)
            except (OSError, TipdError):
                return  # it went away between connecting and answering
            if status >= 400:
                _payload(status, stream.read())
            event = "message"
            data: list[str] = []
            while True:
                try:
                    line = stream.readline()
                except OSError:
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

    def _send(self, method: str, url: str, body: Any, timeout: float,
              accept: str = "application/json") -> socket.socket:
        """Connect and send one request; returns the connected socket (a context manager)."""
        data = b"" if body is None else json.dumps(body).encode()
        head = f"{method} {url} HTTP/1.0\r\nHost: tipd\r\nAccept: {accept}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(str(self.path))
            s.sendall(head.encode() + b"\r\n" + data)
        except (FileNotFoundError, ConnectionRefusedError):
            s.close()
            raise DaemonNotRunning(NOT_RUNNING) from None
        except TimeoutError:
            s.close()
            raise TipdError("tipd did not accept the connection in time; see its log") from None
        except OSError as e:  # a path too long for a socket, no permission, not a socket...
            s.close()
            raise TipdError(f"cannot connect to tipd's control socket {self.path}: {e.strerror or e}") from None
        except BaseException:
            s.close()
            raise
        return s


def _read_head(s: socket.socket) -> tuple[int, Any]:
    """The status code of the answer on `s`, and a file positioned at its body."""
    stream = s.makefile("rb")
    parts = stream.readline(1024).split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise TipdError("tipd sent an unreadable answer (no HTTP status line)")
    while stream.readline(8192) not in (b"\r\n", b"\n", b""):
        pass  # headers: nothing in them is needed
    return int(parts[1]), stream


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
