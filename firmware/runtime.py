"""One call on the box: the objects every mode shares, wired in one place.

``parallax replay`` (frames from a WAV file) and ``parallax run`` (frames from the bridge's
taps) both build a :class:`CallSession` here, so what a replay shows is what the device does.
This is also the one place where real engines are chosen; tests pass fakes instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from firmware.audio.frames import CallFrame, FrameActivity
from firmware.bus import EventBus
from firmware.config import Config
from firmware.errors import SpeechStateError
from firmware.events import Summary
from firmware.speech.leak import LeakStore
from firmware.speech.pipeline import Annotator, SpeechPipeline
from firmware.speech.recognizer import Recognizer, load_recognizer
from firmware.speech.vad import SileroVad, VoiceDetector

if TYPE_CHECKING:
    from firmware.intent.classifier import IntentClassifier

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Engines:
    """The heavy, swappable parts of a session. Load once; reuse across calls."""

    vad_factory: Callable[[], VoiceDetector]
    recognizer: Recognizer
    # Labels the pipeline's transcripts; the coach re-reads whole buyer turns with it too.
    intent: IntentClassifier | None = None

    @property
    def annotate(self) -> Annotator | None:
        """The pipeline's annotator: the classifier's label and confidence for each transcript."""
        classifier = self.intent
        if classifier is None:
            return None

        def annotate(text: str, speaker: str) -> tuple[str, float]:
            result = classifier.classify(text, speaker)
            return result[0], result[1]

        return annotate


def load_engines(config: Config) -> Engines:
    from firmware.intent import load_classifier
    from firmware.provision.manifest import load_manifest

    models_dir = config.paths.resolve(config.paths.models_dir)
    vad_manifest = load_manifest(models_dir, config.speech.vad.model)
    vad_manifest.verify()
    vad_path: Path = vad_manifest.file("model")
    recognizer = load_recognizer(models_dir, config.speech.recognizer)
    return Engines(
        vad_factory=lambda: SileroVad(vad_path, config.speech.vad),
        recognizer=recognizer,
        intent=load_classifier(models_dir, config.intent),
    )


class CallSink(Protocol):
    """What a frame source drives: ``CallSession``, or ``CoachedSession`` wrapping one."""

    @property
    def now(self) -> float: ...

    def feed(self, frame: CallFrame) -> None: ...

    def end_call(self, extra: dict[str, object] | None = None) -> Summary: ...

    def close(self) -> None: ...


class CallSession:
    """Feed frames in call order; events go to ``bus``; ``end_call`` returns the summary."""

    def __init__(self, config: Config, engines: Engines, bus: EventBus, *, lockstep: bool = False,
                 leak_store: LeakStore | None = None) -> None:
        """``leak_store``: where the headset's earpiece-leak estimate is read at the start and
        written at the end of the call (``config.speech.leak_gate.headset_id``); None starts from
        the configured level and keeps nothing (replays)."""
        self._config = config
        self._leak_store = leak_store
        headset = config.speech.leak_gate.headset_id
        prior = leak_store.prior(headset, config.speech.leak_gate) if leak_store is not None else None
        self._bus = bus
        self.engines = engines
        self._activity_listeners: list[Callable[[FrameActivity], None]] = []
        self._cpu_start = time.process_time()
        self.pipeline = SpeechPipeline(
            config.speech,
            engines.vad_factory,
            engines.recognizer,
            bus.publish,
            annotate=engines.annotate,
            lockstep=lockstep,
            leak_prior=prior,
        )
        self.pipeline.start()
        self._ended = False

    @property
    def now(self) -> float:
        return self.pipeline.now

    def on_activity(self, listener: Callable[[FrameActivity], None]) -> None:
        """Per-frame who-is-speaking, for consumers that time things (the coach's pauses)."""
        self._activity_listeners.append(listener)

    def feed(self, frame: CallFrame) -> None:
        activity = self.pipeline.feed(frame)
        for listener in self._activity_listeners:
            listener(activity)

    def drain(self) -> None:
        """Close open speech and wait until every utterance so far has been published."""
        self.pipeline.finish()

    def end_call(self, extra: dict[str, object] | None = None) -> Summary:
        if self._ended:
            raise RuntimeError("call already ended")
        self._ended = True
        self.pipeline.finish()
        stats = self.pipeline.stats
        leak = self.pipeline.leak_gate.estimator
        learned = leak.result()
        if self._leak_store is not None:
            try:
                self._leak_store.record(self._config.speech.leak_gate.headset_id, learned)
            except SpeechStateError as exc:  # the next call starts from an older value: not worth the summary
                log.warning("%s", exc)
        summary = Summary(
            t=self.now,
            duration_s=self.now,
            cpu_s=time.process_time() - self._cpu_start,
            extra={
                "utterances": stats.utterances,
                "segments": stats.segments,
                "segments_dropped": self.pipeline.dropped_segments,
                "segments_empty": stats.empty_segments,
                "partials": stats.partials,
                "partials_skipped": stats.partials_skipped,
                "recognizer_errors": stats.recognizer_errors,
                "recognizer_rtf": stats.recognizer_busy_s / stats.recognized_audio_s if stats.recognized_audio_s else 0.0,
                "leak_frames_muted": self.pipeline.leak_gate.frames_muted,
                # Speech-like sound on a channel that no transcript covers: a whisper the VAD
                # missed, speech the recogniser made nothing of (firmware.speech.sound).
                "rep_untranscribed_speech_s": round(stats.untranscribed_s("rep"), 1),
                "buyer_untranscribed_speech_s": round(stats.untranscribed_s("buyer"), 1),
                # The earpiece leak as measured (dB below the buyer), and the strong buyer frames
                # this call measured it on (0: the call kept the headset's previous value).
                "leak_db": round(learned.leak_db, 1),
                "leak_call_frames": leak.call_frames,
                **(extra or {}),
            },
        )
        self._bus.publish(summary)
        return summary

    def close(self) -> None:
        self.pipeline.stop()

    def __enter__(self) -> CallSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

