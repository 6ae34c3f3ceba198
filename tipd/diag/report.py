"""The report: text grouped by section (symbols on a UTF-8 terminal, words elsewhere), JSON, exit code."""
from __future__ import annotations

from collections import Counter
from typing import Any

from .model import SECTIONS, Check, Status, Target

SYMBOLS = {Status.OK: "✓", Status.WARNING: "!", Status.FAILURE: "✗", Status.SKIPPED: "-"}
WORDS = {Status.OK: "ok  ", Status.WARNING: "warn", Status.FAILURE: "FAIL", Status.SKIPPED: "skip"}


def exit_code(checks: list[Check]) -> int:
    """0 when nothing failed (warnings allowed), 1 when a check failed."""
    return 1 if any(c.status == Status.FAILURE for c in checks) else 0


def counts(checks: list[Check]) -> dict[str, int]:
    n = Counter(str(c.status) for c in checks)
    return {str(s): n.get(str(s), 0) for s in Status}


def render_text(target: Target, checks: list[Check], *, symbols: bool) -> str:
    mark = SYMBOLS if symbols else WORDS
    lines = [f"Profile {target.profile}: application {target.application_arn} in {target.region}, "
             f"issuer {target.issuer}"]
    for section, title in SECTIONS.items():
        mine = [c for c in checks if c.section == section]
        if not mine:
            continue
        lines += ["", title]
        for c in mine:
            lines.append(f"  {mark[c.status]} {c.detail}")
            if c.fix and c.status in (Status.WARNING, Status.FAILURE):
                lines.append(f"      fix: {c.fix}")
    n = counts(checks)
    lines += ["", f"{n['ok']} ok, {n['warning']} warning{'s' * (n['warning'] != 1)}, "
                  f"{n['failure']} failure{'s' * (n['failure'] != 1)}, {n['skipped']} skipped"]
    return "\n".join(lines)


def to_json(target: Target, checks: list[Check]) -> dict[str, Any]:
    return {"profile": target.profile, "application_arn": target.application_arn, "region": target.region,
            "ok": exit_code(checks) == 0, "counts": counts(checks), "checks": [c.to_json() for c in checks]}
