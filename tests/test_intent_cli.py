"""``parallax intent``: the exact output formats, and one-line errors."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from firmware.cli.main import main
from firmware.intent.labels import LABELS

REPO = Path(__file__).resolve().parent.parent


def _parallax(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "firmware", *args], input=stdin, capture_output=True, cwd=REPO, timeout=120)


def test_one_text_prints_label_tab_confidence(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["intent", "Could you send the proposal over and we'll review it on Monday?"]) == 0
    out = capsys.readouterr().out
    match = re.fullmatch(r"([a-z_]+)\t(\d\.\d{3})\n", out)
    assert match, out
    assert match.group(1) in LABELS
    assert 0.0 <= float(match.group(2)) <= 1.0


def test_jsonl_writes_one_object_per_input_line() -> None:
    lines = ["We're in a freeze until January.", "", "我们没有预算", "ok", "x" * 5000]
    stdin = ("\n".join(lines) + "\n").encode("utf-8") + b"bad \xff\xfe bytes\n"
    result = _parallax("intent", "--jsonl", stdin=stdin)
    assert result.returncode == 0, result.stderr.decode()
    records = [json.loads(line) for line in result.stdout.decode("utf-8").splitlines()]
    assert [r["text"] for r in records[:-1]] == lines
    assert records[-1]["text"].startswith("bad ") and records[-1]["text"].endswith(" bytes")
    for record in records:
        assert set(record) == {"text", "label", "confidence", "scores"}
        assert record["label"] in LABELS
        assert list(record["scores"]) == list(LABELS)
        assert record["confidence"] == record["scores"][record["label"]]
        assert abs(sum(record["scores"].values()) - 1.0) < 1e-3


def test_text_and_jsonl_are_exclusive() -> None:
    for args in (("intent",), ("intent", "hello", "--jsonl")):
        result = _parallax(*args)
        assert result.returncode == 2
        assert b"either TEXT or --jsonl" in result.stderr


def test_a_corrupt_model_is_one_error_line_not_a_traceback(tmp_path: Path) -> None:
    model_dir = tmp_path / "intent"
    shutil.copytree(REPO / "models" / "intent" / "current", model_dir)
    (model_dir / "intent.tflite").write_bytes(b"\x00" * 100)
    config = tmp_path / "parallax.toml"
    config.write_text(f'[intent]\nmodel_dir = "{model_dir}"\n', encoding="utf-8")
    result = _parallax("--config", str(config), "intent", "hello there")
    assert result.returncode == 2
    assert result.stderr.decode().strip().splitlines() == [
        f"parallax: error: intent model {model_dir / 'intent.tflite'} is corrupt (SHA-256 differs from its manifest)"
    ]


def test_speaker_option_applies_to_both_forms(capsys: pytest.CaptureFixture[str]) -> None:
    text = "That's far more than we budgeted for this year, honestly."
    assert main(["intent", "--speaker", "rep", text]) == 0
    label = capsys.readouterr().out.split("\t")[0]
    assert label in ("product_question", "next_step", "other")
    result = _parallax("intent", "--jsonl", "--speaker", "rep", stdin=(text + "\n").encode())
    record = json.loads(result.stdout)
    assert record["scores"]["objection_price"] == 0.0 and record["label"] == label
