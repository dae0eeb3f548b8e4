"""Whisper through sherpa-onnx's offline recogniser (models built by ``parallax models build``)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from firmware.audio.frames import ANALYSIS_RATE_HZ, PcmF32
from firmware.errors import ModelError
from firmware.speech.config import RecognizerConfig

if TYPE_CHECKING:
    from firmware.store import Manifest

log = logging.getLogger(__name__)

_MIN_SAMPLES = ANALYSIS_RATE_HZ // 10


class WhisperRecognizer:
    def __init__(self, manifest: Manifest, config: RecognizerConfig) -> None:
        import sherpa_onnx  # lazy: heavy native library

        manifest.verify()  # a corrupt file gets a clear error instead of a native crash
        self.name = manifest.name
        options = manifest.options
        try:
            self._recognizer = sherpa_onnx.OfflineRecognizer.from_whisper(
                encoder=str(manifest.file("encoder")),
                decoder=str(manifest.file("decoder")),
                tokens=str(manifest.file("tokens")),
                language=str(options.get("language", "en")),
                task=str(options.get("task", "transcribe")),
                num_threads=config.num_threads,
                tail_paddings=config.tail_paddings,
            )
        except (RuntimeError, ValueError) as exc:
            raise ModelError(f"model {manifest.name} failed to load: {exc}") from None

    @classmethod
    def from_manifest(cls, manifest: Manifest, config: RecognizerConfig) -> WhisperRecognizer:
        return cls(manifest, config)

    def transcribe(self, samples: PcmF32) -> str:
        if len(samples) < _MIN_SAMPLES:
            return ""  # sherpa-onnx's feature extractor crashes the process on (near-)empty input
        stream = self._recognizer.create_stream()
        stream.accept_waveform(ANALYSIS_RATE_HZ, np.ascontiguousarray(samples, dtype=np.float32))
        self._recognizer.decode_stream(stream)
        return str(stream.result.text).strip()
