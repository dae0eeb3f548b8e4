"""Finding where speech really began, once the VAD has flagged it.

Silero flags a soft or band-limited word onset late (a phone-band "We al-" can pass as noise
for half a second). The classic endpoint detector's answer still holds: once the VAD says
"speech", walk back from its onset estimate through the audio while the level stays clearly
above the party's noise floor. Energy alone would trigger on every click; gated by the VAD's
decision it only moves an onset the VAD already confirmed.
"""

from __future__ import annotations

import numpy as np

from firmware.audio.frames import ANALYSIS_RATE_HZ, PcmF32

_STEP = ANALYSIS_RATE_HZ // 100  # 10 ms level frames
_FLOOR_PERCENTILE = 10.0
# A digitally silent frame (the leak gate mutes the rep's mic) says nothing about the noise floor.
_SILENT_POWER = 1e-12


def level_db(audio: PcmF32) -> np.ndarray:
    """Power in dBFS of consecutive 10 ms frames."""
    frames = len(audio) // _STEP
    power = (audio[: frames * _STEP].astype(np.float64).reshape(frames, _STEP) ** 2).mean(axis=1)
    return 10.0 * np.log10(np.maximum(power, _SILENT_POWER))


def noise_floor_db(levels: np.ndarray) -> float | None:
    """The party's noise floor from 10 ms levels: their quiet end, ignoring digital silence."""
    audible = levels[levels > 10.0 * np.log10(_SILENT_POWER) + 1.0]
    if len(audible) < 10:
        return None
    return float(np.percentile(audible, _FLOOR_PERCENTILE))


def audible_since(context: PcmF32, since: int, *, margin_db: float) -> bool:
    """Whether anything ``margin_db`` above the context's noise floor sounds from sample ``since`` on.

    Lets the segmenter close a segment without waiting out the VAD's onset delay: speech the VAD
    has not flagged yet is already audible in the audio.
    """
    levels = level_db(context)
    floor = noise_floor_db(levels)
    if floor is None:
        return True  # cannot tell: assume something may be starting
    return bool(np.any(levels[since // _STEP :] >= floor + margin_db))


def refine_onset(context: PcmF32, onset: int, *, lookback: int, margin_db: float, max_gap: int) -> int:
    """Return an onset (sample index into ``context``) no later than ``onset``.

    ``context`` is the party's audio before and up to the VAD's onset estimate (a few seconds of
    it, so the noise floor can be estimated from its quiet part). The onset moves back by at most
    ``lookback`` samples, through 10 ms frames at least ``margin_db`` above the floor, bridging
    dips of up to ``max_gap`` samples (stop consonants, the gap between two short words).
    """
    levels = level_db(context[:onset])
    floor = noise_floor_db(levels)
    if floor is None:
        return onset
    threshold = floor + margin_db
    first_frame = len(levels)  # frames are aligned to the context start, onset may sit mid-frame
    earliest = max(0, first_frame - lookback // _STEP)
    gap_frames = max_gap // _STEP
    quiet = 0
    for frame in range(first_frame - 1, earliest - 1, -1):
        if levels[frame] >= threshold:
            first_frame = frame
            quiet = 0
        else:
            quiet += 1
            if quiet > gap_frames:
                break
    return min(onset, first_frame * _STEP)
