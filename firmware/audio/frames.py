"""The unit of audio that flows from a source (file replay or the bridge's taps) to analysis."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FRAME_MS = 20
ANALYSIS_RATE_HZ = 16000
FRAME_SAMPLES = ANALYSIS_RATE_HZ * FRAME_MS // 1000

PcmF32 = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class CallFrame:
    """20 ms of both parties at the analysis rate, stamped with call time.

    ``t`` is the call time of the frame's first sample in seconds. ``rep`` and ``buyer`` are
    mono float32 in [-1, 1], :data:`FRAME_SAMPLES` long.
    """

    t: float
    rep: PcmF32
    buyer: PcmF32

    @property
    def end_t(self) -> float:
        return self.t + len(self.rep) / ANALYSIS_RATE_HZ


@dataclass(frozen=True, slots=True)
class FrameActivity:
    """Who is speaking in one frame, after the leak gate and VAD. Feeds the coach's timing."""

    t: float
    rep_speaking: bool
    buyer_speaking: bool
    # Speech-like sound on the channel (level well above its noise floor, sustained), heard or not
    # by the VAD: a whisper the VAD misses is still not silence (``firmware.speech.sound``).
    rep_sound: bool = False
    buyer_sound: bool = False
