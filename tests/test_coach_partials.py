"""The coach acting on the buyer's early (partial) transcripts: a tip while the buyer holds the floor."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from coach_support import Run, make_config

from firmware.audio.frames import FrameActivity
from firmware.events import Moment, Partial, Tip, Utterance


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    r = Run(make_config(tmp_path / "state"))
    yield r
    r.close()


def _frames(run: Run, t0: float, t1: float, *, rep: bool = False, buyer: bool = False) -> None:
    n = round((t1 - t0) / 0.02)
    for i in range(n):
        run.coach.on_activity(FrameActivity(t0 + i * 0.02, rep_speaking=rep, buyer_speaking=buyer))


def _objection(cls: type, t: float, end: float, confidence: float) -> Partial | Utterance:
    return cls(t=t, speaker="buyer", start=10.0, end=end, text="honestly that is way more than we budgeted",
               intent="objection_price", confidence=confidence)


def test_a_confident_partial_raises_the_moment_and_the_tip_before_the_buyer_stops(run: Run) -> None:
    _frames(run, 0.0, 10.0)
    _frames(run, 10.0, 12.5, buyer=True)
    run.coach.on_event(_objection(Partial, 12.5, 12.5, 0.9))
    _frames(run, 12.5, 16.0, buyer=True)
    run.coach.on_event(_objection(Utterance, 16.5, 16.0, 0.9))
    _frames(run, 16.0, 20.0)
    moments = [e for e in run.events if isinstance(e, Moment) and e.kind == "objection_price"]
    tips = [e for e in run.events if isinstance(e, Tip) and e.moment == "objection_price"]
    assert len(moments) == 1, "the final transcript does not repeat the partial's moment"
    assert moments[0].t == pytest.approx(12.5)
    assert len(tips) == 1 and tips[0].t < 16.0, "tip lands while the buyer still holds the floor"


def _small_talk_first(run: Run) -> None:
    """The buyer's first turn is the call's opening, held to its own, higher bar (reading.opening_*)."""
    _frames(run, 0.0, 2.0)
    _frames(run, 2.0, 4.0, buyer=True)
    run.coach.on_event(Utterance(t=4.2, speaker="buyer", start=2.0, end=4.0, text="good thanks, and you",
                                 intent="other", confidence=0.9))  # fmt: skip
    _frames(run, 4.0, 10.0)


def test_an_unsure_partial_waits_for_the_final_transcript(run: Run) -> None:
    _small_talk_first(run)
    _frames(run, 10.0, 12.5, buyer=True)
    run.coach.on_event(_objection(Partial, 12.5, 12.5, 0.45))
    _frames(run, 12.5, 16.0, buyer=True)
    assert not [e for e in run.events if isinstance(e, Moment)]
    run.coach.on_event(_objection(Utterance, 16.5, 16.0, 0.45))
    moments = [e for e in run.events if isinstance(e, Moment) and e.kind == "objection_price"]
    assert len(moments) == 1 and moments[0].t == pytest.approx(16.5)


def test_rep_partials_are_ignored(run: Run) -> None:
    _frames(run, 0.0, 5.0, rep=True)
    run.coach.on_event(Partial(t=5.0, speaker="rep", start=0.0, end=5.0, text="what budget do you have",
                               intent="next_step", confidence=0.99))
    assert not [e for e in run.events if isinstance(e, (Moment, Tip))]
