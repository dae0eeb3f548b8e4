"""tools/render_calibration.py: held-out calibration calls from new sentences, natural voices, varied lines.

The sentences must be ones no model was trained or tuned on, the calls must cover the conditions
the issue names (narrowband and wideband lines, clean to poor, leaks none to loud, both accents,
small-talk openings), and each call's audio must match its ground truth. Rendering uses a stand-in
voicer here (the real Kokoro voices are tested in test_kokoro.py).
"""

from __future__ import annotations

import csv
import itertools
import json
import re
import shutil
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from firmware.testing.truth import load_truth

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))

import render_calibration as rc  # noqa: E402

DEV = REPO.parent / "shared" / "corpus" / "dev"
_N = 6  # a shared run of this many words counts as reuse


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).split()


def _tuned_on() -> list[str]:
    """Every sentence a model or rule was trained, calibrated or checked on that this checkout has."""
    texts: list[str] = []
    # utterances.tsv, and rows written for a coming model (smalltalk_pending.tsv: tried in training,
    # not yet in a shipped model's data), which must be as free of the calibration sentences.
    for name in ("utterances.tsv", "smalltalk_pending.tsv"):
        with (REPO / "models" / "intent" / "data" / name).open(encoding="utf-8") as f:
            texts += [row["text"] for row in csv.DictReader(f, delimiter="\t")]
    if (DEV / "utterances.tsv").is_file():
        with (DEV / "utterances.tsv").open(encoding="utf-8") as f:
            texts += [row["text"] for row in csv.DictReader(f, delimiter="\t")]
    for path in sorted((DEV / "calls").glob("*.json")) if (DEV / "calls").is_dir() else []:
        texts += [u["text"] for u in json.loads(path.read_text(encoding="utf-8"))["utterances"]]
    texts += [line.split('text = "', 1)[1].rstrip('"') for line in
              (REPO / "firmware" / "testing" / "demo_call.toml").read_text().splitlines() if line.startswith("text = ")]  # fmt: skip
    return texts


def _every_filling(template: str, slots: dict[str, list[str]]) -> list[str]:
    names = sorted(set(re.findall(r"\{([a-z_]+)\}", template)))
    return [rc.fill(template, dict(zip(names, values))) for values in itertools.product(*(slots[n] for n in names))]


def test_no_sentence_was_tuned_on() -> None:
    bank = rc.load_bank()
    tuned = _tuned_on()
    assert len(tuned) > 3000
    seen = {" ".join(_words(t)) for t in tuned}
    grams = {tuple(w[i : i + _N]) for w in map(_words, tuned) for i in range(len(w) - _N + 1)}
    reused = []
    for key, templates in bank.items():
        if key == "slots":
            continue
        for template in templates:
            for text in _every_filling(template, bank["slots"]):  # type: ignore[arg-type]
                w = _words(text)
                if " ".join(w) in seen or any(tuple(w[i : i + _N]) in grams for i in range(len(w) - _N + 1)):
                    reused.append(text)
    assert reused == []


def test_forty_calls_cover_lines_noise_leaks_voices_and_openings() -> None:
    planned = rc.plan_corpus(40, seed=1)
    assert len({call_id for call_id, _, _ in planned}) == 40
    conditions = [c for _, _, c in planned]
    assert {(c.line, c.snr_db) for c in conditions} == {(line, s) for line in ("pstn", "voip") for s in rc.SNR_DB}
    assert {c.leak_db for c in conditions} == set(rc.LEAK_DB)
    assert all((c.opus_kbps is None) == (c.line == "pstn") for c in conditions)
    groups = {(lines[0].voice[:2], next(line.voice for line in lines if line.speaker == "buyer")[:2]) for _, lines, _ in planned}
    assert {r for r, _ in groups} == {b for _, b in groups} == {"af", "am", "bf", "bm"} and len(groups) >= 12
    assert len({id(lines) for _, lines, _ in planned}) == 40  # by default every call its own conversation
    # With --per-script 3 each conversation is heard over three lines: both kinds, and never twice
    # the same noise and leak.
    by_three = rc.plan_corpus(40, seed=1, per_script=3)
    for start in range(0, 39, 3):
        triple = by_three[start : start + 3]
        assert all(lines is triple[0][1] for _, lines, _ in triple)
        assert {c.line for _, _, c in triple} == {"pstn", "voip"}
        assert len({(c.snr_db, c.leak_db) for _, _, c in triple}) == 3
    assert len({line.voice for _, lines, _ in planned for line in lines}) >= 16
    for _, lines, _ in planned:
        first = next(i for i, line in enumerate(lines) if line.label != "other")
        opening = lines[:first]
        assert sum(line.speaker == "buyer" for line in opening) >= 2  # greeting and small talk, no moment
        moments = [line.label for line in lines if line.speaker == "buyer" and line.label != "other"]
        assert len(moments) >= 3 and len(set(moments)) == len(moments)
        assert all(line.label in ("other", "next_step") for line in lines if line.speaker == "rep")
        assert not any("{" in line.text for line in lines)


def test_most_reps_talk_at_a_natural_pace_and_some_fast() -> None:
    """Ordinary reps show whether the box cries wolf about fast speech; fast ones give it stretches to find."""
    speeds = [lines[0].speed for _, lines, _ in rc.plan_corpus(40, seed=1)]
    assert all(line.speed == speeds[i] for i, (_, lines, _) in enumerate(rc.plan_corpus(40, seed=1))
               for line in lines if line.speaker == "rep")  # fmt: skip
    fast = [s for s in speeds if s >= 0.92]
    assert 0.15 <= len(fast) / len(speeds) <= 0.45
    assert all(0.70 <= s <= 0.84 for s in speeds if s < 0.92)
    assert rc.rep_speed_for(0.0) == 0.92 and rc.rep_speed_for(0.999) == 0.84


class ToneVoicer:
    """A stand-in voice: steady noise, its length from the word count (so levels measure exactly)."""

    version = "tone/1"

    def speak(self, text: str, voice: str, speed: float) -> np.ndarray:
        rng = np.random.default_rng(len(text))
        n = int(len(text.split()) * 0.3 * rc.RATE_HZ / speed)
        return (0.2 * rng.normal(0, 1, n)).astype(np.float32)


def _levels(wav: Path, truth_path: Path) -> dict[str, float]:
    call = load_truth(truth_path)
    with wave.open(str(wav)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 2, 2)
        audio = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2) / 32768.0
    masks = {s: np.zeros(len(audio), bool) for s in ("rep", "buyer")}
    for u in call.utterances:
        masks[u.speaker][int(u.start * 16000) + 800 : int(u.end * 16000) - 800] = True
    quiet = np.ones(len(audio), bool)
    for u in call.utterances:
        quiet[max(0, int(u.start * 16000) - 1600) : int(u.end * 16000) + 1600] = False

    def db(x: np.ndarray) -> float:
        return float(10 * np.log10(np.mean(x**2) + 1e-20))

    line = db(audio[masks["buyer"], 1])
    room = np.mean(audio[quiet, 0] ** 2)
    leak = 10 * np.log10(max(np.mean(audio[masks["buyer"], 0] ** 2) - room, 1e-20))  # the room noise taken out
    return {"line_snr": line - db(audio[quiet, 1]), "leak": leak - line,
            "room_snr": db(audio[masks["rep"], 0]) - db(audio[quiet, 0])}  # fmt: skip


@pytest.mark.parametrize("n", [0, 1, 8, 9])  # pstn and voip, clean and poor, no leak and a loud one
def test_a_rendered_call_matches_its_truth_and_conditions(tmp_path: Path, n: int) -> None:
    call_id, lines, conditions = rc.plan_corpus(n + 1, seed=1)[n]
    if conditions.line == "voip" and shutil.which("opusenc") is None:
        pytest.fail("opus-tools is installed by tools/bootstrap")
    truth = rc.render_call(lines, call_id, tmp_path, np.random.default_rng([1, n, 1]), conditions, ToneVoicer())
    path = tmp_path / f"{call_id}.json"
    assert json.loads(path.read_text()) == truth
    call = load_truth(path)
    assert [u.text for u in call.utterances] == [line.text for line in lines]
    assert call.expected_moments == tuple((line.label, i) for i, line in enumerate(lines)
                                          if line.speaker == "buyer" and line.label != "other")  # fmt: skip
    assert truth["conditions"]["line"] == conditions.line  # type: ignore[index]
    levels = _levels(tmp_path / f"{call_id}.wav", path)
    assert conditions.snr_db - 4 <= levels["line_snr"] <= conditions.snr_db + 3, levels
    assert levels["room_snr"] <= conditions.room_snr_db + 3, levels
    if conditions.leak_db is None or conditions.leak_db <= -25:  # a loud leak brings the line's noise into the mic
        assert conditions.room_snr_db - 4 <= levels["room_snr"], levels
    if conditions.leak_db is None:
        assert levels["leak"] < -40, levels
    else:
        assert conditions.leak_db - 3 <= levels["leak"] <= conditions.leak_db + 3, levels
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_calls_are_reproducible_and_a_corpus_can_grow(tmp_path: Path) -> None:
    voicer = rc.CachedVoicer(ToneVoicer(), tmp_path / "clips")
    [a] = rc.render_corpus(tmp_path / "a", 1, seed=3, voicer=voicer, per_script=3)
    spoken = voicer.speech_s
    b = rc.render_corpus(tmp_path / "b", 3, seed=3, voicer=voicer, per_script=3)
    assert voicer.speech_s == spoken  # calls 2 and 3 are the first conversation over other lines: nothing new to say
    rc.render_corpus(tmp_path / "b", 4, seed=3, voicer=voicer, per_script=3)
    assert voicer.speech_s > spoken  # the fourth is a new conversation; the first three were not rendered again
    assert b[0].read_bytes() == a.read_bytes() and b[0].with_suffix(".wav").read_bytes() == a.with_suffix(".wav").read_bytes()
