"""Privacy end to end: `parallax replay` through the real pipeline writes none of the call's words
to any file, and logs none of them even at debug level; of its events, the fleet channel would
carry no call word and no tip text, the phone channel only its allowlist; and no library leaves
its own record of the run in HOME or TMPDIR. Runs on a fresh clone (the demo call)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from outward_support import assert_fleet_is_clean, assert_phone_is_the_reps_own, channel_bytes, firmware_vocabulary

from firmware.events import Tip, parse_event

pytestmark = pytest.mark.model


def test_replay_leaves_no_words_in_files_or_logs(models_dir: Path, demo_call: Path, tmp_path: Path) -> None:
    truth = json.loads(demo_call.with_suffix(".json").read_text())
    call_words = {w.lower() for u in truth["utterances"] for w in re.findall(r"[A-Za-z]{4,}", u["text"])}
    words = call_words - firmware_vocabulary()
    assert len(words) >= 15, "enough of the call's own words to search for"

    box = tmp_path / "box"
    (box / "tmp").mkdir(parents=True)
    config = box / "parallax.toml"
    config.write_text(f'[paths]\nmodels_dir = "{models_dir}"\nstate_dir = "{box / "state"}"\n')
    env = {**os.environ, "TMPDIR": str(box / "tmp"), "HOME": str(box / "home")}
    result = subprocess.run(
        [sys.executable, "-m", "firmware", "-vv", "--config", str(config), "replay", str(demo_call),
         "--json", str(tmp_path / "events.jsonl")],  # outside the box: the rep's own replay output
        cwd=box, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    heard = {w.lower() for w in re.findall(r"[A-Za-z]+", result.stdout)}
    assert len(words & heard) >= 10, "the rep's own timeline does show the conversation"
    logged = {w.lower() for w in re.findall(r"[A-Za-z]+", result.stderr)}
    assert " INFO " in result.stderr, "logging was on (-vv: debug and up)"
    assert not words & logged, f"call words in the logs: {sorted(words & logged)}"
    for path in box.rglob("*"):
        if path.is_file() and path != config:
            found = {w.lower() for w in re.findall(r"[A-Za-z]+", path.read_text(encoding="utf-8", errors="replace"))}
            assert not words & found, f"{path} holds call words: {sorted(words & found)}"
    # Nor does any library keep its own record of the run: no telemetry database, device id or
    # session file in HOME or TMPDIR (onnxruntime's, switched off in firmware/speech/ort.py).
    left = sorted(str(p.relative_to(box)) for p in [*(box / "tmp").rglob("*"), *(box / "home").rglob("*")])
    assert left == [], f"written outside the outputs: {left}"

    # Every event the call produced, through the outward channels as they attach.
    events = [parse_event(line) for line in (tmp_path / "events.jsonl").read_text(encoding="utf-8").splitlines()]
    tips = [e for e in events if isinstance(e, Tip)]
    assert tips and any(e.type == "utterance" for e in events), "the call must exercise transcripts and tips"
    sent = channel_bytes(events)
    assert_fleet_is_clean(sent["fleet"], words, [t.text for t in tips])
    assert_phone_is_the_reps_own(sent["phone"], words)
    assert sum('"type": "tip"' in line for line in sent["phone"]) == len(tips)
