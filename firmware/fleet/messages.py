"""What the agent publishes leaves through :func:`to_wire`: the box's outward allowlist decides.

``firmware.outward.outward("fleet", event)`` drops any field the fleet channel does not list (and
any string that does not have the shape its field allows), so nothing this package builds can carry
more than the allowlist lets through. The event types live in ``firmware/events.py``.
"""

from __future__ import annotations

import json

from firmware.events import BoxStatus, Event, Telemetry, UpdateProgress
from firmware.outward import outward

__all__ = ["BoxStatus", "Telemetry", "UpdateProgress", "to_wire"]


def to_wire(event: Event) -> bytes | None:
    """The bytes the agent may publish for ``event``, or None when the fleet channel refuses it."""
    allowed = outward("fleet", event)
    if allowed is None:
        return None
    return json.dumps(allowed, separators=(",", ":"), ensure_ascii=True).encode()
