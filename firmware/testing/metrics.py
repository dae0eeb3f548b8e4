"""Classification figures (per-label precision/recall/F1, macro-F1, confusion) in plain numpy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Report:
    labels: tuple[str, ...]
    confusion: np.ndarray  # rows = true label, columns = predicted label
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray

    @property
    def macro_f1(self) -> float:
        # Labels absent from both truth and predictions say nothing about the model: leave them out.
        present = (self.support > 0) | (self.confusion.sum(axis=0) > 0)
        return float(self.f1[present].mean()) if present.any() else 0.0

    @property
    def accuracy(self) -> float:
        total = self.confusion.sum()
        return float(np.trace(self.confusion) / total) if total else 0.0

    def table(self) -> str:
        width = max(len(label) for label in self.labels)
        lines = [f"{'label':<{width}}  precision  recall     f1  support"]
        for i, label in enumerate(self.labels):
            lines.append(
                f"{label:<{width}}  {self.precision[i]:9.3f}  {self.recall[i]:6.3f}  {self.f1[i]:5.3f}  {int(self.support[i]):7d}"
            )
        lines.append(f"{'macro-F1':<{width}}  {self.macro_f1:.3f}   accuracy {self.accuracy:.3f}   n={int(self.support.sum())}")
        return "\n".join(lines)

    def confusion_table(self) -> str:
        short = [label.replace("objection_", "obj_")[:9] for label in self.labels]
        width = max(len(s) for s in short)
        head = " " * width + " " + " ".join(f"{s:>9}" for s in short)
        rows = [f"{short[i]:<{width}} " + " ".join(f"{int(v):9d}" for v in row) for i, row in enumerate(self.confusion)]
        return "\n".join([head, *rows])


def evaluate(truth: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> Report:
    index = {label: i for i, label in enumerate(labels)}
    confusion = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for t, p in zip(truth, predicted, strict=True):
        confusion[index[t], index[p]] += 1
    tp = np.diag(confusion).astype(np.float64)
    predicted_n = confusion.sum(axis=0).astype(np.float64)
    support = confusion.sum(axis=1).astype(np.float64)
    precision = np.divide(tp, predicted_n, out=np.zeros_like(tp), where=predicted_n > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return Report(tuple(labels), confusion, precision, recall, f1, support)
