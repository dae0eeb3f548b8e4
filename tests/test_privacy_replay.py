"""Privacy end to end: `parallax replay` through the real pipeline writes none of the call's words
to any file, and logs none of them even at debug level. Runs on a fresh clone (the demo call)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.model


def firmware_vocabulary() -> set[str]:
    """Words the firmware itself contains (code, playbook): seeing one proves nothing about a call."""
    words: set[str] = set()
    for path in [*(REPO / "firmware").rglob("*.py"), *(REPO / "models" / "playbook").rglob("*.toml")]:
        words |= {w.lower() for w in re.findall(r"[A-Za-z]+", path.read_text(encoding="utf-8"))}
    return words


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
        [sys.executable, "-m", "firmware", "-vv", "--config", str(config), "replay", str(demo_call)],
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
