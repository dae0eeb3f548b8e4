"""The benchmarks' corpus choice (firmware/testing/corpora.py): named corpora, folders, and a clear
reason when there is nothing to run on."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware.testing import corpora


def _call(folder: Path, call_id: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{call_id}.json").write_text("{}")
    (folder / f"{call_id}.wav").write_bytes(b"")


def test_select_takes_named_folders_and_otherwise_every_known_corpus_present(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _call(tmp_path / "mine" / "calls", "a")
    _call(tmp_path / "flat", "b")  # a flat folder such as dev-kokoro/edge
    (tmp_path / "flat" / "c.json").write_text("{}")  # no WAV beside it: not a call
    chosen = corpora.select([str(tmp_path / "mine"), str(tmp_path / "flat")])
    assert [(c.name, [p.stem for p in c.calls]) for c in chosen] == [("mine", ["a"]), ("flat", ["b"])]

    monkeypatch.setattr(corpora, "KNOWN", {"calibration": tmp_path / "absent", "dev": tmp_path / "mine"})
    assert [c.name for c in corpora.select([])] == ["dev"]


def test_select_names_the_reason_when_there_is_nothing_to_run_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no calls under"):
        corpora.select([str(tmp_path / "empty")])
    monkeypatch.setattr(corpora, "KNOWN", {"calibration": tmp_path / "absent"})
    with pytest.raises(ValueError, match="render_calibration.py"):
        corpora.select(["calibration"])
    with pytest.raises(ValueError, match="no corpus found"):
        corpora.select([])
