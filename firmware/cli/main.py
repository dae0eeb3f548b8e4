"""The ``parallax`` command line: one subcommand module per job, registered below.

Each module in :data:`COMMANDS` exposes ``register(subparsers)``, which adds its parser and
sets ``handler`` to a function ``(args) -> int``. Only this entry point configures logging.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from firmware import __version__
from firmware.errors import ParallaxError

# Module names under firmware.cli, imported lazily so `parallax --help` stays quick.
COMMANDS: tuple[str, ...] = (
    "replay",
    "demo",
    "models",
    "bridge",
    "run",
    "coach",
    "intent",
    "doctor",
)

log = logging.getLogger("firmware")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parallax", description="Parallax Edge coaching box firmware.")
    parser.add_argument("--version", action="version", version=f"parallax {__version__}")
    parser.add_argument("--config", type=Path, help="TOML configuration (default: /etc/parallax/parallax.toml or built-in)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"firmware.cli.{name}").register(sub)
    return parser


def configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    try:
        return int(args.handler(args) or 0)
    except ParallaxError as exc:
        print(f"parallax: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("parallax: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
