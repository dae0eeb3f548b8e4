"""Privacy: after a call, no file the box wrote and no log line holds any of the call's words; the
fleet channel carries none of them nor any tip text, and the phone only its allowlisted fields."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from coach_support import STATE_VOCABULARY, Run, make_config, synthetic_call
from outward_support import assert_fleet_is_clean, assert_phone_is_the_reps_own, channel_bytes, phone_sink_matches_allowlist

from firmware.events import Control, Event, Summary, Tip
from firmware.testing.truth import TruthCall, drive, load_truth



def call_words(call: TruthCall) -> set[str]:
    words = {w.lower() for u in call.utterances for w in re.findall(r"[A-Za-z]{4,}", u.text)}
    return words - STATE_VOCABULARY


def leaked(text: str, words: set[str]) -> set[str]:
    found = {w.lower() for w in re.findall(r"[A-Za-z]+", text)}
    return words & found


def replay_and_scan(call: TruthCall, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    box = tmp_path / "box"
    run = Run(make_config(box / "state"))
    rated = False
    heard: list[Event] = []  # the transcripts, as the bus carries them

    def on_event(event: Event) -> None:
        nonlocal rated
        heard.append(event)
        run.coach.on_event(event)
        if not rated and any(isinstance(e, Tip) for e in run.events):  # the rep rates the first tip
            rated = run.kit.control(Control(t=0.0, action="helpful", source="phone")).outcome == "applied"

    try:
        t = drive(call, run.coach.on_activity, on_event, 0.6)
        run.coach.end_call(t)
        assert any(e.type == "tip" for e in run.events), "the call must exercise tip delivery"
        assert rated, "the call must exercise a control"
        summary = Summary(t=t, duration_s=t, cpu_s=1.0, extra=run.coach.summary_fields())
        phone_sent = list(run.kit.phone.events)  # type: ignore[attr-defined]
    finally:
        run.close()
    words = call_words(call)
    # The outward channels: what the fleet and the phone would carry of this call.
    sent = channel_bytes([*heard, *run.events, summary])
    tip_texts = [e.text for e in run.events if isinstance(e, Tip)]
    assert_fleet_is_clean(sent["fleet"], words, tip_texts)
    assert_phone_is_the_reps_own(sent["phone"], words)
    phone_sink_matches_allowlist(phone_sent)
    assert {e.type for e in phone_sent} == {"tip", "status", "control_result", "recap"}
    assert len(words) > 50
    written = [p for p in box.rglob("*") if p.is_file()]
    assert written, "the mastery state is written"
    for path in written:
        assert not leaked(path.read_text(encoding="utf-8", errors="replace"), words), path
    state = json.loads((box / "state" / "mastery.json").read_text(encoding="utf-8"))
    assert set(state) == {"version", "reps"}
    logs = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records)
    assert not leaked(logs, words)


def test_synthetic_call_leaves_no_words_behind(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    replay_and_scan(synthetic_call(), tmp_path, caplog)


@pytest.mark.corpus
def test_dev_call_leaves_no_words_behind(corpus_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    call = load_truth(sorted((corpus_dir / "calls").glob("*.json"))[0])
    replay_and_scan(call, tmp_path, caplog)


def test_the_channel_scans_would_see_a_leak() -> None:
    """The scans above are only worth their passing if they fail on a leak."""
    with pytest.raises(AssertionError, match="call words"):
        assert_fleet_is_clean(['{"type": "summary", "v": 1, "budget": 1}'], {"budget"}, [])
    with pytest.raises(AssertionError, match="text values"):
        assert_fleet_is_clean(['{"type": "summary", "v": 1, "x": "q"}'], set(), [])
    assert_fleet_is_clean(['{"type": "summary", "v": 1, "x": 1}'], set(), ["Ask what they compare it with"])  # clean
    with pytest.raises(AssertionError, match="compare"):
        assert_fleet_is_clean(['{"type": "summary", "v": 1, "compare": 1}'], set(), ["Ask what they compare it with"])
    with pytest.raises(AssertionError):  # a field the phone's allowlist does not have
        assert_phone_is_the_reps_own(['{"type": "tip", "v": 1, "text": "x", "transcript": "y"}'], set())
    with pytest.raises(AssertionError, match="outside tips"):
        assert_phone_is_the_reps_own(['{"type": "control_result", "v": 1, "reason": "zebracorn"}'], {"zebracorn"})
