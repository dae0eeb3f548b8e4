"""Accuracy of the committed intent model (no TensorFlow needed): held-out split and dev corpus."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from firmware.intent import IntentClassifier, load_classifier
from firmware.store import read_manifest
from firmware.intent.config import IntentConfig
from firmware.intent.labels import LABELS
from firmware.testing.dataset import is_heldout, read_examples, read_transcripts
from firmware.testing.metrics import evaluate

REPO = Path(__file__).resolve().parent.parent
MODEL_DIR = REPO / "models" / "intent" / "current"
DATA = REPO / "models" / "intent" / "data"

# Floors sit a little under the figures tools/train_intent.py measured for the committed model
# (1.4.0: held-out 0.797 clean / 0.435 transcribed, 0.814 clean with the speaker; dev 0.825 text only),
# so a regression fails. DEV_TARGET is the product requirement, met with the speaker the box always
# knows (0.851 for 1.4.0); on text alone the model is still below it.
HELDOUT_CLEAN_FLOOR = 0.77
HELDOUT_ASR_FLOOR = 0.40
HELDOUT_CLEAN_SPEAKER_FLOOR = 0.80
DEV_FLOOR = 0.80
DEV_TARGET = 0.85


@pytest.fixture(scope="module")
def classifier() -> IntentClassifier:
    return load_classifier(REPO / "models", IntentConfig())


def _macro_f1(classifier: IntentClassifier, texts: list[str], labels: list[str], speakers: list[str] | None = None) -> float:
    who = speakers or [None] * len(texts)
    return evaluate(labels, [classifier.classify(t, s).label for t, s in zip(texts, who)], LABELS).macro_f1


def test_model_was_trained_on_the_committed_data() -> None:
    manifest = read_manifest(MODEL_DIR)
    for name, digest in manifest.provenance["training"]["data_sha256"].items():
        assert hashlib.sha256((DATA / name).read_bytes()).hexdigest() == digest, f"{name} changed since training"


def test_heldout_split_is_a_real_split() -> None:
    examples = read_examples(DATA / "utterances.tsv")
    held = [e for e in examples if is_heldout(e.id)]
    assert 0.10 < len(held) / len(examples) < 0.20
    assert {e.label for e in held} == set(LABELS)
    assert len({e.id for e in examples}) == len(examples)


def test_heldout_clean_text(classifier: IntentClassifier) -> None:
    held = [e for e in read_examples(DATA / "utterances.tsv") if is_heldout(e.id)]
    assert _macro_f1(classifier, [e.text for e in held], [e.label for e in held]) >= HELDOUT_CLEAN_FLOOR


def test_heldout_clean_text_with_speaker(classifier: IntentClassifier) -> None:
    held = [e for e in read_examples(DATA / "utterances.tsv") if is_heldout(e.id)]
    assert {e.speaker for e in held} == {"buyer", "rep"}
    figure = _macro_f1(classifier, [e.text for e in held], [e.label for e in held], [e.speaker for e in held])
    assert figure >= HELDOUT_CLEAN_SPEAKER_FLOOR


def test_heldout_recogniser_transcripts(classifier: IntentClassifier) -> None:
    transcripts = read_transcripts(DATA / "asr_transcripts.tsv")
    pairs = [(t, e.label) for e in read_examples(DATA / "utterances.tsv") if is_heldout(e.id) for t in transcripts.get(e.id, [])]
    assert len(pairs) > 100
    assert _macro_f1(classifier, [t for t, _ in pairs], [label for _, label in pairs]) >= HELDOUT_ASR_FLOOR


def _dev_macro_f1(classifier: IntentClassifier, corpus_dir: Path, with_speaker: bool = False) -> float:
    dev = read_examples(corpus_dir / "utterances.tsv")
    assert len(dev) == 120
    speakers = [e.speaker for e in dev] if with_speaker else None
    return _macro_f1(classifier, [e.text for e in dev], [e.label for e in dev], speakers)


def test_dev_corpus_utterances_no_regression(classifier: IntentClassifier, corpus_dir: Path) -> None:
    assert _dev_macro_f1(classifier, corpus_dir) >= DEV_FLOOR


def test_dev_corpus_utterances_meet_the_target(classifier: IntentClassifier, corpus_dir: Path) -> None:
    # On the box every line comes with its speaker (rep = headset mic, buyer = computer playback).
    assert _dev_macro_f1(classifier, corpus_dir, with_speaker=True) >= DEV_TARGET


def test_no_training_sentence_copies_the_dev_corpus(corpus_dir: Path) -> None:
    # The dev corpus is validation only: no training sentence may be a near copy of a dev text.
    import numpy as np

    from firmware.intent.features import FeatureSpec, featurise

    spec = FeatureSpec(buckets=1 << 16)
    dev_texts = [e.text for e in read_examples(corpus_dir / "utterances.tsv")]
    for call in sorted((corpus_dir / "calls").glob("*.json")):
        dev_texts += [u["text"] for u in json.loads(call.read_text(encoding="utf-8"))["utterances"]]
    train = read_examples(DATA / "utterances.tsv")
    similarity = np.stack([featurise(e.text, spec) for e in train]) @ np.stack([featurise(t, spec) for t in dev_texts]).T
    worst = np.unravel_index(int(similarity.argmax()), similarity.shape)
    assert similarity[worst] < 0.85, (train[worst[0]].text, dev_texts[worst[1]])
