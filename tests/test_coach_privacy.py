"""Privacy: after a call, no file the box wrote and no log line holds any of the call's words."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from coach_support import STATE_VOCABULARY, Run, make_config, synthetic_call

from firmware.testing.truth import TruthCall, load_truth



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
    try:
        run.replay(call)
        assert any(e.type == "tip" for e in run.events), "the call must exercise tip delivery"
    finally:
        run.close()
    words = call_words(call)
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
