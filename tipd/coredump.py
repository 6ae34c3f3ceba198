"""No core dumps: tipd's memory holds refresh tokens, AWS secret keys and the endpoint token.

A unit sets LimitCORE=0, but tipd is also started by hand, from a shell where `ulimit -c unlimited` may be
in force, or under a core-collecting handler (systemd-coredump, apport) that ignores RLIMIT_CORE for
piped patterns. So the daemon does it itself, first thing, before it reads any secret:
- RLIMIT_CORE 0, soft and hard (a hard 0 cannot be raised again without privilege);
- on Linux, prctl(PR_SET_DUMPABLE, 0): no core at all (piped core_pattern included), and no ptrace
  attach or /proc/PID/mem read by other processes of the same user (see prctl(2), PR_SET_DUMPABLE).
macOS writes cores only below RLIMIT_CORE, so the limit suffices there."""
from __future__ import annotations

import os
import resource
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ctypes

PR_SET_DUMPABLE = 4  # <linux/prctl.h>
PR_GET_DUMPABLE = 3


def forbid_core_dumps() -> list[str]:
    """Make this process unable to dump core. Returns what could not be done (as sentences), else []."""
    problems = []
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError) as e:
        problems.append(f"cannot set the core-dump size limit to 0: {e}")
    if sys.platform.startswith("linux"):
        try:
            libc = _libc()
            if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
                problems.append(f"prctl(PR_SET_DUMPABLE, 0) failed: {os.strerror(_errno())}")
        except OSError as e:
            problems.append(f"cannot call prctl: {e}")
    return problems


def dumpable() -> int | None:
    """This process's dumpable flag (Linux; None elsewhere): 0 means no core and no same-user ptrace."""
    if not sys.platform.startswith("linux"):
        return None
    return int(_libc().prctl(PR_GET_DUMPABLE, 0, 0, 0, 0))


def _libc() -> ctypes.CDLL:
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def _errno() -> int:
    import ctypes

    return ctypes.get_errno()
