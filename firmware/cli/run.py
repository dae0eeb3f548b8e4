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


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="live mode: coach the calls the bridge taps")
    p.add_argument("--json", dest="json_path", help="write events as JSON lines to PATH ('-' for stdout)")
    p.add_argument("--socket", type=Path, help="tap socket to bind (default: bridge.tap_socket from the config)")
    p.add_argument("--idle-end", type=float, default=2.0, help="end the call after S seconds without taps")
    p.set_defaults(handler=run)


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
    from firmware.systemd import Notifier

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
        reader = stack.enter_context(TapReader(args.socket or config.bridge.tap_socket))
        # The LED, motor, button and mastery outlive calls; each call gets a fresh coach.
        coach_box = stack.enter_context(closing(CoachBox(config)))
        coach = LiveCoach(lambda: CoachedSession(CallSession(config, engines, bus), coach_box, bus), bus)
        notifier = stack.enter_context(closing(Notifier()))
        notifier.ready("waiting for the bridge's taps")
        try:
            run_live(reader, coach, stop, idle_end_s=args.idle_end, on_tick=notifier.kick)
        finally:
            notifier.stopping()
    return 0
