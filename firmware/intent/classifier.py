"""The on-device intent classifier: hashed text features (numpy) into a small int8 tflite network.

Create one :class:`IntentClassifier` per process (``load_classifier``) and call ``classify``
for every utterance; the interpreter is built once and reused. Any text is accepted: empty,
huge, non-English or binary junk comes back as a valid label, never an exception.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from firmware.errors import ModelError
from firmware.intent.config import IntentConfig
from firmware.intent.features import FeatureSpec, featurise, normalise
from firmware.intent.labels import FALLBACK_LABEL, REP_LABELS

if TYPE_CHECKING:
    from firmware.store import Manifest

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.toml"


class IntentResult(NamedTuple):
    """``label, confidence, scores = classifier.classify(text)``.

    ``scores`` holds the calibrated probability of every label; ``confidence`` is the probability
    of the returned ``label`` (so when a weak guess falls back to ``other``, it is other's own score).
    """

    label: str
    confidence: float
    scores: dict[str, float]


def _make_interpreter(model: bytes, num_threads: int) -> Any:
    try:
        from tflite_runtime.interpreter import Interpreter  # Python 3.11 wheels (Pi OS Bookworm)
    except ImportError as first:
        try:
            from ai_edge_litert.interpreter import Interpreter  # its successor, Python >= 3.12
        except ImportError as second:
            # Installed but broken (a NumPy it was not built for) is another fix than not installed.
            broken = next((e for e in (first, second) if not isinstance(e, ModuleNotFoundError)), None)
            if broken is not None:
                raise ModelError(f"the TensorFlow Lite runtime failed to load: {broken}") from None
            raise ModelError("no TensorFlow Lite runtime installed (pip install tflite-runtime or ai-edge-litert)") from None
    try:
        interpreter = Interpreter(model_content=model, num_threads=num_threads)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"intent model is not a usable TensorFlow Lite file: {str(exc).splitlines()[0]}") from None
    return interpreter


def read_manifest(model_dir: Path) -> dict[str, Any]:
    """The intent fields of a model-store version's ``manifest.toml`` (the one manifest format)."""
    from firmware.store import read_manifest as read_store_manifest

    return intent_fields(read_store_manifest(Path(model_dir)))


def intent_fields(manifest: Manifest) -> dict[str, Any]:
    """The intent fields of an already parsed store manifest (no file is read)."""
    if manifest.family != "intent":
        raise ModelError(f"{manifest.directory / MANIFEST_NAME} is a {manifest.family} model, not an intent model")
    try:
        model = manifest.files["model"]
    except KeyError:
        raise ModelError(f"intent model manifest in {manifest.directory} is incomplete: no 'model' file") from None
    return {
        **manifest.options,
        "version": manifest.version,
        "model_file": model.path,
        "model_sha256": model.sha256,
        "training": manifest.provenance.get("training", {}),
        "metrics": manifest.provenance.get("metrics", {}),
    }


class IntentClassifier:
    def __init__(
        self, model_dir: Path, config: IntentConfig | None = None, *, manifest: Manifest | None = None
    ) -> None:
        """The model in the version folder ``model_dir``. ``manifest``: that folder's manifest, already
        parsed by the caller (the model store), so it is not read and parsed again: a TOML parse is
        most of a warm load (about 1 ms of 1.5). The model file's hash is checked either way."""
        config = config or IntentConfig()
        if manifest is not None and Path(manifest.directory) != Path(model_dir):
            raise ModelError(f"intent model: manifest of {manifest.directory} given for {model_dir}")
        fields = intent_fields(manifest) if manifest is not None else read_manifest(model_dir)
        try:
            self.labels: tuple[str, ...] = tuple(str(label) for label in fields["labels"])
            self.spec = FeatureSpec.from_dict(fields["features"])
            calibration = fields["calibration"]
            self.temperature = float(calibration["temperature"])
            calibrated_threshold = float(calibration["threshold"])
            # Optional: buyer and rep lines have different label priors, so a manifest may give each
            # speaker its own cut-off (tools/train_intent.py --speaker-thresholds); else one for all.
            by_speaker = {str(k): float(v) for k, v in dict(calibration.get("threshold_by_speaker", {})).items()}
            model_file = Path(model_dir) / str(fields["model_file"])
            expected_sha = str(fields["model_sha256"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"intent model manifest in {model_dir} is incomplete: {exc}") from None
        if FALLBACK_LABEL not in self.labels or not math.isfinite(self.temperature) or self.temperature <= 0:
            raise ModelError(f"intent model manifest in {model_dir} has bad labels or calibration")
        self.version = str(fields.get("version", "?"))
        if not all(0.0 <= t <= 1.0 for t in (calibrated_threshold, *by_speaker.values())):
            raise ModelError(f"intent model manifest in {model_dir} has a threshold outside 0..1")
        # A configured threshold overrides every calibrated one, so it means one thing whoever speaks.
        self.threshold = config.threshold if config.threshold is not None else calibrated_threshold
        self.speaker_thresholds: dict[str, float] = {} if config.threshold is not None else by_speaker
        try:
            model = model_file.read_bytes()
        except FileNotFoundError:
            raise ModelError(f"intent model file not found: {model_file}") from None
        except OSError as exc:
            raise ModelError(f"cannot read intent model {model_file}: {exc.strerror}") from None
        if hashlib.sha256(model).hexdigest() != expected_sha:
            raise ModelError(f"intent model {model_file} is corrupt (SHA-256 differs from its manifest)")
        self._interpreter = _make_interpreter(model, config.num_threads)
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        if tuple(self._input["shape"]) != (1, self.spec.buckets) or tuple(self._output["shape"]) != (1, len(self.labels)):
            raise ModelError(f"intent model {model_file} does not match its manifest (tensor shapes differ)")
        self._fallback = self.labels.index(FALLBACK_LABEL)
        self._rep_mask = np.array([label in REP_LABELS for label in self.labels], dtype=np.float64)
        self._lock = threading.Lock()  # one interpreter, shared tensors: one call at a time
        log.info("intent model %s loaded (%d labels, threshold %.2f)", self.version, len(self.labels), self.threshold)

    @classmethod
    def from_manifest(cls, manifest: Manifest, config: IntentConfig | None = None) -> IntentClassifier:
        """The model of one store version whose manifest the caller has parsed (read once, not twice)."""
        return cls(manifest.directory, config, manifest=manifest)

    def _quantise_input(self, x: np.ndarray) -> np.ndarray:
        dtype = self._input["dtype"]
        scale, zero = self._input["quantization"]
        if dtype == np.float32 or not scale:
            return x.astype(dtype)[None, :]
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale) + zero, info.min, info.max).astype(dtype)[None, :]

    def _logits(self, x: np.ndarray) -> np.ndarray:
        with self._lock:
            self._interpreter.set_tensor(self._input["index"], self._quantise_input(x))
            self._interpreter.invoke()
            raw = self._interpreter.get_tensor(self._output["index"])[0]
        scale, zero = self._output["quantization"]
        return (raw.astype(np.float32) - zero) * scale if scale else raw.astype(np.float32)

    def probabilities(self, text: str, speaker: str | None = None) -> np.ndarray:
        """Calibrated probability per label (``self.labels`` order); all mass on other for empty text.

        With ``speaker="rep"`` the buyer-only labels get zero and their mass goes to ``other``: a rep's
        line that reads like an objection is still the rep talking, not a next step or a question
        (renormalising instead pushed such lines into next_step/product_question on the dev calls).
        """
        if not isinstance(text, str):
            text = "" if text is None else str(text)
        if not normalise(text, self.spec.max_chars):
            probs = np.zeros(len(self.labels), dtype=np.float64)
            probs[self._fallback] = 1.0
            return probs
        logits = self._logits(featurise(text, self.spec)).astype(np.float64) / self.temperature
        logits -= logits.max()
        probs = np.exp(logits)
        probs /= probs.sum()
        if speaker == "rep":
            buyer_only = float(probs @ (1.0 - self._rep_mask))
            probs *= self._rep_mask
            probs[self._fallback] += buyer_only
        return probs  # type: ignore[no-any-return]

    def threshold_for(self, speaker: str | None = None) -> float:
        """The confidence below which a line of this ``speaker`` (None: unknown) is ``other``."""
        return self.speaker_thresholds.get(speaker or "", self.threshold)

    def classify(self, text: str, speaker: str | None = None) -> IntentResult:
        """Label any text; pass the ``speaker`` ("rep" or "buyer") when known, as the box always does."""
        probs = self.probabilities(text, speaker)
        best = int(np.argmax(probs))
        if probs[best] < self.threshold_for(speaker):
            best = self._fallback
        scores = {label: float(p) for label, p in zip(self.labels, probs)}
        return IntentResult(self.labels[best], float(probs[best]), scores)


def load_classifier(models_dir: Path | None = None, config: IntentConfig | None = None) -> IntentClassifier:
    """The classifier for ``config.model_dir``: relative, the current version of that model in the
    store at ``models_dir``; absolute, that version folder (defaults: the loaded configuration)."""
    if models_dir is None or config is None:
        from firmware.config import load_config

        loaded = load_config(None)
        models_dir = models_dir if models_dir is not None else loaded.paths.resolve(loaded.paths.models_dir)
        config = config if config is not None else loaded.intent
    if config.model_dir.is_absolute():
        return IntentClassifier(config.model_dir, config)
    from firmware.store import ModelStore

    manifest = ModelStore(Path(models_dir)).manifest(str(config.model_dir))
    return IntentClassifier.from_manifest(manifest, config)
