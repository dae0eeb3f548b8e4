"""What the agent publishes, in the one event shape (``type``, ``v``, ``t``; ``t`` is Unix time here).

Every payload leaves through :func:`to_wire`, which hands it to the box's outward allowlist
(``firmware.outward.outward("fleet", event)``): a field the allowlist does not name never reaches
the broker, whatever this module puts in an event.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from firmware.events import Event

UpdateState = Literal["offered", "downloading", "verifying", "staged", "waiting_for_idle", "applied", "rolled_back", "rejected"]


@dataclass(frozen=True, kw_only=True)
class BoxStatus(Event):
    type: ClassVar[str] = "box_status"
    state: Literal["online", "offline"]
    agent: str | None = None
    group: str | None = None


@dataclass(frozen=True, kw_only=True)
class Telemetry(Event):
    """Health and anonymous counters: numbers, version strings and moment kinds, never text."""

    type: ClassVar[str] = "telemetry"
    uptime_s: float | None = None
    cpu_percent: float | None = None
    load_1m: float | None = None
    temp_c: float | None = None
    throttled: int | None = None
    mem_used_mb: float | None = None
    mem_total_mb: float | None = None
    disk_free_mb: float | None = None
    bridge_xruns: int | None = None
    tap_drops: int | None = None
    recognizer_rtf: float | None = None
    phone_link: str | None = None
    calls: int | None = None
    calls_failed: int | None = None
    coach_restarts: int | None = None
    tips_by_moment: Mapping[str, int] = field(default_factory=dict)
    versions: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class UpdateProgress(Event):
    type: ClassVar[str] = "update_progress"
    update_id: str
    state: UpdateState
    reason: str | None = None
    artifact: str | None = None
    version: str | None = None
    bytes_done: int | None = None
    bytes_total: int | None = None


# The fleet channel's fields per event type, used only until firmware.outward is present on this
# branch; the outward module is the one place that decides once it is.
_FLEET_FIELDS: dict[str, frozenset[str]] = {
    "box_status": frozenset({"state", "agent", "group"}),
    "telemetry": frozenset(f for f in Telemetry.__dataclass_fields__ if f != "t"),
    "update_progress": frozenset({"update_id", "state", "reason", "artifact", "version", "bytes_done", "bytes_total"}),
}


def _outward(event: Event) -> dict[str, Any] | None:
    try:
        from firmware.outward import outward  # type: ignore[import-not-found]
    except ImportError:
        allowed = _FLEET_FIELDS.get(event.type)
        if allowed is None:
            return None
        return {k: v for k, v in event.to_dict().items() if k in ("type", "v", "t") or k in allowed}
    return outward("fleet", event)


def to_wire(event: Event) -> bytes | None:
    """The bytes the agent may publish for ``event``, or None when the fleet channel refuses it."""
    allowed = _outward(event)
    if allowed is None:
        return None
    return json.dumps(allowed, separators=(",", ":"), ensure_ascii=True).encode()
