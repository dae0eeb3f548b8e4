"""Reading a recorded two-party call from a WAV file as a stream of :class:`CallFrame`.

The file is read in blocks and resampled as a stream, so an hour-long recording costs no more
memory than a short one. Any PCM sample rate and width the ``wave`` module reads is accepted;
``channels`` picks which file channel is the rep and which the buyer.
"""

from __future__ import annotations

import logging
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from firmware.audio.frames import ANALYSIS_RATE_HZ, FRAME_SAMPLES, CallFrame, PcmF32
from firmware.errors import AudioInputError

log = logging.getLogger(__name__)

_BLOCK_S = 1.0
_SAMPLE_DTYPES = {1: np.uint8, 2: np.int16, 4: np.int32}


@dataclass(frozen=True)
class WavInfo:
    path: Path
    rate_hz: int
    channels: int
    sample_width_bytes: int
    frames: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.rate_hz


def probe_wav(path: Path) -> WavInfo:
    """Read and validate the header; raise AudioInputError with a one-line reason."""
    try:
        with wave.open(str(path), "rb") as wav:
            info = WavInfo(Path(path), wav.getframerate(), wav.getnchannels(), wav.getsampwidth(), wav.getnframes())
    except FileNotFoundError:
        raise AudioInputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise AudioInputError(f"{path}: is a directory, not a WAV file") from None
    except PermissionError:
        raise AudioInputError(f"{path}: not readable (permission denied)") from None
    except (wave.Error, EOFError) as exc:
        raise AudioInputError(_unreadable(Path(path), exc)) from None
    if info.frames == 0:
        raise AudioInputError(f"{path}: holds no audio (a WAV header with 0 frames)")
    if info.sample_width_bytes not in (1, 2, 3, 4):
        raise AudioInputError(f"{path}: unsupported sample width of {info.sample_width_bytes} bytes")
    if not 4000 <= info.rate_hz <= 192000:
        raise AudioInputError(f"{path}: sample rate {info.rate_hz} Hz is outside 4-192 kHz")
    return info


# How to turn any audio file into one this reader takes (said with every format refusal).
CONVERT_HINT = "convert it to 16-bit PCM, e.g. `sox IN -b 16 -e signed-integer OUT.wav` or `ffmpeg -i IN -c:a pcm_s16le OUT.wav`"
# WAVE format tags worth naming in a refusal.
_FORMAT_NAMES = {3: "32/64-bit float", 6: "A-law", 7: "mu-law", 0x55: "MP3", 0xFFFE: "extensible (float or >2 channels)"}


def _unreadable(path: Path, exc: Exception) -> str:
    """One line for a file ``wave`` refuses: what it is, and how to convert it when that helps."""
    try:
        size = path.stat().st_size
    except OSError:
        size = -1
    if size == 0:
        return f"{path}: the file is empty (0 bytes), not a WAV recording"
    reason = str(exc)
    if reason.startswith("unknown format: "):
        tag = int(reason.rsplit(" ", 1)[1])
        name = _FORMAT_NAMES.get(tag, f"format tag {tag}")
        return f"{path}: not a readable PCM WAV file ({name} samples; only integer PCM is read); {CONVERT_HINT}"
    if isinstance(exc, EOFError) or not reason:
        return f"{path}: not a readable PCM WAV file (it ends inside the header, at {size} bytes); {CONVERT_HINT}"
    return f"{path}: not a readable PCM WAV file ({reason}); {CONVERT_HINT}"


def parse_channel_map(text: str) -> tuple[int, int]:
    """``"0,1"`` -> (rep channel, buyer channel)."""
    try:
        rep, buyer = (int(part) for part in text.split(","))
    except ValueError:
        raise AudioInputError(f"--channels expects REP,BUYER channel numbers such as 0,1; got {text!r}") from None
    if rep < 0 or buyer < 0:
        raise AudioInputError(f"--channels takes channel numbers from 0 (the file's first channel), got {text!r}")
    if rep == buyer:
        raise AudioInputError(f"--channels needs two different channels for rep and buyer, got {text!r}")
    return rep, buyer


def check_channels(info: WavInfo, channels: tuple[int, int], *, warn: bool = True) -> None:
    """Refuse a file without the asked channels; warn (once) about channels that a replay ignores."""
    rep_ch, buyer_ch = channels
    path = info.path
    if info.channels < 2:
        raise AudioInputError(
            f"{path}: has {info.channels} channel; a call needs two (rep and buyer, see --channels)"
        )
    if max(rep_ch, buyer_ch) >= info.channels:
        raise AudioInputError(
            f"{path}: has {info.channels} channels (0..{info.channels - 1}), --channels asks for {rep_ch},{buyer_ch}"
        )
    ignored = [ch for ch in range(info.channels) if ch not in channels]
    if ignored and warn:
        log.warning(
            "%s has %d channels: replaying %d as the rep and %d as the buyer, ignoring channel%s %s (see --channels)",
            path, info.channels, rep_ch, buyer_ch, "s" if len(ignored) > 1 else "", ", ".join(map(str, ignored)),
        )


def iter_call_frames(path: Path, channels: tuple[int, int] = (0, 1)) -> Iterator[CallFrame]:
    """Yield the call as 20 ms analysis frames (16 kHz float32) stamped with call time."""
    import soxr  # lazy: only replay and the taps resample

    info = probe_wav(path)
    check_channels(info, channels, warn=False)  # the caller warned (or chose not to)
    rep_ch, buyer_ch = channels
    resamplers = None
    if info.rate_hz != ANALYSIS_RATE_HZ:
        resamplers = [soxr.ResampleStream(info.rate_hz, ANALYSIS_RATE_HZ, 1, dtype="float32") for _ in range(2)]
    pending = [np.zeros(0, np.float32), np.zeros(0, np.float32)]
    emitted = 0
    read_frames = 0
    block = max(1, int(info.rate_hz * _BLOCK_S))
    with wave.open(str(path), "rb") as wav:
        while True:
            raw = wav.readframes(block)
            usable = len(raw) // (info.sample_width_bytes * info.channels)
            last = usable < block
            read_frames += usable
            pcm = _decode(raw[: usable * info.sample_width_bytes * info.channels], info)
            for i, ch in enumerate((rep_ch, buyer_ch)):
                samples = pcm[:, ch]
                if resamplers is not None:
                    samples = resamplers[i].resample_chunk(samples, last=last)
                pending[i] = np.concatenate((pending[i], samples))
            n = min(len(pending[0]), len(pending[1])) // FRAME_SAMPLES
            for k in range(n):
                lo, hi = k * FRAME_SAMPLES, (k + 1) * FRAME_SAMPLES
                yield CallFrame(emitted * FRAME_SAMPLES / ANALYSIS_RATE_HZ, pending[0][lo:hi], pending[1][lo:hi])
                emitted += 1
            pending = [p[n * FRAME_SAMPLES :] for p in pending]
            if last:
                break
    if read_frames < info.frames:
        log.warning(
            "%s is truncated: header promises %.1f s, file holds %.1f s; replayed what is there",
            path, info.duration_s, read_frames / info.rate_hz,
        )


def _decode(raw: bytes, info: WavInfo) -> PcmF32:
    """Interleaved little-endian PCM bytes -> float32 [frames, channels] in [-1, 1]."""
    width = info.sample_width_bytes
    if width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3)
        ints = (b[:, 0].astype(np.int32) | (b[:, 1].astype(np.int32) << 8) | (b[:, 2].astype(np.int32) << 16))
        ints = np.where(ints >= 1 << 23, ints - (1 << 24), ints)
        out = ints.astype(np.float32) / float(1 << 23)
    elif width == 1:  # 8-bit WAV is unsigned
        out = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    else:
        dtype = _SAMPLE_DTYPES[width]
        out = np.frombuffer(raw, np.dtype(dtype).newbyteorder("<")).astype(np.float32) / float(2 ** (8 * width - 1))
    return out.reshape(-1, info.channels)
