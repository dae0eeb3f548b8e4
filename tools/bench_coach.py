#!/usr/bin/env python3
"""Benchmark the coach on the evaluation corpora: moments, dynamics, tip latency, tips while the rep speaks.

By default every corpus present is run and reported on its own: ``calibration`` (the held-out
calibration calls, tools/render_calibration.py: choose on these), ``dev`` and ``dev-kokoro``
(confirm only). ``--corpus NAME|DIR`` (repeatable) picks some.

  tools/bench_coach.py                      # the box's own pipeline (VAD, Whisper, intent), real time
  tools/bench_coach.py --speed max          # same, as fast as the machine goes (lockstep timing)
  tools/bench_coach.py --source truth       # ground-truth utterances instead (no models, seconds)
  tools/bench_coach.py --speed max --record DIR    # also keep what the pipeline gave the coach
  tools/bench_coach.py --source recorded --record DIR  # the coach alone on those transcripts,
                                            # re-classified by today's intent model (seconds)
  tools/bench_coach.py ... --explain         # where each missed and each false moment came from, and
                                            # each dynamic found, missed and false (with the rep's pace)
  tools/bench_coach.py --corpus dev-kokoro --corpus models/.cache/synthetic-calls ...
                                            # named corpora or other calls in the dev layout

A moment matches an expected one of the same kind within the utterance's span + 3 s; dynamics
likewise within their span + 3 s. Tip latency runs from the end of the triggering buyer utterance
(ground truth) to the tip event. Prints a table per corpus, then one JSON object as the very last line: each corpus's figures under
``corpora`` (moment F1 included, dynamics found/false/expected per kind under ``dynamics_by_kind``), keyed by its name.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from firmware.coach.build import build_coach  # noqa: E402
from firmware.testing.evaluate import (  # noqa: E402
    GROUND_TRUTH_DYNAMICS,
    Match,
    dynamic_moments,
    expected_dynamics,
    expected_moments,
    intent_moments,
    match,
    tip_latencies,
    tips,
    tips_while_rep_speaks,
)
from firmware.config import Config, PathsConfig, load_config  # noqa: E402
from firmware.cues.pins import make_pin_factory  # noqa: E402
from firmware.events import Event, Partial, Utterance  # noqa: E402
from firmware.intent.classifier import IntentClassifier  # noqa: E402
from firmware.testing.truth import TruthCall, drive, load_truth  # noqa: E402

from firmware.testing.corpora import Corpus, select  # noqa: E402


@dataclass
class CallResult:
    call_id: str
    moments_hit: int
    moments_found: int
    moments_expected: int
    dynamics_hit: int
    dynamics_false: int
    dynamics_expected: int
    tips: int
    tips_in_rep_speech: int
    latencies: list[float]
    transcript_delays: list[float]
    wall_s: float
    # Per dynamic kind: [hit, false, expected].
    dynamics_by_kind: dict[str, list[int]] = dataclasses.field(default_factory=dict)


def run_truth(call: TruthCall, config: Config, delay_s: float) -> list[Event]:
    events: list[Event] = []
    kit = build_coach(config, events.append, pin_factory=make_pin_factory("mock"))
    assert kit.coach is not None
    try:
        coach = kit.coach

        def on_event(event: Utterance) -> None:
            events.append(event)
            coach.on_event(event)

        end = drive(call, coach.on_activity, on_event, delay_s)
        kit.coach.end_call(end)
    finally:
        kit.close()
    return events


def run_replay(wav: Path, config: Config, engines: object, speed: float | None, record: Path | None = None) -> list[Event]:
    from firmware.audio.wavfile import iter_call_frames
    from firmware.bus import EventBus
    from firmware.coach.build import CoachBox
    from firmware.coach.session import CoachedSession
    from firmware.runtime import CallSession

    events: list[Event] = []
    bus = EventBus()
    bus.subscribe(events.append)
    box = CoachBox(config, pin_factory=make_pin_factory("mock"))
    tape: list[dict[str, object]] = []
    try:
        with CallSession(config, engines, bus, lockstep=speed is None) as session:  # type: ignore[arg-type]
            if record is not None:
                bus.subscribe(lambda e: _tape_event(tape, e))
                # Who speaks and, for silences, who sounds (rep_speaking, buyer_speaking, rep_sound,
                # buyer_sound): tapes of two flags, recorded before sound mattered, still play.
                session.on_activity(lambda a: tape.append(
                    {"a": [bool(a.rep_speaking), bool(a.buyer_speaking), bool(a.rep_sound), bool(a.buyer_sound)]}))
            coached = CoachedSession(session, box, bus)
            wall_start = time.monotonic()
            for frame in iter_call_frames(wav, (0, 1)):
                if speed is not None:
                    delay = wall_start + frame.end_t / speed - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                coached.feed(frame)
            coached.end_call()
    finally:
        box.close()
    if record is not None:
        record.write_text("\n".join(json.dumps(x) for x in tape) + "\n", encoding="utf-8")
    return [e for e in events if e.type in ("moment", "tip", "utterance", "partial")]


def _tape_event(tape: list[dict[str, object]], event: Event) -> None:
    if isinstance(event, (Utterance, Partial)):
        tape.append({"e": event.type, **{f.name: getattr(event, f.name) for f in dataclasses.fields(event)}})


def run_recorded(wav: Path, tape_path: Path, config: Config, classifier: IntentClassifier) -> list[Event]:
    """The coach alone, fed exactly what a lockstep replay fed it: per frame the audio, the
    transcripts published while the pipeline took that frame, then the frame's activity. Texts are
    classified again, so a new intent model is measured without running the recogniser."""
    from firmware.audio.frames import FrameActivity
    from firmware.audio.wavfile import iter_call_frames
    from firmware.coach.build import CoachBox

    tape = [json.loads(line) for line in tape_path.read_text(encoding="utf-8").splitlines() if line]
    events: list[Event] = []
    box = CoachBox(config, pin_factory=make_pin_factory("mock"))
    try:
        coach = box.start_call(events.append, intent=classifier)
        items = iter(tape)
        now = 0.0

        def deliver_until_activity() -> list[bool] | None:
            for item in items:
                if "a" in item:
                    return item["a"]  # type: ignore[return-value]
                cls = Partial if item.pop("e") == "partial" else Utterance
                label, confidence, _ = classifier.classify(item["text"], item["speaker"])
                event = cls(**{**item, "intent": label, "confidence": confidence})
                events.append(event)
                coach.on_event(event)
            return None

        for frame in iter_call_frames(wav, (0, 1)):
            coach.on_audio(frame)
            activity = deliver_until_activity()
            if activity is None:
                break
            coach.on_activity(FrameActivity(frame.t, *activity))
            now = frame.end_t
        deliver_until_activity()  # the drain at the end of the call
        box.end_call(now)
    finally:
        box.close()
    return [e for e in events if e.type in ("moment", "tip", "utterance", "partial")]


def score(call: TruthCall, events: list[Event], wall_s: float) -> CallResult:
    moments = match(intent_moments(events), expected_moments(call))
    dynamics = match(dynamic_moments(events), expected_dynamics(call))
    return CallResult(
        call_id=call.call_id,
        moments_hit=len(moments.pairs),
        moments_found=len(moments.pairs) + len(moments.false_positives),
        moments_expected=len(moments.pairs) + len(moments.missed),
        dynamics_hit=len(dynamics.pairs),
        dynamics_false=len(dynamics.false_positives),
        dynamics_expected=len(dynamics.pairs) + len(dynamics.missed),
        tips=len(tips(events)),
        tips_in_rep_speech=len(tips_while_rep_speaks(events, call)),
        latencies=tip_latencies(events, call),
        transcript_delays=transcript_delays(call, events),
        wall_s=wall_s,
        dynamics_by_kind=by_kind(dynamics),
    )


def by_kind(dynamics: Match) -> dict[str, list[int]]:
    """[hit, false, expected] for each ground-truth dynamic kind."""
    out = {kind: [0, 0, 0] for kind in GROUND_TRUTH_DYNAMICS}
    for _, expected in dynamics.pairs:
        out[expected.kind][0] += 1
        out[expected.kind][2] += 1
    for moment in dynamics.false_positives:
        out[moment.kind][1] += 1
    for expected in dynamics.missed:
        out[expected.kind][2] += 1
    return out


def transcript_delays(call: TruthCall, events: list[Event]) -> list[float]:
    """Seconds from a buyer utterance's true end to its transcript reaching the coach: the floor
    under any tip latency."""
    out = []
    for e in events:
        if isinstance(e, Utterance) and e.speaker == "buyer":
            overlapping = [u for u in call.utterances if u.speaker == "buyer" and u.start < e.end and u.end > e.start]
            if overlapping:
                out.append(e.t - max(u.end for u in overlapping))
    return out


def explain(call: TruthCall, events: list[Event]) -> None:
    """Where each missed and each false moment came from: the box's buyer transcripts over the
    expected utterance (their label and confidence, partials marked P), and the true label under
    a false moment. Labels and times only, no call text."""
    result = match(intent_moments(events), expected_moments(call))
    heard = [e for e in events if isinstance(e, (Utterance, Partial)) and e.speaker == "buyer"]

    def readings(start: float, end: float) -> str:
        over = [e for e in heard if e.start < end and e.end > start]
        return ", ".join(
            f"{'P' if isinstance(e, Partial) else 'U'}@{e.t:.1f} {e.intent}/{(e.confidence or 0):.2f}" for e in over
        ) or "no transcript"

    print(f"  {call.call_id}: where moments were lost (labels as the pipeline gave them)")
    for e in sorted(result.missed, key=lambda e: e.start):
        print(f"    missed {e.kind:20} {e.start:7.1f}-{e.end:7.1f}  box heard: {readings(e.start, e.end)}")
    for m in result.false_positives:
        truth = [u.label for u in call.utterances if u.speaker == "buyer" and u.start < m.end and u.end > m.start]
        print(f"    false  {m.kind:20} {m.start:7.1f}-{m.end:7.1f}  c={m.confidence:.2f} at {m.t:.1f}; truth: {'/'.join(truth) or 'no buyer speech'}")
    explain_dynamics(call, events)


def explain_dynamics(call: TruthCall, events: list[Event]) -> None:
    """Each dynamic found, missed and false, with the rep's pace over its span as the truth and
    as the box heard it (words per minute of each rep utterance: counts and times, no text)."""
    result = match(dynamic_moments(events), expected_dynamics(call))
    heard = [e for e in events if isinstance(e, Utterance) and e.speaker == "rep"]

    def paces(start: float, end: float) -> str:
        truth = [u for u in call.utterances if u.speaker == "rep" and u.start < end + 0.5 and u.end > start - 0.5]
        box = [e for e in heard if e.start < end + 0.5 and e.end > start - 0.5]
        def fmt(items: list[tuple[float, float, str]]) -> str:
            return " ".join(f"{a:.1f}-{b:.1f}:{len(text.split()) * 60 / max(b - a, 1e-3):.0f}" for a, b, text in items) or "-"
        return (f"truth wpm {fmt([(u.start, u.end, u.text) for u in truth])} | "
                f"box wpm {fmt([(e.start, e.end, e.text) for e in box])}")  # fmt: skip

    print(f"  {call.call_id}: dynamics")
    for m, e in result.pairs:
        print(f"    found  {e.kind:20} {e.start:7.1f}-{e.end:7.1f}  box {m.start:.1f}-{m.end:.1f} at {m.t:.1f}")
    for e in sorted(result.missed, key=lambda e: e.start):
        extra = f"  {paces(e.start, e.end)}" if e.kind == "rep_fast_speech" else ""
        print(f"    missed {e.kind:20} {e.start:7.1f}-{e.end:7.1f}{extra}")
    for m in result.false_positives:
        extra = f"  {paces(m.start, m.end)}" if m.kind == "rep_fast_speech" else ""
        print(f"    false  {m.kind:20} {m.start:7.1f}-{m.end:7.1f}  c={m.confidence:.2f} at {m.t:.1f}{extra}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", action="append", default=[],
                        help="calibration, dev, dev-kokoro or a directory with calls/; repeatable "
                             "(default: every known corpus present)")  # fmt: skip
    parser.add_argument("--source", choices=("replay", "truth", "recorded"), default="replay")
    parser.add_argument("--record", type=Path, help="replay: keep each call's pipeline output here; recorded: read it "
                                                    "(one subfolder per corpus when several are run)")
    parser.add_argument("--speed", default="1", help="replay speed factor, or 'max' (default 1 = real time)")
    parser.add_argument("--delay", type=float, default=0.6, help="truth source: utterance event delay after its end (s)")
    parser.add_argument("--config", type=Path, help="TOML configuration")
    parser.add_argument("--calls", nargs="*", help="call ids to run (default: all)")
    parser.add_argument("--explain", action="store_true", help="print where each missed and false moment came from")
    args = parser.parse_args()
    try:
        corpora = select(args.corpus)
    except ValueError as exc:
        print(f"bench_coach: {exc}", file=sys.stderr)
        return 2
    speed = None if args.speed == "max" else float(args.speed)
    base = load_config(args.config) if args.config else Config()
    engines = None
    classifier = None
    if args.source == "replay":
        from firmware.runtime import load_engines

        engines = load_engines(base)
        if args.record is not None:
            args.record.mkdir(parents=True, exist_ok=True)
    elif args.source == "recorded":
        from firmware.intent import load_classifier

        if args.record is None:
            print("bench_coach: --source recorded needs --record DIR", file=sys.stderr)
            return 2
        classifier = load_classifier(base.paths.resolve(base.paths.models_dir), base.intent)
    figures: dict[str, dict[str, object]] = {}
    for corpus in corpora:
        record = args.record / corpus.name if args.record is not None and len(corpora) > 1 else args.record
        if record is not None and args.source == "replay":
            record.mkdir(parents=True, exist_ok=True)
        paths = [p for p in corpus.calls if not args.calls or p.stem in args.calls]
        results = run_corpus(paths, args, base, engines, classifier, speed, record)
        figures[corpus.name] = report(results, args.source, args.speed, corpus)
    if len(figures) > 1:
        print("\n" + " | ".join(f"{name}: F1 {f['moment_f1']} (P {f['moment_precision']}, R {f['moment_recall']})"
                                for name, f in figures.items()))  # fmt: skip
    print(json.dumps({"source": args.source, "corpora": figures}))
    return 0


def run_corpus(paths: list[Path], args: argparse.Namespace, base: Config, engines: object,
               classifier: IntentClassifier | None, speed: float | None, record: Path | None) -> list[CallResult]:  # fmt: skip
    results = []
    for path in paths:
        call = load_truth(path)
        with tempfile.TemporaryDirectory() as state:  # every call starts from a fresh rep
            config = Config(**{**base.__dict__, "paths": PathsConfig(base.paths.models_dir, Path(state))})
            started = time.monotonic()
            if args.source == "truth":
                events = run_truth(call, config, args.delay)
            elif args.source == "recorded":
                assert record is not None and classifier is not None
                events = run_recorded(path.with_suffix(".wav"), record / f"{path.stem}.jsonl", config, classifier)
            else:
                tape = record / f"{path.stem}.jsonl" if record is not None else None
                events = run_replay(path.with_suffix(".wav"), config, engines, speed, tape)
            results.append(score(call, events, time.monotonic() - started))
            if args.explain:
                explain(call, events)
    return results


def report(results: list[CallResult], source: str, speed: str, corpus: Corpus | None = None) -> dict[str, object]:
    """Print one corpus's table and summary; return its figures."""
    where = f" corpus={corpus.name} ({corpus.root})" if corpus is not None else ""
    print(f"\ncoach benchmark: source={source} speed={speed if source == 'replay' else 'n/a'}{where}")
    head = f"{'call':32} {'moments hit/found/exp':>22} {'dynamics hit/false/exp':>23} {'tips':>5} {'in rep speech':>14} {'latency med s':>14}"
    print(head)
    print("-" * len(head))
    for r in results:
        med = f"{statistics.median(r.latencies):.2f}" if r.latencies else "-"
        print(
            f"{r.call_id:32} {f'{r.moments_hit}/{r.moments_found}/{r.moments_expected}':>22} "
            f"{f'{r.dynamics_hit}/{r.dynamics_false}/{r.dynamics_expected}':>23} {r.tips:>5} {r.tips_in_rep_speech:>14} {med:>14}"
        )
    hit = sum(r.moments_hit for r in results)
    found = sum(r.moments_found for r in results)
    expected = sum(r.moments_expected for r in results)
    latencies = [x for r in results for x in r.latencies]
    delays = [x for r in results for x in r.transcript_delays]
    figures = {
        "calls": len(results),
        "source": source,
        "moment_recall": round(hit / expected, 3) if expected else None,
        "moment_precision": round(hit / found, 3) if found else None,
        "moment_f1": round(2 * hit / (found + expected), 3) if found + expected else None,
        "moments_expected": expected,
        "moments_raised": found,
        "dynamics_expected": sum(r.dynamics_expected for r in results),
        "dynamics_detected": sum(r.dynamics_hit for r in results),
        "dynamics_false": sum(r.dynamics_false for r in results),
        # {kind: {"found", "false", "expected"}}: which dynamics are found and which are false.
        "dynamics_by_kind": {
            kind: dict(zip(("found", "false", "expected"), (sum(r.dynamics_by_kind[kind][i] for r in results) for i in range(3))))
            for kind in GROUND_TRUTH_DYNAMICS
        },
        "tips_total": sum(r.tips for r in results),
        "tips_while_rep_speaking": sum(r.tips_in_rep_speech for r in results),
        "tip_latency_median_s": round(statistics.median(latencies), 3) if latencies else None,
        "tip_latency_max_s": round(max(latencies), 3) if latencies else None,
        "tip_latency_samples": len(latencies),
        "buyer_transcript_delay_median_s": round(statistics.median(delays), 3) if delays else None,
        "wall_s": round(sum(r.wall_s for r in results), 1),
    }
    print("-" * len(head))
    print("dynamics found/false/expected: " + ", ".join(
        f"{kind} {v['found']}/{v['false']}/{v['expected']}" for kind, v in figures["dynamics_by_kind"].items()))  # type: ignore[attr-defined]
    print(
        f"moment recall {figures['moment_recall']}, precision {figures['moment_precision']}, F1 {figures['moment_f1']}; dynamics "
        f"{figures['dynamics_detected']}/{figures['dynamics_expected']} found, {figures['dynamics_false']} false; "
        f"tips {figures['tips_total']}, {figures['tips_while_rep_speaking']} while the rep speaks; "
        f"latency median {figures['tip_latency_median_s']} s (buyer transcripts arrive a median "
        f"{figures['buyer_transcript_delay_median_s']} s after the buyer stops)"
    )
    return figures


if __name__ == "__main__":
    sys.exit(main())
