"""Is there speech-like sound on a channel, whatever the VAD says?

Silero VAD scores voiced speech. A breathy near-whisper, or a buyer far too quiet on a poor line,
can carry words a person hears while the VAD hears nothing; the coach must not call that silence.
:class:`SoundMeter` says "sound" when the channel's level stands ``margin_db`` above its own noise
floor for most of the last ``window_frames`` frames: a few numpy operations per 20 ms frame. The
floor is a low percentile of the last 20 s of frame levels, refreshed twice a second, so it follows
a line that gets noisier without following speech (speech has pauses; the floor is their level).
Sustained, not single, frames: a click or a pop is not speech.

The thresholds are chosen by ``tools/calibrate_sound.py`` on held-out material (espeak-ng whisper
voices and quiet speech over phone lines from clean to poor), never on the corpora that confirm.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from firmware.audio.frames import PcmF32
from firmware.speech.config import SoundConfig

_SILENT_DB = -90.0  # digital silence (a muted or gated channel) says nothing about the floor
_HISTORY_FRAMES = 1000  # 20 s of levels for the floor
_FLOOR_EVERY_FRAMES = 25
_FLOOR_PERCENTILE = 10.0


class SoundMeter:
    """Per frame, on the feeding thread: ``accept(frame) -> bool`` (speech-like sound now)."""

    def __init__(self, config: SoundConfig) -> None:
        self._margin_db = config.margin_db
        self._need = config.min_frames
        self._history = np.full(_HISTORY_FRAMES, np.nan)
        self._n = 0
        self.floor_db: float | None = None
        self._recent: deque[bool] = deque(maxlen=config.window_frames)
        self._loud = 0  # loud frames in _recent

    def accept(self, frame: PcmF32) -> bool:
        power = float(np.dot(frame, frame)) / max(len(frame), 1)
        level_db = 10.0 * np.log10(power) if power > 0 else -200.0
        if level_db > _SILENT_DB:
            self._history[self._n % _HISTORY_FRAMES] = level_db
            self._n += 1
            if self._n % _FLOOR_EVERY_FRAMES == 0:
                self.floor_db = float(np.nanpercentile(self._history, _FLOOR_PERCENTILE))
        loud = self.floor_db is not None and level_db >= self.floor_db + self._margin_db
        if len(self._recent) == self._recent.maxlen:
            self._loud -= self._recent[0]
        self._recent.append(loud)
        self._loud += loud
        return self._loud >= self._need
