"""The agent's durable memory in ``<state_dir>/fleet/``: what it has accepted, and what it is doing.

``state.json``: the anti-rollback floor per model name (the highest version ever accepted), the
update and command ids finished (bounded), and the newest ``issued_at`` accepted (the clock floor).
``journal.json``: the update in progress and its phase, so a restart after ``kill -9`` knows whether
the switch happened. Both are written with a temporary file, fsync and rename.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from firmware.fleet.counters import write_json_atomic
from firmware.fleet.manifest import is_version, version_key

DONE_KEPT = 200


class FleetState:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "state.json"
        raw = _read(self.path) or {}
        floor = raw.get("floor", {})
        self.floor: dict[str, str] = {str(k): v for k, v in floor.items() if is_version(v)} if isinstance(floor, dict) else {}
        done = raw.get("done", [])
        self.done: list[str] = [d for d in done if isinstance(d, str)] if isinstance(done, list) else []
        clock = raw.get("clock_floor", 0.0)
        self.clock_floor: float = float(clock) if isinstance(clock, (int, float)) else 0.0

    def save(self) -> None:
        write_json_atomic(self.path, {"floor": self.floor, "done": self.done[-DONE_KEPT:], "clock_floor": self.clock_floor}, mode=0o600)

    def is_done(self, ident: str) -> bool:
        return ident in self.done

    def mark_done(self, ident: str) -> None:
        if ident not in self.done:
            self.done.append(ident)
        self.save()

    def raise_floor(self, name: str, version: str) -> None:
        old = self.floor.get(name)
        if old is None or version_key(version) > version_key(old):
            self.floor[name] = version

    def accept_time(self, issued_at: float) -> None:
        self.clock_floor = max(self.clock_floor, issued_at)


class Journal:
    """One update in progress: ``{"update_id", "phase", "switch": [{name, previous, new}], ...}``."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / "journal.json"

    def read(self) -> dict[str, Any] | None:
        return _read(self.path)

    def write(self, entry: dict[str, Any]) -> None:
        write_json_atomic(self.path, entry, mode=0o600)

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None
