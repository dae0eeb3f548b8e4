"""Render a scripted call to a two-channel 16 kHz WAV shaped like the box's real inputs.

Channel 0 is the rep's headset mic: wideband speech, a little room noise and the buyer leaking
from the earpiece at -25 dB (``leak_db``). Channel 1 is the buyer over a phone line: 8 kHz, mu-law,
300-3400 Hz, line noise.

Who speaks is a :class:`Voicer`: :class:`KokoroVoicer` (natural neural voices, what the demo and
the calibration calls use; see :mod:`firmware.testing.kokoro`) or :class:`EspeakVoicer` (espeak-ng,
a Debian package: robotic, much harder for Whisper than people, but instant and needing no
download, so the test fixtures use it). A script names a voice for each: ``rep_voice`` /
``buyer_voice`` for espeak-ng, ``rep_kokoro`` / ``buyer_kokoro`` for Kokoro.
"""

from __future__ import annotations

import hashlib
import io
import os
import json
import shutil
import subprocess
import sys
import tomllib
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from firmware.errors import AudioInputError

RATE_HZ = 16000
# Bump when the room, leak or line processing changes: part of the demo's cache key.
RENDER_VERSION = 2
_LEAK_DB = -25.0
_LEAK_DELAY = 48  # samples: the 3 ms earpiece-to-mic path


@dataclass(frozen=True)
class ScriptLine:
    speaker: str
    gap_s: float
    text: str
    label: str


def load_script(path: Path) -> tuple[dict[str, str], list[ScriptLine]]:
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    lines = [ScriptLine(l["speaker"], float(l["gap_s"]), l["text"], l.get("label", "other")) for l in raw["line"]]
    return {k: v for k, v in raw.items() if isinstance(v, str)}, lines


def _speak(text: str, voice: str, words_per_min: int) -> np.ndarray:
    if shutil.which("espeak-ng") is None:
        raise AudioInputError("espeak-ng is not installed (tools/bootstrap installs it)")
    wav_bytes = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(words_per_min), "--stdout", text],
        check=True, capture_output=True,
    ).stdout
    with wave.open(io.BytesIO(wav_bytes)) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768.0
    import soxr

    pcm = soxr.resample(pcm, rate, RATE_HZ)
    # Trim espeak's leading/trailing silence so the script's gaps are the real gaps.
    voiced = np.flatnonzero(np.abs(pcm) > 0.01)
    return pcm[voiced[0] : voiced[-1] + 1] if len(voiced) else pcm


class Voicer(Protocol):
    """Speaks one line. Called on the rendering thread; may take seconds (synthesis)."""

    version: str  # changes whenever the same text and voice would sound different
    voice_key: str  # the script key prefix naming this voicer's voices: f"{speaker}_{voice_key}"

    def speak(self, text: str, voice: str, words_per_min: int) -> np.ndarray:
        """16 kHz float32 speech, trimmed of leading and trailing silence."""
        ...


class EspeakVoicer:
    version = "espeak-ng/1"
    voice_key = "voice"

    def speak(self, text: str, voice: str, words_per_min: int) -> np.ndarray:
        return _speak(text, voice, words_per_min)


class KokoroVoicer:
    """Kokoro-82M voices; ``words_per_min`` is ignored (Kokoro keeps the voice's own pace)."""

    voice_key = "kokoro"

    def __init__(self, models_dir: Path, *, threads: int = 1) -> None:
        from firmware.testing.kokoro import RENDERER_VERSION, Kokoro, KokoroAssets, assets_dir

        self.version = RENDERER_VERSION
        self._kokoro = Kokoro(KokoroAssets(assets_dir(models_dir)), threads=threads)

    def speak(self, text: str, voice: str, words_per_min: int) -> np.ndarray:
        return self._kokoro.speak(text, voice)


def _phone_line(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    import soxr

    narrow = soxr.resample(x, RATE_HZ, 8000)
    spectrum = np.fft.rfft(narrow)
    freqs = np.fft.rfftfreq(len(narrow), 1 / 8000)
    spectrum[(freqs < 300) | (freqs > 3400)] = 0
    narrow = np.fft.irfft(spectrum, len(narrow))
    mu = 255.0  # G.711 mu-law companding, 8-bit
    coded = np.round(np.sign(narrow) * np.log1p(mu * np.clip(np.abs(narrow), 0, 1)) / np.log1p(mu) * 127) / 127
    narrow = np.sign(coded) * np.expm1(np.abs(coded) * np.log1p(mu)) / mu
    wide = soxr.resample(narrow.astype(np.float32), 8000, RATE_HZ)[: len(x)]
    return wide + rng.normal(0, 10 ** (-46 / 20), len(wide)).astype(np.float32)


def write_call(
    out_wav: Path,
    clips: list[np.ndarray],
    placed: list[dict[str, object]],
    total: int,
    *,
    phone_line: Callable[[np.ndarray], np.ndarray],
    room: Callable[[np.ndarray], np.ndarray],
    leak_db: float | None = _LEAK_DB,
) -> None:
    """Lay each clip at its utterance's start on its speaker's channel, pass the buyer through
    ``phone_line`` and the rep's mic through ``room``, add the earpiece leak (``leak_db`` below
    the buyer, None for a headset that leaks nothing) to the mic and write a 16-bit two-channel
    WAV (0 rep, 1 buyer), the dev corpus's layout."""
    rep, buyer = np.zeros(total), np.zeros(total)
    for clip, u in zip(clips, placed):
        lo = int(round(float(u["start"]) * RATE_HZ))  # type: ignore[arg-type]
        (rep if u["speaker"] == "rep" else buyer)[lo : lo + len(clip)] += clip
    buyer = np.asarray(phone_line(buyer), dtype=np.float64)
    gain = 0.0 if leak_db is None else 10 ** (leak_db / 20)
    leak = np.concatenate((np.zeros(_LEAK_DELAY), buyer[:-_LEAK_DELAY])) * gain
    stereo = np.clip(np.stack([room(rep) + leak, buyer], axis=1), -1, 1)
    out_wav.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(out_wav), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(RATE_HZ)
        w.writeframes(np.round(stereo * 32767).astype("<i2").tobytes())


def render_call(script: Path, out_wav: Path, *, seed: int = 7, voicer: Voicer | None = None,
                leak_db: float | None = _LEAK_DB, room_noise_db: float = -50.0) -> dict[str, object]:
    """Write ``out_wav`` and ``out_wav.with_suffix('.json')`` (ground truth like the dev corpus).

    ``voicer`` defaults to espeak-ng; ``leak_db``: the earpiece leak into the rep's mic relative to
    the buyer (None: no leak); ``room_noise_db``: the mic's noise floor in dBFS. The JSON is written
    last, atomically, so a WAV with its JSON beside it is a complete render."""
    voicer = voicer or EspeakVoicer()
    meta, lines = load_script(script)
    rng = np.random.default_rng(seed)
    clips, placed, cursor = [], [], 0.0
    for line in lines:
        key = f"{line.speaker}_{voicer.voice_key}"
        if key not in meta:
            raise AudioInputError(f"{script.name} names no {key} for its {voicer.version} voicer")
        clip = voicer.speak(line.text, meta[key], 165 if line.speaker == "rep" else 155) * 0.5
        start = max(0.0, cursor + line.gap_s)
        clips.append(clip)
        placed.append({"speaker": line.speaker, "start": round(start, 3), "end": round(start + len(clip) / RATE_HZ, 3),
                       "text": line.text, "label": line.label})
        cursor = start + len(clip) / RATE_HZ
    total = int((cursor + 1.0) * RATE_HZ)
    write_call(
        out_wav, clips, placed, total,
        phone_line=lambda buyer: _phone_line(buyer, rng),
        room=lambda rep: rep + rng.normal(0, 10 ** (room_noise_db / 20), len(rep)),
        leak_db=leak_db,
    )  # fmt: skip
    truth = {"call_id": meta.get("call_id", out_wav.stem), "sample_rate": RATE_HZ, "channels": {"0": "rep", "1": "buyer"},
             "duration_s": round(total / RATE_HZ, 3), "voicer": voicer.version, "utterances": placed}
    out_json = out_wav.with_suffix(".json")
    tmp = out_json.with_name(f".{out_json.name}.tmp")
    tmp.write_text(json.dumps(truth, indent=1), encoding="utf-8")
    tmp.replace(out_json)
    return truth


def cached_render_path(script: Path, cache_dir: Path, voicer_version: str, *, prefix: str) -> Path:
    """Where the render of ``script`` by a voicer of ``voicer_version`` is cached: the key covers
    the script's bytes (its text, gaps and voices), the voicer and :data:`RENDER_VERSION`."""
    digest = hashlib.sha256(script.read_bytes())
    digest.update(f"\0{voicer_version}\0render/{RENDER_VERSION}".encode())
    return cache_dir / f"{prefix}-{digest.hexdigest()[:12]}.wav"


def render_cached(script: Path, cache_dir: Path, voicer: Voicer | None = None, *, prefix: str) -> Path:
    """Render ``script`` unless its render is cached; return the WAV (its truth JSON beside it).
    Written under temporary names and renamed, JSON first, so a WAV present is a complete render."""
    voicer = voicer or EspeakVoicer()
    wav = cached_render_path(script, cache_dir, voicer.version, prefix=prefix)
    if not (wav.is_file() and wav.with_suffix(".json").is_file()):
        print(f"rendering {script.name} with {voicer.version} (once; later runs reuse it) ...", file=sys.stderr)
        tmp = wav.with_name(f".{wav.stem}.{os.getpid()}.wav")
        render_call(script, tmp, voicer=voicer)
        tmp.with_suffix(".json").replace(wav.with_suffix(".json"))
        tmp.replace(wav)
    return wav
