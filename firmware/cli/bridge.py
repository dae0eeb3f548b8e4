"""``parallax bridge``: the inline headset <-> computer passthrough, as its own process."""

from __future__ import annotations

import argparse
from pathlib import Path
import gc
import json
import logging
import logging.handlers
import queue
import signal
import threading
from types import FrameType

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bridge", help="run the real-time headset <-> computer audio bridge")
    p.add_argument("--stats-interval", type=float, default=60.0, help="log bridge figures every S seconds (0: never)")
    p.add_argument("--duration", type=float, default=0.0, help="stop after S seconds (0: run until signalled)")
    p.add_argument("--no-taps", action="store_true", help="do not send taps to the coach")
    p.add_argument("--latency", action="store_true", help="print the configured one-way latency and exit")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from firmware.audio.bridge import Bridge, latency_frames
    from firmware.audio.service import CallStatePublisher, lock_memory, supervise
    from firmware.config import load_config
    from firmware.errors import ConfigError
    from firmware.systemd import Notifier

    full_config = load_config(args.config)
    config = full_config.bridge
    if args.latency:
        terms = latency_frames(config)
        for name, frames in terms.items():
            print(f"{name:22s} {frames:5d} frames  {1000 * frames / config.rate_hz:6.2f} ms")
        total = sum(terms.values())
        print(f"{'worst one-way':22s} {total:5d} frames  {1000 * total / config.rate_hz:6.2f} ms")
        return 0
    if args.stats_interval < 0 or args.duration < 0:
        raise ConfigError("--stats-interval and --duration must be >= 0")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    listener = _log_off_the_audio_thread()
    if config.sched_fifo:
        lock_memory()
    bridge = Bridge(config, taps=not args.no_taps)
    publisher = CallStatePublisher(bridge)
    publisher.start()
    # This process makes no reference cycles in steady state: without the cyclic collector
    # no collection pause can land in the audio thread (reference counting still frees all).
    gc.collect()
    gc.disable()
    bridge.start()
    notifier = Notifier()
    state_dir = full_config.paths.resolve(full_config.paths.state_dir)
    try:
        code = supervise(
            bridge, stop, notifier, stats_interval_s=args.stats_interval, duration_s=args.duration,
            periodic=lambda: _write_counters(bridge, state_dir), periodic_s=COUNTERS_EVERY_S,
        )  # fmt: skip
    finally:
        notifier.stopping()
        bridge.stop()
        publisher.stop()
        listener.stop()
        notifier.close()
    if code:
        return code
    print(json.dumps(bridge.stats()))
    return 0


# The fleet agent reads the bridge's xruns and tap drops from <state_dir>/counters/bridge.json.
COUNTERS_EVERY_S = 30.0


def _write_counters(bridge: object, state_dir: Path) -> None:
    from firmware.fleet.counters import write_bridge_counters

    stats = bridge.stats()  # type: ignore[attr-defined]
    legs = [stats.get("rep", {}), stats.get("buyer", {})]
    xruns = sum(int(leg.get("capture_xruns", 0)) + int(leg.get("playback_xruns", 0)) for leg in legs if isinstance(leg, dict))
    taps = stats.get("taps", {})
    write_bridge_counters(state_dir, xruns, int(taps.get("dropped", 0)) if isinstance(taps, dict) else 0)


def _log_off_the_audio_thread() -> logging.handlers.QueueListener:
    """Route every log record through a queue: the audio thread (which logs a lost or returning
    device) then never waits on stderr or the journal; a listener thread does the writing."""
    root = logging.getLogger()
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(records, *root.handlers, respect_handler_level=True)
    root.handlers = [logging.handlers.QueueHandler(records)]
    listener.start()
    return listener
