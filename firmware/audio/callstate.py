"""Call detection in the bridge and its local publication.

A call is active while the host streams to the gadget and someone has spoken: it starts
after ``call_start_speech_s`` of speech on either side while the host streams, and ends when
the host stops streaming or after ``call_end_silence_s`` without speech. The detector runs in
the audio thread (one mean square per tap frame or cycle, no allocation). Changes are published off that thread:
in-band in every tap packet (call id) and as a small JSON file written atomically, which the
fleet agent polls before applying an update (:func:`wait_until_idle`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

from firmware.events import CallState
from firmware.errors import AudioDeviceError


@dataclass(frozen=True, slots=True)
class CallChange:
    active: bool
    call_id: int
    stream_t: float  # bridge stream time (s) of the change
    reason: str


class CallDetector:
    def __init__(
        self,
        *,
        period_s: float,
        speech_threshold_dbfs: float,
        start_speech_s: float,
        end_silence_s: float,
        stream_idle_s: float,
    ) -> None:
        self.period_s = period_s
        # compare mean squares (full scale 1), not dB, so the hot path needs no log
        self._threshold_ms = (10 ** (speech_threshold_dbfs / 20)) ** 2
        self.start_speech_s = start_speech_s
        self.end_silence_s = end_silence_s
        self.stream_idle_s = stream_idle_s
        self.active = False
        self.call_id = 0
        self._next_id = int(time.time() * 1000)  # unique across bridge restarts
        self._speech_run_s = 0.0
        self._silence_s = 0.0
        self._since_host_audio_s = math.inf
        self.call_start_t = 0.0
        self._stream_since = 0.0

    @property
    def host_streaming(self) -> bool:
        return self._since_host_audio_s <= self.stream_idle_s

    def update(self, stream_t: float, host_audio: bool, speech_ms: float) -> CallChange | None:
        """Advance one step of ``period_s``; ``speech_ms``: the larger mean square of the sides (full scale 1)."""
        if host_audio:
            if not self.host_streaming:
                self._stream_since = stream_t
            self._since_host_audio_s = 0.0
        else:
            self._since_host_audio_s += self.period_s
        speaking = speech_ms >= self._threshold_ms
        if speaking:
            self._speech_run_s += self.period_s
            self._silence_s = 0.0
        else:
            self._speech_run_s = 0.0
            self._silence_s += self.period_s
        if not self.active:
            speech_while_streaming = min(self._speech_run_s, stream_t - self._stream_since + self.period_s)
            if self.host_streaming and speech_while_streaming >= self.start_speech_s:
                self.active = True
                self._next_id += 1
                self.call_id = self._next_id
                # the call began when both held: the host streaming and someone speaking
                self.call_start_t = max(self._stream_since, stream_t - self._speech_run_s)
                return CallChange(True, self.call_id, self.call_start_t, "speech while host streams")
            return None
        if not self.host_streaming:
            return self._end(stream_t, "host closed the stream")
        if self._silence_s >= self.end_silence_s:
            return self._end(stream_t, "silence")
        return None

    def _end(self, stream_t: float, reason: str) -> CallChange:
        change = CallChange(False, self.call_id, stream_t, reason)
        self.active = False
        self.call_id = 0
        return change


def write_state(path: Path, event: CallState) -> None:
    """Atomically replace ``path`` with the event's JSON (readers never see half a file).

    Raises ``OSError`` (the folder) or :class:`~firmware.errors.StorageError` (the write)."""
    from firmware.atomic import write_text_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, event.to_json() + "\n")


def read_state(path: Path) -> CallState | None:
    """The last published state, or None when the bridge has published nothing."""
    from firmware.events import parse_event

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AudioDeviceError(f"cannot read call state {path}: {exc}") from None
    event = parse_event(text)
    if not isinstance(event, CallState):
        raise AudioDeviceError(f"{path} holds a {event.type} event, not call_state")
    return event


def wait_until_idle(path: Path, timeout_s: float, poll_s: float = 0.5) -> bool:
    """For the fleet agent: True once no call is active, False if ``timeout_s`` passes first."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = read_state(path)
        if state is None or not state.active:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))
