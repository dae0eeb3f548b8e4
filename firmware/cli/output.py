"""Where a command's events go: a readable timeline, and JSON lines when asked for."""

from __future__ import annotations

import sys
from contextlib import ExitStack
from typing import TextIO

from firmware.bus import EventBus
from firmware.replay import JsonLinesWriter, TimelinePrinter


def attach_outputs(bus: EventBus, json_path: str | None, stack: ExitStack) -> TextIO:
    """Subscribe the JSON writer (``-`` = stdout) and the timeline; return the timeline's stream.

    With JSON on stdout the timeline moves to stderr, so stdout stays one event per line.
    """
    timeline: TextIO = sys.stdout
    if json_path == "-":
        bus.subscribe(JsonLinesWriter(sys.stdout))
        timeline = sys.stderr
    elif json_path:
        bus.subscribe(JsonLinesWriter(stack.enter_context(open(json_path, "w", encoding="utf-8"))))
    bus.subscribe(TimelinePrinter(timeline))
    return timeline
