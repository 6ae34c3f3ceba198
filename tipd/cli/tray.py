"""`tipctl tray`: a status icon for the desktop (the optional extra: pip install 'tipd[tray]')."""
from __future__ import annotations

import argparse

HELP = "show a tray icon that follows tipd's state, with Sign in / Sign out / Open status in its menu"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("tray", help=HELP, description=HELP + ". The icon is green when every signed-in profile "
                       "is fresh, blue while signing in, amber when renewals fail, red when a sign-in is needed, "
                       "grey when nothing is signed in, and a dark ring while tipd is not running. It follows "
                       "tipd's change stream (no polling) and waits for tipd when it is not running. Needs the "
                       "optional extra (pip install 'tipd[tray]') and a graphical session; see docs/tray.md.")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..paths import Paths
    from ..tray.app import main

    return main(Paths.default().control_socket)
