"""One call on the box: the objects every mode shares, wired in one place.

``parallax replay`` (frames from a WAV file) and ``parallax run`` (frames from the bridge's
taps) both build a :class:`CallSession` here, so what a replay shows is what the device does.
This is also the one place where real engines are chosen; tests pass fakes instead.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from firmware.audio.frames import CallFrame, FrameActivity
from firmware.bus import EventBus
from firmware.config import Config
from firmware.errors import ModelError
from firmware.events import Summary
from firmware.speech.pipeline import Annotator, SpeechPipeline
from firmware.speech.recognizer import Recognizer
from firmware.speech.vad import SileroVad, VoiceDetector

if TYPE_CHECKING:
    from firmware.coach.playbook import Playbook
    from firmware.intent.classifier import IntentClassifier
    from firmware.store import CallLease, Manifest, ModelStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Engines:
    """What one call runs on: the heavy, swappable parts of a session, and the playbook.

    Loaded once and reused across calls; :class:`ModelFollower` swaps in a new ``Engines`` at a
    call boundary when the model store's current versions change.
    """

    vad_factory: Callable[[], VoiceDetector]
    recognizer: Recognizer
    # Labels the pipeline's transcripts; the coach re-reads whole buyer turns with it too.
    intent: IntentClassifier | None = None
    # None: the coach box's own playbook.
    playbook: Playbook | None = None
    # model name -> version, as the call summary reports them.
    versions: Mapping[str, str] = field(default_factory=dict)
    # Why a model is not on its store's current version (a new one failed to load), one line each.
    fallbacks: tuple[str, ...] = ()

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


# slot -> loader of one store version; each raises ModelError (one line) when the version is unusable.
Loader = Callable[["Manifest"], object]
SLOTS = ("vad", "recognizer", "intent", "playbook")


def default_loaders(config: Config) -> dict[str, Loader]:
    """The real engines, one loader per slot; every loader checks the files' SHA-256 first."""

    def vad(manifest: Manifest) -> Callable[[], VoiceDetector]:
        manifest.verify()
        path = manifest.file("model")
        SileroVad(path, config.speech.vad)  # load it once now, so a broken model fails here, not mid-call
        return lambda: SileroVad(path, config.speech.vad)

    def recognizer(manifest: Manifest) -> Recognizer:
        from firmware.speech.recognizer import recognizer_for

        return recognizer_for(manifest, config.speech.recognizer)  # verifies the files itself

    def intent(manifest: Manifest) -> IntentClassifier:
        from firmware.intent import IntentClassifier

        manifest.verify()
        return IntentClassifier(manifest.directory, config.intent)

    def playbook(manifest: Manifest) -> Playbook:
        from firmware.coach.playbook import load_playbook

        manifest.verify()
        return load_playbook(manifest.file("playbook"))

    return {"vad": vad, "recognizer": recognizer, "intent": intent, "playbook": playbook}


def followed_models(config: Config) -> dict[str, str | None]:
    """slot -> the store entry it follows; None where the configuration pins a fixed file instead."""
    return {
        "vad": config.speech.vad.model,
        "recognizer": config.speech.recognizer.model,
        "intent": None if config.intent.model_dir.is_absolute() else str(config.intent.model_dir),
        "playbook": "playbook" if config.coach.playbook is None else None,
    }


class ModelFollower:
    """The engines of the store's current versions, swapped only at call boundaries.

    :meth:`start_call` (the coach's thread, at the start of each call) takes the store's call lock,
    reads each followed model's ``current`` pointer (one readlink each) and loads only what changed.
    A version that fails to load (hash mismatch, missing file, engine refuses it) leaves the slot on
    the version it had, and every call summary says why until the pointer moves again; that failed
    version is not retried on each call. Never called mid-call, so a call runs on one set of
    versions from start to end. Blocks while a changed model loads (a second for Whisper).
    """

    def __init__(
        self,
        config: Config,
        store: ModelStore | None = None,
        *,
        loaders: Mapping[str, Loader] | None = None,
        lock_wait_s: float = 0.005,
    ) -> None:
        from firmware.store import ModelStore

        self._config = config
        self.store = store if store is not None else ModelStore(config.paths.resolve(config.paths.models_dir))
        self._loaders = {**default_loaders(config), **(loaders or {})}
        self._follow = followed_models(config)
        self._lock_wait_s = lock_wait_s
        self._loaded: dict[str, tuple[str, object]] = {}  # slot -> (version, engine)
        self._failed: dict[str, tuple[str, str]] = {}  # slot -> (version, why), while current points there
        self._fixed = self._load_fixed()
        self.engines = self._refresh(first=True)

    def _load_fixed(self) -> dict[str, object]:
        """Slots the configuration pins to a file: loaded once, never followed."""
        fixed: dict[str, object] = {}
        if self._follow["intent"] is None:
            from firmware.intent import load_classifier

            fixed["intent"] = load_classifier(self.store.root, self._config.intent)
        if self._follow["playbook"] is None:
            from firmware.coach.build import playbook_path
            from firmware.coach.playbook import load_playbook

            fixed["playbook"] = load_playbook(playbook_path(self._config))
        return fixed

    def _load(self, slot: str, name: str, version: str) -> object:
        manifest = self.store.manifest(name, version)
        return self._loaders[slot](manifest)

    def _refresh(self, first: bool = False) -> Engines:
        for slot, name in self._follow.items():
            if name is None:
                continue
            have = self._loaded.get(slot)
            try:
                version = self.store.current(name)
            except (ModelError, OSError) as exc:  # e.g. a plain file where the pointer should be
                if have is None:
                    raise ModelError(str(exc)) from None
                self._failed[slot] = ("?", str(exc))
                log.warning("model %s: cannot read its current version, staying on %s: %s", name, have[0], exc)
                continue
            if version is None:
                if have is None:
                    self.store.manifest(name)  # raises the one-line "no current version" error
                continue
            if have is not None and have[0] == version:
                self._failed.pop(slot, None)
                continue
            if self._failed.get(slot, ("", ""))[0] == version:
                continue  # already failed; not retried until the pointer moves
            try:
                self._loaded[slot] = (version, self._load(slot, name, version))
                self._failed.pop(slot, None)
                if not first:
                    log.info("model %s: now on version %s (was %s)", name, version, have[0] if have else "none")
            except Exception as exc:  # noqa: BLE001 - whatever breaks a new version, the coach keeps the one it has
                if not isinstance(exc, ModelError):
                    log.error("model %s %s: unexpected failure while loading", name, version, exc_info=True)
                    exc = ModelError(f"model {name} {version} failed to load: {type(exc).__name__}: {exc}")
                if have is None:  # nothing loaded yet: the version before it, if the store kept one
                    previous = self.store.previous(name)
                    if previous is None or previous == version:
                        raise exc from None
                    try:
                        self._loaded[slot] = (previous, self._load(slot, name, previous))
                    except ModelError as again:
                        raise ModelError(f"{exc}; its previous version {previous} failed too: {again}") from None
                    have = self._loaded[slot]
                self._failed[slot] = (version, str(exc))
                log.warning("model %s %s failed to load, staying on %s: %s", name, version, have[0], exc)
        return self._engines()

    def _engines(self) -> Engines:
        engine = {slot: loaded[1] for slot, loaded in self._loaded.items()} | self._fixed
        versions = {self._follow[slot] or slot: loaded[0] for slot, loaded in self._loaded.items()}
        fallbacks = tuple(
            f"{self._follow[slot]} {version} failed to load, call ran on {self._loaded[slot][0]}: {why}"
            for slot, (version, why) in sorted(self._failed.items())
        )
        return Engines(
            vad_factory=engine["vad"],  # type: ignore[arg-type]
            recognizer=engine["recognizer"],  # type: ignore[arg-type]
            intent=engine.get("intent"),  # type: ignore[arg-type]
            playbook=engine.get("playbook"),  # type: ignore[arg-type]
            versions=versions,
            fallbacks=fallbacks,
        )

    def start_call(self) -> tuple[Engines, CallLease]:
        """At a call's start: the engines for this call, and the store lease to release at its end.

        When the lock is not free within ``lock_wait_s`` (the fleet agent is mid-switch), the call
        runs on what is loaded and says so, rather than wait.
        """
        lease = self.store.acquire_call(self._lock_wait_s)
        if lease.busy:
            log.warning("model store busy at call start (%.1f ms): call runs on the models already loaded", lease.waited_s * 1e3)
            self.engines = dataclasses.replace(
                self._engines(), fallbacks=(*self._engines().fallbacks, "model store busy at call start: versions not checked")
            )
            return self.engines, lease
        try:
            self.engines = self._refresh()
        except BaseException:
            lease.release()
            raise
        return self.engines, lease


def load_engines(config: Config) -> Engines:
    """The store's current versions, loaded once (replay, benchmarks); live mode uses :class:`ModelFollower`."""
    return ModelFollower(config).engines


class CallSink(Protocol):
    """What a frame source drives: ``CallSession``, or ``CoachedSession`` wrapping one."""

    @property
    def now(self) -> float: ...

    def feed(self, frame: CallFrame) -> None: ...

    def end_call(self, extra: dict[str, object] | None = None) -> Summary: ...

    def close(self) -> None: ...


class CallSession:
    """Feed frames in call order; events go to ``bus``; ``end_call`` returns the summary."""

    def __init__(self, config: Config, engines: Engines, bus: EventBus, *, lockstep: bool = False) -> None:
        self._config = config
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
                "versions": dict(self.engines.versions),  # the model versions this call ran on (firmware/outward.py lets the fleet see them)
                **({"model_fallbacks": list(self.engines.fallbacks)} if self.engines.fallbacks else {}),
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

