#!/usr/bin/env python3
"""Render the held-out calibration calls: natural voices, varied lines, sentences no model saw.

Every threshold, model and reading rule is chosen on these calls; the dev corpora only confirm.
So nothing in them comes from what was tuned on: the sentences are filled from the templates of
``tools/calibration_bank.toml``, written for this set and checked against the intent model's
data (training and held-out rows) and the dev calls (tests/test_render_calibration.py).

Every call is its own conversation by default: 40 calls are 40 scripts, so a rule chosen here
meets 40 different buyers. Synthesis costs ~0.7 CPU-s per second of speech: the 40 calls of seed 1
(43 min of audio) took 1,365 CPU-s, 21 min on two shards of a shared two-core machine.
``--per-script 2`` or ``3`` hears each conversation over that many lines (PSTN and VoIP, other
noise and leak levels) for a half or a third of the synthesis.

Each call, in the dev corpus format (``OUT/calls/<call_id>.wav`` + ``.json``, see the dev
README), opens with greetings and small talk, then alternates the rep's questions with the
buyer's answers (three to five moments of different kinds, perhaps a filler line) and closes on a
proposed next step. Voices are Kokoro-82M's English packs, all four groups (American and British,
female and male) for both parties. Conditions are spread over the calls, recorded in the truth
JSON under ``conditions``:

- the buyer's line: ``pstn`` (8 kHz G.711 mu-law, 300-3400 Hz) or ``voip`` (16 kHz wideband
  Opus at 12-24 kbit/s through opus-tools, 50-7000 Hz, 0-3 % packets lost and concealed);
- line noise at 35, 28, 22, 16 or 12 dB under the buyer's speech (clean to poor), in band;
- the earpiece leak into the rep's mic: none, -35, -25, -18 or -12 dB against the line (3 ms);
- room noise at the rep's mic 24-34 dB under the rep's speech.

Clips are cached by text, voice, speed and renderer (``OUT/clips``), so a corpus re-renders with
other conditions in seconds. Deterministic from ``--seed``; the first N calls do not depend on how
many follow; ``--shard i/k`` renders every k-th conversation for parallel runs. Runs niced.

    python tools/render_calibration.py models/.cache/calibration --calls 40 --seed 1
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

from render_calls import timeline_dynamics  # noqa: E402  (the corpus's dynamics definitions)

from firmware.intent.labels import FALLBACK_LABEL  # noqa: E402

BANK = REPO / "tools" / "calibration_bank.toml"
RATE_HZ = 16000
VERSION = 2  # of the planning and line models: bump when a seed's calls change (2: reps at a natural pace)
INTENTS = ("objection_price", "objection_timing", "objection_authority", "objection_need", "objection_risk",
           "competitor_mention", "buying_signal", "pain_point", "product_question")  # fmt: skip
# af_nicole is a breathy near-whisper, an edge case of its own (dev-kokoro/edge), not a regular buyer.
VOICE_GROUPS = {
    "af": ("af_alloy", "af_aoede", "af_bella", "af_heart", "af_jessica", "af_kore", "af_nova", "af_river", "af_sarah", "af_sky"),
    "am": ("am_adam", "am_echo", "am_eric", "am_fenrir", "am_liam", "am_michael", "am_onyx", "am_puck"),
    "bf": ("bf_alice", "bf_emma", "bf_isabella", "bf_lily"),
    "bm": ("bm_daniel", "bm_fable", "bm_george", "bm_lewis"),
}
SNR_DB = (35.0, 28.0, 22.0, 16.0, 12.0)
LEAK_DB: tuple[float | None, ...] = (None, -35.0, -25.0, -18.0, -12.0)
_LEAK_DELAY = 48  # samples: the 3 ms earpiece-to-mic path


class Voicer(Protocol):
    version: str

    def speak(self, text: str, voice: str, speed: float) -> np.ndarray: ...


@dataclass(frozen=True)
class Line:
    speaker: str
    label: str
    text: str
    gap_s: float
    voice: str
    speed: float


@dataclass(frozen=True)
class Conditions:
    line: str  # "pstn" | "voip"
    snr_db: float
    leak_db: float | None
    room_snr_db: float
    opus_kbps: int | None
    packet_loss_pct: float | None


def load_bank(path: Path = BANK) -> dict[str, dict[str, list[str]]]:
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    bank: dict[str, dict[str, list[str]]] = {"slots": raw["slots"]}
    for side in ("rep", "buyer"):
        for kind, table in raw[side].items():
            bank[f"{side}.{kind}"] = list(table["lines"])
    return bank


_SLOT = re.compile(r"\{([a-z_]+)\}")


def fill(template: str, slots: dict[str, str]) -> str:
    text = _SLOT.sub(lambda m: slots[m.group(1)], template)
    return text[:1].upper() + text[1:]


class _Deck:
    """Templates drawn without repeats until a list is used up, then reshuffled."""

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._left: dict[str, list[str]] = {}

    def draw(self, bank: dict[str, list[str]], key: str) -> str:
        left = self._left.get(key)
        if not left:
            left = self._left[key] = [bank[key][i] for i in self._rng.permutation(len(bank[key]))]
        return left.pop()


def script_voices(k: int, rng: np.random.Generator) -> tuple[str, str]:
    """(rep, buyer) voices of script ``k``: all 16 pairings of the four groups within 16 scripts."""
    groups = tuple(VOICE_GROUPS)
    buyer_group = groups[k % 4]
    rep_group = groups[(k // 4 + 1 + k) % 4]
    rep_voice = str(rng.choice(VOICE_GROUPS[rep_group]))
    return rep_voice, str(rng.choice([v for v in VOICE_GROUPS[buyer_group] if v != rep_voice]))


def call_conditions(n: int, rng: np.random.Generator) -> Conditions:
    """The line of call ``n``: every line kind with every noise level within 10 consecutive calls,
    every leak level within 5 (cycled), bit rates, losses and room noise drawn."""
    line = "pstn" if n % 2 == 0 else "voip"
    conditions = Conditions(
        line=line,
        snr_db=SNR_DB[(n // 2) % 5],
        leak_db=LEAK_DB[(n + n // 5) % 5],
        room_snr_db=round(float(rng.uniform(24.0, 34.0)), 1),
        opus_kbps=int(rng.choice([12, 16, 20, 24])) if line == "voip" else None,
        packet_loss_pct=float(rng.choice([0.0, 1.0, 2.0, 3.0])) if line == "voip" else None,
    )
    return conditions


# Kokoro speaks these lines at about 220 wpm per unit of speed. Real reps average ~173 wpm
# (engineering notes); some talk fast throughout. So most reps here are ordinary (speed 0.70-0.84,
# about 155-185 wpm) and FAST_REP_SHARE of them fast (0.92-1.08, about 205-240 wpm): the fast-speech
# dynamics have stretches to find, and the ordinary reps show whether the box cries wolf. (v1 drew
# every rep at 0.95-1.12, 229 wpm median: 82 % of rep lines were fast and false alarms unmeasurable.)
FAST_REP_SHARE = 0.3


def rep_speed_for(u: float) -> float:
    """The rep's Kokoro speed for a uniform draw ``u`` in [0, 1) (one draw, so the rest of a
    call's plan, the buyer's lines included, does not move)."""
    if u < FAST_REP_SHARE:
        return round(0.92 + 0.16 * u / FAST_REP_SHARE, 2)
    return round(0.70 + 0.14 * (u - FAST_REP_SHARE) / (1.0 - FAST_REP_SHARE), 2)


def plan_call(bank: dict[str, list[str]], rng: np.random.Generator, deck: _Deck, voices: tuple[str, str]) -> list[Line]:
    slots = {name: str(rng.choice(values)) for name, values in bank["slots"].items()}  # type: ignore[arg-type]
    rep_voice, buyer_voice = voices
    rep_speed, buyer_speed = rep_speed_for(float(rng.uniform(0.0, 1.0))), round(float(rng.uniform(0.92, 1.08)), 2)
    lines: list[Line] = []

    def gap() -> float:
        return round(float(rng.uniform(0.25, 1.4)), 3)

    def rep(*keys: str, label: str = FALLBACK_LABEL) -> None:
        text = " ".join(fill(deck.draw(bank, f"rep.{k}"), slots) for k in keys)
        lines.append(Line("rep", label, text, gap(), rep_voice, rep_speed))

    def buyer(key: str, label: str) -> None:
        text = fill(deck.draw(bank, f"buyer.{key}"), slots)
        if label != FALLBACK_LABEL and rng.random() < 0.25:  # "Right, okay. <the moment>"
            text = f"{fill(deck.draw(bank, 'buyer.filler'), slots)} {text}"
        lines.append(Line("buyer", label, text, gap(), buyer_voice, buyer_speed))

    # The opening: greetings and small talk, nothing the coach should raise.
    rep("opening")
    buyer("opening", FALLBACK_LABEL)
    rep("smalltalk")
    buyer("smalltalk", FALLBACK_LABEL)
    rep(*(("agenda", "question") if rng.random() < 0.3 else ("question",)))
    # The body: three to five moments of different kinds, perhaps a filler answer among them.
    kinds = [str(k) for k in rng.permutation(INTENTS)][: int(rng.integers(3, 6))]
    answers = [(k, k) for k in kinds] + [("filler", FALLBACK_LABEL)] * int(rng.random() < 0.3)
    answers = [answers[i] for i in rng.permutation(len(answers))]
    buyer(*answers[0])
    for key, label in answers[1:]:
        rep(*(("statement", "question") if rng.random() < 0.15 else ("question",)))
        buyer(key, label)
    # The close: the rep proposes a next step; most buyers agree to one.
    rep("next_step", label="next_step")
    if rng.random() < 0.75:
        buyer("next_step", "next_step")
    else:
        buyer("filler", FALLBACK_LABEL)
    if rng.random() < 0.3:
        rep("closing")
    return lines


# ---- the lines -------------------------------------------------------------------------------


def _rms(x: np.ndarray) -> float:
    loud = x[np.abs(x) > 0.01 * max(float(np.max(np.abs(x))), 1e-9)] if x.size else x
    return float(np.sqrt(np.mean(loud**2))) if loud.size else 0.0


def _band(x: np.ndarray, rate: int, lo: float, hi: float) -> np.ndarray:
    spectrum = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    spectrum[(freqs < lo) | (freqs > hi)] = 0
    return np.fft.irfft(spectrum, len(x))


def _speech_level(buyer: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """The buyer at the dev calls' line level (speech ~0.07 RMS) and that speech level."""
    gain = rng.uniform(0.055, 0.085) / max(_rms(buyer), 1e-6)
    return buyer * gain, _rms(buyer * gain)


def pstn_line(buyer: np.ndarray, rng: np.random.Generator, snr_db: float) -> np.ndarray:
    """8 kHz narrowband: in-band noise ``snr_db`` under the speech, 300-3400 Hz, G.711 mu-law."""
    import soxr

    buyer, _ = _speech_level(buyer, rng)
    narrow = soxr.resample(buyer.astype(np.float32), RATE_HZ, 8000).astype(np.float64)
    speech = _rms(_band(narrow, 8000, 300, 3400))  # the SNR is the line's, in its band
    noise = rng.normal(0.0, 1.0, len(narrow))
    noise = _band(noise, 8000, 300, 3400)
    narrow = narrow + noise * (speech / 10 ** (snr_db / 20) / max(float(np.sqrt(np.mean(noise**2))), 1e-9))
    narrow = _band(narrow, 8000, 300, 3400)
    mu = 255.0
    coded = np.round(np.sign(narrow) * np.log1p(mu * np.clip(np.abs(narrow), 0, 1)) / np.log1p(mu) * 127) / 127
    narrow = np.sign(coded) * np.expm1(np.abs(coded) * np.log1p(mu)) / mu
    return soxr.resample(narrow.astype(np.float32), 8000, RATE_HZ)[: len(buyer)].astype(np.float64)


def _write_wav(path: Path, x: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE_HZ)
        w.writeframes(np.round(np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())


def voip_line(buyer: np.ndarray, rng: np.random.Generator, snr_db: float, kbps: int, loss_pct: float) -> np.ndarray:
    """16 kHz wideband VoIP: noise ``snr_db`` under the speech (50-7000 Hz), then a real Opus
    encode at ``kbps`` and decode with ``loss_pct`` % of packets lost and concealed (opus-tools)."""
    if shutil.which("opusenc") is None or shutil.which("opusdec") is None:
        raise SystemExit("render_calibration: opus-tools is not installed (apt-get install opus-tools; tools/bootstrap does)")
    buyer, _ = _speech_level(buyer, rng)
    speech = _rms(_band(buyer, RATE_HZ, 50, 7000))
    noise = _band(rng.normal(0.0, 1.0, len(buyer)), RATE_HZ, 50, 7000)
    x = _band(buyer + noise * (speech / 10 ** (snr_db / 20) / max(float(np.sqrt(np.mean(noise**2))), 1e-9)), RATE_HZ, 50, 7000)
    with tempfile.TemporaryDirectory(prefix="voip-") as tmp:
        src, coded, out = Path(tmp) / "in.wav", Path(tmp) / "x.opus", Path(tmp) / "out.wav"
        _write_wav(src, x)
        subprocess.run(["opusenc", "--quiet", "--bitrate", str(kbps), "--framesize", "20", "--max-delay", "0",
                        "--serial", "1", str(src), str(coded)], check=True)  # fmt: skip
        # opusdec draws its losses from a fixed seed: the same call decodes the same way every time.
        subprocess.run(["opusdec", "--quiet", "--rate", str(RATE_HZ), "--packet-loss", str(loss_pct), str(coded), str(out)],
                       check=True)  # fmt: skip
        with wave.open(str(out)) as w:
            y = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64) / 32768.0
    y = y[: len(x)]
    return np.concatenate([y, np.zeros(len(x) - len(y))])


def mic_channel(rep: np.ndarray, rng: np.random.Generator, room_snr_db: float) -> np.ndarray:
    """The rep's headset mic: speech ~0.08 RMS, white room noise ``room_snr_db`` under it."""
    rep = rep * (rng.uniform(0.07, 0.095) / max(_rms(rep), 1e-6))
    return rep + rng.normal(0.0, _rms(rep) / 10 ** (room_snr_db / 20), len(rep))


# ---- voicing and writing ---------------------------------------------------------------------


class CachedVoicer:
    """Kokoro clips cached on disk by (text, voice, speed, renderer version)."""

    def __init__(self, inner: Voicer, cache: Path) -> None:
        self.inner, self.cache = inner, cache
        self.version = inner.version
        self.synth_s = 0.0
        self.speech_s = 0.0

    def speak(self, text: str, voice: str, speed: float) -> np.ndarray:
        key = hashlib.sha256(f"{self.version}\0{voice}\0{speed}\0{text}".encode()).hexdigest()[:20]
        path = self.cache / f"{key}.npy"
        if path.is_file():
            return np.load(path)
        started = time.process_time()
        clip = self.inner.speak(text, voice, speed).astype(np.float32)
        self.synth_s += time.process_time() - started
        self.speech_s += len(clip) / RATE_HZ
        self.cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.npy")
        np.save(tmp, clip)
        tmp.replace(path)
        return clip


class KokoroLines:
    """The real voicer: Kokoro-82M at a given speed (one thread)."""

    def __init__(self, models_dir: Path) -> None:
        from firmware.testing.kokoro import RENDERER_VERSION, Kokoro, KokoroAssets, assets_dir, provision

        self.version = RENDERER_VERSION
        self._kokoro = Kokoro(provision(assets_dir(models_dir)))

    def speak(self, text: str, voice: str, speed: float) -> np.ndarray:
        return self._kokoro.speak(text, voice, speed)


def render_call(lines: list[Line], call_id: str, out_dir: Path, rng: np.random.Generator, conditions: Conditions,
                voicer: Voicer, conversation: int | None = None) -> dict[str, object]:  # fmt: skip
    clips, placed, cursor = [], [], 0.5
    for line in lines:
        clip = voicer.speak(line.text, line.voice, line.speed)
        start = round(cursor + line.gap_s, 3)
        end = round(start + len(clip) / RATE_HZ, 3)
        clips.append(clip)
        placed.append({"speaker": line.speaker, "start": start, "end": end, "text": line.text, "label": line.label})
        cursor = end
    total = int((cursor + 1.5) * RATE_HZ)
    rep, buyer = np.zeros(total), np.zeros(total)
    for clip, u in zip(clips, placed):
        lo = int(round(float(u["start"]) * RATE_HZ))  # type: ignore[arg-type]
        (rep if u["speaker"] == "rep" else buyer)[lo : lo + len(clip)] += clip
    if conditions.line == "pstn":
        line_audio = pstn_line(buyer, rng, conditions.snr_db)
    else:
        line_audio = voip_line(buyer, rng, conditions.snr_db, conditions.opus_kbps or 16, conditions.packet_loss_pct or 0.0)
    mic = mic_channel(rep, rng, conditions.room_snr_db)
    if conditions.leak_db is not None:
        mic = mic + np.concatenate((np.zeros(_LEAK_DELAY), line_audio[:-_LEAK_DELAY])) * 10 ** (conditions.leak_db / 20)
    stereo = np.clip(np.stack([mic, line_audio], axis=1), -1, 1)
    out_dir.mkdir(parents=True, exist_ok=True)
    wav = out_dir / f"{call_id}.wav"
    tmp = out_dir / f".{call_id}.{os.getpid()}.wav"
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(RATE_HZ)
        w.writeframes(np.round(stereo * 32767).astype("<i2").tobytes())
    truth: dict[str, object] = {
        "call_id": call_id,
        "sample_rate": RATE_HZ,
        "channels": {"0": "rep", "1": "buyer"},
        "duration_s": round(total / RATE_HZ, 3),
        "source": f"held-out calibration set (tools/render_calibration.py v{VERSION}, {voicer.version})",
        "conversation": conversation,  # calls with the same number are one script heard over other lines
        "voices": {"rep": lines[0].voice, "buyer": next(line.voice for line in lines if line.speaker == "buyer")},
        "conditions": {"line": conditions.line, "snr_db": conditions.snr_db, "leak_db": conditions.leak_db,
                       "room_snr_db": conditions.room_snr_db, "opus_kbps": conditions.opus_kbps,
                       "packet_loss_pct": conditions.packet_loss_pct},  # fmt: skip
        "utterances": placed,
        "expected": {
            "moments": [{"type": u["label"], "utterance_index": i} for i, u in enumerate(placed)
                        if u["speaker"] == "buyer" and u["label"] != FALLBACK_LABEL],  # fmt: skip
            "dynamics": timeline_dynamics(placed),
        },
    }
    json_tmp = out_dir / f".{call_id}.{os.getpid()}.json"
    json_tmp.write_text(json.dumps(truth, indent=1), encoding="utf-8")
    json_tmp.replace(out_dir / f"{call_id}.json")
    tmp.replace(wav)  # the WAV last: a WAV present means its JSON is too
    return truth


def plan_corpus(calls: int, seed: int, bank: dict[str, list[str]] | None = None,
                per_script: int = 1) -> list[tuple[str, list[Line], Conditions]]:  # fmt: skip
    """The calls: script ``n // per_script`` over call ``n``'s line. With ``per_script`` 1 (the
    default) every call is its own conversation; 2 or 3 hear each conversation over that many
    lines, PSTN and VoIP alternating, each with other noise and leak levels, for a half or a third
    of the synthesis. Script k is the same whatever ``per_script``."""
    bank = bank or load_bank()
    deck = _Deck(np.random.default_rng([seed, 9999]))
    scripts: list[list[Line]] = []
    planned = []
    for n in range(calls):
        k = n // per_script
        if k == len(scripts):
            rng = np.random.default_rng([seed, 7777, k])
            scripts.append(plan_call(bank, rng, deck, script_voices(k, rng)))
        conditions = call_conditions(n, np.random.default_rng([seed, n]))
        planned.append((f"kcal{n + 1:02d}_s{seed}_{conditions.line}", scripts[k], conditions))
    return planned


def render_corpus(out: Path, calls: int, seed: int, voicer: Voicer, shard: tuple[int, int] = (0, 1),
                  log: bool = False, per_script: int = 1) -> list[Path]:  # fmt: skip
    written = []
    for n, (call_id, lines, conditions) in enumerate(plan_corpus(calls, seed, per_script=per_script)):
        if (n // per_script) % shard[1] != shard[0]:  # by conversation: a shard voices its own lines
            continue
        path = out / "calls" / f"{call_id}.json"
        if path.is_file() and path.with_suffix(".wav").is_file():
            written.append(path)
            continue
        started = time.monotonic()
        truth = render_call(lines, call_id, out / "calls", np.random.default_rng([seed, n, 1]), conditions, voicer,
                            n // per_script)
        written.append(path)
        if log:
            print(f"{call_id}: {truth['duration_s']:.0f} s, {len(lines)} lines, "
                  f"{len(truth['expected']['moments'])} moments, {conditions}, "  # type: ignore[index]
                  f"{time.monotonic() - started:.0f} s wall", flush=True)  # fmt: skip
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="output directory (calls go to OUT/calls/, clips to OUT/clips/)")
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--shard", default="0/1", help="i/k: render the conversations c with c %% k == i (parallel runs)")
    parser.add_argument("--per-script", type=int, choices=(1, 2, 3), default=1,
                        help="calls per conversation, each over another line (default 1: all distinct)")
    parser.add_argument("--models", type=Path, default=REPO / "models", help="models dir (Kokoro assets in .cache/kokoro)")
    args = parser.parse_args()
    try:
        i, k = (int(x) for x in args.shard.split("/"))
        if not 0 <= i < k:
            raise ValueError
    except ValueError:
        print(f"render_calibration: --shard must be i/k with 0 <= i < k, not {args.shard!r}", file=sys.stderr)
        return 2
    os.nice(10)  # batch work on a shared machine
    from firmware.errors import ParallaxError

    try:
        voicer = CachedVoicer(KokoroLines(args.models), args.out / "clips")
        render_corpus(args.out, args.calls, args.seed, voicer, (i, k), log=True, per_script=args.per_script)
    except ParallaxError as exc:
        print(f"render_calibration: {exc}", file=sys.stderr)
        return 1
    if voicer.speech_s:
        print(f"synthesis: {voicer.synth_s:.0f} CPU-s for {voicer.speech_s:.0f} s of speech "
              f"(RTF {voicer.synth_s / voicer.speech_s:.2f})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
