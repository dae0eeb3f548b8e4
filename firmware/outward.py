"""What leaves the box, decided in one place: the event types and fields each outward channel carries.

Two channels leave the box. The rep's **phone** (BLE) is the rep's own screen: it gets the tips
(text included), the controls and their results, the coach's status and the rep's private
recap, and nothing of the conversation itself (no utterances, partials or moments). The
**fleet** (MQTT) is the operator's: it gets health and anonymous counters and the versions a
call ran on, never transcripts, tip texts, recaps or audio. A field or type not listed here does
not leave, so a field added to an event later stays on the box until someone lists it here.

Channels never serialise events themselves: they attach with :func:`attach`, which runs every
event through :func:`outward` and hands the channel the allowed dict, already in wire shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

from firmware.bus import EventBus
from firmware.events import Event

Channel = Literal["phone", "fleet"]
CHANNELS: tuple[Channel, ...] = ("phone", "fleet")

# Every wire dict keeps these: a reader needs them to parse the rest.
_ENVELOPE = frozenset({"type", "v"})

# The summary's figures the fleet may see: counts and rates of the box's own machinery. The rep's
# coaching figures (talk ratio, pace, questions, monologues) are the rep's, and stay on the box.
FLEET_SUMMARY_FIGURES = frozenset({
    "duration_s", "cpu_s",
    "utterances", "segments", "segments_dropped", "segments_empty", "partials", "partials_skipped",
    "recognizer_errors", "recognizer_rtf", "leak_frames_muted",
    "moments", "tips", "tips_expired", "tips_merged", "tips_held_back",
    "versions",
})  # fmt: skip

ALLOWLIST: Mapping[Channel, Mapping[str, frozenset[str]]] = {
    "phone": {
        "tip": frozenset({"t", "tip_id", "call_id", "moment", "text", "priority", "ttl_s", "cues"}),
        "control": frozenset({"t", "action", "source", "tip_id", "minutes", "value", "call_id"}),
        "control_result": frozenset({"t", "action", "source", "outcome", "reason", "tip_id", "call_id"}),
        "status": frozenset({"t", "call_active", "call_id", "muted", "snoozed_until_s"}),
        "recap": frozenset({"t", "call_id", "duration_s", "talk_ratio_rep", "longest_monologue_s",
                            "questions_asked", "went_well", "try_next"}),
    },
    "fleet": {
        "summary": frozenset({"t"}) | FLEET_SUMMARY_FIGURES,
    },
}  # fmt: skip

# On the fleet channel a value is a number, a boolean or null; the only strings are version
# labels, and those must look like one. This catches a text-carrying field listed by mistake.
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")


def outward(channel: Channel, event: Event) -> dict[str, Any] | None:
    """The wire dict ``channel`` may carry for ``event``, or None if the event stays on the box.

    Fields outside the allowlist are dropped: by design, so silently (the rep's figures leave
    every summary that way). Pure and thread-safe: call it on any thread.
    """
    allowed = ALLOWLIST[channel].get(event.type)
    if allowed is None:
        return None
    wire = event.to_dict()
    out: dict[str, Any] = {}
    for key, value in wire.items():
        if key in _ENVELOPE:
            out[key] = value
        elif key in allowed and (channel != "fleet" or _fleet_value(key, value)):
            out[key] = value
    return out


def attach(bus: EventBus, channel: Channel, send: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
    """Subscribe ``send`` to ``bus`` through the channel's allowlist; returns the unsubscribe.

    ``send`` runs on the publisher's thread (see :class:`~firmware.bus.EventBus`) and must return
    at once: a radio or network link hands the dict on (``firmware.handoff.ThreadToAsync``).
    """
    if channel not in ALLOWLIST:
        raise ValueError(f"unknown outward channel {channel!r} (choose from {', '.join(CHANNELS)})")

    def handler(event: Event) -> None:
        wire = outward(channel, event)
        if wire is not None:
            send(wire)

    return bus.subscribe(handler)


def _fleet_value(key: str, value: Any) -> bool:
    if key == "versions":
        return isinstance(value, Mapping) and all(
            isinstance(k, str) and _VERSION.fullmatch(k) and isinstance(v, str) and _VERSION.fullmatch(v)
            for k, v in value.items()
        )
    return value is None or isinstance(value, (bool, int, float))
