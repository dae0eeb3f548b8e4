"""The counters files the coach and the bridge leave for the agent (docs/fleet-protocol.md).

Each process writes its own small JSON file in ``<state_dir>/counters/`` with a temporary file and a
rename, so the agent reads a whole file or the previous one, and neither process ever waits on the
other. The files hold numbers, version strings and moment kinds only: the writer takes no text.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from firmware.atomic import storage_reason, write_text_atomic
from firmware.errors import StorageError

log = logging.getLogger(__name__)

SCHEMA = 1
# The phone link's health figures (firmware.phone.link.PhoneLink.health, "phone_" dropped): a name of
# this shape and a number or a flag. The file, the agent and the fleet allowlist all hold to it.
PHONE_NAME = re.compile(r"[a-z][a-z_]{0,39}")
PHONE_MAX = 64


def phone_figures(health: Mapping[str, Any]) -> dict[str, bool | int]:
    """The part of a phone health mapping the fleet may see: fixed-shape names, ints and bools only
    (anything else, an address, an error text, a float, is left out); at most ``PHONE_MAX`` of them."""
    out: dict[str, bool | int] = {}
    for name, value in health.items():
        if not isinstance(name, str):
            continue
        name = name.removeprefix("phone_")
        if PHONE_NAME.fullmatch(name) and type(value) in (bool, int) and len(out) < PHONE_MAX:
            out[name] = value
    return out
COACH_FILE = "coach.json"
BRIDGE_FILE = "bridge.json"


def counters_dir(state_dir: Path) -> Path:
    return Path(state_dir) / "counters"


def write_json_atomic(path: Path, obj: Mapping[str, Any], mode: int = 0o644) -> None:
    """``obj`` as compact JSON, replacing ``path`` whole with file mode ``mode``.

    Raises ``OSError`` (the folder) or :class:`~firmware.errors.StorageError` (the write)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(obj, separators=(",", ":")), perms=mode)


def read_counters(path: Path) -> dict[str, Any] | None:
    """A counters file's object, or None when it is missing or unreadable (unknown, not an error)."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) and obj.get("schema") == SCHEMA else None


class CoachCounters:
    """Kept by the coach process; ``write()`` at start and at each call's end (never mid-call I/O).

    Thread-safe: the bus handlers that count run on the coach's thread, ``write`` may run elsewhere.
    """

    def __init__(self, state_dir: Path, versions: Mapping[str, str] | None = None) -> None:
        self.path = counters_dir(state_dir) / COACH_FILE
        self._lock = threading.Lock()
        self._data: dict[str, Any] = {
            "schema": SCHEMA,
            "pid": os.getpid(),
            "started_at": time.time(),
            "calls": 0,
            "calls_failed": 0,
            "recognizer_rtf": None,
            "phone_link": None,
            "phone": {},
            "tips_by_moment": {},
            "versions": dict(versions or {}),
            "fallbacks": {},
        }
        previous = read_counters(self.path)
        if previous is not None:  # calls and tips are counted over the box's life, not the process's
            for key in ("calls", "calls_failed"):
                if isinstance(previous.get(key), int):
                    self._data[key] = previous[key]
            tips = previous.get("tips_by_moment")
            if isinstance(tips, dict):
                self._data["tips_by_moment"] = {str(k): int(v) for k, v in tips.items() if isinstance(v, int)}

    def tip(self, moment_kind: str) -> None:
        with self._lock:
            tips = self._data["tips_by_moment"]
            tips[moment_kind] = tips.get(moment_kind, 0) + 1

    def call_ended(self, *, failed: bool = False, recognizer_rtf: float | None = None) -> None:
        with self._lock:
            self._data["calls"] += 1
            self._data["calls_failed"] += int(failed)
            if recognizer_rtf is not None:
                self._data["recognizer_rtf"] = round(float(recognizer_rtf), 4)

    def set_versions(self, versions: Mapping[str, str], fallbacks: Mapping[str, str] | None = None) -> None:
        with self._lock:
            self._data["versions"] = dict(versions)
            self._data["fallbacks"] = dict(fallbacks or {})

    def set_phone_link(self, state: str | None) -> None:
        with self._lock:
            self._data["phone_link"] = state

    def set_phone_health(self, health: Mapping[str, Any]) -> None:
        """The phone link's figures (``PhoneLink.health()``): only numbers and flags are kept."""
        figures = phone_figures(health)
        with self._lock:
            self._data["phone"] = figures

    def write(self) -> None:
        with self._lock:
            data = {**self._data, "updated_at": time.time(), "tips_by_moment": dict(self._data["tips_by_moment"]), "phone": dict(self._data["phone"])}
        try:
            write_json_atomic(self.path, data)
        except (OSError, StorageError) as exc:  # the fleet's view is worth less than the coach: log, carry on
            log.warning("cannot write coach counters %s: %s", self.path, _reason(exc))


def write_bridge_counters(state_dir: Path, xruns: int, tap_drops: int) -> None:
    try:
        write_json_atomic(counters_dir(state_dir) / BRIDGE_FILE, {"schema": SCHEMA, "updated_at": time.time(), "xruns": int(xruns), "tap_drops": int(tap_drops)})
    except (OSError, StorageError) as exc:
        log.warning("cannot write bridge counters: %s", _reason(exc))


def _reason(exc: OSError | StorageError) -> str:
    return str(exc.strerror or exc) if isinstance(exc, OSError) else storage_reason(exc)
