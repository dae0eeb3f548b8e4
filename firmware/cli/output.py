"""Where a command's results go: every output option is checked before any work starts, and
written atomically.

One mechanism for every ``parallax`` output option (``--json``, ``--report``, ...):

- ``-`` means stdout, for every option alike; at most one option may take stdout.
- A file path must name a file (not a folder) in an existing, writable folder, must not be the
  same file as any input (compared with ``os.path.samefile``, so symlinks and hard links count)
  nor as another output. Refusals raise :class:`OutputError` (exit status 2) before anything ran.
- A file is written through :func:`firmware.atomic.atomic_write`: the result appears whole when
  the command succeeds, and a failed or interrupted command leaves the old file (or none).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from firmware.atomic import atomic_write, is_special
from firmware.bus import EventBus
from firmware.errors import OutputError, StorageError
from firmware.events import Event
from firmware.replay import JsonLinesWriter, TimelinePrinter

STDOUT = "-"


@dataclass(frozen=True)
class Output:
    """One checked output option: ``path`` None means stdout."""

    option: str
    path: Path | None

    @property
    def to_stdout(self) -> bool:
        return self.path is None

    @contextmanager
    def open(self) -> Iterator[IO[str]]:
        """The stream to write; a file appears (whole) only when the block exits cleanly."""
        if self.path is None:
            yield sys.stdout
            sys.stdout.flush()
            return
        with atomic_write(self.path) as out:
            yield out

    def write_text(self, text: str) -> None:
        with self.open() as out:
            out.write(text)


def check_outputs(options: Mapping[str, str | Path | None], inputs: Iterable[Path | None]) -> dict[str, Output]:
    """Check every given output option against the rules above; return the usable ones by option."""
    outputs: dict[str, Output] = {}
    inputs = [Path(p) for p in inputs if p is not None]
    for option, value in options.items():
        if value is None:
            continue
        text = str(value)
        if not text.strip():
            raise OutputError(f"{option} needs a file name, or - for stdout")
        if text == STDOUT:
            taken = [o.option for o in outputs.values() if o.to_stdout]
            if taken:
                raise OutputError(f"{option} - and {taken[0]} - both ask for stdout; send one of them to a file")
            outputs[option] = Output(option, None)
            continue
        path = Path(text)
        _check_path(option, path)
        for source in inputs:
            if _same_file(path, source):
                raise OutputError(f"{option} {path} is the input {source}; refusing to overwrite an input")
        for other in outputs.values():
            if other.path is not None and _same_target(path, other.path):
                raise OutputError(f"{option} {path} and {other.option} {other.path} are the same file")
        outputs[option] = Output(option, path)
    return outputs


def _check_path(option: str, path: Path) -> None:
    if path.is_dir():
        raise OutputError(f"{option} {path} is a folder; give a file name")
    if is_special(path):
        return  # /dev/null, /dev/stderr, a FIFO: written in place
    target = Path(os.path.realpath(path))
    folder = target.parent
    if not folder.exists():
        raise OutputError(f"{option} {path}: folder {folder} does not exist")
    if not folder.is_dir():
        raise OutputError(f"{option} {path}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{option} {path}: folder {folder} is not writable")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): it cannot be the other
        return False


def _same_target(a: Path, b: Path) -> bool:
    return _same_file(a, b) or os.path.realpath(a) == os.path.realpath(b)


def attach_outputs(
    bus: EventBus, json_out: Output | str | None, stack: ExitStack, *, stdout_taken: bool = False
) -> IO[str]:
    """Subscribe the JSON writer and the timeline; return the timeline's stream.

    ``json_out`` is a checked :class:`Output`, or the raw ``--json`` value (checked here, for
    commands with no input files). With any output on stdout (``stdout_taken``, or JSON itself)
    the timeline moves to stderr, so stdout holds only that output.
    """
    if isinstance(json_out, str):
        json_out = check_outputs({"--json": json_out}, ()).get("--json")
    timeline: IO[str] = sys.stdout
    if json_out is not None:
        writer = _GuardedWriter(JsonLinesWriter(stack.enter_context(json_out.open())))
        bus.subscribe(writer)
        # Runs before the file's own exit (LIFO): a failed write fails the command, and the
        # atomic file then discards its partial content.
        stack.callback(writer.raise_if_failed, json_out)
        if json_out.to_stdout:
            timeline = sys.stderr
    if stdout_taken:
        timeline = sys.stderr
    bus.subscribe(TimelinePrinter(timeline))
    return timeline


class _GuardedWriter:
    """The JSON writer as a bus handler that keeps its first write error (a full disk, a closed
    pipe) instead of letting the bus log one traceback per event; later events are skipped, and
    :meth:`raise_if_failed` reports the error when the command ends."""

    def __init__(self, inner: JsonLinesWriter) -> None:
        self._inner = inner
        self.error: OSError | None = None

    def __call__(self, event: Event) -> None:
        if self.error is not None:
            return
        try:
            self._inner(event)
        except OSError as exc:
            self.error = exc

    def raise_if_failed(self, out: Output) -> None:
        if self.error is None:
            return
        if isinstance(self.error, BrokenPipeError):
            raise self.error  # the reader went away (`| head`): main() ends quietly
        where = "stdout" if out.path is None else str(out.path)
        raise StorageError(f"cannot write {out.option} {where}: {self.error.strerror or self.error} (nothing was kept)")
