"""Both parties from frames to utterances: leak gate -> VAD -> segmenter -> recogniser.

Frames arrive on the caller's thread (the replay feeder or the live tap reader) and are cut
into segments there, which is cheap. Recognition runs on one worker thread behind a bounded
queue: when it falls behind, new segments are dropped and counted, and the producer never
waits. Replay at full speed uses ``lockstep``, where the feeder waits for the worker after each
closed segment, so the timeline matches what the box would have done with an instant
recogniser and is the same run after run.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from firmware.audio.frames import CallFrame, FrameActivity, PcmF32
from firmware.events import Event, Partial, Speaker, Utterance
from firmware.handoff import DropQueue
from firmware.speech.bandfill import fill_empty_band
from firmware.speech.config import SpeechConfig
from firmware.speech.guards import clean_transcript
from firmware.speech.level import LevelNormaliser
from firmware.speech.leak import LeakGate, LeakPrior
from firmware.speech.recognizer import Recognizer
from firmware.speech.segmenter import Segment, Segmenter
from firmware.speech.sound import SoundMeter
from firmware.speech.vad import LevelledVad, VoiceDetector

log = logging.getLogger(__name__)

# (text, speaker) -> (intent label, confidence); the intent classifier plugs in here. The speaker
# matters: a rep's line is never a buyer's objection.
Annotator = Callable[[str, Speaker], tuple[str, float]]


@dataclass
class PipelineStats:
    segments: int = 0
    utterances: int = 0
    empty_segments: int = 0
    recognizer_errors: int = 0
    partials: int = 0
    partials_skipped: int = 0
    recognized_audio_s: float = 0.0
    recognizer_busy_s: float = 0.0
    per_speaker: dict[str, int] = field(default_factory=lambda: {"rep": 0, "buyer": 0})
    # Spans of speech-like sound and of transcribed utterances per party, for what went untranscribed.
    sound_spans: dict[str, list[list[float]]] = field(default_factory=lambda: {"rep": [], "buyer": []})
    utterance_spans: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: {"rep": [], "buyer": []})

    def untranscribed_s(self, speaker: str, margin_s: float = 0.3) -> float:
        """Seconds of speech-like sound on ``speaker``'s channel outside every transcribed utterance
        of theirs (each widened by ``margin_s``: the VAD's edges are not the words' edges)."""
        spans = sorted((s - margin_s, e + margin_s) for s, e in self.utterance_spans[speaker])
        total = 0.0
        for start, end in self.sound_spans[speaker]:
            covered = sum(max(0.0, min(end, e) - max(start, s)) for s, e in spans if s < end and e > start)
            total += max(0.0, (end - start) - covered)
        return total


class _DcBlocker:
    """Removes a constant offset (cheap headsets and line inputs have one) before the VAD."""

    def __init__(self) -> None:
        self._mean = 0.0

    def __call__(self, frame: PcmF32) -> PcmF32:
        self._mean += 0.02 * (float(frame.mean()) - self._mean)  # ~1 s time constant at 50 frames/s
        return frame - np.float32(self._mean)


class SpeechPipeline:
    def __init__(
        self,
        config: SpeechConfig,
        vad_factory: Callable[[], VoiceDetector],
        recognizer: Recognizer,
        on_utterance: Callable[[Event], None],
        *,
        annotate: Annotator | None = None,
        lockstep: bool = False,
        leak_prior: LeakPrior | None = None,
    ) -> None:
        """``leak_prior``: where the earpiece-leak estimate starts (the headset's last estimate);
        None starts from ``config.leak_gate.start_db``."""
        self._config = config
        self._recognizer = recognizer
        self._on_utterance = on_utterance
        self._annotate = annotate
        self._lockstep = lockstep
        self._segmenters = {
            speaker: Segmenter(
                speaker,
                self._detector(speaker, vad_factory),
                join_gap_s=config.join_gap_s,
                max_segment_s=config.max_segment_s,
                pad_s=config.pad_s,
                onset_lookback_s=config.onset_lookback_s,
                onset_margin_db=config.onset_margin_db,
                close_on_quiet=config.close_on_quiet,
            )
            for speaker in ("rep", "buyer")
        }
        self._dc = {"rep": _DcBlocker(), "buyer": _DcBlocker()}
        self._sound = {"rep": SoundMeter(config.sound), "buyer": SoundMeter(config.sound)}
        self.leak_gate = LeakGate(config.leak_gate, leak_prior)
        self._queue: DropQueue[Segment] = DropQueue(config.queue_segments)
        self._now = 0.0
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._work, name="speech-recognizer", daemon=True)
        self.stats = PipelineStats()

    def _detector(self, speaker: Speaker, vad_factory: Callable[[], VoiceDetector]) -> VoiceDetector:
        vad = vad_factory()
        level = self._config.vad_level
        if speaker in level.parties and level.max_gain_db > 0:
            vad = LevelledVad(vad, LevelNormaliser(level.target_peak_db, level.max_gain_db, level.release_db_per_s))
        return vad

    @property
    def now(self) -> float:
        """Call time at the end of the newest frame fed; stamps every event."""
        return self._now

    @property
    def dropped_segments(self) -> int:
        return self._queue.dropped

    def start(self) -> None:
        self._worker.start()

    def feed(self, frame: CallFrame) -> FrameActivity:
        self._now = frame.end_t
        rep = self._dc["rep"](frame.rep)
        buyer = self._dc["buyer"](frame.buyer)
        rep = self.leak_gate.apply(rep, buyer)
        # After the gate: the buyer's leak is not the rep's sound.
        rep_sound, buyer_sound = self._sound["rep"].accept(rep), self._sound["buyer"].accept(buyer)
        self._note_sound("rep", rep_sound, frame.t, frame.end_t)
        self._note_sound("buyer", buyer_sound, frame.t, frame.end_t)
        closed = self._segmenters["rep"].accept(rep) + self._segmenters["buyer"].accept(buyer)
        self._submit(closed)
        for speaker in self._config.partial_parties:
            partial = self._segmenters[speaker].take_partial(self._config.partial_first_s, self._config.partial_every_s)
            if partial is not None:
                self._submit_partial(partial)
        return FrameActivity(frame.t, self._segmenters["rep"].in_speech, self._segmenters["buyer"].in_speech,
                             rep_sound, buyer_sound)

    def _note_sound(self, speaker: Speaker, sound: bool, start: float, end: float) -> None:
        if not sound:
            return
        spans = self.stats.sound_spans[speaker]
        if spans and start - spans[-1][1] < 1e-6:
            spans[-1][1] = end
        else:
            spans.append([start, end])

    def finish(self) -> None:
        """End of call: close open segments and wait until every queued one is transcribed."""
        self._submit(self._segmenters["rep"].flush() + self._segmenters["buyer"].flush())
        self._queue.join()

    def stop(self) -> None:
        self._stop.set()
        if self._worker.is_alive():
            self._worker.join()

    def _submit(self, segments: list[Segment]) -> None:
        for segment in sorted(segments, key=lambda s: s.end):
            self.stats.segments += 1
            if self._lockstep:
                self._queue.put(segment)
            elif not self._queue.offer(segment):
                log.warning("recogniser behind: dropped a %.1f s %s segment", segment.end - segment.start, segment.speaker)
        if self._lockstep and segments:
            self._queue.join()

    def _submit_partial(self, segment: Segment) -> None:
        if self._lockstep:
            self._queue.put(segment)
            self._queue.join()
        elif self._queue.qsize() or not self._queue.offer(segment):
            # Early transcripts are a bonus: never let one delay or displace a final segment.
            self.stats.partials_skipped += 1

    def _work(self) -> None:
        import time

        while not self._stop.is_set():
            try:
                segment = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                started = time.perf_counter()
                raw = self._recognizer.transcribe(self._condition(segment.samples))
                self.stats.recognizer_busy_s += time.perf_counter() - started
                self.stats.recognized_audio_s += len(segment.samples) / 16000
                self._emit(segment, raw)
            except Exception:  # a failing segment must not end recognition for the call
                self.stats.recognizer_errors += 1
                log.exception("recogniser failed on a %.1f s %s segment", segment.end - segment.start, segment.speaker)
            finally:
                self._queue.task_done()

    def _condition(self, samples: PcmF32) -> PcmF32:
        """What the recogniser hears: the segment, its empty phone-line high band filled."""
        if self._config.band_fill_db is None:
            return samples
        return fill_empty_band(samples, level_db=self._config.band_fill_db,
                               empty_below_db=self._config.band_empty_below_db)

    def _emit(self, segment: Segment, raw: str) -> None:
        cfg = self._config.recognizer
        text = clean_transcript(
            raw, segment.end - segment.start, max_words_per_s=cfg.max_words_per_s, min_words=cfg.min_words
        )
        if not text:
            if not segment.partial:
                self.stats.empty_segments += 1
            return
        intent, confidence = self._annotate(text, segment.speaker) if self._annotate else (None, None)
        speaker: Speaker = segment.speaker
        if segment.partial:
            self.stats.partials += 1
            self._on_utterance(Partial(t=max(self._now, segment.end), speaker=speaker, start=segment.start,
                                       end=segment.end, text=text, intent=intent, confidence=confidence))
            return
        self.stats.utterances += 1
        self.stats.per_speaker[speaker] += 1
        self.stats.utterance_spans[speaker].append((segment.start, segment.end))
        self._on_utterance(
            Utterance(
                t=max(self._now, segment.end),
                speaker=speaker,
                start=segment.start,
                end=segment.end,
                text=text,
                intent=intent,
                confidence=confidence,
            )
        )
