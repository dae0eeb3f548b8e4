"""tools/train_intent.py's calibration step (no TensorFlow needed): what it fits on and what it fits."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from firmware.intent.labels import LABELS
from firmware.testing.dataset import Example

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))

import train_intent  # noqa: E402


def _held() -> tuple[list[Example], dict[str, list[str]]]:
    held = [Example(id="a1", speaker="buyer", label="objection_price", text="the price is too high"),
            Example(id="a2", speaker="rep", label="next_step", text="lets book a demo")]  # fmt: skip
    transcripts = {"a1": ["the prize is to high", "price too hi"], "a2": ["let's look at demo"]}
    return held, transcripts


def test_calibrating_on_clean_text_leaves_the_transcripts_out() -> None:
    held, transcripts = _held()
    texts, labels, speakers = train_intent.calibration_set(held, transcripts, "clean")
    assert texts == ["the price is too high", "lets book a demo"]
    assert labels == ["objection_price", "next_step"] and speakers == ["buyer", "rep"]


def test_calibrating_on_all_adds_every_transcript_with_its_sentences_label_and_speaker() -> None:
    held, transcripts = _held()
    texts, labels, speakers = train_intent.calibration_set(held, transcripts, "all")
    assert texts[:2] == ["the price is too high", "lets book a demo"]  # the written sentences first
    assert sorted(zip(texts[2:], labels[2:], speakers[2:])) == [
        ("let's look at demo", "next_step", "rep"),
        ("price too hi", "objection_price", "buyer"),
        ("the prize is to high", "objection_price", "buyer"),
    ]
    with pytest.raises(ValueError):
        train_intent.calibration_set(held, transcripts, "dev")


def test_calibrate_sharpens_an_underconfident_model_and_lowers_its_threshold() -> None:
    # Logits that always rank the truth first but by a small margin: the NLL-best temperature is
    # below 1 (sharper), and since the top label is always right, no 'other' cut-off helps.
    rng = np.random.default_rng(0)
    truth = rng.integers(0, len(LABELS), 400)
    logits = rng.normal(0.0, 0.1, (400, len(LABELS)))
    logits[np.arange(400), truth] += 1.0
    temperature, threshold = train_intent.calibrate(logits, truth)
    assert temperature < 1.0
    assert threshold == 0.0


def test_calibrate_finds_a_threshold_when_unsure_answers_are_mostly_other() -> None:
    # Sure answers are right; unsure ones are really 'other' lines the model guessed a kind for.
    other = LABELS.index("other")
    rng = np.random.default_rng(1)
    n = 600
    guess = rng.integers(0, other, n)  # never 'other' as its top answer
    unsure = rng.random(n) < 0.4
    truth = np.where(unsure, other, guess)
    logits = np.zeros((n, len(LABELS)))
    logits[np.arange(n), guess] = np.where(unsure, 0.5, 6.0)
    _, threshold = train_intent.calibrate(logits, truth)
    assert 0.0 < threshold <= 0.6


def test_selection_figures_are_the_scored_models_own_against_the_reference() -> None:
    entry = {"moment_f1": 0.85, "moment_precision": 0.82, "moment_recall": 0.88, "moment_f1_delta_ci90": [0.01, 0.06],
             "calls": 40, "calls_better": 8, "calls_worse": 4}  # fmt: skip
    ref = {**entry, "moment_f1": 0.818, "moment_f1_delta_ci90": [0.0, 0.0], "calls_better": 0, "calls_worse": 0}
    scores = {"reference": "old", "models": {"old": {"version": "1.4.0"}, "new": {"version": "1.5.0"}},
              "corpora": {"calibration": {"old": ref, "new": entry}}}  # fmt: skip
    figures = train_intent.selection_figures(scores, "new")
    assert figures["reference"] == "1.4.0"
    assert figures["calibration"] == {"moment_f1": 0.85, "moment_precision": 0.82, "moment_recall": 0.88,
                                      "reference_moment_f1": 0.818, "moment_f1_delta_ci90": [0.01, 0.06],
                                      "calls": 40, "calls_better": 8, "calls_worse": 4}  # fmt: skip
    with pytest.raises(KeyError, match="other"):
        train_intent.selection_figures(scores, "other")


def test_recorded_selection_survives_recalibration(tmp_path: Path) -> None:
    # --report-only rewrites the manifest; the calls figures written before must stay in it.
    import shutil

    out = tmp_path / "version"
    out.mkdir()
    for name in ("intent.tflite", "manifest.toml"):
        shutil.copy(REPO / "models" / "intent" / "current" / name, out / name)
    manifest = train_intent.load_manifest(out)
    assert "selection" not in manifest
    manifest["selection"] = {"reference": "1.3.0", "calibration": {"moment_f1": 0.8}}
    train_intent.save_manifest(out, manifest)
    again = train_intent.load_manifest(out)
    train_intent.save_manifest(out, again)
    assert train_intent.load_manifest(out)["selection"] == {"reference": "1.3.0", "calibration": {"moment_f1": 0.8}}


def test_averaging_a_linear_models_seeds_averages_their_logits_exactly() -> None:
    # --average-seeds ships the mean of K linear models' weights: its logits must be the mean of
    # the K models' logits for any input, which is what makes averaging seeds a noise reduction
    # (not a new model whose behaviour has to be found out).
    rng = np.random.default_rng(2)
    runs = [[rng.normal(size=(50, len(LABELS))), rng.normal(size=len(LABELS))] for _ in range(3)]
    kernel, bias = train_intent.average_weights(runs)
    x = rng.random((7, 50))
    mean_logits = np.mean([x @ w + b for w, b in runs], axis=0)
    assert np.allclose(x @ kernel + bias, mean_logits)
    assert [a.shape for a in train_intent.average_weights(runs[:1])] == [(50, len(LABELS)), (len(LABELS),)]
    with pytest.raises(ValueError):
        train_intent.average_weights([runs[0], runs[1][:1]])
