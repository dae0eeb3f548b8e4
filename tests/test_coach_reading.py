"""How the coach reads the buyer's transcripts: partials confirmed, one moment per kind per turn,
a turn read whole, and the rep's preceding question as a small prior (firmware/coach/reading.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from coach_support import make_config

from firmware.audio.frames import FrameActivity
from firmware.coach.build import CoachBox
from firmware.coach.config import CoachConfig, ReadingConfig
from firmware.coach.reading import IntentScorer
from firmware.config import Config
from firmware.cues.pins import make_pin_factory
from firmware.events import Event, Moment, Partial, Utterance
from firmware.intent.labels import INTENT_KINDS, LABELS


class TableScorer:
    """The classifier's protocol over a fixed table: text -> probabilities (the rest goes to other)."""

    threshold = 0.36

    def __init__(self, table: Mapping[str, Mapping[str, float]]) -> None:
        self.table = table
        self.calls: list[str] = []

    def threshold_for(self, speaker: str | None = None) -> float:
        return self.threshold

    def classify(self, text: str, speaker: str | None = None) -> tuple[str, float, dict[str, float]]:
        self.calls.append(text)
        known = dict(self.table.get(text, {}))
        scores = {label: known.get(label, 0.0) for label in LABELS}
        scores["other"] += 1.0 - sum(scores.values())
        best = max(scores, key=lambda k: scores[k])
        label = best if scores[best] >= self.threshold_for(speaker) else "other"
        return label, scores[label], scores


class Call:
    def __init__(self, config: Config, scorer: IntentScorer | None = None) -> None:
        self.events: list[Event] = []
        self.box = CoachBox(config, pin_factory=make_pin_factory("mock"))
        self.coach = self.box.start_call(self.events.append, intent=scorer)
        self.t = 0.0

    def frames(self, until: float, *, rep: bool = False, buyer: bool = False) -> None:
        while self.t < until - 1e-9:
            self.coach.on_activity(FrameActivity(self.t, rep_speaking=rep, buyer_speaking=buyer))
            self.t = round(self.t + 0.02, 2)

    def rep(self, start: float, end: float, text: str, intent: str = "other") -> None:
        self.frames(start)
        self.frames(end, rep=True)
        self.coach.on_event(Utterance(t=end + 0.4, speaker="rep", start=start, end=end, text=text, intent=intent,
                                      confidence=0.9))

    def buyer(self, start: float, end: float, text: str, intent: str = "other", confidence: float = 0.0,
              partials: tuple[tuple[float, str, str, float], ...] = ()) -> None:
        self.frames(start)
        for at, p_text, p_intent, p_conf in partials:
            self.frames(at, buyer=True)
            self.coach.on_event(Partial(t=at, speaker="buyer", start=start, end=at, text=p_text, intent=p_intent,
                                        confidence=p_conf))
        self.frames(end, buyer=True)
        self.coach.on_event(Utterance(t=end + 0.4, speaker="buyer", start=start, end=end, text=text, intent=intent,
                                      confidence=confidence))

    def moments(self) -> list[Moment]:
        return [e for e in self.events if isinstance(e, Moment) and e.kind in INTENT_KINDS]

    def close(self) -> None:
        self.box.close()

    def __enter__(self) -> Call:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _config(tmp_path: Path, **reading: float) -> Config:
    # Most of these calls are one or two buyer turns: the opening rule is off unless a test sets it.
    reading = {"opening_turns": 0, **reading}
    base = make_config(tmp_path / "state")
    coach = dataclasses.replace(base.coach, reading=dataclasses.replace(ReadingConfig(), **reading))
    return dataclasses.replace(base, coach=coach)


@pytest.fixture
def call(tmp_path: Path) -> Iterator[Call]:
    c = Call(_config(tmp_path))
    yield c
    c.close()


def test_an_unconfirmed_partial_raises_nothing_and_the_final_decides(call: Call) -> None:
    call.buyer(10.0, 16.0, "that is a lot more than we budgeted for", "objection_price", 0.5,
               partials=((12.0, "can we start", "product_question", 0.7),
                         (15.0, "that is more than we", "objection_price", 0.65)))
    assert [(m.kind, m.t) for m in call.moments()] == [("objection_price", pytest.approx(16.4))]


def test_two_agreeing_partials_raise_the_moment_early_and_the_final_does_not_repeat_it(call: Call) -> None:
    call.buyer(10.0, 16.0, "that is a lot more than we budgeted for", "objection_price", 0.5,
               partials=((12.0, "that is more", "objection_price", 0.62),
                         (15.0, "that is more than we", "objection_price", 0.7)))
    assert [(m.kind, m.t) for m in call.moments()] == [("objection_price", pytest.approx(15.0))]


def test_a_partial_below_the_partial_bar_does_not_count_as_agreement(call: Call) -> None:
    call.buyer(10.0, 16.0, "fine", partials=((12.0, "that is more", "objection_price", 0.5),
                                            (15.0, "that is more than we", "objection_price", 0.7)))
    assert call.moments() == []


def test_one_turn_in_several_segments_raises_each_kind_once(call: Call) -> None:
    assert ReadingConfig().turn_max_moments >= len(INTENT_KINDS)  # shipped without a cap (config.py says why)
    call.rep(0.0, 3.0, "what do you think")
    call.buyer(3.5, 6.0, "that is far too pricey for us", "objection_price", 0.6)
    call.buyer(6.8, 9.0, "honestly it is way too pricey for a team our size", "objection_price", 0.7)
    call.buyer(9.5, 12.0, "and we cannot start before april anyway", "objection_timing", 0.6)
    assert [m.kind for m in call.moments()] == ["objection_price", "objection_timing"]


def test_rep_speech_or_a_long_gap_starts_a_new_turn(call: Call) -> None:
    call.buyer(3.5, 6.0, "that is far too pricey for us", "objection_price", 0.6)
    call.rep(6.5, 8.0, "compared to what")
    call.buyer(8.5, 11.0, "honestly it is way too pricey for a team our size", "objection_price", 0.7)
    call.buyer(15.0, 17.0, "it still looks too pricey to me", "objection_price", 0.7)  # 4 s of silence before it
    assert [m.kind for m in call.moments()] == ["objection_price"] * 3


def test_the_turn_is_read_whole_when_its_fragments_are_unsure(tmp_path: Path) -> None:
    scorer = TableScorer({
        "I'll be honest": {"objection_need": 0.2},
        "nobody here would use it": {"objection_need": 0.3},
        "I'll be honest nobody here would use it": {"objection_need": 0.6},
    })  # fmt: skip
    with Call(_config(tmp_path), scorer) as call:
        call.buyer(3.0, 4.0, "I'll be honest")
        call.buyer(4.5, 7.0, "nobody here would use it")
        assert [(m.kind, m.start, m.end) for m in call.moments()] == [("objection_need", 4.5, 7.0)]
        assert "I'll be honest nobody here would use it" in scorer.calls


ANSWER = {"Stocky for the back end, it's a mess": {"pain_point": 0.45, "competitor_mention": 0.3}}


@pytest.mark.parametrize(
    ("question", "weight", "expected"),
    [
        ("Got it. How are you tracking stock right now?", 3.0, "competitor_mention"),
        ("Got it. How are you tracking stock right now?", 1.0, "pain_point"),  # prior off
        ("Got it. How many sites do you run?", 3.0, "pain_point"),  # nothing invited
        ("We do tracking too. How many sites do you run?", 3.0, "pain_point"),  # not the question asked
    ],
)
def test_the_reps_question_is_a_small_prior(tmp_path: Path, question: str, weight: float, expected: str) -> None:
    with Call(_config(tmp_path, context_prior_weight=weight), TableScorer(ANSWER)) as call:
        call.rep(0.0, 3.0, question)
        call.buyer(3.5, 7.0, "Stocky for the back end, it's a mess")
        assert [m.kind for m in call.moments()] == [expected]


def test_the_prior_needs_a_prompt_answer_and_cannot_lift_a_kind_the_classifier_rules_out(tmp_path: Path) -> None:
    scorer = TableScorer({"no idea": {"competitor_mention": 0.05}, "Stocky for the back end, it's a mess": ANSWER[
        "Stocky for the back end, it's a mess"]})
    with Call(_config(tmp_path), scorer) as call:
        call.rep(0.0, 3.0, "What are you using today?")
        call.buyer(3.5, 5.0, "no idea")  # x3 is still far below the classifier's threshold
        call.rep(6.0, 9.0, "What are you using today?")
        call.buyer(20.0, 24.0, "Stocky for the back end, it's a mess")  # 11 s later: not an answer to it
        assert [m.kind for m in call.moments()] == ["pain_point"]


def test_a_proposed_next_step_invites_the_buyer_to_take_it(tmp_path: Path) -> None:
    scorer = TableScorer({"yes please send that over to me today": {"next_step": 0.25, "product_question": 0.3}})
    with Call(_config(tmp_path), scorer) as call:
        call.rep(0.0, 3.0, "shall I send a one page summary", intent="next_step")
        call.buyer(3.5, 6.0, "yes please send that over to me today")
        assert [m.kind for m in call.moments()] == ["next_step"]


def test_reading_settings_are_checked() -> None:
    for bad in ({"partial_sure_confidence": 1.5}, {"context_prior_weight": 0.0}, {"turn_max_gap_s": -1.0}):
        with pytest.raises(ValueError, match="reading"):
            CoachConfig(reading=ReadingConfig(**bad))  # type: ignore[arg-type]


def test_the_pipelines_annotator_and_the_coach_read_with_one_classifier(tmp_path: Path) -> None:
    from firmware.runtime import Engines

    scorer = TableScorer({"too pricey": {"objection_price": 0.9}})
    engines = Engines(vad_factory=lambda: None, recognizer=None, intent=scorer)  # type: ignore[arg-type,return-value]
    assert engines.annotate is not None
    assert engines.annotate("too pricey", "buyer") == ("objection_price", 0.9)
    assert Engines(vad_factory=lambda: None, recognizer=None).annotate is None  # type: ignore[arg-type,return-value]


class BuyerCutOffScorer(TableScorer):
    """A classifier calibrated with a lower cut-off for lines whose speaker is known."""

    threshold = 0.5  # text-only lines

    def threshold_for(self, speaker: str | None = None) -> float:
        return 0.3 if speaker == "buyer" else 0.5


def test_the_buyers_own_cut_off_applies_after_the_prior(tmp_path: Path) -> None:
    # 0.4 clears the buyer's calibrated cut-off (0.3) though not the text-only one (0.5).
    with Call(_config(tmp_path), BuyerCutOffScorer({"we'd need the board to sign that": {"objection_authority": 0.4, "pain_point": 0.35}})) as call:
        call.buyer(3.5, 7.0, "we'd need the board to sign that")
        assert [m.kind for m in call.moments()] == ["objection_authority"]


TORN = {"we could wait, or it just costs too much": {"objection_timing": 0.42, "objection_price": 0.38}}


@pytest.mark.parametrize(("margin", "expected"), [(0.0, ["objection_timing"]), (0.1, [])])
def test_a_reading_torn_between_two_kinds_raises_nothing_under_the_margin_bar(
    tmp_path: Path, margin: float, expected: list[str]
) -> None:
    with Call(_config(tmp_path, min_margin=margin, final_min_confidence=0.0), TableScorer(TORN)) as call:
        call.buyer(3.5, 7.0, "we could wait, or it just costs too much")
        assert [m.kind for m in call.moments()] == expected


def test_the_margin_counts_other_as_a_runner_up(tmp_path: Path) -> None:
    # 0.40 objection_need against 0.37 other (the rest): a clear kind among intents, but barely a moment.
    scorer = TableScorer({"we manage fine": {"objection_need": 0.40, "pain_point": 0.23}})
    with Call(_config(tmp_path, min_margin=0.1, final_min_confidence=0.0), scorer) as call:
        call.buyer(3.5, 7.0, "we manage fine")
        assert call.moments() == []


@pytest.mark.parametrize(("bar", "expected"), [(0.0, ["objection_price"]), (0.45, [])])
def test_a_final_transcript_alone_must_reach_the_final_bar(tmp_path: Path, bar: float, expected: list[str]) -> None:
    scorer = TableScorer({"that is a lot more than we budgeted for": {"objection_price": 0.4, "objection_timing": 0.2, "pain_point": 0.15}})
    with Call(_config(tmp_path, final_min_confidence=bar, min_margin=0.0), scorer) as call:
        call.buyer(3.5, 7.0, "that is a lot more than we budgeted for")
        assert [m.kind for m in call.moments()] == expected


@pytest.mark.parametrize(("bar", "expected"), [(0.4, ["objection_need"]), (0.5, [])])
def test_the_turn_read_whole_must_reach_the_turn_bar(tmp_path: Path, bar: float, expected: list[str]) -> None:
    scorer = TableScorer({
        "I'll be honest": {"objection_need": 0.2},
        "nobody here would use it": {"objection_need": 0.3},
        "I'll be honest nobody here would use it": {"objection_need": 0.45, "pain_point": 0.2},
    })  # fmt: skip
    with Call(_config(tmp_path, turn_min_confidence=bar, final_min_confidence=0.0, min_margin=0.0), scorer) as call:
        call.buyer(3.0, 4.0, "I'll be honest")
        call.buyer(4.5, 7.0, "nobody here would use it")
        assert [m.kind for m in call.moments()] == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("we will see then", []),  # four words: a fragment, under the fragment bar
    ("we will see then what the board says next week", ["objection_authority"]),  # the same reading, a sentence
])  # fmt: skip
def test_a_final_of_a_few_words_is_a_fragment_and_must_be_surer(tmp_path: Path, text: str, expected: list[str]) -> None:
    scorer = TableScorer({text: {"objection_authority": 0.5, "objection_need": 0.1}})
    with Call(_config(tmp_path, fragment_max_words=6, fragment_min_confidence=0.8, final_min_confidence=0.0), scorer) as call:
        call.buyer(3.5, 5.0, text)
        assert [m.kind for m in call.moments()] == expected


def test_a_sure_fragment_still_raises_its_moment_and_the_turn_is_not_held_to_the_fragment_bar(tmp_path: Path) -> None:
    scorer = TableScorer({
        "sounds great lets book it": {"next_step": 0.9},
        "I'll be honest": {"objection_need": 0.5},
        "nobody here would use it": {"objection_need": 0.3},
        "I'll be honest nobody here would use it": {"objection_need": 0.6},
    })  # fmt: skip
    with Call(_config(tmp_path, fragment_max_words=6, fragment_min_confidence=0.8, final_min_confidence=0.0,
                      turn_min_confidence=0.5), scorer) as call:
        call.buyer(3.0, 4.5, "sounds great lets book it")
        call.rep(5.0, 7.0, "Great, I will send an invite.")
        call.buyer(8.0, 9.0, "I'll be honest")  # a fragment at 0.5: nothing yet
        assert [m.kind for m in call.moments()] == ["next_step"]
        call.buyer(9.5, 12.0, "nobody here would use it")  # the turn read whole: 0.6, over the turn bar
        assert [m.kind for m in call.moments()] == ["next_step", "objection_need"]


def test_by_default_a_short_final_needs_the_fragment_bar(tmp_path: Path) -> None:
    defaults = ReadingConfig()
    assert defaults.fragment_max_words >= 4
    weak = defaults.fragment_min_confidence - 0.05
    assert weak > max(TableScorer.threshold, defaults.final_min_confidence)
    scorer = TableScorer({"maybe after the summer": {"objection_timing": weak}})
    with Call(_config(tmp_path), scorer) as call:
        call.buyer(3.5, 5.0, "maybe after the summer")
        assert call.moments() == []


def test_a_battlecard_competitor_named_outright_clears_every_bar(tmp_path: Path) -> None:
    scorer = TableScorer({"we mostly live in HubSpot": {"competitor_mention": 0.35, "pain_point": 0.33}})
    with Call(_config(tmp_path, final_min_confidence=0.6, min_margin=0.3), scorer) as call:
        call.buyer(3.5, 7.0, "we mostly live in HubSpot")
        assert [m.kind for m in call.moments()] == ["competitor_mention"]


def test_the_coachs_bars_are_checked() -> None:
    for bad in ({"final_min_confidence": 1.2}, {"turn_min_confidence": -0.1}, {"min_margin": 2.0},
                {"fragment_min_confidence": 1.5}, {"fragment_max_words": -1}):
        with pytest.raises(ValueError, match="reading"):
            CoachConfig(reading=ReadingConfig(**bad))  # type: ignore[arg-type]


def test_by_default_a_weak_reading_of_the_whole_turn_is_no_moment(tmp_path: Path) -> None:
    # The joined turn clears the classifier's cut-off but not the coach's default turn bar, calibrated
    # on synthetic calls (joined turns under it were rarely the buyer's intent).
    bar = ReadingConfig().turn_min_confidence
    whole = bar - 0.05
    assert whole > TableScorer.threshold
    scorer = TableScorer({
        "I'll be honest": {"objection_need": 0.2},
        "nobody here would use it": {"objection_need": 0.3},
        "I'll be honest nobody here would use it": {"objection_need": whole, "pain_point": 0.15},
    })  # fmt: skip
    with Call(_config(tmp_path), scorer) as call:
        call.buyer(3.0, 4.0, "I'll be honest")
        call.buyer(4.5, 7.0, "nobody here would use it")
        assert call.moments() == []


def test_competitor_like_names_and_what_is_not_one() -> None:
    from firmware.coach.reading import competitor_like

    assert competitor_like("We already use Gong for some of this.") == "Gong"
    assert competitor_like("we moved to HubSpot last year") == "HubSpot"
    assert competitor_like("Right now, honestly, it all runs through Tidewell.") == "Tidewell"
    for nothing in ("we already use something for that", "Our CFO signs off on it.", "I'll call you on Tuesday, OK?",
                    "We tried a tool like that in March and I hated it."):  # fmt: skip
        assert competitor_like(nothing) is None, nothing


@pytest.mark.parametrize("needs_name", [False, True])
def test_a_competitor_mention_needs_a_name_when_asked(tmp_path: Path, needs_name: bool) -> None:
    # Read at 0.7: under competitor_sure_confidence (0.8), where the name is asked for.
    scorer = TableScorer({"we already have a tool for that": {"competitor_mention": 0.7},
                          "we already have Tidewell for all of that": {"competitor_mention": 0.7},
                          "we pay for Salesforce and it works": {"other": 0.5}})  # fmt: skip
    with Call(_config(tmp_path, competitor_needs_name=needs_name), scorer) as call:
        call.rep(0.0, 2.0, "what do you use now?")
        call.buyer(2.5, 5.0, "we already have a tool for that")
        call.rep(6.0, 8.0, "and the other office?")
        call.buyer(8.5, 11.0, "we already have Tidewell for all of that")
        call.rep(12.0, 14.0, "and finance?")
        call.buyer(14.5, 17.0, "we pay for Salesforce and it works")  # a battlecard named outright
        starts = [m.start for m in call.moments() if m.kind == "competitor_mention"]
    assert starts == ([8.5, 14.5] if needs_name else [2.5, 8.5, 14.5])


def test_the_opening_raises_only_sure_readings(tmp_path: Path) -> None:
    assert ReadingConfig().opening_turns == 1  # the shipped rule holds the first turn; here two, to see both sides
    scorer = TableScorer({"the traffic was a nightmare this morning": {"pain_point": 0.7},
                          "it is far too expensive for us": {"objection_price": 0.97},
                          "we lose orders every single week because nobody sees them": {"pain_point": 0.7}})  # fmt: skip
    with Call(_config(tmp_path, opening_turns=2, opening_min_confidence=0.9), scorer) as call:
        call.rep(0.0, 2.0, "how was your weekend?")
        call.buyer(2.5, 5.0, "the traffic was a nightmare this morning")  # small talk read as a pain point
        call.rep(6.0, 8.0, "and the budget?")
        call.buyer(8.5, 11.0, "it is far too expensive for us")  # the second turn: sure enough even in the opening
        call.rep(12.0, 14.0, "what goes wrong today?")
        call.buyer(14.5, 17.0, "we lose orders every single week because nobody sees them")  # the third turn
        call.frames(20.0)
        assert [(m.kind, m.start) for m in call.moments()] == [("objection_price", 8.5), ("pain_point", 14.5)]


# -- one buyer turn, one moment (reading.turn_max_moments, extra_moment_min_confidence) ------------

NEED = "I guess my question is whether we need sensors at all."
WALK = "Our facilities guys already walk the buildings and they kind of know where the waste is."


def test_a_turn_the_vad_splits_in_segments_raises_one_moment(tmp_path: Path) -> None:
    # One objection cut in two by a pause: its second half reads (wrongly) as another kind, early
    # and sure enough to raise on its own. The turn has had its moment.
    with Call(_config(tmp_path, turn_max_moments=1, competitor_needs_name=False)) as call:  # its kind needs no name here
        call.rep(0.0, 3.0, "So what would hold you back?")
        call.buyer(3.5, 7.0, NEED, "objection_need", 0.6)
        call.buyer(7.5, 12.0, WALK, "competitor_mention", 0.75,
                   partials=((10.0, "Our facilities guys already walk the buildings", "competitor_mention", 0.8),))
        assert [m.kind for m in call.moments()] == ["objection_need"]
        call.rep(12.5, 14.0, "Fair. And what does it cost you today?")  # the rep's turn: the buyer's next is new
        call.buyer(14.5, 18.0, "Honestly the whole thing is way over what we budgeted.", "objection_price", 0.7)
        assert [m.kind for m in call.moments()] == ["objection_need", "objection_price"]


@pytest.mark.parametrize(("cap", "expected"), [
    (1, ["objection_price"]),
    (2, ["objection_price", "objection_timing"]),
    (9, ["objection_price", "objection_timing", "objection_risk"]),
])  # fmt: skip
def test_a_turn_raises_at_most_its_cap_the_first_come(tmp_path: Path, cap: int, expected: list[str]) -> None:
    with Call(_config(tmp_path, turn_max_moments=cap)) as call:
        call.buyer(3.5, 6.0, "that is far too pricey for us", "objection_price", 0.6)
        call.buyer(6.5, 9.0, "and we cannot start before april anyway", "objection_timing", 0.9)
        call.buyer(9.5, 12.0, "what if the install goes wrong in our busy week", "objection_risk", 0.95)
        assert [m.kind for m in call.moments()] == expected


def test_the_surer_of_the_segment_and_the_whole_turn_takes_the_turns_one_moment(tmp_path: Path) -> None:
    scorer = TableScorer({
        "I'll be honest": {"objection_need": 0.2},
        "we kind of know where the waste is": {"pain_point": 0.5},
        "I'll be honest we kind of know where the waste is": {"objection_need": 0.7},
    })  # fmt: skip
    with Call(_config(tmp_path, turn_max_moments=1, turn_min_confidence=0.5), scorer) as call:
        call.buyer(3.0, 4.0, "I'll be honest")
        call.buyer(4.5, 7.0, "we kind of know where the waste is")
        assert [m.kind for m in call.moments()] == ["objection_need"]


def test_the_turn_budget_is_checked() -> None:
    for bad in ({"turn_max_moments": 0}, {"competitor_sure_confidence": 1.5}):
        with pytest.raises(ValueError, match="reading"):
            CoachConfig(reading=ReadingConfig(**bad))  # type: ignore[arg-type]


# -- a competitor mention names something (reading.competitor_needs_name) -----------------------

# What the recogniser knows whole, for a store of our own: these words and no product's name.
COMMON = ("our sister company uses and they seem happy enough pitched nearly the same thing few weeks ago right now "
          "everything runs through set aside about pounds for whole project hardware included facilities guys "
          "already walk buildings kind know where waste is what you think how are different from monday").split()


def _store_with_recogniser_words(tmp_path: Path, words: tuple[str, ...] | list[str]) -> Path:
    """A model store holding the repo's playbook and a recogniser whose tokenizer knows ``words`` whole."""
    import base64

    from firmware.store import ModelStore, write_manifest

    import shutil

    store = ModelStore(tmp_path / "models")
    book = tmp_path / "src-playbook"
    book.mkdir()
    for name in ("manifest.toml", "playbook.toml"):
        shutil.copy(Path(__file__).resolve().parent.parent / "models" / "playbook" / "1" / name, book / name)
    store.stage("playbook", "1", book)
    store.activate("playbook", "1")
    src = tmp_path / "src-whisper"
    src.mkdir()
    pieces = [" " + w for w in words] + ["ing", "Tide", "well", " Pipe", "drive", " 15"]
    (src / "tokens.txt").write_text(
        "".join(f"{base64.b64encode(p.encode()).decode()} {i}\n" for i, p in enumerate(pieces)), encoding="ascii"
    )
    write_manifest(src, name="whisper-tiny.en", version="1", family="whisper", licence="test", files={"tokens": "tokens.txt"})
    store.stage("whisper-tiny.en", "1", src)
    store.activate("whisper-tiny.en", "1")
    return tmp_path / "models"


def _with_models(config: Config, models: Path) -> Config:
    return dataclasses.replace(config, paths=dataclasses.replace(config.paths, models_dir=models))


COMPETITOR_LINES = [
    ("hubspot pitched us nearly the same thing a few weeks ago", True),  # a battlecard, lower case, opening
    ("Tidewell pitched us nearly the same thing a few weeks ago.", True),  # a name opening its sentence
    ("right now everything runs through pipedrive for us", True),  # a name the recogniser wrote in lower case
    ("Our sister company uses Kinnect and they seem happy enough.", True),  # capitalised mid-sentence
    ("We've set aside about 15,000 pounds for the whole project, hardware included.", False),  # a price
    ("Our facilities guys already walk the buildings and they kind of know where the waste is.", False),
]


@pytest.mark.parametrize(("text", "named"), COMPETITOR_LINES)
def test_a_competitor_mention_needs_a_name_the_recogniser_spelt_out_or_capitalised(
    tmp_path: Path, text: str, named: bool
) -> None:
    config = _with_models(_config(tmp_path, competitor_needs_name=True), _store_with_recogniser_words(tmp_path, COMMON))
    with Call(config) as call:
        call.rep(0.0, 2.0, "What are you using today?")
        call.buyer(2.5, 6.0, text, "competitor_mention", 0.7)
        assert [m.kind for m in call.moments()] == (["competitor_mention"] if named else [])


def test_without_the_recognisers_words_a_name_is_told_by_its_capitals(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    models = _store_with_recogniser_words(tmp_path, COMMON)
    (models / "whisper-tiny.en" / "current").unlink()  # no recogniser in the store
    with Call(_with_models(_config(tmp_path, competitor_needs_name=True), models)) as call:
        call.rep(0.0, 2.0, "What are you using today?")
        call.buyer(2.5, 6.0, "right now everything runs through pipedrive for us", "competitor_mention", 0.7)
        call.rep(7.0, 9.0, "And the other office?")
        call.buyer(9.5, 12.0, "Our sister company uses Kinnect and they seem happy enough.", "competitor_mention", 0.7)
        assert [m.start for m in call.moments()] == [9.5]
    assert "capitals alone" in caplog.text


def test_the_recognisers_whole_words() -> None:
    from firmware.coach.reading import competitor_named

    words = frozenset({"we", "ve", "set", "two", "year", "deal", "with", "signed"})
    assert competitor_named("We've signed a two-year deal with Routemaster.", words) == "Routemaster"
    assert competitor_named("we've signed a two-year deal with routemaster", words) == "routemaster"
    assert competitor_named("We've signed a two-year deal.", words) is None  # parts of words count one by one
    assert competitor_named("we've signed a two-year deal with routemaster", None) is None  # capitals alone


def test_whole_words_are_the_tokenizers_word_pieces_after_a_space(tmp_path: Path) -> None:
    import base64

    from firmware.errors import ModelError
    from firmware.speech.vocabulary import whole_words

    pieces = [" Monday", " pounds", "well", " Pipe", " 15", " a", "<|endoftext|>"]
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("".join(f"{base64.b64encode(p.encode()).decode()} {i}\n" for i, p in enumerate(pieces)), encoding="ascii")
    assert whole_words(tokens) == {"monday", "pounds", "pipe"}
    tokens.write_text("@@@@ 1\n", encoding="ascii")
    with pytest.raises(ModelError, match="tokens"):
        whole_words(tokens)
