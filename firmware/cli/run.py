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
    from firmware.phone.link import PhoneLink
    from firmware.speech.leak import LeakStore


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="live mode: coach the calls the bridge taps")
    p.add_argument("--json", dest="json_path", help="write events as JSON lines to PATH ('-' for stdout)")
    p.add_argument("--socket", type=Path, help="tap socket to bind (default: bridge.tap_socket from the config)")
    p.add_argument("--idle-end", type=float, default=2.0, help="end the call after S seconds without taps")
    p.set_defaults(handler=run)


def _count_for_the_fleet(bus: EventBus, config: Config, link: PhoneLink | None) -> None:
    """The coach's counters file for the fleet agent (firmware/fleet/counters.py): written at start
    and at each call's end, from the bus; tip counts by moment kind, never a tip's text; the phone
    link's state and its counters (``PhoneLink.health``), never an address or an error's text."""
    from firmware.events import Summary, Tip
    from firmware.fleet.counters import CoachCounters

    counters = CoachCounters(config.paths.resolve(config.paths.state_dir))

    def phone_link() -> str:
        return "absent" if link is None else "connected" if link.health().get("phone_connected") else "disconnected"

    def phone_state() -> None:
        counters.set_phone_link(phone_link())
        if link is not None:
            counters.set_phone_health(link.health())  # numbers and flags only, never the bonded address

    phone_state()
    counters.write()  # a new started_at: the agent counts coach restarts by it

    def on_event(event: object) -> None:
        if isinstance(event, Tip):
            counters.tip(event.moment)
        elif isinstance(event, Summary):
            rtf = event.extra.get("recognizer_rtf")
            versions = event.extra.get("versions")  # the versions the call ran on (the model store's)
            # "intent 1.5.0 failed to load, call ran on 1.4.0: ..." (firmware.runtime): the agent
            # rolls back a version the coach could not load; only the name and version are kept.
            fallbacks = {}
            for line in event.extra.get("model_fallbacks") or ():
                parts = str(line).split(" ", 2)
                if len(parts) == 3 and parts[2].startswith("failed to load"):
                    fallbacks[parts[0]] = parts[1]
            if isinstance(versions, dict):
                counters.set_versions({str(k): str(v) for k, v in versions.items()}, fallbacks)
            # A call whose recognizer raised counts as failed: after an update that is the sign
            # of a model that loads but does not work.
            counters.call_ended(failed=bool(event.extra.get("recognizer_errors")), recognizer_rtf=rtf if isinstance(rtf, (int, float)) else None)
            phone_state()
            counters.write()  # at the call's end, off the audio path

    bus.subscribe(on_event)  # type: ignore[arg-type]


def run(args: argparse.Namespace) -> int:
    from firmware.audio.live import LiveCoach, run_live
    from firmware.audio.taps import TapReader
    from firmware.bus import EventBus
    from firmware.config import load_config
    from firmware.errors import ConfigError
    from firmware.cli.output import attach_outputs
    from firmware.runtime import ModelFollower
    from firmware.coach.build import CoachBox
    from firmware.speech.leak import LeakStore
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
        follower = ModelFollower(config)  # models stay loaded between calls; changed ones reload at a call's start
        stack.callback(follower.store.close)
        reader = stack.enter_context(TapReader(args.socket or config.bridge.tap_socket))
        link = _phone_link(config)
        _count_for_the_fleet(bus, config, link)
        # The LED, motor, button and mastery outlive calls; each call gets a fresh coach.
        coach_box = stack.enter_context(closing(CoachBox(config, phone=link, publish=bus.publish)))
        if link is not None:
            from firmware.phone.link import attach

            attach(link, coach_box, config.phone.pair_hold_s)
            # SIGUSR1 (`systemctl kill -s USR1 parallax-coach`) enters pairing mode like the long press.
            signal.signal(signal.SIGUSR1, lambda signum, frame: link.enter_pairing())
            link.start()
            stack.callback(link.stop)  # stopped (and joined) before the box closes
        # The headset's earpiece leak is measured on each call and kept for the next one.
        leak_store = LeakStore.in_dir(config.paths.resolve(config.paths.state_dir))
        # The recogniser's word list (~0.1 s to read) now, at start-up, not under the box's lock at
        # the first call's start, where a phone control would wait on it.
        coach_box.known_words()
        coach = LiveCoach(session_opener(config, follower, coach_box, bus, leak_store=leak_store), bus)
        notifier = stack.enter_context(closing(Notifier()))
        notifier.ready("waiting for the bridge's taps")
        try:
            run_live(reader, coach, stop, idle_end_s=args.idle_end, on_tick=notifier.kick)
        finally:
            notifier.stopping()
    return 0


def _phone_link(config: Config) -> PhoneLink | None:
    """The BLE link to the rep's phone, or None when ``[phone] enabled = false``."""
    if not config.phone.enabled:
        return None
    from firmware.phone.link import STATUS_FILE, PhoneLink
    from firmware.phone.secret import PairingStore

    state_dir = config.paths.resolve(config.paths.state_dir)
    return PhoneLink(config.phone, PairingStore(state_dir), status_path=state_dir / STATUS_FILE)


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
    config: Config, follower: ModelFollower, coach_box: CoachBox, bus: EventBus, leak_store: LeakStore | None = None
) -> Callable[[int], CallSink]:
    """What :class:`~firmware.audio.live.LiveCoach` calls at each call's start (the coach's thread).
    ``leak_store``: where the headset's measured earpiece leak is kept between calls (None: not kept)."""
    from firmware.coach.session import CoachedSession
    from firmware.runtime import CallSession

    def open_session(call_id: int) -> CallSink:
        engines, lease = follower.start_call()
        try:
            session = CoachedSession(
                CallSession(config, engines, bus, leak_store=leak_store), coach_box, bus, call_id=call_id
            )
            return LeasedCall(session, lease)
        except BaseException:
            lease.release()
            raise

    return open_session
