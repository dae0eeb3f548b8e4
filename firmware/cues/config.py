"""LED and haptic cue settings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CuesConfig:
    """Filled in by the coach issue."""
