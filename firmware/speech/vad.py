"""Voice activity detection: where speech starts and ends in one party's audio.

:class:`VoiceDetector` is the boundary; :class:`SileroVad` (sherpa-onnx's Silero runner) is
the default. Recognition only ever sees what the VAD let through, which is also what keeps
Whisper from "transcribing" hold music and keyboard noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from firmware.audio.frames import ANALYSIS_RATE_HZ, PcmF32
from firmware.errors import ModelError
from firmware.speech.config import VadConfig


@dataclass(frozen=True)
class SpeechSegment:
    """A stretch of speech; ``start_sample`` counts from the detector's first input sample."""

    start_sample: int
    samples: PcmF32

    @property
    def end_sample(self) -> int:
        return self.start_sample + len(self.samples)


class VoiceDetector(Protocol):
    def accept(self, samples: PcmF32) -> list[SpeechSegment]:
        """Feed audio at the analysis rate; return the segments that closed."""
        ...

    @property
    def in_speech(self) -> bool:
        """True while a segment is open (it stays open through short pauses)."""
        ...

    def flush(self) -> list[SpeechSegment]:
        """Close any open segment (end of call)."""
        ...


class SileroVad:
    """Silero VAD via sherpa-onnx. One instance per party: the model keeps recurrent state."""

    def __init__(self, model_path: Path, config: VadConfig) -> None:
        import sherpa_onnx  # lazy: heavy native library

        if not Path(model_path).is_file():
            raise ModelError(f"VAD model not found: {model_path} (run `parallax models build`)")
        silero = sherpa_onnx.SileroVadModelConfig(
            model=str(model_path),
            threshold=config.threshold,
            min_silence_duration=config.min_silence_s,
            min_speech_duration=config.min_speech_s,
            max_speech_duration=config.max_speech_s,
            window_size=512,
        )
        vad_config = sherpa_onnx.VadModelConfig(silero_vad=silero, sample_rate=ANALYSIS_RATE_HZ, num_threads=1)
        # Longest segment plus slack; sherpa drops audio beyond its buffer.
        self._vad = sherpa_onnx.VoiceActivityDetector(vad_config, buffer_size_in_seconds=config.max_speech_s + 10)

    def accept(self, samples: PcmF32) -> list[SpeechSegment]:
        self._vad.accept_waveform(samples)
        return self._drain()

    @property
    def in_speech(self) -> bool:
        return bool(self._vad.is_speech_detected())

    def flush(self) -> list[SpeechSegment]:
        self._vad.flush()
        return self._drain()

    def _drain(self) -> list[SpeechSegment]:
        out = []
        while not self._vad.empty():
            front = self._vad.front
            out.append(SpeechSegment(int(front.start), np.asarray(front.samples, dtype=np.float32)))
            self._vad.pop()
        return out
