"""The intent runtime: contract of classify(), any text is safe, threshold, broken model files."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tomli_w

from firmware.config import load_config
from firmware.errors import ConfigError, ModelError
from firmware.intent import IntentClassifier, IntentResult, load_classifier
from firmware.intent.config import IntentConfig
from firmware.intent.features import FeatureSpec, featurise, normalise
from firmware.intent.labels import LABELS

REPO = Path(__file__).resolve().parent.parent
MODEL_DIR = REPO / "models" / "intent" / "current"  # the committed version, through the store's pointer

ODD_TEXTS = [
    "",
    "   \t  ",
    "?!...,,,",
    "\x00\x01\x02\ufffd\ufffd",
    "日本語のテキストです、どうぞよろしく",
    "Das ist uns leider viel zu teuer, wir haben kein Budget dafür.",
    "Ça coûte trop cher pour nous, désolé.",
    "🙂🙂🔥💸",
    "asdkjh qwpoeiru zxmcnv",
    "a",
    "price " * 20000,
    "word " * 200000 + "that is too expensive",
]


@pytest.fixture(scope="module")
def classifier() -> IntentClassifier:
    return load_classifier(REPO / "models", IntentConfig())


def test_result_unpacks_as_label_confidence_scores(classifier: IntentClassifier) -> None:
    result = classifier.classify("Honestly that's a lot more than we budgeted for this year.")
    label, confidence, scores = result
    assert isinstance(result, IntentResult)
    assert (label, confidence, scores) == (result.label, result.confidence, result.scores)
    assert list(scores) == list(LABELS)
    assert math.isclose(sum(scores.values()), 1.0, abs_tol=1e-6)
    assert confidence == scores[label]
    assert label == max(scores, key=scores.__getitem__) or label == "other"


@pytest.mark.parametrize("text", ODD_TEXTS, ids=range(len(ODD_TEXTS)))
def test_any_text_gets_a_valid_label(classifier: IntentClassifier, text: str) -> None:
    label, confidence, scores = classifier.classify(text)
    assert label in LABELS
    assert 0.0 <= confidence <= 1.0 and math.isfinite(confidence)
    assert all(0.0 <= p <= 1.0 for p in scores.values())


def test_text_with_no_words_is_other_for_certain(classifier: IntentClassifier) -> None:
    for text in ("", "  ", "!!!", "日本語"):
        label, confidence, _ = classifier.classify(text)
        assert (label, confidence) == ("other", 1.0)


def test_interpreter_is_reused_and_answers_are_stable(classifier: IntentClassifier) -> None:
    interpreter = classifier._interpreter
    first = [classifier.classify(t) for t in ODD_TEXTS[4:9]]
    again = [classifier.classify(t) for t in ODD_TEXTS[4:9]]
    assert classifier._interpreter is interpreter
    assert first == again


def test_below_the_threshold_the_answer_is_other() -> None:
    text = "Your rival quoted us about half of that, so the price is a real problem."
    permissive = load_classifier(REPO / "models", IntentConfig(threshold=0.0))
    strict = load_classifier(REPO / "models", IntentConfig(threshold=1.0))
    label, confidence, scores = permissive.classify(text)
    assert label != "other" and confidence == max(scores.values())
    fallback, fallback_confidence, fallback_scores = strict.classify(text)
    assert fallback == "other"
    assert fallback_scores == scores
    assert fallback_confidence == scores["other"]


def test_default_threshold_is_the_calibrated_one(classifier: IntentClassifier) -> None:
    assert classifier.threshold == _options(MODEL_DIR)["calibration"]["threshold"]
    assert 0.0 <= classifier.threshold < 1.0


def _copy_model(tmp_path: Path) -> Path:
    target = tmp_path / "intent"
    target.mkdir()
    for name in ("intent.tflite", "manifest.toml"):
        shutil.copy(MODEL_DIR / name, target / name)
    return target


def _options(model_dir: Path) -> dict[str, Any]:
    return tomllib.loads((model_dir / "manifest.toml").read_text(encoding="utf-8"))["options"]  # type: ignore[no-any-return]


def _rewrite_manifest(model_dir: Path, model_sha256: str | None = None, **options: object) -> None:
    """Change the store manifest's [options] (labels, features, calibration) or the model's hash."""
    path = model_dir / "manifest.toml"
    manifest = tomllib.loads(path.read_text(encoding="utf-8"))
    manifest["options"].update(options)
    if model_sha256 is not None:
        manifest["files"]["model"]["sha256"] = model_sha256
    path.write_text(tomli_w.dumps(manifest), encoding="utf-8")


def _one_line_model_error(model_dir: Path, match: str) -> None:
    with pytest.raises(ModelError, match=match) as info:
        IntentClassifier(model_dir)
    assert "\n" not in str(info.value)


def test_flipped_bytes_are_reported_as_corrupt(tmp_path: Path) -> None:
    model_dir = _copy_model(tmp_path)
    data = bytearray((model_dir / "intent.tflite").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (model_dir / "intent.tflite").write_bytes(bytes(data))
    _one_line_model_error(model_dir, "corrupt")


def test_a_file_that_is_not_tflite_is_rejected_by_the_runtime(tmp_path: Path) -> None:
    # The checksum matches, so this reaches the interpreter itself.
    import hashlib

    model_dir = _copy_model(tmp_path)
    junk = b"this is not a flatbuffer" * 50
    (model_dir / "intent.tflite").write_bytes(junk)
    _rewrite_manifest(model_dir, model_sha256=hashlib.sha256(junk).hexdigest())
    _one_line_model_error(model_dir, "not a usable TensorFlow Lite file")


def test_missing_files_and_bad_manifests(tmp_path: Path) -> None:
    model_dir = _copy_model(tmp_path)
    (model_dir / "intent.tflite").unlink()
    _one_line_model_error(model_dir, "model file not found")
    _one_line_model_error(tmp_path / "nowhere", "no model manifest")
    (model_dir / "manifest.toml").write_text("{not toml", encoding="utf-8")
    _one_line_model_error(model_dir, "not valid TOML")
    (model_dir / "manifest.toml").write_text("format = 2", encoding="utf-8")
    _one_line_model_error(model_dir, "'format' must be 1")


def test_manifest_that_disagrees_with_the_model_is_rejected(tmp_path: Path) -> None:
    model_dir = _copy_model(tmp_path)
    manifest = _options(model_dir)
    _rewrite_manifest(model_dir, features={**manifest["features"], "buckets": 1024})
    _one_line_model_error(model_dir, "tensor shapes differ")
    _rewrite_manifest(model_dir, features=manifest["features"], labels=manifest["labels"][:-1])
    _one_line_model_error(model_dir, "bad labels|shapes differ")
    _rewrite_manifest(model_dir, labels=manifest["labels"], calibration={"temperature": 0})
    _one_line_model_error(model_dir, "incomplete")


def test_a_model_asking_for_features_this_runtime_lacks_is_refused(tmp_path: Path) -> None:
    # e.g. a newer model pushed to an older box: it must fail to load, not featurise wrongly
    model_dir = _copy_model(tmp_path)
    manifest = _options(model_dir)
    _rewrite_manifest(model_dir, features={**manifest["features"], "phoneme_ngrams": [2, 3]})
    _one_line_model_error(model_dir, "does not know: phoneme_ngrams")


def test_config_section_parses_and_validates(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(f'[intent]\nthreshold = 0.4\nmodel_dir = "{MODEL_DIR}"\n', encoding="utf-8")
    config = load_config(good)
    assert config.intent == IntentConfig(model_dir=MODEL_DIR, threshold=0.4)
    classifier = load_classifier(Path("/nonexistent"), config.intent)  # absolute model_dir wins
    assert classifier.threshold == 0.4
    bad = tmp_path / "bad.toml"
    bad.write_text("[intent]\nthreshold = 1.5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="threshold"):
        load_config(bad)


def test_reading_config_does_not_import_the_tflite_runtime() -> None:
    code = (
        "import sys, firmware.config, firmware.intent; "
        "assert 'tflite_runtime' not in sys.modules and 'ai_edge_litert' not in sys.modules; "
        "assert 'firmware.intent.classifier' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_features_ignore_case_punctuation_and_apostrophes() -> None:
    spec = FeatureSpec()
    a = featurise("That's WAY too expensive!!", spec)
    b = featurise("thats way too expensive", spec)
    assert np.array_equal(a, b)
    assert math.isclose(float(np.linalg.norm(a)), 1.0, rel_tol=1e-5)
    assert not np.array_equal(a, featurise("that is way too cheap", spec))
    assert normalise("Café — naïve") == "cafe naive"


def test_features_of_huge_text_are_bounded_by_max_chars() -> None:
    spec = FeatureSpec(max_chars=50)
    long_text = "we are in a freeze until january " * 1000
    assert np.array_equal(featurise(long_text, spec), featurise(long_text[:50], spec))
    assert featurise("", spec).shape == (spec.buckets,) and not featurise("", spec).any()


def test_a_reps_line_is_never_a_buyer_only_label(classifier: IntentClassifier) -> None:
    from firmware.intent.labels import REP_LABELS

    text = "Honestly that's way more than we budgeted, we're locked in with HubSpot until next year."
    label, _, scores = classifier.classify(text)
    assert label not in REP_LABELS  # as a buyer line it is an objection or a competitor mention
    rep_label, rep_confidence, rep_scores = classifier.classify(text, "rep")
    assert rep_label in REP_LABELS
    assert all(rep_scores[name] == 0.0 for name in LABELS if name not in REP_LABELS)
    assert math.isclose(sum(rep_scores.values()), 1.0, abs_tol=1e-6)
    assert classifier.classify(text, "buyer") == (label, scores[label], scores)


def test_per_speaker_thresholds_from_the_manifest(tmp_path: Path) -> None:
    text = "Your rival quoted us about half of that, so the price is a real problem."
    model_dir = _copy_model(tmp_path)
    manifest = _options(model_dir)
    calibration = {**manifest["calibration"], "threshold": 0.0, "threshold_by_speaker": {"buyer": 1.0, "rep": 0.0}}
    _rewrite_manifest(model_dir, calibration=calibration)
    classifier = IntentClassifier(model_dir)
    assert classifier.classify(text).label != "other"  # no speaker: the general threshold (0.0)
    assert classifier.classify(text, "buyer").label == "other"  # the buyer's own cut-off (1.0)
    rep_label, rep_confidence, rep_scores = classifier.classify(text, "rep")
    assert rep_confidence == max(rep_scores.values())  # rep cut-off 0.0 never forces a fallback
    assert classifier.classify(text, "someone else").label != "other"  # unknown speaker: the general one
    assert (classifier.threshold_for("buyer"), classifier.threshold_for("rep"), classifier.threshold_for()) == (1.0, 0.0, 0.0)

    # A configured threshold overrides every calibrated one, whoever speaks.
    configured = IntentClassifier(model_dir, IntentConfig(threshold=0.0))
    assert configured.speaker_thresholds == {}
    assert configured.classify(text, "buyer").label != "other"

    _rewrite_manifest(model_dir, calibration={**calibration, "threshold_by_speaker": {"buyer": 1.5}})
    _one_line_model_error(model_dir, "threshold outside")
    _rewrite_manifest(model_dir, calibration={**calibration, "threshold_by_speaker": ["buyer"]})
    _one_line_model_error(model_dir, "incomplete")
