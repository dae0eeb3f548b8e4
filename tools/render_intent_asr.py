#!/usr/bin/env python3
"""Speak the intent training sentences and transcribe them with the box's own recogniser.

The intent model has to cope with what Whisper tiny.en really writes for a buyer on a phone
line, so each training sentence is voiced by espeak-ng (voices and speeds varied), sent through
the same channel model as the demo calls (phone band + mu-law for buyers, headset mic for reps)
and transcribed by the configured recogniser. The output TSV
(``id<TAB>voice<TAB>channel<TAB>text``) is training data for ``tools/train_intent.py``;
re-running resumes where it stopped. Never point this at the dev corpus.

    python tools/render_intent_asr.py [--limit N] [--passes 1]
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DATA = REPO / "models" / "intent" / "data"
VOICES = (
    "en-gb+f2", "en-us+m3", "en-gb-scotland+m1", "en-us+f4", "en-gb-x-rp+m2", "en-029+f1",
    "en-us-nyc+m4", "en-gb-x-gbclan+f3", "en-gb-x-gbcwmd+m5", "en-us+f2",
)


def line_channel(clip: np.ndarray, rng: np.random.Generator, rate_hz: int) -> np.ndarray:
    """A buyer's phone line as the dev calls measure it: speech at ~0.07 RMS (peaks ~0.7), white
    line noise added at 8 kHz ~20 dB under the speech, then 300-3400 Hz band-pass and G.711 mu-law.
    Unlike the demo renderer's broadband hiss, all of the noise sits inside the speech band."""
    import soxr

    voiced = clip[np.abs(clip) > 0.01]
    clip = clip * (rng.uniform(0.055, 0.085) / max(float(np.sqrt(np.mean(voiced**2))) if voiced.size else 1.0, 1e-6))
    narrow = soxr.resample(clip.astype(np.float32), rate_hz, 8000).astype(np.float64)
    speech_rms = float(np.sqrt(np.mean(narrow[np.abs(narrow) > 0.01] ** 2))) if np.any(np.abs(narrow) > 0.01) else 0.05
    band = (3400 - 300) / 4000  # white noise keeps this share of its power through the band-pass
    noise_rms = speech_rms / 10 ** (rng.uniform(17.0, 23.0) / 20) / np.sqrt(band)
    narrow = narrow + rng.normal(0.0, noise_rms, len(narrow))
    spectrum = np.fft.rfft(narrow)
    freqs = np.fft.rfftfreq(len(narrow), 1 / 8000)
    spectrum[(freqs < 300) | (freqs > 3400)] = 0
    narrow = np.fft.irfft(spectrum, len(narrow))
    mu = 255.0
    coded = np.round(np.sign(narrow) * np.log1p(mu * np.clip(np.abs(narrow), 0, 1)) / np.log1p(mu) * 127) / 127
    narrow = np.sign(coded) * np.expm1(np.abs(coded) * np.log1p(mu)) / mu
    return soxr.resample(narrow.astype(np.float32), 8000, rate_hz)[: len(clip)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=DATA / "utterances.tsv")
    parser.add_argument("--out", type=Path, default=DATA / "asr_transcripts.tsv")
    parser.add_argument("--passes", type=int, default=1, help="voicings per sentence (each a different voice)")
    parser.add_argument("--limit", type=int, default=0, help="stop after this many new clips (0 = all)")
    parser.add_argument("--phone", choices=("line", "demo"), default="line",
                        help="buyer channel: 'line' matches the dev calls (in-band line noise); 'demo' is the "
                             "demo renderer's (broadband hiss), which produced the transcripts marked 'phone'")
    parser.add_argument("--pass-offset", type=int, default=0, help="first pass number (picks other voices)")
    args = parser.parse_args()

    from firmware.config import load_config
    from firmware.speech.recognizer import load_recognizer
    from firmware.testing.render import RATE_HZ, _phone_line, _speak  # same channel model as the demo calls

    config = load_config(None)
    recognizer = load_recognizer(config.paths.resolve(config.paths.models_dir), config.speech.recognizer)
    with args.source.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    done: set[tuple[str, str]] = set()
    if args.out.is_file():
        with args.out.open(encoding="utf-8") as f:
            done = {(r["id"], r["voice"]) for r in csv.DictReader(f, delimiter="\t")}
    new_file = not args.out.is_file()
    made = 0
    with args.out.open("a", encoding="utf-8") as out:
        if new_file:
            out.write("id\tvoice\tchannel\ttext\n")
        # Passes outermost and a fixed shuffle, so a partial run still covers every label.
        order = np.random.default_rng(0).permutation(len(rows))
        for p in range(args.pass_offset, args.pass_offset + args.passes):
            for index in (int(i) for i in order):
                row = rows[index]
                voice = VOICES[(index * 7 + p * 3) % len(VOICES)]
                if (row["id"], voice) in done:
                    continue
                rng = np.random.default_rng(index * 10 + p)
                wpm = int(rng.integers(140, 185))
                clip = _speak(row["text"], voice, wpm) * 0.5
                pad = np.zeros(int(0.3 * RATE_HZ), np.float32)  # the segmenter's padding either side
                clip = np.concatenate((pad, clip, pad))
                # Buyers come over the phone line; reps on the headset mic.
                channel = ("phone-line" if args.phone == "line" else "phone") if row["speaker"] == "buyer" else "mic"
                if channel == "phone-line":
                    clip = line_channel(clip, rng, RATE_HZ)
                elif channel == "phone":
                    clip = _phone_line(clip, rng)
                else:
                    clip = clip + rng.normal(0, 10 ** (-50 / 20), len(clip)).astype(np.float32)
                text = " ".join(recognizer.transcribe(clip.astype(np.float32)).split())
                out.write(f"{row['id']}\t{voice}\t{channel}\t{text}\n")
                out.flush()
                made += 1
                if made % 50 == 0:
                    print(f"{made} clips", file=sys.stderr)
                if args.limit and made >= args.limit:
                    return 0
    print(f"{made} new clips -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
