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
