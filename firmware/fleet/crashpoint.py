"""Named points where a crash test may kill the agent (``PARALLAX_FLEET_CRASH_AT=<name>``).

The fleet tests kill the agent with SIGKILL at each of these points of an apply and check that the
box comes back with exactly one complete version current. Outside that test the variable is unset
and a crash point is one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

_TARGET = os.environ.get("PARALLAX_FLEET_CRASH_AT")


def crashpoint(name: str) -> None:
    if _TARGET is not None and _TARGET == name:
        os.kill(os.getpid(), signal.SIGKILL)
