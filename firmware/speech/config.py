"""Speech settings: VAD segmentation, leak gate and recogniser."""

from __future__ import annotations

from dataclasses import dataclass

from firmware.events import Speaker
from firmware.settings import Checked, rule, setting


@dataclass(frozen=True)
class VadConfig(Checked):
    model: str = setting("silero-vad", nonempty=True)
    # A speech probability: 0 or 1 would flag everything or nothing.
    threshold: float = setting(0.5, gt=0.0, lt=1.0)
    # How long silence must last before the flag drops; the segmenter decides what joins up.
    min_silence_s: float = setting(0.25, gt=0.0, le=5.0)
    # Short: the flag's onset delay is most of the wait before a segment can close.
    min_speech_s: float = setting(0.15, ge=0.0, le=5.0)


@dataclass(frozen=True)
class VadLevelConfig(Checked):
    """Automatic gain before the VAD (never before the recogniser), for the listed parties.

    The party's peak level is brought up to ``target_peak_db``, by at most ``max_gain_db``. A phone
    line delivers the buyer well below the level Silero scores confidently, so short words
    ("Yeah,", "No.") went unflagged. The rep's headset mic does not need it: with it, the dev
    calls' rep WER came out 1.6 points worse.
    """

    parties: tuple[Speaker, ...] = setting(("buyer",), unique=True)
    target_peak_db: float = setting(-6.0, ge=-60.0, le=0.0)
    max_gain_db: float = setting(15.0, ge=0.0, le=40.0)
    release_db_per_s: float = setting(1.0, gt=0.0, le=100.0)


@dataclass(frozen=True)
class LeakGateConfig(Checked):
    """The rep's mic hears the buyer from the earpiece at about -25 dB.

    A rep frame whose level is this far below the buyer's recent level is treated as leak
    and muted before the VAD, so the buyer's voice never becomes rep speech.
    """

    enabled: bool = setting(True)
    margin_db: float = setting(12.0, ge=0.0, le=60.0)
    # The earpiece-to-mic path is delayed by device buffering: compare against the loudest
    # buyer frame in this window.
    window_ms: int = setting(100, ge=20, le=2000)


@dataclass(frozen=True)
class RecognizerConfig(Checked):
    model: str = setting("whisper-tiny.en", nonempty=True)
    num_threads: int = setting(1, ge=1, le=16)
    # Whisper loops or hallucinates on short or noisy clips: cap the words kept by duration.
    # Fast speech is ~3.5 words/s, so 5 words/s only ever trims runaway output.
    max_words_per_s: float = setting(5.0, gt=0.0, le=20.0)
    min_words: int = setting(6, ge=0, le=100)
    # Silence frames (10 ms) sherpa-onnx appends after a segment before Whisper's encoder
    # (-1 = its default, 1000). 100-300 made Whisper miss its end token and repeat itself;
    # 500 scored as well as 1000 on the dev calls, at 15% less CPU and ~75 MB less peak memory
    # (the encoder's attention grows with the square of its input).
    tail_paddings: int = setting(500, ge=-1, le=3000)


@dataclass(frozen=True)
class SpeechConfig(Checked):
    vad: VadConfig = VadConfig()
    vad_level: VadLevelConfig = VadLevelConfig()
    leak_gate: LeakGateConfig = LeakGateConfig()
    recognizer: RecognizerConfig = RecognizerConfig()
    # Chunks closer than this join into one segment: whole sentences transcribe far better.
    join_gap_s: float = setting(0.4, ge=0.0, le=5.0)
    # Whisper hears 30 s at a time; under a second, speech is cut into fragments it cannot read.
    max_segment_s: float = setting(15.0, ge=1.0, le=30.0)
    # Audio kept either side of a segment so word onsets and fricative tails are not clipped.
    # 0.6 s scored worse on the dev calls (buyer WER 58.0% vs 56.8%, rep 29.5% vs 25.9%).
    pad_s: float = setting(0.3, ge=0.0, le=2.0)
    # The VAD flags soft or band-limited word onsets late; once it flags speech, the onset moves
    # back (at most this far) through audio this far above the party's noise floor.
    onset_lookback_s: float = setting(0.3, ge=0.0, le=2.0)
    onset_margin_db: float = setting(10.0, ge=0.0, le=60.0)
    # Close a segment once the join gap has passed if nothing that loud has sounded during the
    # VAD's onset delay, instead of always waiting that delay out (~0.23 s sooner).
    close_on_quiet: bool = setting(True)
    # A segment whose spectrum above 4.2 kHz is this far below its total is band-limited (a phone
    # line): that empty band gets a steady noise floor band_fill_db below the segment's level
    # before recognition. None turns it off.
    band_fill_db: float | None = setting(-35.0, ge=-80.0, le=0.0, optional=True)
    band_empty_below_db: float = setting(-40.0, ge=-80.0, le=0.0)
    # Early transcripts of a party's speech while it goes on: the first once the segment is
    # partial_first_s long, then every partial_every_s. The rep answers a buyer within about a
    # second of the buyer stopping, too soon for a tip that waits for the final transcript.
    partial_parties: tuple[Speaker, ...] = setting(("buyer",), unique=True)
    # Each partial is a recogniser run: more often than every half second would starve the finals.
    partial_first_s: float = setting(2.0, ge=0.5, le=30.0)
    partial_every_s: float = setting(3.0, ge=0.5, le=30.0)
    # Segments waiting for the recogniser, per party; beyond this they are dropped and counted.
    queue_segments: int = setting(8, ge=1, le=1000)

    RULES = (
        # A segment must be able to hold the shortest speech the VAD flags, with its padding.
        rule("vad.min_speech_s < max_segment_s", "vad.min_speech_s", "max_segment_s", holds=lambda a, b: a < b),
        rule("pad_s < max_segment_s", "pad_s", "max_segment_s", holds=lambda a, b: a < b),
    )
