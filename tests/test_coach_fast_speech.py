"""Fast speech as the corpus defines it (dev README): consecutive rep utterances each >= 190 wpm,
span >= 5 s, words / span >= 190 wpm; confirmed by the rep's pace over the turn (10 s of speech) or,
for a shorter turn, over the call so far; and its tip given only at a natural pause."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from coach_support import Run, make_config

from firmware.coach.config import DynamicsConfig
from firmware.coach.pace import PaceTracker
from firmware.events import Moment, Tip
from firmware.testing.truth import TruthCall, TruthUtterance


def words_at(wpm: float, seconds: float) -> str:
    return " ".join(["word"] * round(wpm * seconds / 60))


def call_of(*lines: tuple[str, float, float]) -> TruthCall:
    """Lines (speaker, seconds, wpm) placed 0.6 s apart, the rep's text counted to the given pace."""
    utterances, t = [], 0.5
    for speaker, seconds, wpm in lines:
        utterances.append(TruthUtterance(speaker, t, t + seconds, words_at(wpm, seconds) + ".", "other"))
        t += seconds + 0.6
    return TruthCall("pace", t + 3.0, tuple(utterances))


def fast_moments(tmp_path: Path, call: TruthCall) -> tuple[list[Moment], Run]:
    run = Run(make_config(tmp_path))
    run.replay(call)
    return [e for e in run.events if isinstance(e, Moment) and e.kind == "rep_fast_speech"], run


def test_a_six_second_fast_line_between_buyer_turns_is_fast_speech(tmp_path: Path) -> None:
    # The calibration calls' fast stretches: a rep who speaks fast all call (there 200-270 wpm) and
    # one line of 5.2-9.8 s between buyer turns: under 10 s of rep speech in the turn, so the turn's
    # rolling pace cannot confirm it (the old rule found none of 26); the call's pace does.
    call = call_of(("rep", 3.0, 210), ("buyer", 5.0, 160), ("rep", 6.0, 220), ("buyer", 5.0, 160), ("rep", 3.0, 210))
    found, run = fast_moments(tmp_path, call)
    try:
        assert len(found) == 1
        line = call.utterances[2]
        assert (found[0].start, found[0].end) == (line.start, line.end)
    finally:
        run.close()


def test_a_single_fast_sentence_is_not_fast_speech(tmp_path: Path) -> None:
    # 3 s at 260 wpm: fast, but under the corpus's 5 s span.
    found, run = fast_moments(tmp_path, call_of(("buyer", 4.0, 160), ("rep", 3.0, 260), ("buyer", 4.0, 160)))
    try:
        assert found == []
    finally:
        run.close()


def test_a_lone_fast_line_from_a_rep_at_an_ordinary_pace_is_not_cued(tmp_path: Path) -> None:
    # What a misheard line looks like (dev dcall03: 14 words heard as 20, 160 wpm read as 223): one
    # short turn fast, the rep's pace over the call ordinary. Not enough to tell the rep to slow down.
    lines = [("rep", 5.0, 160), ("buyer", 4.0, 160), ("rep", 5.0, 160), ("buyer", 4.0, 160), ("rep", 5.0, 160),
             ("buyer", 4.0, 160), ("rep", 5.5, 225), ("buyer", 4.0, 160)]  # fmt: skip
    found, run = fast_moments(tmp_path, call_of(*lines))
    try:
        assert found == []
    finally:
        run.close()


def test_a_long_fast_turn_from_a_rep_at_an_ordinary_pace_is_fast_speech() -> None:
    # 12 s of fast speech in one turn: the turn's own rolling pace confirms it (dev dcall02's stretch).
    turn_starts = 12.0
    pace = PaceTracker(DynamicsConfig(), lambda a, b: a < turn_starts - 0.3 < b)
    hits = pace.on_rep_utterance(0.5, 5.5, words_at(160, 5.0), now=6.0)
    hits += pace.on_rep_utterance(6.0, 11.0, words_at(160, 5.0), now=11.5)
    hits += pace.on_rep_utterance(12.0, 18.0, words_at(220, 6.0), now=18.5)
    hits += pace.on_rep_utterance(18.3, 24.3, words_at(220, 6.0), now=24.8)
    assert [(h.kind, h.start, h.end) for h in hits] == [("rep_fast_speech", 12.0, 24.3)]


def test_a_long_line_at_an_ordinary_pace_is_not_fast_speech(tmp_path: Path) -> None:
    found, run = fast_moments(tmp_path, call_of(("buyer", 4.0, 160), ("rep", 9.0, 180), ("buyer", 4.0, 160)))
    try:
        assert found == []
    finally:
        run.close()


def test_fast_sentences_either_side_of_a_buyer_turn_are_two_stretches_not_one() -> None:
    cfg = DynamicsConfig()
    buyer_between = lambda a, b: a < 4.0 < b  # noqa: E731  (the buyer spoke at 4 s)
    pace = PaceTracker(cfg, buyer_between)
    # 3.2 s + 3.2 s of fast speech: 6.4 s together, but the buyer spoke between them.
    hits = pace.on_rep_utterance(0.5, 3.7, words_at(230, 3.2), now=4.3)
    hits += pace.on_rep_utterance(5.0, 8.2, words_at(230, 3.2), now=8.8)
    assert hits == []
    # Within one turn the same two sentences are one stretch of 7.7 s.
    pace = PaceTracker(cfg, lambda a, b: False)
    hits = pace.on_rep_utterance(0.5, 3.7, words_at(230, 3.2), now=4.3)
    hits += pace.on_rep_utterance(4.0, 8.2, words_at(230, 4.2), now=8.8)
    assert [(h.kind, h.start, h.end) for h in hits] == [("rep_fast_speech", 0.5, 8.2)]


def test_a_slow_sentence_breaks_a_fast_stretch() -> None:
    pace = PaceTracker(DynamicsConfig(), lambda a, b: False)
    hits = pace.on_rep_utterance(0.5, 3.5, words_at(230, 3.0), now=4.0)
    hits += pace.on_rep_utterance(3.8, 6.8, words_at(150, 3.0), now=7.3)  # each utterance must be >= 190
    hits += pace.on_rep_utterance(7.1, 10.1, words_at(230, 3.0), now=10.6)
    assert hits == []


def test_one_stretch_is_cued_once() -> None:
    pace = PaceTracker(DynamicsConfig(), lambda a, b: False)
    hits = []
    t = 0.5
    for _ in range(6):  # 30 s of fast speech in one turn
        hits += pace.on_rep_utterance(t, t + 5.0, words_at(220, 5.0), now=t + 5.5)
        t += 5.3
    assert [h.kind for h in hits] == ["rep_fast_speech"]


def test_the_slow_down_tip_waits_for_a_pause(tmp_path: Path) -> None:
    # The rep keeps talking fast across three lines with 0.5 s breaths: the stretch is cued after
    # the first 6 s, but a tip may only land once the rep has stopped (here, before the buyer).
    lines = [("rep", 6.0, 220), ("rep", 4.0, 220), ("rep", 4.0, 220), ("buyer", 6.0, 160), ("rep", 3.0, 170)]
    utterances, t = [], 0.5
    for speaker, seconds, wpm in lines:
        utterances.append(TruthUtterance(speaker, t, t + seconds, words_at(wpm, seconds) + ".", "other"))
        t += seconds + (0.5 if speaker == "rep" else 0.8)
    call = TruthCall("pace-tip", t + 3.0, tuple(utterances))
    found, run = fast_moments(tmp_path, call)
    try:
        assert len(found) == 1
        tips = [e for e in run.events if isinstance(e, Tip) and e.moment == "rep_fast_speech"]
        assert tips, "the stretch earns a tip"
        for tip in tips:
            assert not call.speaking("rep", tip.t), f"tip at {tip.t:.2f} s while the rep speaks"
    finally:
        run.close()


def test_the_turn_check_alone_wants_that_much_speech_in_the_turn() -> None:
    # Without the call's pace (the rule before the calibration set) a 6 s fast line between buyer
    # turns is not enough speech to cue, even from a rep fast all along; a 12 s fast turn is.
    guarded = dataclasses.replace(DynamicsConfig(), fast_call_pace_confirms=False)
    buyer_at = (0.0, 7.0, 7.5, 20.0)  # the buyer speaks just before and after each rep turn

    def buyer_between(a: float, b: float) -> bool:
        return any(a < t < b for t in buyer_at)

    pace = PaceTracker(guarded, buyer_between)
    assert pace.on_rep_utterance(0.5, 6.5, words_at(220, 6.0), now=7.0) == []
    pace = PaceTracker(guarded, buyer_between)
    hits = pace.on_rep_utterance(7.6, 13.6, words_at(220, 6.0), now=14.0)
    hits += pace.on_rep_utterance(13.9, 19.9, words_at(220, 6.0), now=20.4)
    assert [(h.kind, h.start, h.end) for h in hits] == [("rep_fast_speech", 7.6, 19.9)]
    # No check at all: the 6 s line alone is a stretch, as the corpus counts it.
    pace = PaceTracker(dataclasses.replace(DynamicsConfig(), fast_confirm_speech_s=None), buyer_between)
    assert [h.kind for h in pace.on_rep_utterance(0.5, 6.5, words_at(220, 6.0), now=7.0)] == ["rep_fast_speech"]
