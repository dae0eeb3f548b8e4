#!/usr/bin/env python3
"""Choose the speech-like-sound thresholds (``speech.sound``) on held-out material.

The box must not call audible speech silence when the VAD does not hear it (a breathy buyer, a
quiet one on a poor line). ``firmware.speech.sound.SoundMeter`` flags a channel whose level stands
``margin_db`` above its noise floor in ``min_frames`` of the last ``window_frames`` frames. This
tool renders buyer channels nothing was tuned on: held-out sentences of the intent data
(``is_heldout``) spoken by espeak-ng's whisper variants and by plain voices 14-26 dB quieter than
usual, through the renderer's 8 kHz mu-law phone line, with line noise from clean (-46 dBFS) to
poor (-36 dBFS) and a line whose noise swells and fades by +-4 dB. No dev or dev-kokoro audio, and
not the whispering edge call, takes part; those only confirm (tools/bench_coach.py).

For each setting it reports recall (frames inside spoken lines flagged as sound) and false
(frames in the pauses between lines flagged, and runs of 0.5 s or more of false sound, which is
what could stand in for speech). It picks the most sensitive setting whose false frames stay at
or under 0.5% and that makes no false run. Prints a table, then one JSON object as the last line.

    python tools/calibrate_sound.py --lines 24 --seed 5   # 6 voices x 4 line conditions
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from firmware.audio.frames import FRAME_SAMPLES  # noqa: E402
from firmware.testing.dataset import is_heldout, read_examples  # noqa: E402
from firmware.speech.config import SoundConfig  # noqa: E402
from firmware.speech.sound import SoundMeter  # noqa: E402

DATA = REPO / "models" / "intent" / "data" / "utterances.tsv"
RATE = 16000
# (espeak voice, level scale): whispers at the renderer's usual 0.5, plain voices much quieter.
VOICES = (("en-us+whisper", 0.5), ("en-gb+whisperf", 0.5), ("en-us+whisperf", 0.3), ("en-gb+whisper", 0.3),
          ("en-us+m3", 0.1), ("en-gb+f2", 0.05))
LINES = (("clean", -80.0, 0.0), ("fair", -42.0, 0.0), ("poor", -36.0, 0.0), ("swelling", -40.0, 4.0))
MARGINS_DB = (1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
WINDOWS = ((5, 3), (10, 5), (10, 7), (15, 10))
MAX_FALSE = 0.005
FALSE_RUN_S = 0.5


@dataclass(frozen=True)
class Channel:
    name: str
    audio: np.ndarray
    spans: list[tuple[float, float]]


def speak(text: str, voice: str) -> np.ndarray:
    out = subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "--stdout", text], check=True,
                         capture_output=True).stdout
    with wave.open(io.BytesIO(out)) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768.0
    import soxr

    pcm = soxr.resample(pcm, rate, RATE)
    voiced = np.flatnonzero(np.abs(pcm) > 0.003)
    return pcm[voiced[0] : voiced[-1] + 1] if len(voiced) else pcm


def render(index: int, sentences: list[str], rng: np.random.Generator) -> Channel:
    from firmware.testing.render import _phone_line

    voice, scale = VOICES[index % len(VOICES)]
    line, extra_db, swell_db = LINES[(index // len(VOICES)) % len(LINES)]
    clips, spans, cursor = [], [], 0.0
    for text in sentences:
        clip = speak(text, voice)
        clip = clip / max(float(np.max(np.abs(clip))), 1e-6) * scale
        start = cursor + float(rng.uniform(0.8, 3.0))
        clips.append((start, clip))
        spans.append((start, start + len(clip) / RATE))
        cursor = spans[-1][1]
    total = int((cursor + 2.0) * RATE)
    dry = np.zeros(total)
    for start, clip in clips:
        lo = int(start * RATE)
        dry[lo : lo + len(clip)] += clip
    audio = _phone_line(dry, rng)
    if extra_db > -80:
        noise = rng.normal(0, 10 ** (extra_db / 20), total)
        if swell_db:
            t = np.arange(total) / RATE
            noise *= 10 ** (swell_db * np.sin(2 * np.pi * t / 7.0) / 20)
        audio = audio + noise
    return Channel(f"{voice}@{scale:g} {line}", np.clip(audio, -1, 1).astype(np.float32), spans)


def score(channel: Channel, config: SoundConfig) -> tuple[int, int, int, int, int]:
    """(speech frames, flagged, pause frames, flagged, false runs of FALSE_RUN_S or more)."""
    meter = SoundMeter(config)
    n = len(channel.audio) // FRAME_SAMPLES
    flags = np.array([meter.accept(channel.audio[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES]) for i in range(n)])
    t = np.arange(n) * FRAME_SAMPLES / RATE
    speech = np.zeros(n, bool)
    pause = np.ones(n, bool)
    pause[t < 2.0] = False  # the floor needs a moment at the start of a call
    for s, e in channel.spans:
        speech |= (t >= s + 0.1) & (t < e - 0.1)
        pause &= ~((t >= s - 0.1) & (t < e + 0.4))  # the window's hangover after a line is not false
    false = flags & pause
    runs, run = 0, 0
    for f in false:
        run = run + 1 if f else 0
        runs += run == int(FALSE_RUN_S * RATE / FRAME_SAMPLES)
    return int(speech.sum()), int((flags & speech).sum()), int(pause.sum()), int(false.sum()), runs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=24, help="buyer channels to render (voices x line conditions)")
    ap.add_argument("--sentences", type=int, default=6, help="held-out sentences per channel")
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    held = [e.text for e in read_examples(DATA) if is_heldout(e.id) and e.speaker == "buyer"]
    if not held:
        print(f"no held-out buyer sentences in {DATA}", file=sys.stderr)
        return 2
    channels = [render(i, list(rng.choice(held, args.sentences, replace=False)), rng) for i in range(args.lines)]
    rows = []
    for margin in MARGINS_DB:
        for window, need in WINDOWS:
            cfg = SoundConfig(margin_db=margin, window_frames=window, min_frames=need)
            totals = np.sum([score(c, cfg) for c in channels], axis=0)
            worst = min(score(c, cfg)[1] / max(score(c, cfg)[0], 1) for c in channels)
            rows.append((cfg, totals[1] / totals[0], worst, totals[3] / totals[2], int(totals[4])))
    print(f"{len(channels)} held-out buyer channels, {args.sentences} sentences each: "
          + ", ".join(sorted({c.name for c in channels})))
    print(f"{'margin dB':>9} {'window':>6} {'need':>4} {'recall':>7} {'worst':>6} {'false':>7} {'false runs':>10}")
    for cfg, recall, worst, false, runs in rows:
        print(f"{cfg.margin_db:9.1f} {cfg.window_frames:6d} {cfg.min_frames:4d} {recall:7.3f} {worst:6.3f} {false:7.4f} {runs:10d}")
    ok = [r for r in rows if r[3] <= MAX_FALSE and r[4] == 0]
    if not ok:
        print("no setting meets the false-sound bar", file=sys.stderr)
        return 1
    best = max(ok, key=lambda r: (round(r[1], 3), r[0].margin_db))
    cfg = best[0]
    print(f"chosen: margin_db={cfg.margin_db:g} window_frames={cfg.window_frames} min_frames={cfg.min_frames} "
          f"(recall {best[1]:.3f}, false {best[3]:.4f})")
    print(json.dumps({"channels": len(channels), "margin_db": cfg.margin_db, "window_frames": cfg.window_frames,
                      "min_frames": cfg.min_frames, "speech_recall": round(best[1], 3),
                      "speech_recall_worst_channel": round(best[2], 3), "pause_false_fraction": round(best[3], 4),
                      "false_runs_over_0_5_s": best[4]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
