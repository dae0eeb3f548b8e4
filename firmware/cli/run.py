"""``parallax run``: the device's live mode, the coach consuming the bridge's taps.

The same :class:`firmware.runtime.CallSession` that ``parallax replay`` drives from a file is
opened here per call, fed from the tap socket (see :mod:`firmware.audio.live`). Models follow the
model store between calls (:class:`firmware.runtime.ModelFollower`): each call starts on the
store's current versions, holding the store's call lock until it ends.
"""

from __future__ import annotations

import argparse
import signal
import threading
from contextlib import ExitStack, closing
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from firmware.audio.frames import CallFrame
    from firmware.bus import EventBus
    from firmware.coach.build import CoachBox
    from firmware.config import Config
    from firmware.events import Summary
    from firmware.runtime import CallSink, ModelFollower
    from firmware.store import CallLease


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
    from firmware.runtime import ModelFollower
    from firmware.coach.build import CoachBox

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
        follower = ModelFollower(config)  # models stay loaded between calls; changed ones reload at a call's start
        stack.callback(follower.store.close)
        reader = stack.enter_context(TapReader(args.socket or config.bridge.tap_socket))
        # The LED, motor, button and mastery outlive calls; each call gets a fresh coach.
        coach_box = stack.enter_context(closing(CoachBox(config, publish=bus.publish)))
        coach = LiveCoach(session_opener(config, follower, coach_box, bus), bus)
        run_live(reader, coach, stop, idle_end_s=args.idle_end)
    return 0


class LeasedCall:
    """A coached call holding the model store's call lock from its start until it is closed."""

    def __init__(self, session: CallSink, lease: CallLease) -> None:
        self.session = session
        self.lease = lease

    @property
    def now(self) -> float:
        return self.session.now

    def feed(self, frame: CallFrame) -> None:
        if self.lease.busy and not self.lease.held:
            self.lease.try_hold()  # started during the agent's switch: hold the lock once it is free
        self.session.feed(frame)

    def end_call(self, extra: dict[str, object] | None = None) -> Summary:
        return self.session.end_call(extra)

    def close(self) -> None:
        try:
            self.session.close()
        finally:
            self.lease.release()


def session_opener(
    config: Config, follower: ModelFollower, coach_box: CoachBox, bus: EventBus
) -> Callable[[int], CallSink]:
    """What :class:`~firmware.audio.live.LiveCoach` calls at each call's start (the coach's thread)."""
    from firmware.coach.session import CoachedSession
    from firmware.runtime import CallSession

    def open_session(call_id: int) -> CallSink:
        engines, lease = follower.start_call()
        try:
            session = CoachedSession(CallSession(config, engines, bus), coach_box, bus, call_id=call_id)
            return LeasedCall(session, lease)
        except BaseException:
            lease.release()
            raise

    return open_session
