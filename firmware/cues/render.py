"""Showing the box's cues in a terminal (demo, replay on a laptop): what the LED and motor do."""

from __future__ import annotations

import threading
from typing import IO

from firmware.cues.spec import COLOURS, BoxState, CueSink, CueSpec

_HAPTIC = {"none": "", "single": "bzz", "double": "bzz-bzz"}


def _dot(colour: str, ansi: bool) -> str:
    if not ansi:
        return f"({colour})"
    r, g, b = (int(c * 255) for c in COLOURS[colour])
    return f"\x1b[38;2;{r};{g};{b}m\u25cf\x1b[0m"


class TerminalCues:
    """A CueSink that prints each cue, then passes it on to the real one (the GPIO devices)."""

    def __init__(self, inner: CueSink, stream: IO[str], *, ansi: bool | None = None) -> None:
        self._inner = inner
        self._stream = stream
        self._ansi = stream.isatty() if ansi is None else ansi
        self._lock = threading.Lock()

    def tip(self, cue: CueSpec) -> None:
        parts = []
        if cue.led_colour is not None:
            parts.append(f"LED {_dot(cue.led_colour, self._ansi)} {cue.led_colour} {cue.led_pattern}")
        if cue.haptic != "none":
            parts.append(f"haptic {_HAPTIC[cue.haptic]}")
        if parts:
            self._print("  ".join(parts))
        self._inner.tip(cue)

    def clear(self) -> None:
        self._print("LED off")
        self._inner.clear()

    def status(self, state: BoxState) -> None:
        self._print(f"box {state}")
        self._inner.status(state)

    def close(self) -> None:
        self._inner.close()

    def _print(self, text: str) -> None:
        with self._lock:
            print(f"           CUES   {text}", file=self._stream, flush=True)
