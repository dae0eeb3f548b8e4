"""Replaying a recorded call through the device's own session objects."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from firmware.audio.wavfile import iter_call_frames
from firmware.events import ControlResult, Event, RecapEvent, Status, Summary, Utterance
from firmware.runtime import CallSink


def replay_call(
    path: Path,
    session: CallSink,
    *,
    speed: float | None = None,
    channels: tuple[int, int] = (0, 1),
    extra_summary: Callable[[], dict[str, object]] | None = None,
) -> Summary:
    """Feed ``path`` frame by frame; ``speed`` None = as fast as possible, 1.0 = real time."""
    wall_start = time.monotonic()
    for frame in iter_call_frames(path, channels):
        if speed is not None:
            delay = wall_start + frame.end_t / speed - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        session.feed(frame)
    return session.end_call(extra_summary() if extra_summary else None)


class JsonLinesWriter:
    """Bus handler writing one JSON event per line; events come from more than one thread."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        line = json.dumps(event.to_dict(), ensure_ascii=False)
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()


class TimelinePrinter:
    """Bus handler printing a readable timeline for a person watching a replay."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        line = self.format(event)
        if line:
            with self._lock:
                print(line, file=self._stream, flush=True)

    @staticmethod
    def format(event: Event) -> str | None:
        stamp = f"[{_clock(event.t)}]"
        if isinstance(event, Utterance):
            who = "REP  " if event.speaker == "rep" else "BUYER"
            tag = f"  <{event.intent} {event.confidence:.2f}>" if event.intent and event.intent != "other" else ""
            return f"{stamp} {who} {_clock(event.start)}-{_clock(event.end)}  {event.text}{tag}"
        if isinstance(event, Summary):
            figures = ", ".join(f"{k}={_fmt(v)}" for k, v in event.extra.items())
            return f"{stamp} END   {event.duration_s:.1f} s of call, {event.cpu_s:.1f} CPU-s ({figures})"
        if isinstance(event, Status):
            if not event.call_active:
                return f"{stamp} STATUS call #{event.call_id} over" if event.call_id is not None else f"{stamp} STATUS no call"
            state = "coaching"
            if event.muted:
                state = "muted for the call"
            elif event.snoozed_until_s is not None:
                state = f"snoozed until {_clock(event.snoozed_until_s)}"
            return f"{stamp} STATUS call #{event.call_id}: {state}"
        if isinstance(event, ControlResult):
            # Printed under its control, indented, so the pair reads as one exchange.
            what = {"applied": "applied", "next_call": "kept for the next call", "refused": "refused"}[event.outcome]
            return f"{stamp}   -> {event.action} {what}" + (f": {event.reason}" if event.reason else "")
        if isinstance(event, RecapEvent):
            indent = " " * (len(stamp) + 3)
            return f"{stamp} RECAP  for the rep's phone\n" + "\n".join(indent + line for line in event.lines())
        describe = getattr(event, "describe", None)
        return f"{stamp} {describe()}" if callable(describe) else None


def _clock(seconds: float) -> str:
    minutes, secs = divmod(max(seconds, 0.0), 60)
    return f"{int(minutes):02d}:{secs:05.2f}"


def _fmt(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
