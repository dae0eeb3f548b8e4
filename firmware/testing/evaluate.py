"""Scoring the coach's output against a call's ground truth (benchmark and tests).

A moment matches an expected one of the same kind when it overlaps the expected span widened by
``slack_s`` (3 s: the utterance's span + 3 s); each expected item is matched at most once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from firmware.events import Moment, Tip
from firmware.intent.labels import INTENT_KINDS
from firmware.testing.truth import TruthCall

GROUND_TRUTH_DYNAMICS = ("rep_monologue", "rep_fast_speech", "interruption", "long_silence")


@dataclass(frozen=True)
class Expected:
    kind: str
    start: float
    end: float
    utterance_index: int | None = None


@dataclass
class Match:
    pairs: list[tuple[Moment, Expected]] = field(default_factory=list)
    false_positives: list[Moment] = field(default_factory=list)
    missed: list[Expected] = field(default_factory=list)

    @property
    def precision(self) -> float:
        found = len(self.pairs) + len(self.false_positives)
        return len(self.pairs) / found if found else 1.0

    @property
    def recall(self) -> float:
        expected = len(self.pairs) + len(self.missed)
        return len(self.pairs) / expected if expected else 1.0


def expected_moments(call: TruthCall) -> list[Expected]:
    return [
        Expected(kind, call.utterances[i].start, call.utterances[i].end, i)
        for kind, i in call.expected_moments
    ]


def expected_dynamics(call: TruthCall) -> list[Expected]:
    return [Expected(kind, start, end) for kind, start, end in call.expected_dynamics]


def match(predicted: Iterable[Moment], expected: Sequence[Expected], slack_s: float = 3.0) -> Match:
    result = Match()
    free = list(expected)
    for m in sorted(predicted, key=lambda m: m.start):
        candidates = [
            e for e in free
            if e.kind == m.kind and m.start <= e.end + slack_s and m.end >= e.start - slack_s
        ]  # fmt: skip
        if not candidates:
            result.false_positives.append(m)
            continue
        best = max(candidates, key=lambda e: min(m.end, e.end) - max(m.start, e.start))
        free.remove(best)
        result.pairs.append((m, best))
    result.missed = free
    return result


def intent_moments(events: Iterable[object]) -> list[Moment]:
    return [e for e in events if isinstance(e, Moment) and e.kind in INTENT_KINDS]


def dynamic_moments(events: Iterable[object], kinds: Sequence[str] = GROUND_TRUTH_DYNAMICS) -> list[Moment]:
    return [e for e in events if isinstance(e, Moment) and e.kind in kinds]


def tips(events: Iterable[object]) -> list[Tip]:
    return [e for e in events if isinstance(e, Tip)]


def tips_while_rep_speaks(events: Iterable[object], call: TruthCall) -> list[Tip]:
    return [tip for tip in tips(events) if call.speaking("rep", tip.t)]


def tip_latencies(events: Sequence[object], call: TruthCall) -> list[float]:
    """For tips on buyer moments: seconds from the end of the triggering buyer utterance."""
    moments = intent_moments(events)
    matched = {id(m): e for m, e in match(moments, expected_moments(call)).pairs}
    out = []
    for tip in tips(events):
        if tip.moment not in INTENT_KINDS:
            continue
        # The tip is for the latest moment of its kind raised before it; a tip for a moment that
        # matches nothing in the ground truth has no triggering utterance to time from.
        raised = [m for m in moments if m.kind == tip.moment and m.t <= tip.t]
        if raised and id(latest := max(raised, key=lambda m: m.t)) in matched:
            out.append(tip.t - matched[id(latest)].end)
    return out
