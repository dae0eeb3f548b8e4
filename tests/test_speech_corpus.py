"""The speech pipeline on the dev corpus calls (real synthetic voices, phone-band buyer)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from firmware.bus import EventBus
from firmware.config import Config
from firmware.events import Utterance
from firmware.replay import replay_call
from firmware.runtime import CallSession

pytestmark = [pytest.mark.corpus, pytest.mark.model]


def _wer(refs: list[str], hyps: list[str]) -> float:
    import re

    import jiwer

    def norm(texts: list[str]) -> str:
        return " ".join(re.sub(r"[^a-z0-9' ]+", " ", " ".join(texts).lower()).split())

    return float(jiwer.wer(norm(refs), norm(hyps)))


@pytest.fixture(scope="module")
def first_call(corpus_dir: Path, engines: object) -> tuple[dict, list[Utterance]]:
    call = sorted((corpus_dir / "calls").glob("*.wav"))[0]
    truth = json.loads(call.with_suffix(".json").read_text())
    bus = EventBus()
    out: list[Utterance] = []
    bus.subscribe(lambda e: out.append(e) if isinstance(e, Utterance) else None)
    with CallSession(Config(), engines, bus, lockstep=True) as session:  # type: ignore[arg-type]
        replay_call(call, session)
    return truth, out


def test_word_error_rate_per_party(first_call: tuple[dict, list[Utterance]]) -> None:
    truth, out = first_call
    # Floors well inside what the benchmark reports (tools/bench_asr.py): ~30% rep, ~60% buyer.
    for speaker, ceiling in (("rep", 0.40), ("buyer", 0.72)):
        refs = [u["text"] for u in truth["utterances"] if u["speaker"] == speaker]
        hyps = [u.text for u in sorted(out, key=lambda u: u.start) if u.speaker == speaker]
        assert _wer(refs, hyps) < ceiling, speaker


def test_every_utterance_is_attributed_to_who_said_it(first_call: tuple[dict, list[Utterance]]) -> None:
    truth, out = first_call
    for u in out:
        same = [g for g in truth["utterances"] if g["speaker"] == u.speaker and g["start"] < u.end and g["end"] > u.start]
        assert same, f"{u.speaker} utterance at {u.start:.1f}-{u.end:.1f} s matches no {u.speaker} speech"


def test_buyer_leak_never_becomes_rep_speech(first_call: tuple[dict, list[Utterance]]) -> None:
    truth, out = first_call
    rep_spans = [(g["start"], g["end"]) for g in truth["utterances"] if g["speaker"] == "rep"]
    for u in out:
        if u.speaker == "rep":
            overlap = sum(max(0.0, min(u.end, e) - max(u.start, s)) for s, e in rep_spans)
            assert overlap > 0.5 * (u.end - u.start), f"rep utterance {u.start:.1f}-{u.end:.1f} s is mostly not rep speech"


def test_utterances_are_emitted_soon_after_they_end(first_call: tuple[dict, list[Utterance]]) -> None:
    _, out = first_call
    # In lockstep the stamp is when the segment closed: the join gap plus the VAD's onset delay,
    # or, for speech cut at its maximum length, up to the cut search window after the cut.
    delays = sorted(u.t - u.end for u in out)
    assert delays[0] >= 0 and delays[-1] <= 3.5
    assert delays[len(delays) // 2] <= 1.0
