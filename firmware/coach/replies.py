"""How the rep answered a buyer moment: how fast, and whether with a question.

Feeds the quick-reply dynamic (an objection answered within ``quick_reply_s``) and mastery
(a moment handled well: a pause of ``considered_pause_s`` or more, or a question back).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from firmware.coach.config import DynamicsConfig

# How long to wait for the reply's transcript before judging on timing alone.
_JUDGE_TIMEOUT_S = 20.0
# A rep onset this early in the buyer's turn is a backchannel, not the answer.
_MIN_INTO_TURN_S = 0.3
_EDGE_S = 0.1


@dataclass
class _Watch:
    kind: str
    start: float
    end: float
    tipped_before: Callable[[float], bool]
    onset: float | None = None


@dataclass(frozen=True)
class ReplyOutcome:
    kind: str
    buyer_end: float
    onset: float
    gap_s: float
    quick: bool
    handled_well: bool
    tipped: bool


class ReplyWatch:
    def __init__(self, config: DynamicsConfig, buyer_heard_end: Callable[[float], float] | None = None) -> None:
        """``buyer_heard_end(t)``: where the buyer's sound going on at ``t`` ends (VAD or not), so a
        reply is timed from the end of what the buyer audibly said, not of what was transcribed."""
        self._cfg = config
        self._buyer_heard_end = buyer_heard_end or (lambda t: t)
        self._watches: list[_Watch] = []
        self._rep_spans: deque[tuple[float, float, bool]] = deque(maxlen=64)

    def watch(self, kind: str, start: float, end: float, tipped_before: Callable[[float], bool]) -> None:
        self._watches.append(_Watch(kind, start, end, tipped_before))

    def on_rep_utterance(self, start: float, end: float, has_question: bool) -> None:
        self._rep_spans.append((start, end, has_question))

    def settle(self, rep_onsets: Iterable[float], now: float, final: bool = False) -> list[ReplyOutcome]:
        onsets = list(rep_onsets)
        done: list[ReplyOutcome] = []
        keep: list[_Watch] = []
        for w in self._watches:
            if w.onset is None:
                earliest = max(w.start + _MIN_INTO_TURN_S, w.end - 3 * self._cfg.interruption_overlap_s)
                w.onset = next((t for t in onsets if t >= earliest), None)
            if w.onset is None:
                if not final and now - w.end < _JUDGE_TIMEOUT_S:
                    keep.append(w)
                continue  # never answered: nothing to judge
            outcome = self._judge(w, now, final)
            if outcome is None:
                keep.append(w)
            else:
                done.append(outcome)
        self._watches = keep
        return done

    def _judge(self, w: _Watch, now: float, final: bool) -> ReplyOutcome | None:
        assert w.onset is not None
        # The buyer may go on audibly (softly, or trailing off) after the transcript's end; within
        # _EDGE_S that is only where frames and the VAD put the edge.
        heard = min(self._buyer_heard_end(w.end), w.onset)
        buyer_end = heard if heard - w.end > _EDGE_S else w.end
        gap = w.onset - buyer_end
        paused = gap >= self._cfg.considered_pause_s
        reply = next((s for s in self._rep_spans if w.onset - 0.5 <= s[0] <= w.onset + 1.5), None)
        if reply is None and not paused and not final and now - w.onset < _JUDGE_TIMEOUT_S:
            return None  # wait for the reply's transcript
        asked = reply is not None and reply[2]
        return ReplyOutcome(
            kind=w.kind,
            buyer_end=buyer_end,
            onset=w.onset,
            gap_s=gap,
            quick=-self._cfg.interruption_overlap_s < gap < self._cfg.quick_reply_s,
            handled_well=paused or asked,
            tipped=w.tipped_before(w.onset),
        )
