"""Speech settings: VAD segmentation, leak gate and recogniser."""

from __future__ import annotations

import re
from dataclasses import dataclass

from firmware.events import Speaker


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


_HEADSET_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def check_headset_id(headset_id: str) -> str:
    """A headset id names a key in the state file: 1-64 letters, digits or ``. _ : -``."""
    if not isinstance(headset_id, str) or not _HEADSET_ID.match(headset_id):
        raise ValueError(f"headset id must be 1-64 letters, digits or . _ : -, got {headset_id!r}")
    return headset_id


@dataclass(frozen=True)
class LeakGateConfig:
    """The rep's mic hears the buyer from the earpiece; how loud depends on headset and volume.

    A rep frame that is not ``margin_db`` louder than the leak expected from the buyer's recent
    level is muted before the VAD, so the buyer's voice never becomes rep speech. The leak level
    is measured on every call (``firmware.speech.leak``) and kept per headset across calls;
    ``start_db`` is only where a headset never heard before starts (-25 dB: our call renderer's
    level), worth ``start_weight_frames`` strong buyer frames against the call's own measurement.
    """

    enabled: bool = True
    margin_db: float = 12.0
    # The earpiece-to-mic path is delayed by device buffering: compare against the loudest
    # buyer frame in this window.
    window_ms: int = 100
    # False: keep start_db for the whole call (no measurement), as before the estimator.
    estimate: bool = True
    start_db: float = -25.0
    # Half a second of strong buyer speech: the start is a guess, the call soon outweighs it.
    start_weight_frames: int = 25
    # What the estimate carried over from earlier calls weighs at most (30 s of strong buyer
    # speech): a call where the rep turned the volume up takes over within seconds.
    max_prior_frames: int = 1500
    # Strong buyer frames a call needs before its own measurement counts (1 s).
    min_frames: int = 50
    # Which headset's estimate to start from and keep. On the device one headset is plugged in
    # per box; set this if reps swap headsets. ``parallax replay --headset`` overrides it.
    headset_id: str = "default"

    def __post_init__(self) -> None:
        if not 0.0 <= self.margin_db <= 40.0:
            raise ValueError(f"leak_gate.margin_db must be 0..40, got {self.margin_db}")
        if not 20 <= self.window_ms <= 1000:
            raise ValueError(f"leak_gate.window_ms must be 20..1000, got {self.window_ms}")
        if not -70.0 <= self.start_db <= 0.0:
            raise ValueError(f"leak_gate.start_db must be -70..0, got {self.start_db}")
        if not 0 <= self.start_weight_frames <= self.max_prior_frames:
            raise ValueError("leak_gate.start_weight_frames must be 0..max_prior_frames")
        if not 1 <= self.max_prior_frames <= 100_000:
            raise ValueError(f"leak_gate.max_prior_frames must be 1..100000, got {self.max_prior_frames}")
        if not 25 <= self.min_frames <= 3000:
            raise ValueError(f"leak_gate.min_frames must be 25..3000, got {self.min_frames}")
        check_headset_id(self.headset_id)


@dataclass(frozen=True)
class SoundConfig:
    """Speech-like sound on a channel, whatever the VAD hears (``firmware.speech.sound``).

    A frame counts as loud ``margin_db`` above the channel's noise floor; the channel carries
    sound while ``min_frames`` of the last ``window_frames`` frames are loud. Chosen with
    ``tools/calibrate_sound.py`` on held-out whispered and quiet speech over clean to poor lines
    (24 channels, seed 5): 6 dB flags 51% of the frames inside spoken lines (the rest are mostly the
    gaps between words) and 0.18% of pause frames, never 0.5 s in a row; 4 dB flagged 61% but 9.9%
    of pauses on a line whose noise swells by 4 dB.
    """

    margin_db: float = 6.0
    window_frames: int = 10
    min_frames: int = 5

    def __post_init__(self) -> None:
        if not 1.0 <= self.margin_db <= 40.0:
            raise ValueError(f"sound.margin_db must be 1..40, got {self.margin_db}")
        if not 1 <= self.window_frames <= 100:
            raise ValueError(f"sound.window_frames must be 1..100, got {self.window_frames}")
        if not 1 <= self.min_frames <= self.window_frames:
            raise ValueError("sound.min_frames must be 1..window_frames")


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


@dataclass(frozen=True)
class SpeechConfig:
    vad: VadConfig = VadConfig()
    vad_level: VadLevelConfig = VadLevelConfig()
    leak_gate: LeakGateConfig = LeakGateConfig()
    sound: SoundConfig = SoundConfig()
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
