"""A client that keeps fetching credentials the way SDKs do (re-reading the token file every time) and
records every answer, so fault tests can prove no request failed while a valid credential existed."""
from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path


@dataclass
class Answer:
    at: float
    status: int  # 0: no connection
    expires: float | None = None
    code: str | None = None


class Fetcher:
    def __init__(self, port: int, token_file: Path, profile: str = "work", every: float = 0.1) -> None:
        self.url = f"http://127.0.0.1:{port}/v1/credentials/{profile}"
        self.token_file = token_file
        self.every = every
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Fetcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.answers.append(self.fetch())
            self._stop.wait(self.every)

    def fetch(self) -> Answer:
        now = time.time()
        try:
            req = urllib.request.Request(self.url, headers={"Authorization": self.token_file.read_text()})
            with urllib.request.urlopen(req, timeout=10) as r:
                body = json.loads(r.read())
            exp = datetime.strptime(body["Expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
            return Answer(now, 200, exp)
        except urllib.error.HTTPError as e:
            try:
                code = json.loads(e.read()).get("code")
            except ValueError:
                code = None
            return Answer(now, e.code, code=code)
        except (OSError, ValueError):
            return Answer(now, 0)

    # -- verdicts ----------------------------------------------------------------------------
    def ok(self) -> list[Answer]:
        return [a for a in self.answers if a.status == 200]

    def failures_while_valid(self, floor: float, ignore_unreachable: bool = False) -> list[Answer]:
        """Failed answers at a moment when an earlier answer's credentials were still valid (by more than
        `floor`, below which tipd rightly stops serving them)."""
        out, best = [], 0.0
        for a in self.answers:
            if a.status == 200:
                best = max(best, a.expires or 0)
            elif not (ignore_unreachable and a.status == 0) and best - a.at > floor + 1:
                out.append(a)
        return out

    def expired_served(self) -> list[Answer]:
        return [a for a in self.ok() if a.expires is not None and a.expires <= a.at]
