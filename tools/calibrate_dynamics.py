#!/usr/bin/env python3
"""Compare ``[coach.dynamics]`` variants on recorded pipeline output: per dynamic kind, found / false.

Runs ``tools/bench_coach.py --source recorded`` logic once per variant and corpus, and prints for
each variant the dynamics found, false and expected per kind (rep_monologue, rep_fast_speech,
interruption, long_silence) and the tips given while the rep speaks. Choose on the calibration
calls; the dev corpora only confirm (list them after it, each with its tapes):

    tools/calibrate_dynamics.py --tapes calibration=/work/coord/s7/tapes/calibration \\
        --tapes dev=/work/coord/s7/tapes/dev --tapes dev-kokoro=/work/coord/s7/tapes/dev-kokoro \\
        --variant corpus-only=fast_confirm_speech_s:none --variant confirm5=fast_confirm_speech_s:5

A variant is ``NAME=key:value,key:value`` over [coach.dynamics] ("none" unsets an optional
setting); ``current`` (the defaults, or --config) is always scored first. The last line is one
JSON object: {corpus: {variant: {kind: {found, false, expected}, "tips_while_rep_speaking"}}}.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

from bench_coach import run_recorded, score  # noqa: E402

from firmware.coach.config import DynamicsConfig  # noqa: E402
from firmware.config import Config, PathsConfig, load_config  # noqa: E402
from firmware.testing.corpora import resolve  # noqa: E402
from firmware.testing.evaluate import GROUND_TRUTH_DYNAMICS  # noqa: E402
from firmware.testing.truth import load_truth  # noqa: E402


def parse_variant(spec: str) -> tuple[str, dict[str, object]]:
    name, _, body = spec.partition("=")
    fields = {f.name: f for f in dataclasses.fields(DynamicsConfig)}
    values: dict[str, object] = {}
    for item in filter(None, body.split(",")):
        key, _, raw = item.partition(":")
        if key not in fields:
            raise ValueError(f"no [coach.dynamics] setting {key!r}")
        current = getattr(DynamicsConfig(), key)
        if raw.lower() == "none":
            values[key] = None
        elif isinstance(current, bool):
            values[key] = raw.lower() in ("1", "true", "yes")
        elif isinstance(current, int):
            values[key] = int(raw)
        else:
            values[key] = float(raw)
    return name, values


class _Memo:
    """The classifier with its answers cached: every variant reads the same texts."""

    def __init__(self, classifier: object) -> None:
        self.threshold_for = classifier.threshold_for  # type: ignore[attr-defined]
        self.classify = functools.lru_cache(maxsize=None)(classifier.classify)  # type: ignore[attr-defined]


def evaluate(base: Config, values: dict[str, object], calls: list, tapes: Path, classifier: object) -> dict[str, object]:  # type: ignore[type-arg]
    dynamics = dataclasses.replace(base.coach.dynamics, **values)
    totals = {kind: {"found": 0, "false": 0, "expected": 0} for kind in GROUND_TRUTH_DYNAMICS}
    in_rep_speech = 0
    with tempfile.TemporaryDirectory() as state:
        for call, path in calls:
            # Every call starts from a fresh rep (no pace baseline carried between calls).
            with tempfile.TemporaryDirectory(dir=state) as fresh:
                config = dataclasses.replace(
                    base, paths=PathsConfig(base.paths.models_dir, Path(fresh)),
                    coach=dataclasses.replace(base.coach, dynamics=dynamics),
                )  # fmt: skip
                result = score(call, run_recorded(path.with_suffix(".wav"), tapes / f"{path.stem}.jsonl", config, classifier), 0.0)  # type: ignore[arg-type]
            in_rep_speech += result.tips_in_rep_speech
            for kind, (hit, false, expected) in result.dynamics_by_kind.items():
                totals[kind]["found"] += hit
                totals[kind]["false"] += false
                totals[kind]["expected"] += expected
    return {**totals, "tips_while_rep_speaking": in_rep_speech}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tapes", action="append", required=True, metavar="CORPUS=DIR",
                        help="a corpus (name or directory) and its recorded pipeline output; repeatable, "
                             "the calibration calls first")  # fmt: skip
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=key:value,...")
    parser.add_argument("--config", type=Path, help="TOML configuration the variants start from")
    args = parser.parse_args()
    try:
        variants = [("current", {})] + [parse_variant(spec) for spec in args.variant]
        corpora = [(resolve(spec.partition("=")[0]), Path(spec.partition("=")[2])) for spec in args.tapes]
        base = load_config(args.config) if args.config else Config()
        for _, values in variants:
            dataclasses.replace(base.coach.dynamics, **values)  # refuse values out of range up front
    except ValueError as exc:
        print(f"calibrate_dynamics: {exc}", file=sys.stderr)
        return 2
    os.nice(10)
    from firmware.intent import load_classifier

    classifier = _Memo(load_classifier(base.paths.resolve(base.paths.models_dir), base.intent))
    figures: dict[str, dict[str, object]] = {}
    short = {"rep_monologue": "monologue", "rep_fast_speech": "fast", "interruption": "interrupt", "long_silence": "silence"}
    for corpus, tapes in corpora:
        calls = [(load_truth(p), p) for p in corpus.calls if (tapes / f"{p.stem}.jsonl").is_file()]
        print(f"\n{corpus.name}: {len(calls)} calls with tapes ({tapes}); found/false/expected per kind")
        head = f"{'variant':24} " + " ".join(f"{short[k]:>12}" for k in GROUND_TRUTH_DYNAMICS) + f" {'tips in rep speech':>19}"
        print(head)
        print("-" * len(head))
        figures[corpus.name] = {}
        for name, values in variants:
            row = evaluate(base, values, calls, tapes, classifier)
            figures[corpus.name][name] = row
            cells = " ".join(f"{'{found}/{false}/{expected}'.format(**row[k]):>12}" for k in GROUND_TRUTH_DYNAMICS)  # type: ignore[arg-type]
            print(f"{name:24} {cells} {row['tips_while_rep_speaking']:>19}")
    print("variants: " + "; ".join(f"{name} {values or 'defaults'}" for name, values in variants))
    print(json.dumps({"variants": {name: {k: v for k, v in values.items()} for name, values in variants}, "corpora": figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
