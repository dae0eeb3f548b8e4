"""The device's live mode on the coach side: bridge taps -> one session per call.

:func:`run_live` reads tap packets and drives a :class:`firmware.runtime.CallSink`
(the coached ``CallSession`` on the device; a recorder in tests): a new session when
the bridge reports a call starting, frames in call order while it lasts (frames the coach
missed are replaced by silence so call time stays continuous), ``end_call`` when the bridge
reports the end or the taps stop arriving. Each start and end is also published on the bus
as a :class:`~firmware.events.CallState`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import numpy as np

from firmware.audio.frames import FRAME_SAMPLES, CallFrame
from firmware.audio.taps import TapPacket, TapReader
from firmware.bus import EventBus
from firmware.events import CallState
from firmware.runtime import CallSink

log = logging.getLogger(__name__)

MAX_GAP_FILL_FRAMES = 250  # 5 s: a longer gap means the coach was away; start timing afresh


class LiveCoach:
    def __init__(self, open_session: Callable[[int], CallSink], bus: EventBus) -> None:
        """``open_session(call_id)`` opens the session for the bridge's call ``call_id``."""
        self._open_session = open_session
        self._bus = bus
        self.session: CallSink | None = None
        self.call_id = 0
        self.calls = 0
        self.frames_fed = 0
        self.gap_frames_filled = 0
        self._last_seq = -1
        self._last_call_t = 0.0
        self._silence = np.zeros(FRAME_SAMPLES, dtype=np.float32)

    def handle(self, packet: TapPacket) -> None:
        if packet.call_active and packet.call_id != self.call_id:
            self.end("bridge started a new call")
            self._start(packet)
        elif not packet.call_active and self.session is not None:
            self.end("bridge ended the call")
        if self.session is None:
            return
        missing = packet.seq - self._last_seq - 1
        if 0 < missing <= MAX_GAP_FILL_FRAMES:
            for i in range(missing):
                t = packet.call_t - (missing - i) * FRAME_SAMPLES / 16000
                if t >= 0:
                    self.session.feed(CallFrame(t=t, rep=self._silence, buyer=self._silence))
                    self.gap_frames_filled += 1
        self._last_seq = packet.seq
        self._last_call_t = packet.call_t
        self.session.feed(packet.to_frame())
        self.frames_fed += 1

    def _start(self, packet: TapPacket) -> None:
        self.session = self._open_session(packet.call_id)
        self.call_id = packet.call_id
        self.calls += 1
        self._last_seq = packet.seq - 1
        log.info("call %d: coaching started", packet.call_id)
        self._bus.publish(CallState(t=0.0, active=True, call_id=packet.call_id, reason="bridge"))

    def end(self, reason: str) -> None:
        if self.session is None:
            return
        session, self.session = self.session, None
        try:
            session.end_call({"tap_gap_frames_filled": self.gap_frames_filled})
        finally:
            session.close()
        self._bus.publish(CallState(t=self._last_call_t, active=False, call_id=self.call_id, reason=reason))
        log.info("call %d: coaching ended (%s)", self.call_id, reason)
        self.call_id = 0


def run_live(
    reader: TapReader,
    coach: LiveCoach,
    stop: threading.Event,
    *,
    idle_end_s: float = 2.0,
) -> None:
    """Feed packets to ``coach`` until ``stop`` is set; a silent bridge ends the current call."""
    idle_s = 0.0
    poll_s = min(0.2, idle_end_s)
    try:
        while not stop.is_set():
            packet = reader.receive(timeout_s=poll_s)
            if packet is None:
                idle_s += poll_s
                if idle_s >= idle_end_s and coach.session is not None:
                    coach.end("taps stopped")
                continue
            idle_s = 0.0
            coach.handle(packet)
    finally:
        coach.end("coach stopping")
