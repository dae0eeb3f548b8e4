"""Audio settings shared by replay, the live taps and the inline bridge."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AudioConfig:
    # Everything downstream of the taps (VAD, recogniser, dynamics) runs at 16 kHz mono.
    analysis_rate_hz: int = 16000
    frame_ms: int = 20


@dataclass(frozen=True)
class BridgeConfig:
    """The inline headset <-> computer passthrough (filled in by the bridge issue)."""
