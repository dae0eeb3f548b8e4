"""``parallax agent``: the box's fleet link (health, versions, signed updates) over MQTT.

Its own process and systemd unit (systemd/parallax-agent.service); docs/fleet-protocol.md has the
protocol. Exit status: 0 after SIGTERM/SIGINT, 2 on a configuration error.
"""

from __future__ import annotations

import argparse
import signal
import threading
from types import FrameType


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("agent", help="the fleet agent: health, versions and signed updates over MQTT")
    p.add_argument("--once", action="store_true", help="connect, publish status and telemetry, and exit")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from firmware.config import load_config
    from firmware.fleet.agent import Agent

    config = load_config(args.config)
    from firmware.fleet.storeadapter import open_store

    state_dir = config.paths.resolve(config.paths.state_dir)
    agent = Agent(config.fleet, state_dir, open_store(config.paths.resolve(config.paths.models_dir)), config_path=args.config)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    agent.start()
    try:
        if args.once:
            agent.wait_connected(15)
            stop.wait(1.0)
        else:
            stop.wait()
    finally:
        agent.stop()
    return 0
