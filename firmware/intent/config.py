"""Intent classifier settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from firmware.settings import Checked, setting


@dataclass(frozen=True)
class IntentConfig(Checked):
    # Relative: the model-store entry whose current version runs (followed between calls);
    # absolute: one version folder (intent.tflite + manifest.toml), fixed.
    model_dir: Path = setting(Path("intent"), nonempty=True)
    # Below this confidence the answer is "other". Unset = the value calibrated at training time
    # (stored in the manifest), which is what the published accuracy figures were measured with.
    threshold: float | None = setting(None, ge=0.0, le=1.0, optional=True)
    num_threads: int = setting(1, ge=1, le=16)
