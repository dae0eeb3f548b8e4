"""Bringing a party's speech to the level the VAD was trained on.

Silero scores quiet speech lower than the same speech at a normal level: a phone line that
delivers the buyer with peaks around -18 dBFS has short words ("Yeah,", "No.") score below the
threshold, where 12 dB more makes them score ~0.9. :class:`LevelNormaliser` is a slow automatic
gain control for the VAD's input: it follows the party's peak level (instant rise, slow fall, so a
pause does not pump the gain) and scales the audio so that peak sits at a target level. It only
ever boosts, and by at most a cap, so line noise in a long silence is never boosted further.
"""

from __future__ import annotations

import numpy as np

from firmware.audio.frames import ANALYSIS_RATE_HZ, PcmF32

_SILENT_POWER = 1e-12


class LevelNormaliser:
    def __init__(self, target_peak_db: float, max_gain_db: float, release_db_per_s: float) -> None:
        self._target = target_peak_db
        self._max_gain = max_gain_db
        self._release = release_db_per_s
        # Until the party is heard, the gain is what a long silence would leave it at: the cap.
        self._peak_db = target_peak_db - max_gain_db
        self.gain_db = max_gain_db

    def __call__(self, samples: PcmF32) -> PcmF32:
        power = float(np.dot(samples, samples)) / max(len(samples), 1)
        level = 10.0 * np.log10(max(power, _SILENT_POWER))
        decayed = self._peak_db - self._release * len(samples) / ANALYSIS_RATE_HZ
        self._peak_db = max(level, decayed)
        self.gain_db = min(max(self._target - self._peak_db, 0.0), self._max_gain)
        if self.gain_db == 0.0:
            return samples
        return samples * np.float32(10 ** (self.gain_db / 20))
