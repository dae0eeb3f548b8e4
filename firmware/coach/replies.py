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
    def __init__(self, config: DynamicsConfig) -> None:
        self._cfg = config
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
        gap = w.onset - w.end
        paused = gap >= self._cfg.considered_pause_s
        reply = next((s for s in self._rep_spans if w.onset - 0.5 <= s[0] <= w.onset + 1.5), None)
        if reply is None and not paused and not final and now - w.onset < _JUDGE_TIMEOUT_S:
            return None  # wait for the reply's transcript
        asked = reply is not None and reply[2]
        return ReplyOutcome(
            kind=w.kind,
            buyer_end=w.end,
            onset=w.onset,
            gap_s=gap,
            quick=-self._cfg.interruption_overlap_s < gap < self._cfg.quick_reply_s,
            handled_well=paused or asked,
            tipped=w.tipped_before(w.onset),
        )
