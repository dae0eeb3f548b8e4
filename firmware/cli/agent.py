"""``parallax agent``: the box's fleet link (health, versions, signed updates) over MQTT.

Its own process and systemd unit (systemd/parallax-agent.service); docs/fleet-protocol.md has the
protocol. Exit status: 0 after SIGTERM/SIGINT, 2 on a configuration error.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from firmware.systemd import Notifier


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("agent", help="the fleet agent: health, versions and signed updates over MQTT")
    p.add_argument("--once", action="store_true", help="connect, publish status and telemetry, and exit")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from firmware.config import load_config
    from firmware.fleet.agent import Agent
    from firmware.systemd import Notifier

    config = load_config(args.config)
    from firmware.fleet.storeadapter import open_store

    state_dir = config.paths.resolve(config.paths.state_dir)
    agent = Agent(config.fleet, state_dir, open_store(config.paths.resolve(config.paths.models_dir)), config_path=args.config)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    notifier = Notifier()
    agent.start()
    try:
        notifier.ready("fleet agent running")
        if args.once:
            agent.wait_connected(15)
            stop.wait(1.0)
        elif not serve(agent, stop, notifier):
            print("parallax: error: a fleet agent thread died; exiting for the service manager", file=sys.stderr)
            return 1
    finally:
        notifier.stopping()
        agent.stop()
        notifier.close()
    return 0


class _Supervised(Protocol):
    def alive(self) -> bool: ...


def serve(agent: _Supervised, stop: threading.Event, notifier: Notifier, poll_s: float = 1.0) -> bool:
    """The agent process's main loop: feed systemd's watchdog while every agent thread lives.

    A dead worker means no updates and no telemetry: the pings stop, and this returns False so the
    process exits and systemd restarts it (the update journal resumes where it was). True once
    ``stop`` is set.
    """
    while not stop.wait(poll_s):
        if not agent.alive():
            return False
        notifier.kick()
    return True
