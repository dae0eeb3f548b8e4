"""The bridge as a service: call-state publication, systemd notification, stats logging.

Everything here runs off the audio thread. :class:`CallStatePublisher` drains the bridge's
call changes (a DropQueue the audio thread offers to) and writes the state file;
:func:`supervise` is the process's main loop, feeding systemd's watchdog (:mod:`firmware.systemd`)
only while the audio thread advances.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Callable

from firmware.audio.bridge import Bridge
from firmware.audio.callstate import CallChange, write_state
from firmware.errors import StorageError
from firmware.events import CallState
from firmware.systemd import Notifier

log = logging.getLogger(__name__)


def supervise(
    bridge: Bridge,
    stop: threading.Event,
    notifier: Notifier,
    *,
    stats_interval_s: float = 0.0,
    duration_s: float = 0.0,
    poll_s: float = 0.5,
    periodic: Callable[[], None] | None = None,
    periodic_s: float = 30.0,
) -> int:
    """The bridge process's main loop: watch the audio thread until ``stop`` (or ``duration_s``).

    ``periodic`` runs on this (non-real-time) thread at the first poll and then every
    ``periodic_s`` (the counters file the fleet agent reads); it must not raise.

    The watchdog is fed only while the audio thread's cycle count advances, so a stalled or
    wedged audio thread (not just a dead process) stops the pings and systemd restarts the
    bridge. Returns 1 when the audio thread died (the service manager restarts it), else 0.
    """
    started = last_stats = time.monotonic()
    last_periodic = -math.inf
    last_cycles = -1
    notifier.ready(f"passing audio (cycle {bridge.config.cycle_s * 1000:.0f} ms)")
    while not stop.wait(poll_s):
        if not bridge.running:
            log.error("bridge thread stopped; exiting for the service manager to restart")
            return 1
        cycles = bridge.cycles
        if cycles != last_cycles:  # only a loop that moves keeps the watchdog fed
            notifier.kick()
            last_cycles = cycles
        now = time.monotonic()
        if periodic is not None and now - last_periodic >= periodic_s:
            periodic()
            last_periodic = now
        if stats_interval_s and now - last_stats >= stats_interval_s:
            log.info("bridge %s", json.dumps(bridge.stats()))
            last_stats = now
        if duration_s and now - started >= duration_s:
            break
    return 0


def lock_memory() -> bool:
    """mlockall: keep the audio path's pages resident so a page fault never costs a period."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    mcl_current, mcl_future = 1, 2
    if libc.mlockall(mcl_current | mcl_future) != 0:
        log.warning("mlockall failed (%s): audio pages may be swapped", os.strerror(ctypes.get_errno()))
        return False
    return True


class CallStatePublisher:
    """Writes every call change the bridge reports to the state file, on its own thread."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self.path = bridge.config.call_state_file
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._call_start_t = 0.0
        self.published = 0

    def start(self) -> None:
        self._publish(CallState(t=0.0, active=False, call_id=0, reason="bridge started"))
        self._thread = threading.Thread(target=self._run, name="parallax-callstate", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None
        self._publish(CallState(t=0.0, active=False, call_id=0, reason="bridge stopped"))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                change = self.bridge.changes.get(timeout=0.2)
            except queue.Empty:
                continue
            self._publish(self._event(change))

    def _event(self, change: CallChange) -> CallState:
        if change.active:
            self._call_start_t = change.stream_t
            log.info("call %d started", change.call_id)
            return CallState(t=0.0, active=True, call_id=change.call_id, reason=change.reason)
        duration = max(0.0, change.stream_t - self._call_start_t)
        log.info("call %d ended after %.1f s (%s)", change.call_id, duration, change.reason)
        return CallState(t=duration, active=False, call_id=change.call_id, reason=change.reason)

    def _publish(self, event: CallState) -> None:
        try:
            write_state(self.path, event)
            self.published += 1
        except (OSError, StorageError) as exc:
            log.warning("cannot write call state %s: %s", self.path, exc)
