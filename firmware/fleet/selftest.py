"""The self-test a staged update passes before it may go live, run in its own process.

    python -m firmware.fleet.selftest FOLDER [CONFIG]

Exit 0: it passed. Exit 1: it failed, with one line on stderr saying why. The agent runs it with a
time limit, so a model that hangs or eats memory while loading takes this process down, not the
agent. The version is loaded by the coach's own loaders (:func:`firmware.runtime.default_loaders`,
with the box's configuration), so "it loads here" means "it loads in the coach". Then the golden
inputs shipped with it (``golden.json``) must get their expected answers:

- intent: ``{"min_agreement": 1.0, "cases": [{"text", "speaker", "intent"}]}`` (required);
- whisper: ``{"max_wer": 0.25, "cases": [{"wav": "golden/1.wav", "text": "..."}]}`` (16 kHz mono
  16-bit WAV files inside the version folder), the word error rate over all cases;
- silero-vad: loading is the test; a playbook must parse and validate.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from firmware.errors import ParallaxError
from firmware.fleet.signing import Rejected
from firmware.fleet.unpack import GOLDEN_FILE

SLOTS = {"intent": "intent", "playbook": "playbook", "whisper": "recognizer", "silero-vad": "vad"}


def _words_wrong(ref: list[str], hyp: list[str]) -> int:
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def _norm(text: str) -> list[str]:
    return "".join(c if c.isalnum() or c.isspace() else " " for c in text.lower()).split()


def check(folder: Path, config_path: Path | None = None) -> str:
    """Raise ParallaxError/ValueError on failure; return a one-line summary on success."""
    from firmware.config import load_config
    from firmware.runtime import default_loaders
    from firmware.store import read_manifest

    manifest = read_manifest(folder)
    manifest.verify()
    slot = SLOTS.get(manifest.family)
    if slot is None:
        raise ValueError(f"no self-test is known for family {manifest.family!r}, so it cannot go live")
    engine: Any = default_loaders(load_config(config_path))[slot](manifest)
    golden_path = folder / GOLDEN_FILE
    if manifest.family == "playbook":
        return "playbook valid"
    if manifest.family == "silero-vad":
        return "vad loads"
    if not golden_path.is_file():
        raise ValueError(f"{manifest.name} {manifest.version} ships no {GOLDEN_FILE}")
    golden = json.loads(golden_path.read_text(encoding="utf-8"))
    cases = golden["cases"]
    if not isinstance(cases, list) or not cases:
        raise ValueError("golden.json has no cases")
    if manifest.family == "intent":
        need = float(golden.get("min_agreement", 1.0))
        agree = sum(engine.classify(str(c["text"]), c.get("speaker")).label == c["intent"] for c in cases)
        if agree / len(cases) < need:
            raise ValueError(f"{agree} of {len(cases)} golden answers right, {need:.0%} needed")
        return f"{agree}/{len(cases)} golden answers right"
    import wave

    import numpy as np

    wrong = total = 0
    for c in cases:
        with wave.open(str(folder / str(c["wav"])), "rb") as w:
            if (w.getnchannels(), w.getsampwidth(), w.getframerate()) != (1, 2, 16000):
                raise ValueError(f"golden {c['wav']} must be 16 kHz mono 16-bit")
            samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
        ref = _norm(str(c["text"]))
        wrong += _words_wrong(ref, _norm(engine.transcribe(samples)))
        total += len(ref)
    wer = wrong / max(1, total)
    if wer > float(golden.get("max_wer", 0.25)):
        raise ValueError(f"golden word error rate {wer:.2f} above {float(golden.get('max_wer', 0.25)):.2f}")
    return f"golden word error rate {wer:.2f}"


def run(folder: Path, timeout_s: float, config_path: Path | None = None) -> None:
    """Run :func:`check` in a child process; raise :class:`Rejected` if it fails or times out."""
    cmd = [sys.executable, "-m", "firmware.fleet.selftest", str(folder)] + ([str(config_path)] if config_path else [])
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise Rejected(f"self-test failed: no answer within {timeout_s:.0f} s") from None
    if done.returncode != 0:
        lines = (done.stderr or "").strip().splitlines()
        raise Rejected(f"self-test failed: {lines[-1][:160] if lines else f'exit status {done.returncode}'}")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (1, 2):
        print("usage: python -m firmware.fleet.selftest FOLDER [CONFIG]", file=sys.stderr)
        return 2
    try:
        print(check(Path(args[0]), Path(args[1]) if len(args) == 2 else None))
    except (ParallaxError, ValueError, KeyError, TypeError, OSError) as exc:
        print(f"{type(exc).__name__}: {exc}".replace("\n", " "), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
