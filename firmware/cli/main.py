"""The ``parallax`` command line: one subcommand module per job, registered below.

Each module in :data:`COMMANDS` exposes ``register(subparsers)``, which adds its parser and
sets ``handler`` to a function ``(args) -> int``. Only this entry point configures logging.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, TextIO

from firmware import __version__
from firmware.errors import (
    EXIT_BAD_INPUT,
    EXIT_BUG,
    EXIT_DEVICE_IO,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    ParallaxError,
    Terminated,
)

# Module names under firmware.cli, imported lazily so `parallax --help` stays quick.
COMMANDS: tuple[str, ...] = (
    "replay",
    "demo",
    "models",
    "bridge",
    "run",
    "coach",
    "intent",
    "pair",
    "agent",
    "admin",
    "doctor",
)

log = logging.getLogger("firmware")


class Parser(argparse.ArgumentParser):
    """argparse with its usage errors as one line, like every other refusal (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"parallax: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="parallax", description="Parallax Edge coaching box firmware.")
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
    """Run one command; every expected failure ends as one line on stderr and the exit status of
    README "Exit status" (argparse's own usage errors exit 2 as well)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    # SIGTERM unwinds like Ctrl-C, so temporary folders go and atomic outputs are discarded.
    # Commands that stop gracefully on SIGTERM (bridge, run) install their own handler.
    previous = _raise_on_sigterm()
    real_stdout = sys.stdout
    guard = sys.stdout = _StdoutGuard(real_stdout)
    try:
        status = int(args.handler(args) or EXIT_OK)
        if guard.reader_gone:
            raise BrokenPipeError()
        return status
    except Terminated:
        return _fail("terminated", EXIT_TERMINATED, prefix="parallax:")
    except BaseException as exc:  # noqa: BLE001 - sorted by _failure, which re-raises what is not ours
        if _sigterm.arrived:
            # Terminated was raised inside a C extension (a model's native library loading) that
            # turned it into an error of its own, such as ImportError: still the SIGTERM's doing.
            return _fail("terminated", EXIT_TERMINATED, prefix="parallax:")
        return _failure(exc)
    finally:
        sys.stdout = real_stdout
        if guard.reader_gone:
            _silence_stdout()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _failure(exc: BaseException) -> int:
    """One line on stderr and the exit status for the exception that ended a command."""
    if isinstance(exc, ParallaxError):
        return _fail(str(exc), exc.exit_status)
    if isinstance(exc, KeyboardInterrupt):
        return _fail("interrupted", EXIT_INTERRUPTED, prefix="parallax:")
    if isinstance(exc, BrokenPipeError):
        # The reader of our stdout went away (`| head`): not an error. Point stdout at /dev/null
        # so the interpreter's final flush does not complain a second time.
        _silence_stdout()
        return EXIT_OK
    if isinstance(exc, OSError):
        # Expected I/O failures that no module turned into a ParallaxError: a full disk, a device
        # gone, a permission. One line naming the file, not a traceback.
        return _fail(describe_os_error(exc), EXIT_BAD_INPUT if exc.errno in _INPUT_ERRNOS else EXIT_DEVICE_IO)
    if isinstance(exc, Exception):  # the one place a bug is reported as such
        traceback.print_exception(exc)
        return _fail("internal error (a bug in parallax, please report it with the traceback above)", EXIT_BUG)
    raise exc  # SystemExit and the like: not a failure of ours to report


# A path that is absent or of the wrong kind is the caller's input, not a failing device.
_INPUT_ERRNOS = {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG, errno.ELOOP}


def describe_os_error(exc: OSError) -> str:
    what = exc.strerror or str(exc)
    name = exc.filename
    return f"{name}: {what}" if name else what


def _fail(message: str, status: int, prefix: str = "parallax: error:") -> int:
    print(f"{prefix} {message}", file=sys.stderr)
    return status


class _Sigterm:
    """Whether SIGTERM arrived during this command (main() sorts the exception it ends with)."""

    arrived = False


_sigterm = _Sigterm()


def _raise_on_sigterm():  # type: ignore[no-untyped-def]
    _sigterm.arrived = False

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        _sigterm.arrived = True
        raise Terminated()

    try:
        return signal.signal(signal.SIGTERM, on_sigterm)
    except ValueError:  # not the main thread (main() called from a test's worker thread)
        return None


class _StdoutGuard:
    """stdout for the command's duration. When its reader goes away (`parallax replay X | head`),
    writes from any thread (the timeline and JSON writers run on the pipeline's threads, where
    the bus would log each failure with a traceback) are dropped instead, and the command then
    ends quietly with status 0, as when the main thread meets the closed pipe itself."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.reader_gone = False

    def write(self, text: str) -> int:
        if not self.reader_gone:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self.reader_gone = True
        return len(text)

    def flush(self) -> None:
        if not self.reader_gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self.reader_gone = True

    def __getattr__(self, name: str) -> Any:  # fileno, isatty, encoding, ...: the real stream's
        return getattr(self._stream, name)


def _silence_stdout() -> None:
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


if __name__ == "__main__":
    sys.exit(main())
