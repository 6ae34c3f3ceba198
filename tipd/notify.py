"""Tell the person once when something needs them: a desktop notification where one can be shown."""
from __future__ import annotations

import logging
import shutil
import subprocess
import sys

log = logging.getLogger(__name__)


def desktop_notify(title: str, body: str) -> None:
    """Fire and forget: `notify-send` (freedesktop) or `osascript` (macOS); nothing where neither exists.
    Never blocks the event loop for long and never raises."""
    if sys.platform == "darwin":
        cmd = ["osascript", "-e", f"display notification {_applescript(body)} with title {_applescript(title)}"]
    elif shutil.which("notify-send"):
        cmd = ["notify-send", "--app-name=tipd", "--urgency=critical", title, body]
    else:
        return
    try:
        subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    except OSError as e:
        log.debug("desktop notification failed: %s", type(e).__name__)


def _applescript(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
