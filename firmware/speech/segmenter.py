"""Turning one party's audio into utterance-sized segments for the recogniser.

The VAD is run with a short hang-over so it reports speech in pause-delimited chunks; chunks
are then joined into one segment until the party has been silent for ``join_gap_s`` or the
segment would outgrow ``max_segment_s``. Whisper transcribes whole sentences far better than
fragments (phone-band audio most of all), and a long segment is only ever cut at a pause.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware.audio.frames import ANALYSIS_RATE_HZ, PcmF32
from firmware.events import Speaker
from firmware.speech.vad import SpeechSegment, VoiceDetector


@dataclass(frozen=True)
class Segment:
    """Audio of one utterance, ready to transcribe. Times are call time in seconds."""

    speaker: Speaker
    start: float
    end: float
    samples: PcmF32


class _History:
    """The party's recent audio, addressable by absolute sample index, for segment padding."""

    def __init__(self, seconds: float) -> None:
        self._buf = np.zeros(int(seconds * ANALYSIS_RATE_HZ), np.float32)
        self.written = 0

    def append(self, samples: PcmF32) -> None:
        n, size = len(samples), len(self._buf)
        pos = self.written % size
        first = min(n, size - pos)
        self._buf[pos : pos + first] = samples[:first]
        self._buf[: n - first] = samples[first:]
        self.written += n

    def slice(self, start: int, end: int) -> PcmF32:
        start = max(start, self.written - len(self._buf), 0)
        end = min(end, self.written)
        idx = np.arange(start, end) % len(self._buf)
        return self._buf[idx]


class Segmenter:
    def __init__(
        self,
        speaker: Speaker,
        vad: VoiceDetector,
        *,
        join_gap_s: float,
        max_segment_s: float,
        pad_s: float = 0.15,
        onset_s: float = 0.25,
        t0: float = 0.0,
    ) -> None:
        self.speaker = speaker
        self._vad = vad
        self._join_gap = int(join_gap_s * ANALYSIS_RATE_HZ)
        # The VAD confirms new speech only after its minimum speech length; wait that long past
        # the join gap before closing, or a sentence resuming just inside the gap gets cut off.
        self._close_after = self._join_gap + int(onset_s * ANALYSIS_RATE_HZ)
        self._max_len = int(max_segment_s * ANALYSIS_RATE_HZ)
        self._pad = int(pad_s * ANALYSIS_RATE_HZ)
        self._t0 = t0
        self._history = _History(max_segment_s + 5.0)
        self._open: tuple[int, int] | None = None  # (start, end) sample span of the joined chunks

    @property
    def in_speech(self) -> bool:
        return self._vad.in_speech or self._open is not None

    def accept(self, samples: PcmF32) -> list[Segment]:
        self._history.append(samples)
        closed = [seg for chunk in self._vad.accept(samples) for seg in self._join(chunk)]
        now = self._history.written
        if self._open is not None and not self._vad.in_speech and now - self._open[1] >= self._close_after:
            closed.append(self._close())
        return closed

    def flush(self) -> list[Segment]:
        closed = [seg for chunk in self._vad.flush() for seg in self._join(chunk)]
        if self._open is not None:
            closed.append(self._close())
        return closed

    def _join(self, chunk: SpeechSegment) -> list[Segment]:
        closed = []
        if self._open is not None:
            start, end = self._open
            if chunk.start_sample - end >= self._join_gap or chunk.end_sample - start > self._max_len:
                closed.append(self._close())
        if self._open is None:
            self._open = (chunk.start_sample, chunk.end_sample)
        else:
            self._open = (self._open[0], chunk.end_sample)
        return closed

    def _close(self) -> Segment:
        assert self._open is not None
        start, end = self._open
        self._open = None
        audio = self._history.slice(start - self._pad, end + self._pad)
        rate = ANALYSIS_RATE_HZ
        return Segment(self.speaker, self._t0 + start / rate, self._t0 + end / rate, audio)
