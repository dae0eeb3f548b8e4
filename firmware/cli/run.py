"""``parallax run``: the device's live mode, the coach consuming the bridge's taps.

The same :class:`firmware.runtime.CallSession` that ``parallax replay`` drives from a file is
opened here per call, fed from the tap socket (see :mod:`firmware.audio.live`).
"""

from __future__ import annotations

import argparse
import signal
import threading
from contextlib import ExitStack, closing
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from firmware.bus import EventBus
    from firmware.config import Config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="live mode: coach the calls the bridge taps")
    p.add_argument("--json", dest="json_path", help="write events as JSON lines to PATH ('-' for stdout)")
    p.add_argument("--socket", type=Path, help="tap socket to bind (default: bridge.tap_socket from the config)")
    p.add_argument("--idle-end", type=float, default=2.0, help="end the call after S seconds without taps")
    p.set_defaults(handler=run)


def _count_for_the_fleet(bus: "EventBus", config: "Config") -> None:
    """The coach's counters file for the fleet agent (firmware/fleet/counters.py): written at start
    and at each call's end, from the bus; tip counts by moment kind, never a tip's text."""
    from firmware.events import Summary, Tip
    from firmware.fleet.counters import CoachCounters

    counters = CoachCounters(config.paths.resolve(config.paths.state_dir))
    counters.write()  # a new started_at: the agent counts coach restarts by it

    def on_event(event: object) -> None:
        if isinstance(event, Tip):
            counters.tip(event.moment)
        elif isinstance(event, Summary):
            rtf = event.extra.get("recognizer_rtf")
            versions = event.extra.get("versions")  # the versions the call ran on (the model store's)
            if isinstance(versions, dict):
                counters.set_versions({str(k): str(v) for k, v in versions.items()})
            # A call whose recognizer raised counts as failed: after an update that is the sign
            # of a model that loads but does not work.
            counters.call_ended(failed=bool(event.extra.get("recognizer_errors")), recognizer_rtf=rtf if isinstance(rtf, (int, float)) else None)
            counters.write()  # at the call's end, off the audio path

    bus.subscribe(on_event)  # type: ignore[arg-type]


def run(args: argparse.Namespace) -> int:
    from firmware.audio.live import LiveCoach, run_live
    from firmware.audio.taps import TapReader
    from firmware.bus import EventBus
    from firmware.config import load_config
    from firmware.errors import ConfigError
    from firmware.cli.output import attach_outputs
    from firmware.runtime import CallSession, load_engines
    from firmware.coach.build import CoachBox
    from firmware.coach.session import CoachedSession

    if args.idle_end <= 0:
        raise ConfigError("--idle-end must be > 0")
    config = load_config(args.config)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    bus = EventBus()
    with ExitStack() as stack:
        attach_outputs(bus, args.json_path, stack)
        engines = load_engines(config)  # once: models stay loaded between calls
        _count_for_the_fleet(bus, config)
        reader = stack.enter_context(TapReader(args.socket or config.bridge.tap_socket))
        # The LED, motor, button and mastery outlive calls; each call gets a fresh coach.
        coach_box = stack.enter_context(closing(CoachBox(config)))
        coach = LiveCoach(lambda: CoachedSession(CallSession(config, engines, bus), coach_box, bus), bus)
        run_live(reader, coach, stop, idle_end_s=args.idle_end)
    return 0
