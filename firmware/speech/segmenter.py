"""Turning one party's audio into utterance-sized segments for the recogniser.

Speech spans come from the VAD's flag (corrected for its onset and release latency). Spans
closer than ``join_gap_s`` join into one segment, because Whisper transcribes whole sentences
far better than fragments (phone-band audio most of all). A segment closes once the party has
been quiet for the join gap, or is cut at its quietest moment when it reaches ``max_segment_s``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware.audio.frames import ANALYSIS_RATE_HZ, PcmF32
from firmware.events import Speaker
from firmware.speech.onset import audible_since, refine_onset
from firmware.speech.vad import VoiceDetector

_CUT_SEARCH_S = 3.0  # a forced cut looks this far back for a pause
_CUT_WINDOW = ANALYSIS_RATE_HZ // 10
_FLOOR_CONTEXT_S = 3.0  # audio before an onset that the noise floor is estimated from
_ONSET_MAX_GAP_S = 0.15  # stop closures and the pause inside "Hon-estly" run to ~0.1 s


@dataclass(frozen=True)
class Segment:
    """Audio of one utterance, ready to transcribe. Times are call time in seconds."""

    speaker: Speaker
    start: float
    end: float
    samples: PcmF32
    # True for an early look at speech still going on (see Segmenter.take_partial).
    partial: bool = False


class _History:
    """The party's recent audio, addressable by absolute sample index."""

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
        idx = np.arange(start, max(start, end)) % len(self._buf)
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
        onset_lookback_s: float = 0.0,
        onset_margin_db: float = 10.0,
        close_on_quiet: bool = False,
    ) -> None:
        rate = ANALYSIS_RATE_HZ
        self.speaker = speaker
        self._vad = vad
        self._onset = int(vad.onset_s * rate)
        self._release = int(vad.release_s * rate)
        self._join_gap = int(join_gap_s * rate)
        self._max_len = int(max_segment_s * rate)
        self._pad = int(pad_s * rate)
        self._lookback = int(onset_lookback_s * rate)
        self._onset_margin_db = onset_margin_db
        self._close_on_quiet = close_on_quiet
        self._history = _History(
            max(max_segment_s + _CUT_SEARCH_S + join_gap_s + 2 * pad_s, _FLOOR_CONTEXT_S + onset_lookback_s)
            + vad.onset_s + 1.0
        )
        self._last_end = 0  # no segment may reach back before the previous one ended
        self._speaking = False
        self._open: list[int] | None = None  # [start, end] samples; end grows while speaking
        self._partial_due = 0  # open-segment length at which the next early transcript is due

    @property
    def in_speech(self) -> bool:
        return self._speaking

    def accept(self, samples: PcmF32) -> list[Segment]:
        self._history.append(samples)
        now = self._history.written
        speaking = self._vad.accept(samples)
        closed: list[Segment] = []
        if speaking and not self._speaking:  # speech began onset_s before this input's end
            began = self._refined_onset(max(0, now - self._onset))
            if self._open is not None and began - self._open[1] >= self._join_gap:
                closed.append(self._close())
            if self._open is None:
                self._open = [began, now]
        elif self._speaking and not speaking and self._open is not None:
            self._open[1] = max(self._open[0], now - self._release)
        self._speaking = speaking
        if self._open is not None:
            if speaking:
                self._open[1] = now
                if now - self._open[0] >= self._max_len:
                    closed.append(self._cut())
            elif now - self._open[1] >= self._join_gap + self._onset or (
                now - self._open[1] >= self._join_gap and self._nothing_starting(now)
            ):
                # Quiet for the join gap and the VAD's onset delay, or for the join gap with
                # nothing audible the VAD could still be about to flag: nothing can join any more.
                closed.append(self._close())
        return closed

    def _nothing_starting(self, now: int) -> bool:
        if not self._close_on_quiet:
            return False
        context = self._history.slice(now - int(_FLOOR_CONTEXT_S * ANALYSIS_RATE_HZ), now)
        return not audible_since(context, max(0, len(context) - self._onset), margin_db=self._onset_margin_db)

    def _refined_onset(self, began: int) -> int:
        if not self._lookback:
            return began
        floor = self._open[1] if self._open is not None else self._last_end
        context_start = max(0, began - int(_FLOOR_CONTEXT_S * ANALYSIS_RATE_HZ))
        context = self._history.slice(context_start, began)
        context_start = began - len(context)  # the history may hold less than asked for
        refined = context_start + refine_onset(
            context, len(context), lookback=self._lookback, margin_db=self._onset_margin_db,
            max_gap=int(_ONSET_MAX_GAP_S * ANALYSIS_RATE_HZ),
        )
        return max(refined, floor)

    def take_partial(self, first_s: float, every_s: float) -> Segment | None:
        """The open segment so far, when it has grown enough since the last early transcript."""
        if self._open is None or not self._speaking:
            return None
        start, end = self._open
        due = self._partial_due or int(first_s * ANALYSIS_RATE_HZ)
        if end - start < due:
            return None
        self._partial_due = end - start + int(every_s * ANALYSIS_RATE_HZ)
        rate = ANALYSIS_RATE_HZ
        return Segment(self.speaker, start / rate, end / rate, self._history.slice(start - self._pad, end), partial=True)

    def flush(self) -> list[Segment]:
        return [self._close()] if self._open is not None else []

    def _cut(self) -> Segment:
        """Split an over-long segment at the quietest 100 ms of its last few seconds."""
        assert self._open is not None
        start, end = self._open
        lo = max(start + self._max_len // 2, end - int(_CUT_SEARCH_S * ANALYSIS_RATE_HZ))
        tail = self._history.slice(lo, end)
        windows = len(tail) // _CUT_WINDOW
        if windows:
            energy = (tail[: windows * _CUT_WINDOW].reshape(windows, _CUT_WINDOW) ** 2).mean(axis=1)
            cut = lo + int(np.argmin(energy)) * _CUT_WINDOW + _CUT_WINDOW // 2
        else:
            cut = end
        segment = self._segment(start, cut)
        self._open = [cut, end]
        self._partial_due = 0
        return segment

    def _close(self) -> Segment:
        assert self._open is not None
        start, end = self._open
        self._open = None
        self._last_end = end
        self._partial_due = 0
        return self._segment(start, end)

    def _segment(self, start: int, end: int) -> Segment:
        audio = self._history.slice(start - self._pad, end + self._pad)
        rate = ANALYSIS_RATE_HZ
        return Segment(self.speaker, start / rate, end / rate, audio)
