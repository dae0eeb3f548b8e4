"""``parallax coach``: check, reset, simulate; bad input is one clear line and exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from coach_support import FIXTURE_CALL

from firmware.cli.main import main
from firmware.coach.mastery import MasteryStore


def write_config(tmp_path: Path) -> Path:
    config = tmp_path / "parallax.toml"
    config.write_text(f'[paths]\nstate_dir = "{tmp_path / "state"}"\n', encoding="utf-8")
    return config


def test_check_accepts_the_default_and_rejects_a_bad_playbook(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["coach", "check"]) == 0
    assert "valid" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text('schema = 1\nname = "x"\n[moments.objection_price]\ntips = ["ok"]\n', encoding="utf-8")
    assert main(["coach", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("parallax: error: bad.toml.moments.objection_price: missing key(s)") and "Traceback" not in err


def test_reset_forgets_mastery(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    store = MasteryStore.in_dir(tmp_path / "state")
    for rep in ("ana", "ben"):
        store.record(rep, "pain_point", handled_well=True, tipped=False)
    store.save()
    assert main(["--config", str(config), "coach", "reset", "--rep", "ana"]) == 0
    again = MasteryStore.in_dir(tmp_path / "state")
    assert again.counters("ana", "pain_point") == {} and again.counters("ben", "pain_point")["handled"] == 1
    assert main(["--config", str(config), "coach", "reset"]) == 0
    assert MasteryStore.in_dir(tmp_path / "state").counters("ben", "pain_point") == {}


def test_simulate_prints_cues_and_writes_events_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    report = tmp_path / "call.html"
    events = tmp_path / "events.jsonl"
    assert main(["--config", str(config), "coach", "simulate", str(FIXTURE_CALL), "--json", str(events), "--report", str(report)]) == 0
    out = capsys.readouterr().out
    assert "CUES   LED" in out and "TIP" in out and "RECAP  for the rep's phone" in out
    lines = [json.loads(line) for line in events.read_text(encoding="utf-8").splitlines()]
    assert {"utterance", "moment", "tip", "summary"} <= {e["type"] for e in lines}
    assert lines[-1]["type"] == "summary" and "talk_ratio_rep" in lines[-1]
    assert report.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    # A simulation is not one of the rep's calls: no mastery written to the configured state.
    assert not (tmp_path / "state").exists()


def test_simulate_rejects_a_file_that_is_not_a_call(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "call.json"
    bad.write_text('{"utterances": [{"speaker": "host"}]}', encoding="utf-8")
    assert main(["coach", "simulate", str(bad)]) == 2
    assert "not a call ground truth file" in capsys.readouterr().err


def test_skill_level_sets_where_a_rep_starts(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    assert main(["--config", str(config), "coach", "skill", "ana", "experienced"]) == 0
    store = MasteryStore.in_dir(tmp_path / "state")
    assert store.skill("ana", "new") == "experienced" and store.skill("ben", "new") == "new"
    assert store.stage("ana", "objection_price", store.skill("ana", "new")) == "fading"
