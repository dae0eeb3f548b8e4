#!/usr/bin/env python3
"""Benchmark the committed intent model: accuracy, size, latency, load time.

Accuracy sets:
- the dev corpus utterances (clean text; validation only, never trained on),
- the dev calls as the box itself transcribes them: ``parallax replay CALL.wav --json`` on each call,
  each box utterance matched to the ground-truth utterance of the same speaker it overlaps most;
  every ground-truth utterance is scored on the joined text the box produced for it (none = "other"),
- the same calls' ground-truth text, and the model's own held-out split (clean and transcribed).

Prints readable tables; the very last line is one JSON object of the figures.

    python tools/bench_intent.py [--no-replay] [--replay-cache DIR]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from firmware.intent.labels import LABELS  # noqa: E402
from firmware.testing.dataset import is_heldout, read_examples, read_transcripts  # noqa: E402
from firmware.testing.metrics import Report, evaluate  # noqa: E402

CORPUS = REPO.parent / "shared" / "corpus" / "dev"
DATA = REPO / "models" / "intent" / "data"


def replay_events(wav: Path, cache_dir: Path) -> list[dict]:
    """Utterance events of one call from ``parallax replay --json`` (cached per WAV)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    out = cache_dir / f"{wav.stem}.jsonl"
    if not out.is_file() or out.stat().st_mtime < wav.stat().st_mtime:
        tmp = out.with_suffix(".partial")
        subprocess.run([sys.executable, "-m", "firmware", "replay", str(wav), "--json", str(tmp)],
                       check=True, cwd=REPO, stdout=subprocess.DEVNULL)
        tmp.replace(out)
    events = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [e for e in events if e.get("type") == "utterance"]


def align(truth: list[dict], events: list[dict]) -> list[str]:
    """Per ground-truth utterance: the box's text for it (joined), '' when the box heard nothing."""
    texts: list[list[str]] = [[] for _ in truth]
    for event in events:
        best, best_overlap = -1, 0.0
        for i, u in enumerate(truth):
            if u["speaker"] != event["speaker"]:
                continue
            overlap = min(u["end"], event["end"]) - max(u["start"], event["start"])
            if overlap > best_overlap:
                best, best_overlap = i, overlap
        if best >= 0:
            texts[best].append(event["text"])
    return [" ".join(t) for t in texts]


def score(classifier, texts: list[str], labels: list[str], speakers: list[str] | None = None) -> Report:
    """Text only, or with each line's speaker (what the box knows: a rep's line is never an objection)."""
    who = speakers or [None] * len(texts)
    return evaluate(labels, [classifier.classify(t, s).label if t else "other" for t, s in zip(texts, who)], LABELS)


def latency(classifier, texts: list[str], rounds: int) -> tuple[list[float], list[float]]:
    """Wall-clock and this thread's CPU time per call, in ms. On a shared machine the wall figure
    includes waiting for a core; the CPU figure is what the classifier itself costs."""
    for t in texts[:50]:
        classifier.classify(t)
    wall, cpu = [], []
    gc.disable()  # a collection pause is not the classifier's latency
    try:
        for _ in range(rounds):
            for t in texts:
                start, start_cpu = time.perf_counter(), time.thread_time()
                classifier.classify(t)
                cpu.append((time.thread_time() - start_cpu) * 1000.0)
                wall.append((time.perf_counter() - start) * 1000.0)
    finally:
        gc.enable()
    return wall, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--no-replay", action="store_true", help="skip running the dev calls through replay")
    parser.add_argument("--replay-cache", type=Path, default=REPO / "models" / ".cache" / "bench-intent")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--model-dir", type=Path, default=None, help="a model folder other than the configured one")
    args = parser.parse_args()

    started = time.perf_counter()
    from firmware.intent import load_classifier  # includes importing numpy and the tflite runtime

    def load():
        if args.model_dir is None:
            return load_classifier()
        from firmware.intent.config import IntentConfig

        return load_classifier(args.model_dir.parent, IntentConfig(model_dir=args.model_dir.resolve()))

    classifier = load()
    cold_ms = (time.perf_counter() - started) * 1000.0
    loads = []
    for _ in range(10):
        t0 = time.perf_counter()
        load()
        loads.append((time.perf_counter() - t0) * 1000.0)
    load_ms = statistics.median(loads)
    model_path = (args.model_dir or REPO / "models" / "intent" / "current") / "intent.tflite"
    model_kb = model_path.stat().st_size / 1024

    figures: dict[str, float | int | str] = {}
    rows: list[tuple[str, Report]] = []
    examples = read_examples(DATA / "utterances.tsv")
    held = [e for e in examples if is_heldout(e.id)]
    rows.append(("held-out split, clean text", score(classifier, [e.text for e in held], [e.label for e in held])))
    transcripts = read_transcripts(DATA / "asr_transcripts.tsv")
    pairs = [(t, e.label) for e in held for t in transcripts.get(e.id, [])]
    rows.append(("held-out split, recogniser transcripts", score(classifier, [t for t, _ in pairs], [l for _, l in pairs])))
    keys = ["heldout_clean", "heldout_asr"]

    bench_texts = [e.text for e in held] + [t for t, _ in pairs]
    if (args.corpus / "utterances.tsv").is_file():
        dev = read_examples(args.corpus / "utterances.tsv")
        rows.append(("dev corpus utterances (clean)", score(classifier, [e.text for e in dev], [e.label for e in dev])))
        keys.append("dev")
        rows.append(("dev corpus utterances (clean) + speaker", score(classifier, [e.text for e in dev], [e.label for e in dev],
                                                                        [e.speaker for e in dev])))
        keys.append("dev_speaker")
        bench_texts += [e.text for e in dev]
        calls = sorted((args.corpus / "calls").glob("*.json"))
        truth = [(c, json.loads(c.read_text(encoding="utf-8"))["utterances"]) for c in calls]
        all_truth = [u for _, us in truth for u in us]
        rows.append(("dev calls, ground-truth text", score(classifier, [u["text"] for u in all_truth], [u["label"] for u in all_truth])))
        keys.append("calls_truth_text")
        rows.append(("dev calls, ground-truth text + speaker", score(classifier, [u["text"] for u in all_truth],
                                                                       [u["label"] for u in all_truth], [u["speaker"] for u in all_truth])))
        keys.append("calls_truth_text_speaker")
        if not args.no_replay:
            box_texts: list[str] = []
            for call, utterances in truth:
                print(f"replaying {call.with_suffix('.wav').name} ...", file=sys.stderr)
                box_texts += align(utterances, replay_events(call.with_suffix(".wav"), args.replay_cache))
            truth_labels, speakers = [u["label"] for u in all_truth], [u["speaker"] for u in all_truth]
            rows.append(("dev calls, as the box transcribes them", score(classifier, box_texts, truth_labels)))
            keys.append("calls_box")
            rows.append(("dev calls, box transcripts + speaker", score(classifier, box_texts, truth_labels, speakers)))
            keys.append("calls_box_speaker")
            figures["calls_box_missed_utterances"] = sum(1 for t in box_texts if not t)
            buyer = [(t, u["label"]) for t, u in zip(box_texts, all_truth) if u["speaker"] == "buyer"]
            figures["macro_f1_calls_box_buyer"] = round(score(classifier, [t for t, _ in buyer], [l for _, l in buyer]).macro_f1, 4)
    else:
        print(f"dev corpus not found at {args.corpus}: dev figures skipped", file=sys.stderr)

    samples, cpu_samples = latency(classifier, bench_texts, args.rounds)
    print(f"intent model {classifier.version}: {model_kb:.1f} KB, {len(LABELS)} labels, threshold {classifier.threshold}"
          + "".join(f", {who} {th}" for who, th in sorted(classifier.speaker_thresholds.items())))
    print(f"\n{'set':<44} {'macro-F1':>8} {'accuracy':>8} {'n':>5}")
    for (title, report), key in zip(rows, keys):
        print(f"{title:<44} {report.macro_f1:8.3f} {report.accuracy:8.3f} {int(report.support.sum()):5d}")
        figures[f"macro_f1_{key}"] = round(report.macro_f1, 4)
    for title, report in rows:
        print(f"\n== {title} ==\n{report.table()}\n{report.confusion_table()}")
    p50, p99 = np.percentile(samples, [50, 99])
    cpu_p99 = float(np.percentile(cpu_samples, 99))
    print(f"\nlatency over {len(samples)} calls (features + inference): p50 {p50:.3f} ms, p99 {p99:.3f} ms, "
          f"max {max(samples):.3f} ms; CPU time p99 {cpu_p99:.3f} ms")
    print(f"machine load average while measuring: {', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    print(f"load: {load_ms:.1f} ms (median of 10), first load incl. imports {cold_ms:.1f} ms")
    figures.update(model_kb=round(model_kb, 1), p50_ms=round(float(p50), 4), p99_ms=round(float(p99), 4), p99_cpu_ms=round(cpu_p99, 4),
                   load_ms=round(load_ms, 2), load_cold_ms=round(cold_ms, 1), latency_samples=len(samples))
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
