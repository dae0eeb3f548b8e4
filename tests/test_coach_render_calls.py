"""tools/render_calls.py: synthetic calibration calls in the dev corpus format, from held-out sentences only."""

from __future__ import annotations

import json
import shutil
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from firmware.testing.dataset import is_heldout, read_examples
from firmware.testing.truth import load_truth

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))

import render_calls  # noqa: E402

HELDOUT = {e.text for e in read_examples(render_calls.DATA) if is_heldout(e.id)}
TRAINING = {e.text for e in read_examples(render_calls.DATA) if not is_heldout(e.id)}


def _sentences(text: str) -> list[str] | None:
    """``text`` as one or two held-out sentences, or None if it is not made of them."""
    if text in HELDOUT:
        return [text]
    for first in HELDOUT:
        if text.startswith(first + " ") and text[len(first) + 1 :] in HELDOUT:
            return [first, text[len(first) + 1 :]]
    return None


def test_calls_are_planned_like_the_dev_calls_from_held_out_sentences_only() -> None:
    pools = render_calls.heldout_pools(read_examples(render_calls.DATA))
    rng = np.random.default_rng(3)
    deck = render_calls._Deck(rng)
    two_line_turns = 0
    for _ in range(5):
        lines = render_calls.plan_call(pools, rng, deck, ("en-us+m3", "en-gb+f2"))
        buyer = [line for line in lines if line.speaker == "buyer"]
        intents = [line for line in buyer if line.label != "other"]
        assert 8 <= len(intents) <= 10 and len({line.label for line in intents}) == len(intents)
        assert 2 <= len(buyer) - len(intents) <= 4
        assert lines[0].speaker == "rep"
        for i, line in enumerate(lines):
            assert _sentences(line.text) is not None, "every line is made of held-out sentences"
            assert 0.2 <= line.gap_s <= 1.5
            if line.speaker == "buyer" and lines[i - 1].speaker == "rep":
                # the rep hands over with a question or a proposed next step
                assert lines[i - 1].text.rstrip().endswith("?") or lines[i - 1].label == "next_step"
            if line.speaker == "buyer" and lines[i - 1].speaker == "buyer":
                two_line_turns += 1
                assert line.label != lines[i - 1].label  # the coach raises a kind once a turn
    assert two_line_turns > 0


def test_a_rendered_call_matches_its_ground_truth(tmp_path: Path) -> None:
    assert shutil.which("espeak-ng"), "espeak-ng is installed by tools/bootstrap"
    [path] = render_calls.render_corpus(tmp_path / "a", calls=1, seed=5, max_buyer_turns=3)
    truth = json.loads(path.read_text(encoding="utf-8"))
    call = load_truth(path)  # the loader the benchmark uses accepts it
    utterances = truth["utterances"]
    assert truth["sample_rate"] == 16000 and truth["channels"] == {"0": "rep", "1": "buyer"}
    assert sum(1 for a, b in zip(utterances, utterances[1:]) if a["speaker"] == "rep" and b["speaker"] == "buyer") == 3
    for a, b in zip(utterances, utterances[1:]):
        assert 0.2 - 1e-3 <= b["start"] - a["end"] <= 1.5 + 1e-3  # sorted, no overlap, short gaps
    for u in utterances:
        assert _sentences(u["text"]) is not None
        assert u["text"] not in TRAINING
    assert [(m["type"], m["utterance_index"]) for m in truth["expected"]["moments"]] == [
        (u["label"], i) for i, u in enumerate(utterances) if u["speaker"] == "buyer" and u["label"] != "other"
    ]
    assert truth["expected"]["dynamics"] == render_calls.timeline_dynamics(utterances)

    with wave.open(str(path.with_suffix(".wav"))) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 2, 2)
        audio = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2) / 32768.0
    assert len(audio) / 16000 == pytest.approx(truth["duration_s"], abs=1e-3)

    def rms(channel: int, speaker: str | None) -> float:
        mask = np.zeros(len(audio), bool)
        for u in call.utterances:
            if speaker is None or u.speaker == speaker:
                mask[int(u.start * 16000) : int(u.end * 16000)] = True
        picked = audio[mask if speaker else ~mask, channel]
        return float(np.sqrt(np.mean(picked**2)))

    # ch0: the rep ~30 dB over the room, the buyer's leak ~25 dB under the line; ch1: the line ~20 dB over its noise.
    assert 24 <= 20 * np.log10(rms(0, "rep") / rms(0, None)) <= 36
    assert 15 <= 20 * np.log10(rms(1, "buyer") / rms(1, None)) <= 25
    leak = np.sqrt(max(rms(0, "buyer") ** 2 - rms(0, None) ** 2, 1e-12))
    assert -29 <= 20 * np.log10(leak / rms(1, "buyer")) <= -21

    [again] = render_calls.render_corpus(tmp_path / "b", calls=1, seed=5, max_buyer_turns=3)
    assert again.read_bytes() == path.read_bytes()
    assert again.with_suffix(".wav").read_bytes() == path.with_suffix(".wav").read_bytes()


def test_kokoro_voices_each_espeak_speakers_counterpart(tmp_path: Path) -> None:
    class Recording:
        version, voice_key = "fake-kokoro/1", "kokoro"

        def __init__(self) -> None:
            self.voices: list[str] = []

        def speak(self, text: str, voice: str, words_per_min: int) -> np.ndarray:
            self.voices.append(voice)
            return np.full(int(len(text.split()) * 0.3 * 16000), 0.1, np.float32)

    voicer = Recording()
    [path] = render_calls.render_corpus(tmp_path, calls=1, seed=5, max_buyer_turns=2, voicer=voicer)
    truth = json.loads(path.read_text(encoding="utf-8"))
    assert set(voicer.voices) <= set(render_calls.KOKORO_VOICES.values()) and len(set(voicer.voices)) == 2
    assert set(truth["voices"].values()) == set(voicer.voices) and truth["voicer"] == "fake-kokoro/1"
