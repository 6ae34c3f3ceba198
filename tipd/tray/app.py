"""The tray itself: a pystray icon whose picture, tooltip and menu follow the daemon's change stream."""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import TipdError
from .model import SEPARATOR, Entry, View

log = logging.getLogger(__name__)
#: how often to look for tipd again while it is not running
RETRY = 2.0


def load_pystray() -> Any:
    """pystray, or a sentence saying what is missing (the extra, or a graphical session)."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise TipdError("no graphical session to show a tray icon in (DISPLAY is not set)")
    try:
        import pystray
    except ImportError as e:
        if getattr(e, "name", None) in ("pystray", "PIL", "Xlib", "six"):
            raise TipdError("the tray needs the optional extra: pip install 'tipd[tray]'") from None
        raise TipdError(f"pystray cannot show a tray icon here: {e}") from None
    except Exception as e:  # python-xlib raises its own errors when the display cannot be opened
        raise TipdError(f"cannot open the display for a tray icon ({type(e).__name__}: {e})") from None
    return pystray


class Tray:
    def __init__(self, pystray: Any, socket_path: Path, runner: Any) -> None:
        from .icon import draw

        self.pystray = pystray
        self.socket_path = socket_path
        self.runner = runner
        self.draw = draw
        self.view = View.not_running("connecting...")
        self.stopping = threading.Event()
        self.icon = pystray.Icon("tipd", draw(self.view), self.view.title, menu=pystray.Menu(self._items))
        _clickable(self.icon)
        _dock_once(self.icon)

    # -- the menu --------------------------------------------------------------------------
    def _items(self) -> list[Any]:
        """pystray asks for the menu when it shows it (and after update_menu)."""
        P = self.pystray
        return [P.Menu.SEPARATOR if e is SEPARATOR else
                P.MenuItem(e.label, self._handler(e), enabled=e.enabled, default=e.default)
                for e in self.view.menu()]

    def _handler(self, entry: Entry) -> Callable[[Any, Any], None]:
        def handler(icon: Any, item: Any) -> None:
            if entry.action is None:
                return
            if entry.action.kind == "quit":
                self.stop()
            else:
                self.runner.run(entry.action, self.view)
        return handler

    # -- following the daemon --------------------------------------------------------------
    def show(self, view: View) -> None:
        if view == self.view:
            return
        self.view = view
        self.icon.icon = self.draw(view)
        self.icon.title = view.title
        self.icon.update_menu()

    def follow(self) -> None:
        """The background thread: the brief event stream, and a retry every RETRY s while tipd is away."""
        from ..cli.control import ControlClient, DaemonNotRunning

        ctl = ControlClient(self.socket_path)
        while not self.stopping.is_set():
            message = "tipd is not running"
            try:
                for event, data in ctl.events("/v1/events?brief=1"):
                    if event == "status":
                        self.show(View.from_summary(json.loads(data)))
            except DaemonNotRunning:
                pass
            except TipdError as e:
                message = e.message
            except Exception:  # keep the icon alive whatever happens; say so in the log
                log.exception("following tipd's status failed")
            self.show(View.not_running(message))
            self.stopping.wait(RETRY)

    # -- lifecycle -------------------------------------------------------------------------
    def _setup(self, icon: Any) -> None:
        icon.visible = True
        threading.Thread(target=self.follow, name="tray-follow", daemon=True).start()

    def stop(self) -> None:
        self.stopping.set()
        self.icon.stop()

    def run(self) -> None:
        """Blocks in the GUI loop until Quit, SIGINT or SIGTERM."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stop())
        self.icon.run(setup=self._setup)


def _clickable(icon: Any) -> None:
    """pystray's plain-X backend (the one a venv without PyGObject gets) never asks X for button presses
    (pystray issue #151), so a click would do nothing and the default item could never run: ask for them."""
    window = getattr(icon, "_window", None)
    if not type(icon).__module__.endswith("._xorg") or window is None:
        return
    from Xlib import X

    window.change_attributes(event_mask=X.ExposureMask | X.StructureNotifyMask | X.ButtonPressMask)
    icon._display.flush()


def _dock_once(icon: Any) -> None:
    """pystray's plain-X backend sends the tray a dock request at every icon change, though the icon is docked
    already; trayer then embeds the window again, and on a loaded machine the icon now and then vanished for
    good (seen as a tray that stayed empty after a sign-in). Ask only while not docked: pystray clears
    `_systray_manager` when the tray goes away and docks into the next one itself."""
    if not type(icon).__module__.endswith("._xorg") or not hasattr(icon, "_dock_window"):
        return
    dock = icon._dock_window

    def dock_unless_docked() -> None:
        if getattr(icon, "_systray_manager", None) is None:
            dock()

    icon._dock_window = dock_unless_docked


def main(socket_path: Path) -> int:
    from ..notify import desktop_notify
    from .actions import Runner

    pystray = load_pystray()
    Tray(pystray, socket_path, Runner(desktop_notify)).run()
    return 0
