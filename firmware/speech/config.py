"""Speech settings: VAD segmentation, leak gate and recogniser."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from firmware.events import Speaker

MAX_BEAM_SIZE = 8


@dataclass(frozen=True)
class VadConfig:
    model: str = "silero-vad"
    threshold: float = 0.5
    # How long silence must last before the flag drops; the segmenter decides what joins up.
    min_silence_s: float = 0.25
    # Short: the flag's onset delay is most of the wait before a segment can close.
    min_speech_s: float = 0.15


@dataclass(frozen=True)
class VadLevelConfig:
    """Automatic gain before the VAD (never before the recogniser), for the listed parties.

    The party's peak level is brought up to ``target_peak_db``, by at most ``max_gain_db``. A phone
    line delivers the buyer well below the level Silero scores confidently, so short words
    ("Yeah,", "No.") went unflagged. The rep's headset mic does not need it: with it, the dev
    calls' rep WER came out 1.6 points worse.
    """

    parties: tuple[Speaker, ...] = ("buyer",)
    target_peak_db: float = -6.0
    max_gain_db: float = 15.0
    release_db_per_s: float = 1.0


@dataclass(frozen=True)
class LeakGateConfig:
    """The rep's mic hears the buyer from the earpiece at about -25 dB.

    A rep frame whose level is this far below the buyer's recent level is treated as leak
    and muted before the VAD, so the buyer's voice never becomes rep speech.
    """

    enabled: bool = True
    margin_db: float = 12.0
    # The earpiece-to-mic path is delayed by device buffering: compare against the loudest
    # buyer frame in this window.
    window_ms: int = 100


@dataclass(frozen=True)
class RecognizerConfig:
    model: str = "whisper-tiny.en"
    num_threads: int = 1
    # Whisper loops or hallucinates on short or noisy clips: cap the words kept by duration.
    # Fast speech is ~3.5 words/s, so 5 words/s only ever trims runaway output.
    max_words_per_s: float = 5.0
    min_words: int = 6
    # Silence frames (10 ms) sherpa-onnx appends after a segment before Whisper's encoder
    # (-1 = its default, 1000). 100-300 made Whisper miss its end token and repeat itself;
    # 500 scored as well as 1000 on the dev calls, at 15% less CPU and ~75 MB less peak memory
    # (the encoder's attention grows with the square of its input).
    tail_paddings: int = 500
    # "beam": our beam search over the same ONNX encoder/decoder through onnxruntime
    # (firmware/speech/whisper_beam.py), keeping beam_size hypotheses. "greedy": sherpa-onnx's own
    # decoder, the lightest. Chosen on the calibration set (12 calls, tools/bench_decoding.py):
    # buyer WER 7.2% greedy -> 5.6% beam 2 -> 5.1% beam 3, rep 3.4 -> 2.7 -> 2.6%, at 1.25x and
    # 1.6x the recogniser's CPU. Beam 3's half point does not pay on a Pi 4B (recogniser RTF ~0.88
    # on one core against ~0.68 for beam 2; board/README.md); beam 4-5 were no better on dev-kokoro.
    decoding: Literal["greedy", "beam"] = "beam"
    beam_size: int = 2

    def __post_init__(self) -> None:
        if self.num_threads < 1:
            raise ValueError(f"speech.recognizer.num_threads must be at least 1, got {self.num_threads}")
        if not 1 <= self.beam_size <= MAX_BEAM_SIZE:
            raise ValueError(f"speech.recognizer.beam_size must be between 1 and {MAX_BEAM_SIZE}, got {self.beam_size}")
        if self.decoding not in ("greedy", "beam"):
            raise ValueError(f"speech.recognizer.decoding must be 'greedy' or 'beam', got {self.decoding!r}")


@dataclass(frozen=True)
class SpeechConfig:
    vad: VadConfig = VadConfig()
    vad_level: VadLevelConfig = VadLevelConfig()
    leak_gate: LeakGateConfig = LeakGateConfig()
    recognizer: RecognizerConfig = RecognizerConfig()
    # Chunks closer than this join into one segment: whole sentences transcribe far better.
    join_gap_s: float = 0.4
    max_segment_s: float = 15.0
    # Audio kept either side of a segment so word onsets and fricative tails are not clipped.
    # 0.6 s scored worse on the dev calls (buyer WER 58.0% vs 56.8%, rep 29.5% vs 25.9%).
    pad_s: float = 0.3
    # The VAD flags soft or band-limited word onsets late; once it flags speech, the onset moves
    # back (at most this far) through audio this far above the party's noise floor.
    onset_lookback_s: float = 0.3
    onset_margin_db: float = 10.0
    # Close a segment once the join gap has passed if nothing that loud has sounded during the
    # VAD's onset delay, instead of always waiting that delay out (~0.23 s sooner).
    close_on_quiet: bool = True
    # A segment whose spectrum above 4.2 kHz is this far below its total is band-limited (a phone
    # line): that empty band gets a steady noise floor band_fill_db below the segment's level
    # before recognition. None turns it off.
    band_fill_db: float | None = -35.0
    band_empty_below_db: float = -40.0
    # Early transcripts of a party's speech while it goes on: the first once the segment is
    # partial_first_s long, then every partial_every_s. The rep answers a buyer within about a
    # second of the buyer stopping, too soon for a tip that waits for the final transcript.
    partial_parties: tuple[Speaker, ...] = ("buyer",)
    partial_first_s: float = 2.0
    partial_every_s: float = 3.0
    # Segments waiting for the recogniser, per party; beyond this they are dropped and counted.
    queue_segments: int = 8
