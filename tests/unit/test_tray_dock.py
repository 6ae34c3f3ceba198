"""The tray asks the system tray to dock its icon only while it is not docked (pystray's plain-X backend asked at
every icon change: trayer re-embedded the window and, on a loaded machine, the icon now and then vanished)."""
from __future__ import annotations

import types
from typing import Any

from tipd.tray.app import _dock_once


def xorg_icon() -> Any:  # a class made at run time, as pystray's are
    """An object of pystray's `_xorg` module shape: `_dock_window` sends the request and records the manager."""
    cls = type("Icon", (), {"__module__": "pystray._xorg"})
    icon = cls()
    icon.requests = 0
    icon._systray_manager = None

    def _dock_window(self) -> None:
        self.requests += 1
        self._systray_manager = "trayer"

    icon._dock_window = types.MethodType(_dock_window, icon)
    return icon


def test_an_icon_change_of_a_docked_icon_sends_no_second_dock_request():
    icon = xorg_icon()
    _dock_once(icon)
    for _ in range(5):  # _show, then an icon change per state: each calls _assert_docked -> _dock_window
        icon._dock_window()
    assert icon.requests == 1


def test_a_tray_that_went_away_is_docked_into_again():
    icon = xorg_icon()
    _dock_once(icon)
    icon._dock_window()
    icon._systray_manager = None  # what pystray does on the tray's DestroyNotify
    icon._dock_window()
    assert icon.requests == 2


def test_other_backends_are_left_alone():
    cls = type("Icon", (), {"__module__": "pystray._appindicator"})
    icon = cls()
    _dock_once(icon)
    assert not hasattr(icon, "_dock_window")
