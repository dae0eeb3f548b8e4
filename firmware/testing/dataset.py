"""The intent training-data files: reading them and the fixed held-out split.

Shared by the training tool, the benchmark and the tests, so all three agree on which
sentences the model never saw. The split is a hash of each sentence id, so appending new
sentences never moves old ones between train and held-out.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

from firmware.errors import ModelError
from firmware.intent.labels import LABELS

HELDOUT_PERCENT = 15


@dataclass(frozen=True)
class Example:
    id: str
    speaker: str
    label: str
    text: str


def is_heldout(example_id: str) -> bool:
    digest = hashlib.sha256(example_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % 100 < HELDOUT_PERCENT


def read_examples(path: Path) -> list[Example]:
    """Rows of a TSV with columns id, speaker, label, text (the dev corpus has the same shape)."""
    try:
        with Path(path).open(encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    except FileNotFoundError:
        raise ModelError(f"intent data file not found: {path}") from None
    examples = []
    for line, row in enumerate(rows, start=2):
        label = row.get("label")
        if label not in LABELS or not row.get("text") or not row.get("id"):
            raise ModelError(f"{path}:{line}: needs id, a known label and text (got label {label!r})")
        examples.append(Example(row["id"], row.get("speaker") or "", label, row["text"]))
    return examples


def read_transcripts(path: Path) -> dict[str, list[str]]:
    """Recogniser output per example id (``tools/render_intent_asr.py``); empty when absent."""
    if not Path(path).is_file():
        return {}
    out: dict[str, list[str]] = {}
    with Path(path).open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            text = (row.get("text") or "").strip()
            if text and row.get("id"):
                out.setdefault(row["id"], []).append(text)
    return out
