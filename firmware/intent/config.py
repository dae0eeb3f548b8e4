"""Intent classifier settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class IntentConfig:
    # Relative: the model-store entry whose current version runs (followed between calls);
    # absolute: one version folder (intent.tflite + manifest.toml), fixed.
    model_dir: Path = Path("intent")
    # Below this confidence the answer is "other". Unset = the value calibrated at training time
    # (stored in the manifest), which is what the published accuracy figures were measured with.
    threshold: float | None = None
    num_threads: int = 1

    def __post_init__(self) -> None:
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"intent.threshold must be between 0 and 1, got {self.threshold}")
        if self.num_threads < 1:
            raise ValueError(f"intent.num_threads must be at least 1, got {self.num_threads}")
