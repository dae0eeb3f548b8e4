"""The coach on a scripted call: moments, dynamics, delivery policy, recap, summary figures."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from coach_support import Run, make_config, synthetic_call

from firmware.testing.evaluate import (
    GROUND_TRUTH_DYNAMICS,
    dynamic_moments,
    expected_dynamics,
    expected_moments,
    intent_moments,
    match,
    tip_latencies,
    tips,
    tips_while_rep_speaks,
)
from firmware.events import Moment, Tip, parse_event
from firmware.testing.truth import TruthCall


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    r = Run(make_config(tmp_path / "state"))
    yield r
    r.close()


def test_every_expected_moment_and_dynamic_is_found(run: Run) -> None:
    call = synthetic_call()
    run.replay(call)
    moments = match(intent_moments(run.events), expected_moments(call))
    assert moments.missed == [] and moments.false_positives == []
    dynamics = match(dynamic_moments(run.events), expected_dynamics(call))
    assert dynamics.missed == [] and dynamics.false_positives == []
    assert {e.kind for e in expected_dynamics(call)} == set(GROUND_TRUTH_DYNAMICS)


def test_quick_reply_to_an_objection_is_a_moment(run: Run) -> None:
    call = synthetic_call()
    run.replay(call)
    quick = [e for e in run.events if isinstance(e, Moment) and e.kind == "quick_reply"]
    price = next(u for u in call.utterances if u.label == "objection_price")
    # The price objection is answered 0.3 s after it ends; the others after >= 0.6 s or by interrupting.
    assert [(round(m.start, 2)) for m in quick] == [round(price.end, 2)]
    assert all(m.end - m.start < 0.5 for m in quick)


def test_no_tip_while_the_rep_speaks_and_caps_hold(run: Run) -> None:
    call = synthetic_call()
    run.replay(call)
    delivered = tips(run.events)
    assert delivered, "the scripted call should earn some tips"
    assert tips_while_rep_speaks(run.events, call) == []
    cfg = run.coach._cfg.delivery
    assert len(delivered) <= cfg.max_tips_per_call
    gaps = [b.t - a.t for a, b in zip(delivered, delivered[1:])]
    assert all(g >= cfg.min_gap_s for g in gaps)
    assert all(len(t.text) <= 60 for t in delivered)


def test_per_call_cap_and_cooldown(tmp_path: Path) -> None:
    call = synthetic_call()
    capped = Run(make_config(tmp_path / "a", max_tips_per_call=2, min_gap_s=0.0))
    try:
        capped.replay(call)
        assert len(tips(capped.events)) == 2
    finally:
        capped.close()
    free = Run(make_config(tmp_path / "b", max_tips_per_call=50, min_gap_s=0.0))
    try:
        free.replay(call)
        delivered = tips(free.events)
        assert len(delivered) > 2
        # Per-moment cooldowns still hold with no global gap.
        playbook = free.coach._playbook
        for kind in {t.moment for t in delivered}:
            times = [t.t for t in delivered if t.moment == kind]
            assert all(b - a >= playbook.moments[kind].cooldown_s for a, b in zip(times, times[1:]))
        assert tips_while_rep_speaks(free.events, call) == []
    finally:
        free.close()


def test_tips_expire_rather_than_pile_up(tmp_path: Path) -> None:
    call = synthetic_call()
    # One tip per call at most 1000 s apart: everything after the first tip must expire, not queue.
    r = Run(make_config(tmp_path / "s", min_gap_s=1000.0))
    try:
        r.replay(call)
        assert len(tips(r.events)) == 1
        assert r.coach.summary_fields()["tips_expired"] > 0
    finally:
        r.close()


def test_tip_latency_is_short_when_the_rep_leaves_a_gap(run: Run) -> None:
    call = synthetic_call()
    run.replay(call, delay_s=0.6)
    latencies = tip_latencies(run.events, call)
    assert latencies
    # The transcript's delay, then the tip's settle time (within a frame or two).
    assert min(latencies) == pytest.approx(0.6 + run.coach._cfg.delivery.settle_s, abs=0.05)


def test_leak_into_the_rep_mic_is_not_rep_speech(tmp_path: Path) -> None:
    call = synthetic_call()
    buyer = [u for u in call.utterances if u.speaker == "buyer"]
    # 0.2 s blips of "rep" activity inside every buyer utterance: what earpiece leak looks like.
    blips = tuple((u.start + k, u.start + k + 0.2) for u in buyer for k in (0.5, 1.5, 2.5) if u.start + k + 0.2 < u.end)
    leaky = TruthCall(call.call_id, call.duration_s, call.utterances, call.expected_moments, call.expected_dynamics, blips)
    clean_run, leaky_run = Run(make_config(tmp_path / "c")), Run(make_config(tmp_path / "l"))
    try:
        clean_run.replay(call)
        leaky_run.replay(leaky)
        clean, leak = clean_run.coach.summary_fields(), leaky_run.coach.summary_fields()
        assert leak["rep_talk_s"] == pytest.approx(clean["rep_talk_s"], abs=0.05)
        assert leak["interruptions"] == clean["interruptions"] == 1
        kinds = lambda r: sorted((m.kind, round(m.start, 1)) for m in dynamic_moments(r.events))  # noqa: E731
        assert kinds(leaky_run) == kinds(clean_run)
    finally:
        clean_run.close()
        leaky_run.close()


def test_summary_fields_and_recap(run: Run) -> None:
    call = synthetic_call()
    run.replay(call)
    fields = run.coach.summary_fields()
    rep = sum(u.end - u.start for u in call.utterances if u.speaker == "rep")
    buyer = sum(u.end - u.start for u in call.utterances if u.speaker == "buyer")
    assert fields["rep_talk_s"] == pytest.approx(rep, abs=0.5)
    assert fields["buyer_talk_s"] == pytest.approx(buyer, abs=0.5)
    assert fields["talk_ratio_rep"] == pytest.approx(rep / (rep + buyer), abs=0.01)
    asked = sum(u.text.count("?") for u in call.utterances if u.speaker == "rep")
    assert fields["questions_asked"] == asked
    assert fields["longest_monologue_s"] == pytest.approx(115.207 - 34.288, abs=0.1)
    assert fields["tips"] == len(tips(run.events))
    recap = run.recap
    assert recap.questions_asked == asked
    assert "monologue" in " ".join(recap.lines()).lower()
    assert run.kit.phone.recaps == [recap]  # type: ignore[attr-defined]


def test_events_round_trip_the_wire_schema(run: Run) -> None:
    run.replay(synthetic_call())
    # A call's own events: a status at each end, moments, tips, the recap.
    assert [e.type for e in run.events][0] == "status" and [e.type for e in run.events][-2:] == ["recap", "status"]
    assert {e.type for e in run.events} == {"status", "moment", "tip", "recap"}
    for event in run.events:
        wire = event.to_dict()
        if isinstance(event, Moment):
            assert set(wire) == {"type", "v", "t", "kind", "speaker", "start", "end", "confidence"}
        elif isinstance(event, Tip):
            assert set(wire) == {"type", "v", "t", "tip_id", "call_id", "moment", "text", "priority", "ttl_s", "cues"}
            assert event.call_id == 1 and event.ttl_s == 10.0
        back = parse_event(event.to_json())  # equal at the wire's millisecond resolution
        assert type(back) is type(event) and back.to_dict() == wire
    ids = [t.tip_id for t in tips(run.events)]
    assert len(ids) > 1 and len(set(ids)) == len(ids)


def test_rep_chosen_channels_are_honoured(tmp_path: Path) -> None:
    r = Run(make_config(tmp_path / "s", channels=("phone",)))
    try:
        r.replay(synthetic_call())
        delivered = tips(r.events)
        assert delivered and all(t.cues == ("phone",) for t in delivered)
        factory, pins = r.kit.pin_factory, r.kit.pins
        # The LED and the motor were never driven.
        for pin in (pins.led_red, pins.led_green, pins.led_blue, pins.haptic):
            assert all(s.state == 0 for s in factory.pin(pin).states)
        assert [p.text for p in r.kit.phone.tips] == [t.text for t in delivered]  # type: ignore[attr-defined]
    finally:
        r.close()
    r = Run(make_config(tmp_path / "t", channels=("led",)))
    try:
        r.replay(synthetic_call())
        assert all(t.cues == ("led",) for t in tips(r.events))
        assert r.kit.phone.tips == [] and r.kit.phone.recaps == []  # type: ignore[attr-defined]
        factory, pins = r.kit.pin_factory, r.kit.pins
        assert any(s.state > 0 for pin in (pins.led_red, pins.led_green, pins.led_blue) for s in factory.pin(pin).states)
        assert all(s.state == 0 for s in factory.pin(pins.haptic).states)
    finally:
        r.close()


def test_competitor_named_fills_the_battlecard(run: Run) -> None:
    call = synthetic_call()
    run.replay(call)
    competitor_tips = [t for t in tips(run.events) if t.moment == "competitor_mention"]
    for t in competitor_tips:
        assert "HubSpot" in t.text


def test_onset_guard_flags_the_rep_at_once_but_not_the_leak() -> None:
    import numpy as np

    from firmware.audio.frames import FRAME_SAMPLES, CallFrame
    from firmware.coach.onset import RepOnsetGuard

    rng = np.random.default_rng(7)
    guard = RepOnsetGuard()
    assert not guard.voiced(0.0)  # no audio seen: the guard stays out of the way

    def frame(i: int, rep_level: float, buyer_level: float) -> CallFrame:
        t = np.arange(FRAME_SAMPLES) / 16000
        noise = rng.normal(0, 0.0005, FRAME_SAMPLES)
        buyer = buyer_level * np.sin(2 * np.pi * 220 * t)
        # The rep mic hears the buyer through the earpiece ~25 dB down, plus the rep when talking.
        rep = noise + 0.056 * buyer + rep_level * np.sin(2 * np.pi * 150 * t)
        return CallFrame(i * 0.02, rep.astype(np.float32), buyer.astype(np.float32))

    for i in range(50):  # a second of room noise
        guard.on_frame(frame(i, 0.0, 0.0))
    assert not guard.voiced(1.0)
    for i in range(50, 100):  # the buyer talks loudly: only leak reaches the rep mic
        guard.on_frame(frame(i, 0.0, 0.3))
        assert not guard.voiced((i + 1) * 0.02)
    guard.on_frame(frame(100, 0.1, 0.0))  # the rep's first 20 ms of speech
    assert guard.voiced(101 * 0.02)


def test_a_named_competitor_is_a_moment_even_when_the_classifier_misses_it(tmp_path: Path) -> None:
    call = synthetic_call()
    missed = tuple(
        dataclasses.replace(u, label="other") if u.label == "competitor_mention" else u for u in call.utterances
    )
    run = Run(make_config(tmp_path / "s", min_gap_s=0.0))
    try:
        run.replay(dataclasses.replace(call, utterances=missed))
        competitor = [e for e in run.events if isinstance(e, Moment) and e.kind == "competitor_mention"]
        assert len(competitor) == 1 and competitor[0].confidence < 1.0
        assert [t.text for t in tips(run.events) if t.moment == "competitor_mention"] == [
            "HubSpot: ask which limits they already hit"
        ]
    finally:
        run.close()


def test_bad_settings_from_the_phone_are_clear_errors(run: Run) -> None:
    from firmware.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown cue channel"):
        run.coach.set_channels(("led", "smoke"))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown persona"):
        run.coach.set_persona("astronaut")
    assert run.coach.channels == ("led", "haptic", "phone")  # unchanged
