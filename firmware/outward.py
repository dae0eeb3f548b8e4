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
from firmware.fleet.counters import PHONE_MAX, PHONE_NAME

Channel = Literal["phone", "fleet"]
CHANNELS: tuple[Channel, ...] = ("phone", "fleet")

# Every wire dict keeps these: a reader needs them to parse the rest.
_ENVELOPE = frozenset({"type", "v"})

# The summary's figures the fleet may see: counts and rates of the box's own machinery. The rep's
# coaching figures (talk ratio, pace, questions, monologues) are the rep's, and stay on the box.
FLEET_SUMMARY_FIGURES = frozenset({
    "duration_s", "cpu_s",
    "utterances", "segments", "segments_dropped", "segments_empty", "partials", "partials_skipped",
    "recognizer_errors", "recognizer_rtf", "leak_frames_muted", "leak_db", "leak_call_frames",
    "rep_untranscribed_speech_s", "buyer_untranscribed_speech_s",
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
        # The fleet agent's own messages (docs/fleet-protocol.md).
        "box_status": frozenset({"t", "state", "agent", "group"}),
        "telemetry": frozenset({"t", "uptime_s", "cpu_percent", "load_1m", "temp_c", "throttled", "mem_used_mb",
                                "mem_total_mb", "disk_free_mb", "bridge_xruns", "tap_drops", "recognizer_rtf",
                                "phone_link", "phone", "calls", "calls_failed", "tips_by_moment", "versions"}),
        "update_progress": frozenset({"t", "update_id", "state", "reason", "artifact", "version", "bytes_done",
                                      "bytes_total"}),
    },
}  # fmt: skip

# On the fleet channel a value is a number, a boolean or null; the only strings are version
# labels, and those must look like one. This catches a text-carrying field listed by mistake.
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
# The few other strings the fleet may carry, each held to a shape that leaves no room for prose from a
# call: fixed words, identifiers, moment kinds, and the agent's own rejection reasons (built by
# firmware/fleet from manifest fields and fixed phrases; one line, a narrow alphabet, bounded).
_WORD = re.compile(r"[a-z_]{1,20}")
FLEET_STRINGS: Mapping[str, re.Pattern[str]] = {
    "state": _WORD,
    "phone_link": _WORD,
    "update_id": _VERSION,
    "agent": _VERSION,
    "group": _VERSION,
    "artifact": _VERSION,
    "version": _VERSION,
    "reason": re.compile(r"[A-Za-z0-9 ._:,()/'=+<>%-]{1,200}"),
}
_MOMENT_KIND = re.compile(r"[a-z][a-z_]{0,39}")


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
        elif key in _required_fields(type(event)):
            return None  # a required field failed its check: the reader could not parse the rest, send nothing
    return out


def _required_fields(cls: type[Event]) -> frozenset[str]:
    import dataclasses

    return frozenset(
        f.name for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )  # fmt: skip


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
    if key == "tips_by_moment":
        return isinstance(value, Mapping) and all(
            isinstance(k, str) and _MOMENT_KIND.fullmatch(k) and type(v) is int for k, v in value.items()
        )
    if key == "phone":  # the phone link's figures: fixed-shape names, numbers and flags, nothing else
        return isinstance(value, Mapping) and len(value) <= PHONE_MAX and all(
            isinstance(k, str) and PHONE_NAME.fullmatch(k) and type(v) in (bool, int) for k, v in value.items()
        )
    if key in FLEET_STRINGS:
        return value is None or (isinstance(value, str) and FLEET_STRINGS[key].fullmatch(value) is not None)
    return value is None or isinstance(value, (bool, int, float))
