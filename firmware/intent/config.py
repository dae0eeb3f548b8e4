"""Intent classifier settings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class IntentConfig:
    """Filled in by the intent-model issue."""
