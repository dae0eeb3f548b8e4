"""systemd's notify protocol for the box's long-running processes, without a dependency.

Every unit in ``systemd/`` is ``Type=notify`` with ``WatchdogSec``: a process says ``READY=1``
once it serves, ``STATUS=`` lines for ``systemctl status``, ``STOPPING=1`` when it shuts down,
and ``WATCHDOG=1`` from its *main loop*, so a loop that stalls stops the pings and systemd kills
and restarts the process (``Restart=``). The protocol is one datagram per message on the
``AF_UNIX`` socket named by ``$NOTIFY_SOCKET`` (a leading ``@`` is the abstract namespace);
``$WATCHDOG_USEC`` (and ``$WATCHDOG_PID``, when set, naming this process) says the deadline.
Outside systemd (no ``$NOTIFY_SOCKET``) every call is a cheap no-op.

Contract for each process's main loop (``parallax bridge``, ``parallax run``, ``parallax agent``):
call :meth:`Notifier.ready` once it serves, :meth:`Notifier.kick` on every pass of the loop
that proves progress (it rate-limits itself to half the deadline), and :meth:`Notifier.stopping`
on the way out. All methods are called from the main thread, never block (a datagram to a
local socket; errors are logged at debug level and ignored: supervision must never take the
process down).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


class Notifier:
    """One process's channel to systemd. ``environ`` and ``clock`` are for tests."""

    def __init__(self, environ: Mapping[str, str] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):
            address = "\0" + address[1:]
        self._address = address or None
        self._clock = clock
        self.watchdog_s = self._watchdog_interval(env)
        # systemd's advice: ping at half the deadline, so one late pass never trips it.
        self._kick_every_s = self.watchdog_s / 2 if self.watchdog_s else 0.0
        self._last_kick = float("-inf")
        self.sent = 0
        self._sock: socket.socket | None = None

    @staticmethod
    def _watchdog_interval(env: Mapping[str, str]) -> float | None:
        usec = env.get("WATCHDOG_USEC")
        pid = env.get("WATCHDOG_PID")
        if not usec or (pid and pid != str(os.getpid())):
            return None
        try:
            value = int(usec)
        except ValueError:
            return None
        return value / 1e6 if value > 0 else None

    @property
    def enabled(self) -> bool:
        """True under a notify unit (``$NOTIFY_SOCKET`` set)."""
        return self._address is not None

    def notify(self, *fields: str) -> bool:
        """Send ``fields`` ("READY=1", "STATUS=...") as one message; False when not sent."""
        if self._address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sock.setblocking(False)
            self._sock.sendto("\n".join(fields).encode(), self._address)
        except OSError as exc:
            log.debug("sd_notify %s failed: %s", fields, exc)
            return False
        self.sent += 1
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def kick(self) -> bool:
        """WATCHDOG=1 if half the deadline has passed since the last one; call on every loop pass."""
        if self._address is None or not self.watchdog_s:
            return False
        now = self._clock()
        if now - self._last_kick < self._kick_every_s:
            return False
        self._last_kick = now
        return self.notify("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
