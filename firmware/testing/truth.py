"""Drive the coach from a call's ground truth instead of audio: exact, repeatable, no models.

A call JSON (the evaluation corpus layout: ``utterances`` with speaker/start/end/text/label and
``expected`` moments and dynamics) becomes what the speech pipeline would deliver with a perfect
VAD, recogniser and classifier: one FrameActivity per 20 ms frame, and each utterance as an
Utterance event ``event_delay_s`` after it ends, its label as the intent.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware.audio.frames import FRAME_MS, FrameActivity
from firmware.errors import AudioInputError
from firmware.events import Utterance

FRAME_S = FRAME_MS / 1000.0
# Longer than any sales call: a bound, so a typo in a time cannot make the stream endless.
MAX_CALL_S = 86400.0


@dataclass(frozen=True)
class TruthUtterance:
    speaker: str
    start: float
    end: float
    text: str
    label: str


@dataclass(frozen=True)
class TruthCall:
    call_id: str
    duration_s: float
    utterances: tuple[TruthUtterance, ...]
    expected_moments: tuple[tuple[str, int], ...] = ()
    expected_dynamics: tuple[tuple[str, float, float], ...] = ()
    leak_blips: tuple[tuple[float, float], ...] = field(default=())

    def speaking(self, speaker: str, t: float) -> bool:
        return any(u.speaker == speaker and u.start <= t < u.end for u in self.utterances)

    def speaking_during(self, speaker: str, a: float, b: float) -> bool:
        return any(u.speaker == speaker and u.start < b and u.end > a for u in self.utterances)


def load_truth(path: Path) -> TruthCall:
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AudioInputError(f"call ground truth not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AudioInputError(f"call ground truth {path} is not valid JSON: {exc}") from None
    return parse_truth(raw, Path(path).name)


def parse_truth(raw: Any, where: str) -> TruthCall:
    try:
        utterances = tuple(
            TruthUtterance(str(u["speaker"]), float(u["start"]), float(u["end"]), str(u["text"]), str(u.get("label", "other")))
            for u in raw["utterances"]
        )
        expected = raw.get("expected", {})
        moments = tuple((str(m["type"]), int(m["utterance_index"])) for m in expected.get("moments", []))
        dynamics = tuple((str(d["type"]), float(d["start"]), float(d["end"])) for d in expected.get("dynamics", []))
        duration = float(raw.get("duration_s", max((u.end for u in utterances), default=0.0)))
        call_id = str(raw.get("call_id", where))
    except (KeyError, TypeError, ValueError) as exc:
        raise AudioInputError(f"{where}: not a call ground truth file ({exc!r})") from None
    from firmware.coach.playbook import MOMENT_KINDS
    from firmware.intent.labels import LABELS as labels
    if not (math.isfinite(duration) and 0 <= duration <= MAX_CALL_S):
        raise AudioInputError(f"{where}: duration_s {duration} is outside 0..{MAX_CALL_S:g} s")
    for i, u in enumerate(utterances):
        if u.speaker not in ("rep", "buyer") or not 0 <= u.start < u.end <= MAX_CALL_S:
            raise AudioInputError(f"{where}: utterance {i} has a bad speaker or times")
        if u.label not in labels:
            raise AudioInputError(f"{where}: utterance {i} has the unknown label {u.label!r} (known: {', '.join(labels)})")
    for kind in sorted({kind for kind, _ in moments} | {kind for kind, _, _ in dynamics}):
        if kind not in MOMENT_KINDS:
            raise AudioInputError(f"{where}: an expected moment has the unknown type {kind!r} (known: {', '.join(MOMENT_KINDS)})")
    if any(not 0 <= i < len(utterances) for _, i in moments):
        raise AudioInputError(f"{where}: an expected moment points past the utterances")
    return TruthCall(call_id, duration, utterances, moments, dynamics)


def stream(call: TruthCall, event_delay_s: float = 0.6) -> Iterator[FrameActivity | Utterance]:
    """Frames and utterance events in the order the box would see them."""
    pending = sorted(
        (
            Utterance(
                t=u.end + event_delay_s, speaker=u.speaker, start=u.start, end=u.end,  # type: ignore[arg-type]
                text=u.text, intent=u.label, confidence=1.0,
            )
            for u in call.utterances
        ),
        key=lambda e: e.t,
    )  # fmt: skip
    frames = int(round((call.duration_s + event_delay_s) / FRAME_S)) + 1
    i = 0
    for n in range(frames):
        t = n * FRAME_S
        # A perfect VAD: a frame is speech if any of it is (so a tip can never land after an onset).
        rep = call.speaking_during("rep", t, t + FRAME_S) or any(s < t + FRAME_S and e > t for s, e in call.leak_blips)
        yield FrameActivity(t, rep, call.speaking_during("buyer", t, t + FRAME_S))
        while i < len(pending) and pending[i].t <= t + FRAME_S + 1e-9:
            yield pending[i]
            i += 1
    yield from pending[i:]


def drive(
    call: TruthCall,
    on_activity: Callable[[FrameActivity], None],
    on_event: Callable[[Utterance], None],
    event_delay_s: float = 0.6,
) -> float:
    """Feed a whole call; returns the call time at its end."""
    end = 0.0
    for item in stream(call, event_delay_s):
        if isinstance(item, FrameActivity):
            on_activity(item)
            end = item.t + FRAME_S
        else:
            on_event(item)
    return end
