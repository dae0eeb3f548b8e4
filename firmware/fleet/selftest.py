"""The self-test a staged update passes before it may go live, run in its own process.

    python -m firmware.fleet.selftest {model,playbook} NAME FOLDER

Exit 0: it passed. Exit 1: it failed, with one line on stderr saying why. The agent runs it with a
time limit, so a model that hangs or eats memory while loading takes this process down, not the
agent. Models: the folder's ``golden.json`` lists inputs and the answers the model must give,
``{"min_agreement": 1.0, "cases": [{"text": ..., "speaker": "buyer", "intent": "price_objection"}]}``
for an intent model. A playbook must parse and validate.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from firmware.errors import ParallaxError
from firmware.fleet.signing import Rejected
from firmware.fleet.unpack import GOLDEN_FILE, PLAYBOOK_FILE


def check(kind: str, name: str, folder: Path) -> str:
    """Raise ParallaxError/ValueError on failure; return a one-line summary on success."""
    if kind == "playbook":
        from firmware.coach.playbook import load_playbook

        playbook = load_playbook(folder / PLAYBOOK_FILE)
        return f"playbook valid ({len(getattr(playbook, 'moments', {}) or {})} moments)"
    golden = json.loads((folder / GOLDEN_FILE).read_text(encoding="utf-8"))
    cases = golden["cases"]
    need = float(golden.get("min_agreement", 1.0))
    if not isinstance(cases, list) or not cases:
        raise ValueError("golden.json has no cases")
    if name == "intent":
        from firmware.intent.classifier import IntentClassifier

        model = IntentClassifier(folder)
        agree = sum(model.classify(str(c["text"]), c.get("speaker")).label == c["intent"] for c in cases)
    else:
        raise ValueError(f"no self-test is known for model {name!r}, so it cannot go live")
    if agree / len(cases) < need:
        raise ValueError(f"{agree} of {len(cases)} golden answers right, {need:.0%} needed")
    return f"{agree}/{len(cases)} golden answers right"


def run(kind: str, name: str, folder: Path, timeout_s: float) -> None:
    """Run :func:`check` in a child process; raise :class:`Rejected` if it fails or times out."""
    cmd = [sys.executable, "-m", "firmware.fleet.selftest", kind, name, str(folder)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise Rejected(f"self-test failed: no answer within {timeout_s:.0f} s") from None
    if done.returncode != 0:
        lines = (done.stderr or "").strip().splitlines()
        raise Rejected(f"self-test failed: {lines[-1][:200] if lines else f'exit status {done.returncode}'}")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or args[0] not in ("model", "playbook"):
        print("usage: python -m firmware.fleet.selftest {model,playbook} NAME FOLDER", file=sys.stderr)
        return 2
    try:
        print(check(args[0], args[1], Path(args[2])))
    except (ParallaxError, ValueError, KeyError, TypeError, OSError) as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
