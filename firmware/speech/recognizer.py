"""The recogniser boundary: audio segment in, text out.

Which implementation runs is decided by the model's manifest (its ``family``), so another
sherpa-onnx model family is one new module plus one line in :data:`_FAMILIES`; the pipeline
never changes.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from firmware.audio.frames import PcmF32
from firmware.errors import ModelError
from firmware.speech.config import RecognizerConfig

if TYPE_CHECKING:
    from firmware.store import Manifest


class Recognizer(Protocol):
    name: str

    def transcribe(self, samples: PcmF32) -> str:
        """Transcribe mono float32 audio at the analysis rate. Must be safe to call from one worker thread."""
        ...


# family -> "module:factory"; factories take (manifest, RecognizerConfig).
_FAMILIES = {
    "whisper": "firmware.speech.whisper:WhisperRecognizer.from_manifest",
}


def load_recognizer(models_dir: Path, config: RecognizerConfig) -> Recognizer:
    """The recogniser for the current version of ``config.model`` in the store at ``models_dir``."""
    from firmware.provision.manifest import load_manifest

    return recognizer_for(load_manifest(models_dir, config.model), config)


def recognizer_for(manifest: Manifest, config: RecognizerConfig) -> Recognizer:
    """The recogniser for one model-store version (its family picks the implementation)."""
    target = _FAMILIES.get(manifest.family)
    if target is None:
        raise ModelError(
            f"model {manifest.name} is of family {manifest.family!r}; no recogniser is implemented for it "
            f"(known: {', '.join(sorted(_FAMILIES))})"
        )
    module_name, _, attr = target.partition(":")
    factory = importlib.import_module(module_name)
    for part in attr.split("."):
        factory = getattr(factory, part)
    return factory(manifest, config)  # type: ignore[operator, no-any-return]
