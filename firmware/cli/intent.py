"""``parallax intent``: classify text with the on-device intent model.

    parallax intent "that's more than we budgeted"      ->  objection_price<TAB>0.93
    parallax intent --jsonl < lines.txt                 ->  one JSON object per input line
"""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("intent", help="classify an utterance's intent with the on-device model")
    p.add_argument("text", nargs="?", help="the utterance to classify")
    p.add_argument("--jsonl", action="store_true",
                   help="read one text per line on stdin, write one JSON object per line to stdout")
    p.add_argument("--speaker", choices=("rep", "buyer"), help="who said it (a rep's line is never an objection)")
    p.set_defaults(handler=run, parser=p)


def run(args: argparse.Namespace) -> int:
    from firmware.errors import InputError

    if args.jsonl and args.text is not None:
        raise InputError("give either TEXT or --jsonl (texts on stdin), not both")
    if not args.jsonl and args.text is None:
        raise InputError("nothing to classify: give either TEXT or --jsonl (texts on stdin), e.g. parallax intent \"too expensive\"")
    if args.text is not None and not args.text.strip():
        raise InputError("TEXT is empty: give the words to classify")
    from firmware.config import load_config
    from firmware.intent import load_classifier

    config = load_config(args.config)
    classifier = load_classifier(config.paths.resolve(config.paths.models_dir), config.intent)
    if not args.jsonl:
        label, confidence, _ = classifier.classify(args.text, args.speaker)
        print(f"{label}\t{confidence:.3f}")
        return 0
    # Undecodable bytes are replaced rather than fatal: a stray byte must not end a long batch.
    if hasattr(sys.stdin, "reconfigure"):
        sys.stdin.reconfigure(encoding="utf-8", errors="replace")
    for line in sys.stdin:
        text = line.rstrip("\r\n")
        label, confidence, scores = classifier.classify(text, args.speaker)
        record = {"text": text, "label": label, "confidence": round(confidence, 4),
                  "scores": {name: round(p, 4) for name, p in scores.items()}}
        sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
    sys.stdout.flush()
    return 0
