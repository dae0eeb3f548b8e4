"""A fast "the rep just started talking" guard from the rep's mic level, for tip timing only.

The pipeline's activity flags come from a VAD that needs a quarter second of speech before it
says so; a tip released in that quarter second lands on a rep who has already started to talk.
This guard looks at each 20 ms frame's level against the mic's own noise floor (and above the
buyer's expected earpiece leak, as the speech pipeline measures it on the call) and reports sound
within a frame or two of the onset. It only ever
holds tips back; it counts nothing as speech.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from firmware.audio.frames import CallFrame

_FLOOR_RISE_DB_PER_S = 1.0  # the noise floor follows quiet frames down at once, louder ones slowly
_VOICE_OVER_FLOOR_DB = 12.0
# Where the leak estimate starts when no pipeline measures it (coach tests): our renderer's level.
_START_LEAK_DB = -25.0
_LEAK_MARGIN_DB = 8.0
_HOLD_S = 0.1
_SILENT = 1e-12


def _power_db(samples: np.ndarray) -> float:
    power = float(np.dot(samples, samples)) / max(len(samples), 1)
    return 10.0 * math.log10(max(power, _SILENT))


class RepOnsetGuard:
    def __init__(self, leak_db: Callable[[], float] | None = None) -> None:
        """``leak_db``: the current earpiece-leak estimate (dB relative to the buyer), read once
        per frame on the frame's thread (the speech pipeline's ``LeakGate.leak_db``)."""
        self.leak_db: Callable[[], float] = leak_db or (lambda: _START_LEAK_DB)
        self._floor_db: float | None = None
        self._buyer_db = -120.0
        self.voice_until = float("-inf")
        self.active = False  # False until audio arrives: then the activity flags alone decide

    def on_frame(self, frame: CallFrame) -> None:
        self.active = True
        rep_db, buyer_db = _power_db(frame.rep), _power_db(frame.buyer)
        frame_s = frame.end_t - frame.t
        # The buyer's level decays over ~100 ms in this estimate, as the leak's echo tail does.
        self._buyer_db = max(buyer_db, self._buyer_db - 60.0 * frame_s)
        if self._floor_db is None or rep_db < self._floor_db:
            self._floor_db = rep_db
        else:
            self._floor_db += _FLOOR_RISE_DB_PER_S * frame_s
        above_floor = rep_db > self._floor_db + _VOICE_OVER_FLOOR_DB
        above_leak = rep_db > self._buyer_db + self.leak_db() + _LEAK_MARGIN_DB
        if above_floor and above_leak:
            self.voice_until = frame.end_t + _HOLD_S

    def voiced(self, now: float) -> bool:
        return self.active and now < self.voice_until
