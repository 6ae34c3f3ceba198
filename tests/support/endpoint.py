"""The unit-level credential endpoint: its token, and the headers an SDK sends it."""
from __future__ import annotations

TOKEN = b"t0ken-abcdefghijklmnopqrstuvwxyz0123456789ABCD"


def headers(**extra: str) -> dict[str, str]:
    h = {"Host": "127.0.0.1:9911", "Authorization": TOKEN.decode()}
    h.update(extra)
    return h
