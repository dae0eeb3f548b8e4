#!/usr/bin/env python3
"""Render synthetic sales calls in the dev corpus format, from the intent model's held-out sentences.

Voiced by Kokoro-82M's natural voices (``--voices kokoro``, the default; firmware/testing/kokoro.py)
or by espeak-ng (``--voices espeak``, what the coach's first calibration used). Note that the
intent model's thresholds were calibrated on these held-out sentences: for choosing thresholds and
rules on sentences nothing was tuned on, use tools/render_calibration.py.

The coach's decision rule (how sure a reading must be before it becomes a moment) needs calls to be
calibrated on that are not the dev calls. These are built like them: a 16 kHz two-channel WAV (ch0
the rep's headset mic, ~30 dB room noise, the buyer leaking at -25 dB; ch1 the buyer over an 8 kHz
mu-law 300-3400 Hz phone line with ~20 dB line noise) and a JSON ground truth with ``utterances``,
``expected.moments`` (every buyer utterance not labelled ``other``) and ``expected.dynamics``
(measured on the rendered timeline with the corpus definitions).

Every line is a held-out sentence of ``models/intent/data/utterances.tsv``
(``firmware.testing.dataset.is_heldout``): the intent model never trained on them, and nothing comes
from the dev corpus. The call's shape follows the dev calls' statistics: alternate rep and buyer
turns, the rep's turn ending on a question (or a proposed next step) before the buyer answers,
about nine buyer intents of different kinds and two to four ``other`` lines per call, some buyer
turns of two lines, gaps of 0.2-1.5 s. Deterministic from ``--seed``; runs niced.

    python tools/render_calls.py models/.cache/synthetic-calls --calls 32 --seed 1   # the coach's calibration set

The first N calls of a seed do not depend on how many follow, so a corpus can be grown.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

from firmware.intent.labels import FALLBACK_LABEL, LABELS  # noqa: E402
from firmware.testing.dataset import Example, is_heldout, read_examples  # noqa: E402
from firmware.testing.render import Voicer  # noqa: E402

DATA = REPO / "models" / "intent" / "data" / "utterances.tsv"
RATE_HZ = 16000
INTENTS = tuple(label for label in LABELS if label != FALLBACK_LABEL)
# Corpus dynamics definitions (dev README), applied to the rendered timeline.
_MONOLOGUE_GAP_S, _MONOLOGUE_SPAN_S = 0.7, 75.0
_FAST_WPM, _FAST_SPAN_S = 190.0, 5.0
# The project's plain espeak-ng voices. Whisper hears them over the phone line about as well as the
# dev calls' buyers (word mismatch 0.58-0.67 on models/intent/data/asr_transcripts.tsv vs 0.51-0.66 per
# dev call); the regional voices of render_intent_asr (Caribbean, Scottish, Welsh, Lancashire:
# 0.69-0.76) would make calls much harder than the ones the coach is judged on.
VOICES = ("en-gb+f2", "en-us+m3", "en-us+f4", "en-gb-x-rp+m2", "en-us+f2", "en-us-nyc+m4")
# The same six speakers' Kokoro counterparts (accent and sex kept), for --voices kokoro.
KOKORO_VOICES = dict(zip(VOICES, ("bf_emma", "am_michael", "af_sarah", "bm_george", "af_bella", "am_adam")))


@dataclass(frozen=True)
class Line:
    speaker: str
    label: str
    text: str
    gap_s: float  # silence before this line
    words_per_min: int
    voice: str


@dataclass(frozen=True)
class Pools:
    rep_questions: tuple[Example, ...]
    rep_statements: tuple[Example, ...]
    rep_next_steps: tuple[Example, ...]
    buyer_intents: dict[str, tuple[Example, ...]]
    buyer_other: tuple[Example, ...]


def heldout_pools(examples: list[Example]) -> Pools:
    held = [e for e in examples if is_heldout(e.id)]
    rep_other = [e for e in held if e.speaker == "rep" and e.label == FALLBACK_LABEL]
    pools = Pools(
        rep_questions=tuple(e for e in rep_other if e.text.rstrip().endswith("?")),
        rep_statements=tuple(e for e in rep_other if not e.text.rstrip().endswith("?")),
        rep_next_steps=tuple(e for e in held if e.speaker == "rep" and e.label == "next_step"),
        buyer_intents={k: tuple(e for e in held if e.speaker == "buyer" and e.label == k) for k in INTENTS},
        buyer_other=tuple(e for e in held if e.speaker == "buyer" and e.label == FALLBACK_LABEL),
    )
    empty = [name for name, pool in (("rep questions", pools.rep_questions), ("rep statements", pools.rep_statements),
                                     ("buyer other", pools.buyer_other)) if not pool]
    empty += [k for k, pool in pools.buyer_intents.items() if not pool]
    if empty:
        raise SystemExit(f"render_calls: the held-out split has no {', '.join(empty)}")
    return pools


class _Deck:
    """Draw sentences without repeats until a pool is used up, then reshuffle (rep lines are few)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._left: dict[int, list[Example]] = {}

    def draw(self, pool: tuple[Example, ...]) -> Example:
        left = self._left.get(id(pool))
        if not left:
            left = self._left[id(pool)] = [pool[i] for i in self._rng.permutation(len(pool))]
        return left.pop()


def plan_call(pools: Pools, rng: np.random.Generator, deck: _Deck, voices: tuple[str, str]) -> list[Line]:
    """One call's lines, in order: rep turns ending on a question (or a proposed next step) and the
    buyer's answers. Like the dev calls' utterances (median ~20 words), a line may hold two
    sentences: a buyer intent with an ``other`` sentence before or after it (labelled with the
    intent), a rep statement before the rep's question."""
    rep_voice, buyer_voice = voices
    # espeak-ng's clips, trimmed, run ~25 % faster than -s: these give the dev calls' 150-180 wpm.
    rep_wpm, buyer_wpm = int(rng.integers(122, 138)), int(rng.integers(130, 146))
    kinds = [str(k) for k in rng.permutation(INTENTS)][: int(rng.integers(8, 11))]
    buyer: list[tuple[str, str]] = []
    for kind in kinds:
        text = deck.draw(pools.buyer_intents[kind]).text
        if rng.random() < 0.4:
            aside = deck.draw(pools.buyer_other).text
            text = f"{aside} {text}" if rng.random() < 0.6 else f"{text} {aside}"
        buyer.append((kind, text))
    buyer += [(FALLBACK_LABEL, deck.draw(pools.buyer_other).text) for _ in range(int(rng.integers(2, 5)))]
    order = [buyer[i] for i in rng.permutation(len(buyer))]
    # Some buyer turns are two lines (never the same kind twice: the coach raises a kind once a turn).
    turns: list[list[tuple[str, str]]] = []
    for unit in order:
        last = turns[-1] if turns else None
        if last is not None and len(last) == 1 and last[0][0] != unit[0] and rng.random() < 0.3:
            last.append(unit)
        else:
            turns.append([unit])

    def gap() -> float:
        return round(float(rng.uniform(0.2, 1.5)), 3)

    def rep_line(examples: list[Example]) -> Line:
        label = "next_step" if any(e.label == "next_step" for e in examples) else FALLBACK_LABEL
        return Line("rep", label, " ".join(e.text for e in examples), gap(), rep_wpm, rep_voice)

    lines: list[Line] = []
    for n, turn in enumerate(turns):
        for _ in range(int(rng.integers(0, 2))):
            lines.append(rep_line([deck.draw(pools.rep_statements) for _ in range(int(rng.integers(1, 3)))]))
        last = [deck.draw(pools.rep_statements)] if rng.random() < 0.5 else []
        if n == len(turns) - 1 and pools.rep_next_steps and rng.random() < 0.6:
            last.append(deck.draw(pools.rep_next_steps))  # a proposed next step, as the dev calls close
        else:
            last.append(deck.draw(pools.rep_questions))
        lines.append(rep_line(last))
        for label, text in turn:
            lines.append(Line("buyer", label, text, gap(), buyer_wpm, buyer_voice))
    lines.append(rep_line([deck.draw(pools.rep_statements)]))
    return lines


def timeline_dynamics(utterances: list[dict[str, object]]) -> list[dict[str, object]]:
    """The corpus's dynamics on a timeline without overlaps: monologues and fast stretches of the rep
    (interruptions and long silences cannot occur: no overlap, no gap >= 2 s)."""
    out: list[dict[str, object]] = []
    runs: list[list[dict[str, object]]] = []
    for u in utterances:
        if u["speaker"] == "rep":
            if runs and runs[-1] and float(u["start"]) - float(runs[-1][-1]["end"]) < _MONOLOGUE_GAP_S:  # type: ignore[arg-type]
                runs[-1].append(u)
            else:
                runs.append([u])
        else:
            runs.append([])
    for run in (r for r in runs if r):
        start, end = float(run[0]["start"]), float(run[-1]["end"])  # type: ignore[arg-type]
        if end - start > _MONOLOGUE_SPAN_S:
            out.append({"type": "rep_monologue", "start": start, "end": end})
        fast: list[dict[str, object]] = []
        for u in [*run, None]:
            if u is not None and _wpm(u) >= _FAST_WPM:
                fast.append(u)
                continue
            if fast:
                a, b = float(fast[0]["start"]), float(fast[-1]["end"])  # type: ignore[arg-type]
                words = sum(len(str(x["text"]).split()) for x in fast)
                if b - a >= _FAST_SPAN_S and words / (b - a) * 60 >= _FAST_WPM:
                    out.append({"type": "rep_fast_speech", "start": a, "end": b})
            fast = []
    return sorted(out, key=lambda d: float(d["start"]))  # type: ignore[arg-type]


def _wpm(u: dict[str, object]) -> float:
    return len(str(u["text"]).split()) / (float(u["end"]) - float(u["start"])) * 60  # type: ignore[arg-type]


def _mic_channel(rep: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The rep's headset mic as the dev calls measure it: speech ~0.08 RMS, room noise ~30 dB under it."""
    voiced = rep[np.abs(rep) > 0.01]
    level = float(np.sqrt(np.mean(voiced**2))) if voiced.size else 1.0
    rep = rep * (rng.uniform(0.07, 0.095) / max(level, 1e-6))
    speech_rms = float(np.sqrt(np.mean(rep[np.abs(rep) > 0.01] ** 2))) if voiced.size else 0.08
    return rep + rng.normal(0.0, speech_rms / 10 ** (rng.uniform(27.0, 33.0) / 20), len(rep))


def render_call(lines: list[Line], call_id: str, out_dir: Path, rng: np.random.Generator,
                voicer: Voicer | None = None) -> dict[str, object]:  # fmt: skip
    """Voice and place the lines; write ``<call_id>.wav`` and ``<call_id>.json`` into ``out_dir``.
    ``voicer`` defaults to espeak-ng; a Kokoro voicer speaks each espeak voice's counterpart."""
    from firmware.testing.render import EspeakVoicer, write_call  # the project's voicers and call layout
    from render_intent_asr import line_channel  # the dev-matched phone line

    voicer = voicer or EspeakVoicer()
    kokoro = voicer.voice_key == "kokoro"
    clips, placed, cursor = [], [], 0.5
    for line in lines:
        clip = voicer.speak(line.text, KOKORO_VOICES[line.voice] if kokoro else line.voice, line.words_per_min) * 0.5
        start = round(cursor + line.gap_s, 3)
        end = round(start + len(clip) / RATE_HZ, 3)
        clips.append(clip)
        placed.append({"speaker": line.speaker, "start": start, "end": end, "text": line.text, "label": line.label})
        cursor = end
    total = int((cursor + 1.5) * RATE_HZ)
    write_call(out_dir / f"{call_id}.wav", clips, placed, total,
               phone_line=lambda buyer: line_channel(buyer, rng, RATE_HZ), room=lambda rep: _mic_channel(rep, rng))
    truth: dict[str, object] = {
        "call_id": call_id,
        "sample_rate": RATE_HZ,
        "channels": {"0": "rep", "1": "buyer"},
        "duration_s": round(total / RATE_HZ, 3),
        "source": "synthetic: intent held-out sentences (tools/render_calls.py)",
        "voices": {speaker: next(((KOKORO_VOICES[line.voice] if kokoro else line.voice) for line in lines
                                  if line.speaker == speaker), None) for speaker in ("rep", "buyer")},  # fmt: skip
        "voicer": voicer.version,
        "utterances": placed,
        "expected": {
            "moments": [{"type": u["label"], "utterance_index": i} for i, u in enumerate(placed)
                        if u["speaker"] == "buyer" and u["label"] != FALLBACK_LABEL],
            "dynamics": timeline_dynamics(placed),
        },
    }
    (out_dir / f"{call_id}.json").write_text(json.dumps(truth, indent=1), encoding="utf-8")
    return truth


def render_corpus(out: Path, calls: int, seed: int, data: Path = DATA, max_buyer_turns: int | None = None,
                  voicer: Voicer | None = None) -> list[Path]:  # fmt: skip
    pools = heldout_pools(read_examples(data))
    rng = np.random.default_rng(seed)
    deck = _Deck(rng)  # one deck for the corpus: buyer sentences are not repeated across calls
    written = []
    for n in range(calls):
        picks = rng.choice(len(VOICES), 2, replace=False)
        lines = plan_call(pools, rng, deck, (VOICES[int(picks[0])], VOICES[int(picks[1])]))
        if max_buyer_turns is not None:
            lines = _first_buyer_turns(lines, max_buyer_turns)
        call_id = f"scall{n + 1:02d}_seed{seed}"
        render_call(lines, call_id, out / "calls", np.random.default_rng([seed, n]), voicer)
        written.append(out / "calls" / f"{call_id}.json")
    return written


def _first_buyer_turns(lines: list[Line], turns: int) -> list[Line]:
    """A short call: the lines up to and including the buyer's first ``turns`` turns."""
    seen, cut = 0, len(lines)
    for i, line in enumerate(lines):
        if line.speaker == "buyer" and (i == 0 or lines[i - 1].speaker == "rep"):
            seen += 1
            if seen > turns:
                cut = i
                break
    return lines[:cut]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="output directory (calls go to OUT/calls/)")
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data", type=Path, default=DATA, help="intent sentences TSV (its held-out rows are used)")
    parser.add_argument("--max-buyer-turns", type=int, help="cut each call after this many buyer turns")
    parser.add_argument("--voices", choices=("kokoro", "espeak"), default="kokoro", help="Kokoro-82M (default) or espeak-ng")
    args = parser.parse_args()
    os.nice(10)  # batch work on a shared machine
    from firmware.errors import ParallaxError
    from firmware.testing.render import EspeakVoicer, KokoroVoicer

    try:
        if args.voices == "kokoro":
            from firmware.testing.kokoro import assets_dir, provision

            provision(assets_dir(REPO / "models"))
        voicer = KokoroVoicer(REPO / "models") if args.voices == "kokoro" else EspeakVoicer()
    except ParallaxError as exc:
        print(f"render_calls: {exc}", file=sys.stderr)
        return 1
    for path in render_corpus(args.out, args.calls, args.seed, args.data, args.max_buyer_turns, voicer):
        truth = json.loads(path.read_text(encoding="utf-8"))
        print(f"{path.stem}: {truth['duration_s']:.0f} s, {len(truth['utterances'])} utterances, "
              f"{len(truth['expected']['moments'])} moments, {len(truth['expected']['dynamics'])} dynamics")
    return 0


if __name__ == "__main__":
    sys.exit(main())
