"""Byte scans of what the outward channels would carry (shared by the privacy tests)."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from collections.abc import Iterable, Mapping
from typing import Any

from firmware.bus import EventBus
from firmware.events import Event
from firmware.outward import ALLOWLIST, attach, outward


def words_in(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Za-z]+", text)}


REPO = Path(__file__).resolve().parent.parent


@functools.cache
def firmware_vocabulary() -> frozenset[str]:
    """Words the firmware itself contains (code, playbook): seeing one proves nothing about a call."""
    words: set[str] = set()
    for path in [*(REPO / "firmware").rglob("*.py"), *(REPO / "models" / "playbook").rglob("*.toml")]:
        words |= words_in(path.read_text(encoding="utf-8"))
    return frozenset(words)


def schema_vocabulary() -> set[str]:
    """Words the allowlist itself puts on the wire (type and field names): they say nothing of a call."""
    names = {name for table in ALLOWLIST.values() for kind, fields in table.items() for name in (kind, *fields)}
    return words_in(" ".join(names) + " type v")


def channel_bytes(events: Iterable[Event]) -> dict[str, list[str]]:
    """Every event through a bus with both channels attached the one way channels attach."""
    bus = EventBus()
    sent: dict[str, list[str]] = {"phone": [], "fleet": []}
    for channel in sent:
        attach(bus, channel, lambda wire, c=channel: sent[c].append(json.dumps(wire, ensure_ascii=False)))  # type: ignore[misc]
    for event in events:
        bus.publish(event)
    return sent


def assert_fleet_is_clean(fleet: list[str], call_words: set[str], tip_texts: Iterable[str]) -> None:
    """No call word, no tip text, not even one of a tip's words, and no text values at all."""
    assert fleet, "the fleet must get the call's summary"
    blob = "\n".join(fleet)
    for text in tip_texts:
        assert text not in blob
    tip_words = {w for text in tip_texts for w in words_in(text) if len(w) >= 4} - schema_vocabulary()
    found = words_in(blob) - schema_vocabulary()
    assert not found & call_words, f"call words to the fleet: {sorted(found & call_words)}"
    assert not found & tip_words, f"tip words to the fleet: {sorted(found & tip_words)}"
    for line in fleet:
        wire: Mapping[str, Any] = json.loads(line)
        texts = {k: v for k, v in wire.items() if isinstance(v, str) and k != "type"}
        assert texts == {}, f"text values to the fleet: {texts}"


def assert_phone_is_the_reps_own(phone: list[str], call_words: set[str]) -> None:
    """Only allowlisted types and fields; the conversation shows only through tips (a competitor named).

    Recaps and refusals are the firmware's own sentences, so the firmware's words are no evidence.
    """
    table = ALLOWLIST["phone"]
    tip_words: set[str] = set()
    for line in phone:
        wire = json.loads(line)
        assert wire["type"] in table and set(wire) <= table[wire["type"]] | {"type", "v"}, wire
        if wire["type"] == "tip":
            tip_words |= words_in(wire["text"])
    found = words_in("\n".join(phone)) - firmware_vocabulary()
    assert found & call_words <= tip_words, f"call words on the phone outside tips: {sorted((found & call_words) - tip_words)}"


def phone_sink_matches_allowlist(sent: Iterable[Event]) -> None:
    """What the coach handed the PhoneSink is exactly what the phone channel's allowlist carries."""
    for event in sent:
        wire = outward("phone", event)
        assert wire is not None, f"a {event.type} event reached the phone sink"
        assert wire == event.to_dict(), f"{event.type}: fields beyond the phone's allowlist reached its sink"
