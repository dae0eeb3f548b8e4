"""Speech settings: VAD segmentation, leak gate and recogniser."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VadConfig:
    model: str = "silero-vad"
    threshold: float = 0.5
    # Long enough that a breath inside a sentence does not split it: Whisper needs context.
    min_silence_s: float = 0.5
    min_speech_s: float = 0.25
    max_speech_s: float = 15.0


@dataclass(frozen=True)
class LeakGateConfig:
    """The rep's mic hears the buyer from the earpiece at about -25 dB.

    A rep frame whose level is this far below the buyer's recent level is treated as leak
    and muted before the VAD, so the buyer's voice never becomes rep speech.
    """

    enabled: bool = True
    margin_db: float = 12.0
    # The earpiece-to-mic path is delayed by device buffering: compare against the loudest
    # buyer frame in this window.
    window_ms: int = 100


@dataclass(frozen=True)
class RecognizerConfig:
    model: str = "whisper-tiny.en"
    num_threads: int = 1
    # Whisper loops or hallucinates on short or noisy clips: cap tokens by duration.
    max_tokens_per_s: float = 6.0
    min_tokens: int = 8


@dataclass(frozen=True)
class SpeechConfig:
    vad: VadConfig = VadConfig()
    leak_gate: LeakGateConfig = LeakGateConfig()
    recognizer: RecognizerConfig = RecognizerConfig()
    # Segments waiting for the recogniser, per party; beyond this they are dropped and counted.
    queue_segments: int = 8
