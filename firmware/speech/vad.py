"""Voice activity detection: is this party speaking right now?

:class:`VoiceDetector` is the boundary; :class:`SileroVad` (sherpa-onnx's Silero runner) is the
default. A detector reports a per-input speech flag and how late that flag is: speech is
flagged ``onset_s`` after it began and unflagged ``release_s`` after it stopped. The segmenter
turns the flags back into true speech spans.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from firmware.audio.frames import ANALYSIS_RATE_HZ, PcmF32
from firmware.errors import ModelError
from firmware.speech.config import VadConfig
from firmware.speech.level import LevelNormaliser

_WINDOW = 512  # Silero's window at 16 kHz


class VoiceDetector(Protocol):
    onset_s: float
    release_s: float

    def accept(self, samples: PcmF32) -> bool:
        """Feed audio at the analysis rate; return whether speech is flagged after it."""
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
            # sherpa's own segment splitting is not used: the segmenter cuts long speech itself.
            max_speech_duration=3600.0,
            window_size=_WINDOW,
        )
        vad_config = sherpa_onnx.VadModelConfig(silero_vad=silero, sample_rate=ANALYSIS_RATE_HZ, num_threads=1)
        self._vad = sherpa_onnx.VoiceActivityDetector(vad_config, buffer_size_in_seconds=30)
        # sherpa flags speech after min_speech_s of speech windows and starts its segments two
        # windows earlier than that; it unflags after min_silence_s of silence.
        self.onset_s = config.min_speech_s + 2 * _WINDOW / ANALYSIS_RATE_HZ + 0.02
        self.release_s = config.min_silence_s

    def accept(self, samples: PcmF32) -> bool:
        self._vad.accept_waveform(samples)
        while not self._vad.empty():  # its own segments are not used; keep its queue from growing
            self._vad.pop()
        return bool(self._vad.is_speech_detected())


class LevelledVad:
    """Any detector, fed through a :class:`LevelNormaliser`: quiet lines still score as speech.

    Only the detector hears the gain; the audio the recogniser gets is untouched.
    """

    def __init__(self, inner: VoiceDetector, normaliser: LevelNormaliser) -> None:
        self._inner = inner
        self._normaliser = normaliser
        self.onset_s = inner.onset_s
        self.release_s = inner.release_s

    def accept(self, samples: PcmF32) -> bool:
        return self._inner.accept(self._normaliser(samples))
