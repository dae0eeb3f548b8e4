"""Dynamics beyond the corpus ground truth: the rep's own pace baseline, talk ratio, few questions."""

from __future__ import annotations

from pathlib import Path

from coach_support import Run, make_config

from firmware.coach.config import DynamicsConfig
from firmware.coach.pace import PaceTracker, count_questions, count_words, ends_with_question
from firmware.events import Moment
from firmware.testing.truth import TruthCall, TruthUtterance


def words_at(wpm: float, seconds: float) -> str:
    return " ".join(["word"] * round(wpm * seconds / 60))


def test_pace_over_the_reps_own_baseline_for_20_s_is_fast_speech() -> None:
    cfg = DynamicsConfig()
    # A rep whose stored baseline is 140 wpm (over 10 minutes of earlier calls).
    fast = PaceTracker(cfg, lambda a, b: False, prior_words=1400, prior_speech_s=600.0)
    hits = []
    t = 0.0
    for _ in range(6):  # 6 x 5 s at 165 wpm: +25 over baseline, far below the absolute 190
        hits += fast.on_rep_utterance(t, t + 5.0, words_at(165, 5.0), now=t + 5.6)
        t += 5.3
    assert [h.kind for h in hits] == ["rep_fast_speech"]
    assert hits[0].end - hits[0].start >= cfg.baseline_sustain_s
    steady = PaceTracker(cfg, lambda a, b: False, prior_words=1400, prior_speech_s=600.0)
    t = 0.0
    for _ in range(6):  # +10 over baseline: not a change worth a cue
        assert steady.on_rep_utterance(t, t + 5.0, words_at(150, 5.0), now=t + 5.6) == []
        t += 5.3
    unknown = PaceTracker(cfg, lambda a, b: False)  # no baseline yet: only the absolute ceiling applies
    t = 0.0
    for _ in range(6):
        assert unknown.on_rep_utterance(t, t + 5.0, words_at(165, 5.0), now=t + 5.6) == []
        t += 5.3


def test_word_and_question_counting() -> None:
    assert count_words("We've set aside £15,000 for it.") == 6
    assert count_questions("Great. So what's next? And who signs? Fine.") == 2
    assert ends_with_question("Is that right?") and not ends_with_question("Is that right? Good.")
    assert ends_with_question("who else would weigh in")  # unpunctuated transcripts fall back on wording


def long_call(seconds: float, rep_share: float, questions: int) -> TruthCall:
    """Alternating turns of 10 s with the given rep share; the first `questions` rep turns ask one."""
    utterances = []
    t, asked = 0.5, 0
    while t < seconds - 11:
        rep_len = 10 * rep_share
        text = words_at(150, rep_len)
        if asked < questions:
            text += " what do you think?"
            asked += 1
        else:
            text += "."
        utterances.append(TruthUtterance("rep", t, t + rep_len, text, "other"))
        t += rep_len + 0.5
        utterances.append(TruthUtterance("buyer", t, t + 10 * (1 - rep_share), words_at(150, 10 * (1 - rep_share)) + ".", "other"))
        t += 10 * (1 - rep_share) + 0.5
    return TruthCall("long", seconds, tuple(utterances))


def moments(run: Run, kind: str) -> list[Moment]:
    return [e for e in run.events if isinstance(e, Moment) and e.kind == kind]


def test_talk_ratio_and_few_questions(tmp_path: Path) -> None:
    talky = Run(make_config(tmp_path / "a"))
    try:
        talky.replay(long_call(660, rep_share=0.8, questions=2))
        assert len(moments(talky, "talk_ratio")) == 1
        assert moments(talky, "talk_ratio")[0].t >= 300  # not before five minutes of call
        assert len(moments(talky, "few_questions")) == 1
        assert talky.coach.summary_fields()["talk_ratio_rep"] > 0.75
    finally:
        talky.close()
    balanced = Run(make_config(tmp_path / "b"))
    try:
        balanced.replay(long_call(660, rep_share=0.45, questions=30))
        assert moments(balanced, "talk_ratio") == [] and moments(balanced, "few_questions") == []
        assert balanced.coach.summary_fields()["questions_asked"] == 30
    finally:
        balanced.close()
