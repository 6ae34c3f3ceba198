"""One URL parser for every user-given URL: `urlsplit` leaves some checks to attribute access (a port out of
range or not a number raises only when `.port` is read; an unclosed IPv6 bracket raises at once), so a bad URL
surfaced as a ValueError traceback wherever it was first touched."""
from __future__ import annotations

from urllib.parse import SplitResult, urlsplit


def split_url(url: str) -> SplitResult:
    """`urlsplit(url)` with the port checked too; a ValueError names the problem."""
    parts = urlsplit(url)
    parts.port  # noqa: B018 (raises ValueError for a port out of range or not a number)
    return parts
