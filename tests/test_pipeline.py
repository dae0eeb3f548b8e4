"""Pipeline mechanics on real audio with the real VAD: bounded queue, drop-and-count, shutdown."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import numpy as np
import pytest

from firmware.audio.wavfile import iter_call_frames
from firmware.config import Config
from firmware.events import Utterance
from firmware.speech.pipeline import SpeechPipeline
from firmware.speech.vad import SileroVad
from firmware.audio.frames import PcmF32


class GatedRecognizer:
    """Answers like a recogniser, but only once the test opens the gate: a recogniser that fell behind."""

    name = "gated"

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.calls = 0

    def transcribe(self, samples: PcmF32) -> str:
        self.gate.wait(timeout=30)
        self.calls += 1
        return f"segment {self.calls} of {len(samples) / 16000:.1f} seconds"


class FailingOnceRecognizer:
    name = "failing-once"

    def __init__(self) -> None:
        self.calls = 0

    def transcribe(self, samples: PcmF32) -> str:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("decoder exploded")
        return "still here"


def _pipeline(models_dir: Path, recognizer: object, out: list[Utterance], *, queue: int = 8, lockstep: bool = False,
              partials: bool = False) -> SpeechPipeline:
    # Final-segment mechanics are tested without early transcripts unless a test asks for them.
    config = dataclasses.replace(Config().speech, queue_segments=queue,
                                 partial_parties=Config().speech.partial_parties if partials else ())
    vad_path = models_dir / "silero-vad" / "current" / "silero_vad.onnx"
    pipeline = SpeechPipeline(config, lambda: SileroVad(vad_path, config.vad), recognizer, out.append,  # type: ignore[arg-type]
                              lockstep=lockstep)
    pipeline.start()
    return pipeline


def test_slow_recogniser_drops_and_counts_never_blocks(models_dir: Path, demo_call: Path) -> None:
    recognizer = GatedRecognizer()
    out: list[Utterance] = []
    pipeline = _pipeline(models_dir, recognizer, out, queue=2)
    for frame in iter_call_frames(demo_call):
        pipeline.feed(frame)  # would hang here if the producer ever waited on the gated worker
    recognizer.gate.set()
    pipeline.finish()
    pipeline.stop()
    stats = pipeline.stats
    assert stats.segments >= 8
    assert pipeline.dropped_segments > 0
    assert recognizer.calls + pipeline.dropped_segments == stats.segments
    assert len(out) == recognizer.calls


def test_lockstep_replay_loses_nothing(models_dir: Path, demo_call: Path) -> None:
    recognizer = GatedRecognizer()
    recognizer.gate.set()
    out: list[Utterance] = []
    pipeline = _pipeline(models_dir, recognizer, out, queue=1, lockstep=True)
    for frame in iter_call_frames(demo_call):
        pipeline.feed(frame)
    pipeline.finish()
    pipeline.stop()
    assert pipeline.dropped_segments == 0
    assert len(out) == pipeline.stats.segments
    # In lockstep an utterance is stamped when its segment closed: shortly after it ended.
    assert all(0 <= u.t - u.end < 1.0 for u in out)
    assert [u.t for u in out] == sorted(u.t for u in out)


def test_recogniser_failure_is_counted_and_recognition_goes_on(models_dir: Path, demo_call: Path) -> None:
    out: list[Utterance] = []
    pipeline = _pipeline(models_dir, FailingOnceRecognizer(), out, lockstep=True)
    for frame in iter_call_frames(demo_call):
        pipeline.feed(frame)
    pipeline.finish()
    pipeline.stop()
    assert pipeline.stats.recognizer_errors == 1
    assert len(out) == pipeline.stats.segments - 1


def test_stop_joins_the_worker(models_dir: Path) -> None:
    pipeline = _pipeline(models_dir, GatedRecognizer(), [])
    worker = next(t for t in threading.enumerate() if t.name == "speech-recognizer")
    pipeline.stop()
    assert not worker.is_alive()


def test_segments_follow_the_speech(models_dir: Path, demo_call: Path) -> None:
    import json

    truth = json.loads(demo_call.with_suffix(".json").read_text())
    recognizer = GatedRecognizer()
    recognizer.gate.set()
    out: list[Utterance] = []
    pipeline = _pipeline(models_dir, recognizer, out, lockstep=True)
    for frame in iter_call_frames(demo_call):
        pipeline.feed(frame)
    pipeline.finish()
    pipeline.stop()
    for speaker in ("rep", "buyer"):
        spans = [(u["start"], u["end"]) for u in truth["utterances"] if u["speaker"] == speaker]
        found = [(u.start, u.end) for u in out if u.speaker == speaker]
        # Every scripted line is covered by a segment that starts and ends near it ...
        for start, end in spans:
            assert any(s - 0.3 <= start and end <= e + 0.3 for s, e in found), (speaker, start, end, found)
        # ... and no segment is made of the other party's leak.
        for s, e in found:
            assert any(s < end and e > start for start, end in spans), (speaker, s, e)


def test_leak_alone_never_becomes_rep_speech(models_dir: Path, demo_call: Path) -> None:
    """The rep's mic carrying only the buyer's -25 dB earpiece leak, even 6 dB hotter than usual."""
    out: list[Utterance] = []
    recognizer = GatedRecognizer()
    recognizer.gate.set()
    pipeline = _pipeline(models_dir, recognizer, out, lockstep=True)
    for frame in iter_call_frames(demo_call):
        leak = np.concatenate((np.zeros(48, np.float32), frame.buyer[:-48])) * np.float32(10 ** (-19 / 20))
        pipeline.feed(dataclasses.replace(frame, rep=leak))
    pipeline.finish()
    pipeline.stop()
    assert [u for u in out if u.speaker == "rep"] == []
    assert any(u.speaker == "buyer" for u in out)


def test_buyer_partials_come_before_their_final_utterance(models_dir: Path, demo_call: Path) -> None:
    from firmware.events import Event, Partial

    recognizer = GatedRecognizer()
    recognizer.gate.set()
    out: list[Event] = []
    pipeline = _pipeline(models_dir, recognizer, out, lockstep=True, partials=True)  # type: ignore[arg-type]
    for frame in iter_call_frames(demo_call):
        pipeline.feed(frame)
    pipeline.finish()
    pipeline.stop()
    partials = [e for e in out if isinstance(e, Partial)]
    finals = [e for e in out if isinstance(e, Utterance)]
    assert partials and all(p.speaker == "buyer" for p in partials)
    long_buyer = [u for u in finals if u.speaker == "buyer" and u.end - u.start >= 2.5]
    for u in long_buyer:
        early = [p for p in partials if p.start == u.start]
        assert early, f"no early transcript for the {u.end - u.start:.1f} s buyer utterance at {u.start:.1f} s"
        assert all(p.t < u.t for p in early)
        assert out.index(early[0]) < out.index(u)
    assert pipeline.stats.utterances == len(finals)  # partials are not counted as utterances
