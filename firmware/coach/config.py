"""Coach settings: dynamics thresholds and delivery policy."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CoachConfig:
    """Filled in by the coach issue."""
