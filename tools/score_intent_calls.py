#!/usr/bin/env python3
"""Compare intent models by what the coach does with them on whole calls (recorded tapes).

Every model (a model-store version folder: intent.tflite + manifest.toml) re-classifies the
recorded transcripts of each call (``tools/bench_coach.py --source recorded`` logic, the coach's
rules as configured), and the moments it then raises are scored against the call's truth. The
first model is the reference: for every other one the table gives how many calls gained and lost
moment F1 against it and a paired bootstrap over calls (90 % interval of the pooled F1 change),
so a difference within the noise of a few dozen calls reads as such. Also per model: held-out
sentence accuracy (models/intent/data split, with the speaker, clean and recogniser text) and the
classify latency (p50 wall, p99 CPU; tools/bench_intent.py's measurement).

Choose on the calibration calls; dev and dev-kokoro only confirm:

    tools/score_intent_calls.py models/intent/1.4.0 /tmp/candidates/a /tmp/candidates/b \\
        --corpus calibration=models/.cache/calibration --tapes models/.cache/tapes \\
        --corpus dev --corpus dev-kokoro

``--corpus NAME`` or ``NAME=DIR`` (repeatable); each corpus's tapes are in ``--tapes``/NAME.
Prints a table per corpus, then one JSON object as the very last line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

from bench_coach import run_recorded, score  # noqa: E402
from bench_intent import latency  # noqa: E402

from firmware.config import Config, PathsConfig, load_config  # noqa: E402
from firmware.intent.classifier import IntentClassifier  # noqa: E402
from firmware.intent.labels import LABELS  # noqa: E402
from firmware.testing.corpora import Corpus, resolve  # noqa: E402
from firmware.testing.dataset import is_heldout, read_examples, read_transcripts  # noqa: E402
from firmware.testing.metrics import evaluate  # noqa: E402
from firmware.testing.truth import load_truth  # noqa: E402

DATA = REPO / "models" / "intent" / "data"
BOOTSTRAP_ROUNDS = 2000


def pooled_f1(counts: np.ndarray) -> float:
    """``counts``: rows of (hit, found, expected) per call; F1 = 2 hits / (found + expected)."""
    hit, found, expected = counts.sum(axis=0)
    return float(2 * hit / (found + expected)) if found + expected else 0.0


def call_f1(row: np.ndarray) -> float:
    hit, found, expected = row
    return float(2 * hit / (found + expected)) if found + expected else 1.0


def paired_interval(reference: np.ndarray, other: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """90 % interval of pooled F1(other) - F1(reference) when the calls are drawn again with
    replacement (both models on the same draw): how much of a difference the choice of calls alone
    makes."""
    rng = np.random.default_rng(seed)
    n = len(reference)
    diffs = []
    for _ in range(BOOTSTRAP_ROUNDS):
        pick = rng.integers(0, n, n)
        diffs.append(pooled_f1(other[pick]) - pooled_f1(reference[pick]))
    low, high = np.percentile(diffs, [5, 95])
    return float(low), float(high)


def score_calls(corpus: Corpus, tapes: Path, base: Config, classifier: IntentClassifier) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for path in corpus.calls:
        tape = tapes / f"{path.stem}.jsonl"
        if not tape.is_file():
            raise FileNotFoundError(f"no tape for {path.stem} in {tapes}")
        with tempfile.TemporaryDirectory() as state:  # every call starts from a fresh rep, as in bench_coach
            config = replace(base, paths=PathsConfig(base.paths.models_dir, Path(state)))
            events = run_recorded(path.with_suffix(".wav"), tape, config, classifier)
        r = score(load_truth(path), events, 0.0)
        out[path.stem] = np.array([r.moments_hit, r.moments_found, r.moments_expected])
    return out


def heldout_accuracy(classifier: IntentClassifier) -> dict[str, float]:
    examples = read_examples(DATA / "utterances.tsv")
    transcripts = read_transcripts(DATA / "asr_transcripts.tsv")
    held = [e for e in examples if is_heldout(e.id)]
    clean = evaluate([e.label for e in held], [classifier.classify(e.text, e.speaker).label for e in held], LABELS)
    pairs = [(t, e) for e in held for t in transcripts.get(e.id, [])]
    asr = evaluate([e.label for _, e in pairs], [classifier.classify(t, e.speaker).label for t, e in pairs], LABELS)
    return {"accuracy_heldout_clean_speaker": round(clean.accuracy, 4), "accuracy_heldout_asr_speaker": round(asr.accuracy, 4),
            "macro_f1_heldout_clean_speaker": round(clean.macro_f1, 4)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path, help="version folders; the first is the reference")
    parser.add_argument("--corpus", action="append", required=True, metavar="NAME[=DIR]")
    parser.add_argument("--tapes", type=Path, required=True, help="recorded pipeline output, one subfolder per corpus")
    parser.add_argument("--config", type=Path, help="TOML configuration (the coach's rules)")
    parser.add_argument("--rounds", type=int, default=3, help="latency: passes over the held-out texts")
    args = parser.parse_args()
    os.nice(10)
    base = load_config(args.config) if args.config else Config()
    corpora: list[tuple[Corpus, Path]] = []
    for spec in args.corpus:
        name, _, where = spec.partition("=")
        corpus = resolve(where or name)
        corpora.append((Corpus(name, corpus.root), args.tapes / name))
    names = [m.name for m in args.models]
    if len(set(names)) != len(names):
        print("score_intent_calls: give the models folders with distinct names", file=sys.stderr)
        return 2

    per_model: dict[str, dict[str, object]] = {}
    counts: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    for model in args.models:
        classifier = IntentClassifier(model.resolve())
        figures: dict[str, object] = {"version": classifier.version, **heldout_accuracy(classifier)}
        examples = read_examples(DATA / "utterances.tsv")
        texts = [e.text for e in examples if is_heldout(e.id)]
        wall, cpu = latency(classifier, texts, args.rounds)
        figures.update(p50_ms=round(float(np.percentile(wall, 50)), 4), p99_cpu_ms=round(float(np.percentile(cpu, 99)), 4))
        for corpus, tapes in corpora:
            counts[(model.name, corpus.name)] = score_calls(corpus, tapes, base, classifier)
        per_model[model.name] = figures

    reference = names[0]
    print(f"intent models scored on recorded calls (reference: {reference}; coach rules "
          f"{'from ' + str(args.config) if args.config else 'as the defaults'})")
    result: dict[str, object] = {"reference": reference, "models": per_model, "corpora": {}}
    for corpus, _ in corpora:
        ref = counts[(reference, corpus.name)]
        calls = sorted(ref)
        ref_rows = np.stack([ref[c] for c in calls])
        print(f"\n== {corpus.name}: {len(calls)} calls ({corpus.root}) ==")
        head = (f"{'model':14} {'hit/found/exp':>14} {'prec':>6} {'recall':>6} {'F1':>6} {'dF1':>7} {'90% CI dF1':>16} "
                f"{'calls +/-/=':>12}")  # fmt: skip
        print(head)
        print("-" * len(head))
        table: dict[str, object] = {}
        for name in names:
            rows = np.stack([counts[(name, corpus.name)][c] for c in calls])
            hit, found, expected = (int(x) for x in rows.sum(axis=0))
            f1 = pooled_f1(rows)
            delta = f1 - pooled_f1(ref_rows)
            low, high = paired_interval(ref_rows, rows) if name != reference else (0.0, 0.0)
            better = sum(call_f1(a) > call_f1(b) + 1e-9 for a, b in zip(rows, ref_rows))
            worse = sum(call_f1(a) < call_f1(b) - 1e-9 for a, b in zip(rows, ref_rows))
            precision = hit / found if found else 0.0
            recall = hit / expected if expected else 0.0
            print(f"{name:14} {f'{hit}/{found}/{expected}':>14} {precision:6.3f} {recall:6.3f} {f1:6.3f} {delta:+7.3f} "
                  f"{f'[{low:+.3f}, {high:+.3f}]':>16} {f'{better}/{worse}/{len(calls) - better - worse}':>12}")  # fmt: skip
            table[name] = {"moment_precision": round(precision, 3), "moment_recall": round(recall, 3), "moment_f1": round(f1, 3),
                           "moment_f1_delta": round(delta, 3), "moment_f1_delta_ci90": [round(low, 3), round(high, 3)],
                           "moments_hit": hit, "moments_raised": found, "moments_expected": expected,
                           "calls": len(calls), "calls_better": better, "calls_worse": worse}  # fmt: skip
        result["corpora"][corpus.name] = table  # type: ignore[index]

    print(f"\n{'model':14} {'version':>8} {'held-out acc clean+spk':>23} {'asr+spk':>8} {'p50 ms':>7} {'p99 CPU ms':>10}")
    for name in names:
        f = per_model[name]
        print(f"{name:14} {f['version']:>8} {f['accuracy_heldout_clean_speaker']:23.3f} {f['accuracy_heldout_asr_speaker']:8.3f} "
              f"{f['p50_ms']:7.3f} {f['p99_cpu_ms']:10.3f}")  # fmt: skip
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
