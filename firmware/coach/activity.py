"""Frame-level conversation dynamics: who holds the floor, for how long, and how turns change.

Fed one :class:`~firmware.audio.frames.FrameActivity` per 20 ms. Buyer frames are trusted (the
buyer line carries no rep audio); a rep burst that starts while the buyer is talking must last
``leak_min_rep_burst_s`` before it counts, because the buyer leaking from the earpiece into the
rep's mic looks exactly like that. Delivery gating uses the raw rep flag (any rep sound blocks a
tip), everything measured uses the confirmed rep speech.

Silence is the absence of sound, not of what the VAD hears: a buyer frame with speech-like sound
(``FrameActivity.buyer_sound``: level well above the line's floor, sustained) that the VAD missed,
a breathy whisper say, still answers the rep's question and ends a silence. Talk time, turns and
monologues stay on the VAD, whose speech the box can transcribe.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from firmware.audio.frames import FRAME_MS, FrameActivity
from firmware.coach.config import DynamicsConfig
from firmware.events import Speaker

FRAME_S = FRAME_MS / 1000.0
# Rep speech resuming within this of confirmed rep speech continues the turn (VAD flicker).
_CONTINUE_S = 0.3
# The buyer counts as talking at an instant if a buyer frame ended this recently.
_ACTIVE_S = 0.1


@dataclass(frozen=True)
class DynamicHit:
    """A dynamic detected in the call, before it becomes a Moment event."""

    kind: str
    speaker: Speaker
    start: float
    end: float
    t: float
    confidence: float = 1.0


@dataclass
class _Stretch:
    start: float
    end: float
    cued: bool = False


class ActivityTracker:
    def __init__(self, config: DynamicsConfig, asked_question_ending_at: Callable[[float], bool]) -> None:
        self._cfg = config
        self._asked_question_ending_at = asked_question_ending_at
        self.now = 0.0
        self.rep_talk_s = 0.0
        self.buyer_talk_s = 0.0
        self.longest_monologue_s = 0.0
        self.buyer_longest_stretch_s = 0.0
        self.interruptions = 0
        self.rep_speaking_raw = False
        self.buyer_speaking = False
        self.rep_raw_last_end = float("-inf")
        self.rep_last_end = float("-inf")  # confirmed rep speech
        self.buyer_last_end = float("-inf")
        self.buyer_heard_last_end = float("-inf")  # VAD speech or speech-like sound
        # Confirmed rep onsets (turn starts) and merged buyer speech spans, for reply timing.
        self.rep_onsets: deque[float] = deque(maxlen=256)
        self._buyer_spans: deque[list[float]] = deque(maxlen=256)
        self._buyer_heard_spans: deque[list[float]] = deque(maxlen=256)
        self._burst_start: float | None = None
        self._burst_contested = False
        self._burst_confirmed = False
        self._rep_stretch: _Stretch | None = None
        self._buyer_stretch: _Stretch | None = None
        self._interrupt_start: float | None = None
        self._window: deque[tuple[float, bool, bool]] = deque()
        self._window_rep = 0
        self._window_buyer = 0

    # -- per frame -------------------------------------------------------------------------
    def on_frame(self, frame: FrameActivity) -> list[DynamicHit]:
        hits: list[DynamicHit] = []
        start, end = frame.t, frame.t + FRAME_S
        self.now = max(self.now, end)
        rep_counted = False
        if frame.buyer_speaking:
            self._on_buyer_speech(start, end, hits)
        elif frame.buyer_sound:
            self._on_buyer_heard(start, end, hits)
        if frame.rep_speaking:
            rep_counted = self._on_rep_raw(start, end, hits)
        else:
            self._burst_start = None
        self.rep_speaking_raw = frame.rep_speaking
        self.buyer_speaking = frame.buyer_speaking
        self._close_stale(end, hits)
        self._push_window(end, rep_counted, frame.buyer_speaking)
        return hits

    def close(self, t: float) -> list[DynamicHit]:
        """The call ended: settle what is still open."""
        hits: list[DynamicHit] = []
        self._close_stale(float("inf"), hits)
        self.now = max(self.now, t)
        return hits

    # -- queries ---------------------------------------------------------------------------
    def rep_silent_s(self) -> float:
        return 0.0 if self.rep_speaking_raw else self.now - self.rep_raw_last_end

    def talk_ratio(self) -> float | None:
        total = self.rep_talk_s + self.buyer_talk_s
        return self.rep_talk_s / total if total > 0 else None

    def rolling_talk_ratio(self) -> float | None:
        total = self._window_rep + self._window_buyer
        return self._window_rep / total if total > 0 else None

    def buyer_spoke_between(self, a: float, b: float) -> bool:
        return any(s < b and e > a for s, e in self._buyer_spans)

    def buyer_heard_end(self, t: float) -> float:
        """Where the buyer's sound (VAD or not) that goes on at ``t`` ends; ``t`` if none does."""
        for s, e in reversed(self._buyer_heard_spans):
            if s <= t + _CONTINUE_S and e >= t - _CONTINUE_S:
                return max(t, e)
            if e < t - _CONTINUE_S:
                break
        return t

    def buyer_end_before(self, t: float) -> float | None:
        ends = [e for s, e in self._buyer_spans if s < t]
        return max(ends) if ends else None

    # -- internals -------------------------------------------------------------------------
    def _buyer_active(self, t: float) -> bool:
        return self.buyer_last_end >= t - _ACTIVE_S

    def _on_buyer_heard(self, start: float, end: float, hits: list[DynamicHit]) -> None:
        """A buyer frame with sound (VAD speech or not): it ends any silence after the rep."""
        if self.rep_last_end > self.buyer_heard_last_end and start >= self.rep_last_end:
            self._maybe_long_silence(self.rep_last_end, start, hits)  # the buyer answers a question
        self.buyer_heard_last_end = end
        if self._buyer_heard_spans and start - self._buyer_heard_spans[-1][1] < _CONTINUE_S:
            self._buyer_heard_spans[-1][1] = end
        else:
            self._buyer_heard_spans.append([start, end])

    def _on_buyer_speech(self, start: float, end: float, hits: list[DynamicHit]) -> None:
        self._on_buyer_heard(start, end, hits)
        self.buyer_talk_s += FRAME_S
        if self._buyer_spans and start - self._buyer_spans[-1][1] < _CONTINUE_S:
            self._buyer_spans[-1][1] = end
        else:
            self._buyer_spans.append([start, end])
        self.buyer_last_end = end
        self._finish_rep_stretch()
        self._buyer_stretch = self._extend(self._buyer_stretch, start, end)
        self.buyer_longest_stretch_s = max(self.buyer_longest_stretch_s, self._buyer_stretch.end - self._buyer_stretch.start)

    def _on_rep_raw(self, start: float, end: float, hits: list[DynamicHit]) -> bool:
        self.rep_raw_last_end = end
        if self._burst_start is None:
            self._burst_start = start
            resumed = start - self.rep_last_end < _CONTINUE_S
            self._burst_contested = self._buyer_active(start) and not resumed
            self._burst_confirmed = False
        if self._burst_confirmed:
            self._count_rep(start, end, hits)
            return True
        if self._burst_contested and end - self._burst_start < self._cfg.leak_min_rep_burst_s - 1e-9:
            return False
        self._burst_confirmed = True
        burst_start = self._burst_start
        if burst_start - self.rep_last_end >= _CONTINUE_S:
            self.rep_onsets.append(burst_start)
            self._check_silence(burst_start, hits)
            if self._burst_contested:
                self._interrupt_start = burst_start
        # The burst's earlier frames were held back until it proved to be the rep: count them now.
        held = round((end - burst_start) / FRAME_S) - 1
        self.rep_talk_s += held * FRAME_S
        for i in range(1, min(held, len(self._window)) + 1):
            frame_end, rep, buyer = self._window[-i]
            if not rep:
                self._window[-i] = (frame_end, True, buyer)
                self._window_rep += 1
        self._count_rep(burst_start, end, hits)
        return True

    def _count_rep(self, start: float, end: float, hits: list[DynamicHit]) -> None:
        self.rep_talk_s += FRAME_S
        self.rep_last_end = end
        if self._buyer_active(start):
            self._finish_buyer_stretch()
            self._rep_stretch = None  # the buyer is still talking: no monologue yet
            return
        self._finish_buyer_stretch()
        self._rep_stretch = self._extend(self._rep_stretch, start, end)
        stretch = self._rep_stretch
        length = stretch.end - stretch.start
        self.longest_monologue_s = max(self.longest_monologue_s, length)
        if length > self._cfg.monologue_cue_s and not stretch.cued:
            stretch.cued = True
            hits.append(DynamicHit("rep_monologue", "rep", stretch.start, stretch.end, end))

    def _extend(self, stretch: _Stretch | None, start: float, end: float) -> _Stretch:
        if stretch is not None and start - stretch.end < self._cfg.monologue_gap_s:
            stretch.end = end
            return stretch
        return _Stretch(start, end)

    def _finish_rep_stretch(self) -> None:
        self._rep_stretch = None

    def _finish_buyer_stretch(self) -> None:
        self._buyer_stretch = None

    def _check_silence(self, resume: float, hits: list[DynamicHit]) -> None:
        rep_end = self.rep_last_end
        if rep_end <= self.buyer_heard_last_end:
            return  # the buyer spoke (or sounded) last: not a silence after a rep question
        self._maybe_long_silence(rep_end, resume, hits)

    def _maybe_long_silence(self, rep_end: float, resume: float, hits: list[DynamicHit]) -> None:
        if resume - rep_end < self._cfg.silence_after_question_s:
            return
        asked = self._asked_question_ending_at(rep_end)
        if asked or not self._cfg.long_silence_requires_question:
            hits.append(DynamicHit("long_silence", "rep", rep_end, resume, self.now, 1.0 if asked else 0.6))

    def _close_stale(self, now: float, hits: list[DynamicHit]) -> None:
        gap = self._cfg.monologue_gap_s
        if self._interrupt_start is not None and now - self.buyer_last_end >= gap:
            if self.buyer_last_end - self._interrupt_start >= self._cfg.interruption_overlap_s:
                self.interruptions += 1
                hits.append(DynamicHit("interruption", "rep", self._interrupt_start, self.buyer_last_end, self.now))
            self._interrupt_start = None
        if now == float("inf") and self.rep_last_end > self.buyer_heard_last_end:
            # A question left hanging until the call ended is still a long silence.
            self._maybe_long_silence(self.rep_last_end, self.now, hits)

    def _push_window(self, end: float, rep: bool, buyer: bool) -> None:
        self._window.append((end, rep, buyer))
        self._window_rep += rep
        self._window_buyer += buyer
        horizon = end - self._cfg.talk_ratio_window_s
        while self._window and self._window[0][0] <= horizon:
            _, old_rep, old_buyer = self._window.popleft()
            self._window_rep -= old_rep
            self._window_buyer -= old_buyer
