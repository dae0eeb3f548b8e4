"""Keep the buyer's voice, leaking from the earpiece into the rep's mic, out of the rep's speech.

The leak arrives about 25 dB below the buyer's level and a few milliseconds late. A rep frame
that is not clearly louder than that expected leak is muted before the VAD. When the rep really
talks over the buyer, the rep's own voice is ~25 dB above the leak and passes.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from firmware.audio.frames import FRAME_MS, PcmF32
from firmware.speech.config import LeakGateConfig

_LEAK_DB = -25.0
_SILENCE = 1e-10


def frame_power(frame: PcmF32) -> float:
    return float(np.dot(frame, frame)) / max(len(frame), 1)


class LeakGate:
    def __init__(self, config: LeakGateConfig) -> None:
        self._enabled = config.enabled
        # Rep power must exceed the expected leak power by the margin to count as the rep.
        self._ratio = 10 ** ((_LEAK_DB + config.margin_db) / 10)
        self._recent_buyer: deque[float] = deque(maxlen=max(1, config.window_ms // FRAME_MS))
        self.frames_muted = 0

    def apply(self, rep: PcmF32, buyer: PcmF32) -> PcmF32:
        self._recent_buyer.append(frame_power(buyer))
        if not self._enabled:
            return rep
        expected_leak = max(self._recent_buyer) * self._ratio
        if expected_leak > _SILENCE and frame_power(rep) < expected_leak:
            self.frames_muted += 1
            return np.zeros_like(rep)
        return rep
