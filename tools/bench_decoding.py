#!/usr/bin/env python3
"""Decoding levers for Whisper, side by side on the box's own segments: greedy vs beam 1-5, names prompt.

Per corpus, each call is replayed once through the box's pipeline (VAD, segmentation, band fill,
sherpa-onnx greedy: today's path); every segment it recognised is then decoded again by our
onnxruntime engine (firmware/speech/whisper_beam.py) with each beam size, and with the playbook's
names as a prompt. The encoder runs once per segment and its CPU is charged to every setting, so
each setting's CPU is what it would cost alone. All transcripts go through the same guards and are
scored per party against the calls' ground truth (the same normalisation as bench_asr.py).

CPU is thread CPU time (the machine is shared: wall time means nothing here), per second of audio
recognised, on one thread. With --pipeline-cpu the chosen setting also runs `parallax replay`
(the whole device pipeline, partials and coach included) on each call, and its CPU-s per call-s is
reported like bench_asr's.

    .venv/bin/python tools/bench_decoding.py --corpus dev-kokoro --corpus dev [--corpus DIR] \
        [--calls N] [--beams 1,2,3,4,5] [--prompt-beam 2] [--pipeline-cpu decoding=beam,beam_size=2]

Prints a table per corpus and, as the last line, one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path


REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

from bench_asr import _REPORTING_MAIN, TimedRecognizer, normalise, read_call, record_segments, wer  # noqa: E402,F401

from firmware.testing.corpora import resolve  # noqa: E402

def playbook_names() -> str:
    """The names the box's playbook knows (its battlecards), as one prompt line."""
    from firmware.coach.build import playbook_path
    from firmware.coach.playbook import load_playbook
    from firmware.config import Config

    book = load_playbook(playbook_path(Config()))
    return ", ".join(card.name for card in book.battlecards) + "."


def pipeline_cpu(call: Path, overrides: dict[str, str]) -> float:
    """CPU-s per call-s of `parallax replay` (the device pipeline) with the given recogniser settings."""
    cfg = REPO / "models" / ".cache" / "bench-decoding.toml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    lines = ["[speech.recognizer]"] + [f"{k} = {v if v.isdigit() else json.dumps(v)}" for k, v in overrides.items()]
    cfg.write_text("\n".join(lines) + "\n")
    cmd = [sys.executable, "-c", _REPORTING_MAIN, "--config", str(cfg), "replay", str(call), "--speed", "max", "--json", "-"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True)
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    summary = next(e for e in events if e["type"] == "summary")
    return float(summary["cpu_s"]) / float(summary["duration_s"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", action="append", help="calibration, dev, dev-kokoro or a folder of calls (repeatable)")
    ap.add_argument("--calls", type=int, default=0, help="only the first N calls of each corpus")
    ap.add_argument("--beams", default="1,2,3,4,5")
    ap.add_argument("--prompt-beam", type=int, default=0, help="also decode with the playbook's names as a prompt at this beam size")
    ap.add_argument("--pipeline-cpu", default="", help="k=v,k=v recogniser settings for a whole-pipeline CPU run per call")
    ap.add_argument("--no-band-fill", action="store_true", help="turn the phone-band fill off ([speech] band_fill_db unset)")
    ap.add_argument("--shard", default="", help="i/k: only every k-th call from the i-th (parallel runs on a loaded machine)")
    ap.add_argument("--save", type=Path, help="write this run's references, transcripts and CPU to a JSON file")
    ap.add_argument("--merge", type=Path, nargs="+", help="print the tables for saved runs pooled together (no decoding)")
    args = ap.parse_args()
    if args.merge:
        return report([run for p in args.merge for run in json.loads(p.read_text())])

    from firmware.bus import EventBus
    from firmware.config import Config
    from firmware.events import Utterance
    from firmware.provision.manifest import load_manifest
    from firmware.replay import replay_call
    from firmware.runtime import CallSession, load_engines
    from firmware.speech.guards import clean_transcript
    from firmware.speech.whisper_beam import WhisperOnnx

    base = Config()
    # Today's greedy path is the baseline the pipeline runs; the beam settings decode its segments again.
    speech = dataclasses.replace(base.speech, partial_parties=(),
                                 recognizer=dataclasses.replace(base.speech.recognizer, decoding="greedy"))
    if args.no_band_fill:
        speech = dataclasses.replace(speech, band_fill_db=None)
    config = dataclasses.replace(base, speech=speech)
    rcfg = config.speech.recognizer
    manifest = load_manifest(config.paths.resolve(config.paths.models_dir), rcfg.model)
    engine = WhisperOnnx(manifest.file("encoder"), manifest.file("decoder"), manifest.file("tokens"),
                         num_threads=1, tail_paddings=rcfg.tail_paddings)
    beams = [int(b) for b in args.beams.split(",") if b]
    prompt_text = playbook_names() if args.prompt_beam else ""
    prompt = engine.encode_text(prompt_text) if prompt_text else []
    settings = ["greedy (sherpa-onnx)"] + [f"beam {b}" for b in beams]
    if args.prompt_beam:
        settings.append(f"beam {args.prompt_beam} + names")
    overrides = dict(kv.split("=", 1) for kv in args.pipeline_cpu.split(",") if kv)

    runs: list[dict] = []  # type: ignore[type-arg]
    for spec in args.corpus or ["dev-kokoro"]:
        try:
            corpus = resolve(spec)  # calibration, dev, dev-kokoro or a folder
        except ValueError as exc:
            print(f"bench_decoding: {exc}", file=sys.stderr)
            return 2
        calls = [p.with_suffix(".wav") for p in corpus.calls][: args.calls or None]
        if args.shard:
            index, count = (int(x) for x in args.shard.split("/"))
            calls = calls[index::count]
        if not calls:
            print(f"bench_decoding: no calls in {corpus.root} for this selection", file=sys.stderr)
            return 2
        engines = load_engines(config)
        timed = TimedRecognizer(engines.recognizer)
        engines = dataclasses.replace(engines, recognizer=timed)
        refs: dict[str, list[str]] = {"rep": [], "buyer": []}
        hyps = {s: {"rep": [], "buyer": []} for s in settings}
        cpu = {s: 0.0 for s in settings}
        audio_s = 0.0
        worst_pipeline = 0.0
        for call in calls:
            truth = json.loads(call.with_suffix(".json").read_text())
            for u in truth["utterances"]:
                refs[u["speaker"]].append(u["text"])
            bus = EventBus()
            events: list[Utterance] = []
            bus.subscribe(lambda e: events.append(e) if isinstance(e, Utterance) else None)
            segments: list = []  # type: ignore[type-arg]
            with CallSession(config, engines, bus, lockstep=True) as session:
                record_segments(session.pipeline, segments)
                condition = session.pipeline._condition
                replay_call(call, session)
            for e in sorted(events, key=lambda e: e.start):
                hyps[settings[0]][e.speaker].append(e.text)
            for segment in sorted(segments, key=lambda s: s.start):
                samples = condition(segment.samples)
                if len(samples) < 1600:
                    continue
                audio_s += len(samples) / 16000
                started = time.thread_time()
                encoded = engine.encode(samples)
                encode_s = time.thread_time() - started
                decodes = [(f"beam {b}", b, []) for b in beams]
                if args.prompt_beam:
                    decodes.append((settings[-1], args.prompt_beam, prompt))
                for name, beam, pr in decodes:
                    started = time.thread_time()
                    text = engine.text(engine.search(*encoded, beam_size=beam, prompt=pr))
                    cpu[name] += encode_s + time.thread_time() - started
                    text = clean_transcript(text, segment.end - segment.start,
                                            max_words_per_s=rcfg.max_words_per_s, min_words=rcfg.min_words)
                    if text:
                        hyps[name][segment.speaker].append(text)
            if overrides:
                worst_pipeline = max(worst_pipeline, pipeline_cpu(call, overrides))
            print(f"  {spec}: {call.stem} done", file=sys.stderr, flush=True)
        cpu[settings[0]] = timed.cpu_s
        runs.append({"corpus": corpus.name + (" (no band fill)" if args.no_band_fill else ""), "calls": [c.stem for c in calls],
                     "settings": settings, "refs": refs, "hyps": hyps, "cpu_s": cpu, "audio_s": audio_s,
                     "sherpa_audio_s": timed.audio_s, "prompt": prompt_text,
                     "pipeline": {"settings": args.pipeline_cpu, "worst_cpu_s_per_call_s": worst_pipeline} if overrides else None})
    if args.save:
        args.save.write_text(json.dumps(runs))
    return report(runs)


def report(runs: list[dict]) -> int:  # type: ignore[type-arg]
    """Pool runs of the same corpus (shards), print a table per corpus, then the JSON line."""
    pooled: dict[str, dict] = {}  # type: ignore[type-arg]
    for run in runs:
        into = pooled.setdefault(run["corpus"], {"calls": [], "settings": run["settings"], "audio_s": 0.0, "sherpa_audio_s": 0.0,
                                                 "refs": {"rep": [], "buyer": []}, "cpu_s": {},
                                                 "hyps": {s: {"rep": [], "buyer": []} for s in run["settings"]}, "pipeline": []})
        into["calls"] += run["calls"]
        into["audio_s"] += run["audio_s"]
        into["sherpa_audio_s"] += run["sherpa_audio_s"]
        for party in ("rep", "buyer"):
            into["refs"][party] += run["refs"][party]
            for s in into["settings"]:
                into["hyps"][s][party] += run["hyps"][s][party]
        for s in into["settings"]:
            into["cpu_s"][s] = into["cpu_s"].get(s, 0.0) + run["cpu_s"][s]
        if run.get("pipeline"):
            into["pipeline"].append(run["pipeline"])
    figures: dict[str, object] = {"prompt": runs[0]["prompt"] if runs else ""}
    for corpus, run in pooled.items():
        settings, refs, hyps = run["settings"], run["refs"], run["hyps"]
        rows = []
        for s in settings:
            audio = run["sherpa_audio_s"] if s == settings[0] else run["audio_s"]
            rows.append((s, wer(refs["rep"], hyps[s]["rep"]), wer(refs["buyer"], hyps[s]["buyer"]), run["cpu_s"][s] / audio))
        greedy_rtf = rows[0][3]
        print(f"\nDecoding levers on {corpus} ({len(run['calls'])} calls, {run['audio_s']:.0f} s of segments)\n")
        print(f"{'setting':24s} {'WER rep':>8s} {'WER buyer':>10s} {'CPU-s/audio-s':>14s} {'x greedy':>9s}")
        for s, wr, wb, rtf in rows:
            print(f"{s:24s} {wr:8.1%} {wb:10.1%} {rtf:14.4f} {rtf / greedy_rtf:9.2f}")
            slug = s.split(" (")[0].replace(" + ", "_").replace(" ", "")
            figures[f"{corpus}_{slug}_wer_rep"] = round(wr, 4)
            figures[f"{corpus}_{slug}_wer_buyer"] = round(wb, 4)
            figures[f"{corpus}_{slug}_cpu_s_per_audio_s"] = round(rtf, 4)
        for pipe in run["pipeline"]:
            print(f"whole pipeline with {pipe['settings']}: {pipe['worst_cpu_s_per_call_s']:.3f} CPU-s per call-s (worst call)")
            figures[f"{corpus}_pipeline_cpu_s_per_call_s"] = round(pipe["worst_cpu_s_per_call_s"], 4)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
