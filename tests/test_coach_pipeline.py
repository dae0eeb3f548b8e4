"""The coach behind the box's own speech pipeline (Silero VAD + Whisper), on the dev calls.

Needs the built models and the dev corpus; skipped with the reason otherwise. The intent model is
used when it has been built; without it the buyer intents are absent and only dynamics are checked.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from coach_support import STATE_VOCABULARY, make_config

from firmware.audio.wavfile import iter_call_frames
from firmware.bus import EventBus
from firmware.coach.build import CoachBox
from firmware.coach.session import CoachedSession
from firmware.cues.pins import make_pin_factory
from firmware.events import Event, Utterance
from firmware.testing.evaluate import dynamic_moments, expected_dynamics, match, tips_while_rep_speaks
from firmware.testing.truth import TruthCall, load_truth

pytestmark = [pytest.mark.corpus, pytest.mark.model]


@dataclass
class Replayed:
    call: TruthCall
    events: list[Event]
    box_dir: Path
    log_text: str




@pytest.fixture(scope="module")
def replayed(corpus_dir: Path, models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Replayed]:
    from firmware.config import Config
    from firmware.runtime import CallSession, load_engines

    engines = load_engines(Config())
    out = []
    for wav in sorted((corpus_dir / "calls").glob("*.wav")):
        box_dir = tmp_path_factory.mktemp(wav.stem)
        handler = _ListHandler()
        root = logging.getLogger()
        root.addHandler(handler)
        old_level = root.level
        root.setLevel(logging.DEBUG)
        events: list[Event] = []
        bus = EventBus()
        bus.subscribe(events.append)
        box = CoachBox(make_config(box_dir / "state"), pin_factory=make_pin_factory("mock"))
        try:
            with CallSession(make_config(box_dir / "state"), engines, bus, lockstep=True) as session:
                coached = CoachedSession(session, box, bus)
                for frame in iter_call_frames(wav, (0, 1)):
                    coached.feed(frame)
                coached.end_call()
        finally:
            box.close()
            root.removeHandler(handler)
            root.setLevel(old_level)
        out.append(Replayed(load_truth(wav.with_suffix(".json")), events, box_dir, "\n".join(handler.lines)))
    return out


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.getMessage()}")


def test_every_dynamic_found_and_none_false_on_the_box_pipeline(replayed: list[Replayed]) -> None:
    for r in replayed:
        result = match(dynamic_moments(r.events), expected_dynamics(r.call))
        assert (result.missed, result.false_positives) == ([], []), r.call.call_id


def test_no_file_or_log_line_holds_the_calls_words(replayed: list[Replayed]) -> None:
    for r in replayed:
        heard = {w.lower() for e in r.events if isinstance(e, Utterance) for w in re.findall(r"[A-Za-z]{5,}", e.text)}
        spoken = {w.lower() for u in r.call.utterances for w in re.findall(r"[A-Za-z]{5,}", u.text)}
        state_words = STATE_VOCABULARY
        words = (heard | spoken) - state_words
        assert len(heard) > 30, "the recogniser produced text"
        files = [p for p in r.box_dir.rglob("*") if p.is_file()]
        assert files, "the mastery state was written"
        for path in files:
            found = {w.lower() for w in re.findall(r"[A-Za-z]+", path.read_text(encoding="utf-8", errors="replace"))}
            assert not words & found, path
        logged = {w.lower() for w in re.findall(r"[A-Za-z]+", r.log_text)}
        assert not words & logged


def test_no_tip_lands_in_rep_speech_on_the_box_pipeline(replayed: list[Replayed]) -> None:
    """Depends on how quickly the pipeline's activity flags a rep onset (see the coach notes)."""
    bad = [(r.call.call_id, t.t) for r in replayed for t in tips_while_rep_speaks(r.events, r.call)]
    assert bad == []
