"""Mastery: counters only, 0600, atomic, survives restarts, resettable; tips fade as reps improve."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from coach_support import Run, make_config, synthetic_call

from firmware.coach.config import MasteryConfig
from firmware.coach.mastery import MasteryStore
from firmware.errors import CoachStateError
from firmware.events import Control
from firmware.testing.evaluate import tips


def test_fresh_store_stages_follow_skill_level(tmp_path: Path) -> None:
    store = MasteryStore.in_dir(tmp_path)
    cfg = MasteryConfig()
    assert store.stage("r", "objection_price", "new") == "active"
    assert store.score("r", "objection_price", "developing") == cfg.start_developing
    assert store.stage("r", "objection_price", "experienced") == "fading"


def test_only_unprompted_good_handling_counts(tmp_path: Path) -> None:
    store = MasteryStore.in_dir(tmp_path)
    store.record("r", "objection_need", handled_well=True, tipped=True)
    assert store.score("r", "objection_need", "new") == 0
    for _ in range(3):
        store.record("r", "objection_need", handled_well=True, tipped=False)
    assert store.stage("r", "objection_need", "new") == "fading"
    store.record("r", "objection_need", handled_well=False, tipped=False)
    assert store.stage("r", "objection_need", "new") == "active"
    assert store.counters("r", "objection_need") == {"seen": 5, "handled": 3, "net": 2}


def test_state_survives_restart_with_mode_0600_and_can_be_reset(tmp_path: Path) -> None:
    store = MasteryStore.in_dir(tmp_path / "state")
    for _ in range(6):
        store.record("ana", "pain_point", handled_well=True, tipped=False)
    store.add_pace("ana", 300, 120.0)
    store.save()
    path = tmp_path / "state" / "mastery.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = MasteryStore.in_dir(tmp_path / "state")
    assert again.stage("ana", "pain_point", "new") == "off"
    assert again.pace_baseline("ana") == (300, 120.0)
    assert [p.name for p in path.parent.iterdir()] == ["mastery.json"]  # no temp files left behind
    again.reset("ana")
    assert MasteryStore.in_dir(tmp_path / "state").stage("ana", "pain_point", "new") == "active"


@pytest.mark.parametrize(
    "content",
    ["{not json", json.dumps({"version": 9, "reps": {}}), json.dumps({"version": 1, "reps": {"a": {"moments": {"x": 1}}}})],
)
def test_corrupt_state_is_a_clear_error(tmp_path: Path, content: str) -> None:
    (tmp_path / "mastery.json").write_text(content, encoding="utf-8")
    with pytest.raises(CoachStateError, match="parallax coach reset"):
        MasteryStore.in_dir(tmp_path)


def test_unwritable_state_is_a_clear_error(tmp_path: Path) -> None:
    store = MasteryStore(tmp_path / "state" / "mastery.json")
    (tmp_path / "state").write_text("", encoding="utf-8")  # the state directory became a file
    with pytest.raises(CoachStateError, match="cannot write"):
        store.save()
    with pytest.raises(CoachStateError, match="cannot read"):
        MasteryStore(tmp_path / "state" / "mastery.json")


def test_tips_fade_after_mastery_over_a_sequence_of_calls(tmp_path: Path) -> None:
    """A developing rep handles pain points, product questions and the authority objection well
    (a question back, or a 1.2 s pause). With coaching muted, those count as unprompted; after a few
    calls the coach stops tipping those moments, while a fresh rep still gets them."""
    call = synthetic_call()
    state = tmp_path / "state"
    mastered = {"pain_point", "product_question", "objection_authority"}
    fresh = Run(make_config(tmp_path / "fresh", skill="developing", min_gap_s=0.0))
    try:
        fresh.replay(call)
        assert mastered & {t.moment for t in tips(fresh.events)}
    finally:
        fresh.close()
    stages = []
    for _ in range(4):
        run = Run(make_config(state, skill="developing", min_gap_s=0.0))
        try:
            assert run.kit.control(Control(t=0.0, action="mute", source="cli")).outcome == "applied"
            run.replay(call)
            assert tips(run.events) == []
            stages.append(run.coach._mastery.stage("default", "pain_point", "developing"))
        finally:
            run.close()
    assert stages[0] == "fading" and stages[-1] == "off"
    after = Run(make_config(state, skill="developing", min_gap_s=0.0))
    try:
        after.replay(call)
        delivered = {t.moment for t in tips(after.events)}
        assert delivered, "other moments still get tips"
        assert not mastered & delivered
        # The objections handled badly (a 0.3 s reply, an interruption) are still coached.
        assert delivered & {"objection_price", "objection_risk", "quick_reply", "interruption"}
    finally:
        after.close()
    data = json.loads((state / "mastery.json").read_text(encoding="utf-8"))
    assert data["reps"]["default"]["moments"]["pain_point"]["handled"] >= 4


def test_a_failed_state_write_still_gives_the_recap(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    run = Run(make_config(tmp_path / "state"))
    try:
        (tmp_path / "state").write_text("", encoding="utf-8")  # the state directory became a file
        run.replay(synthetic_call())
        assert run.recap.questions_asked > 0
        assert any("cannot write mastery state" in r.getMessage() for r in caplog.records)
    finally:
        run.close()
