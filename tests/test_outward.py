"""What leaves the box: the per-channel allowlist, and channels attached through it."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from test_events import ALL_EVENTS

from firmware.bus import EventBus
from firmware.events import (
    BoxStatus,
    CallState,
    Control,
    ControlResult,
    Event,
    Moment,
    Partial,
    RecapEvent,
    Status,
    Summary,
    Telemetry,
    Tip,
    UpdateProgress,
    Utterance,
    parse_event,
)
from firmware.fleet.counters import PHONE_NAME
from firmware.outward import ALLOWLIST, FLEET_STRINGS, attach, outward

TIP = Tip(t=3.0, tip_id="0a1b2c3d-1", call_id=1, moment="objection_price", text="Ask what they compare it with.",
          priority=80, ttl_s=10.0, cues=("led", "phone"))
UTTERANCE = Utterance(t=2.0, speaker="buyer", start=0.5, end=2.0, text="that is too expensive", intent="objection_price",
                      confidence=0.9)
RECAP = RecapEvent(t=60.0, call_id=1, duration_s=60.0, talk_ratio_rep=0.4, longest_monologue_s=20.0,
                   questions_asked=4, went_well="you let the buyer finish", try_next="keep the same rhythm next call")
SUMMARY = Summary(t=60.0, duration_s=60.0, cpu_s=3.2, extra={
    "utterances": 12, "tips": 2, "recognizer_rtf": 0.31, "talk_ratio_rep": 0.4, "pace_wpm": 151.0,
    "versions": {"intent": "2026.12.01", "whisper-tiny.en": "1"},
})
EVERY_KIND: list[Event] = [
    UTTERANCE,
    Partial(t=1.0, speaker="buyer", start=0.5, end=1.0, text="that is too"),
    Moment(t=2.0, kind="objection_price", speaker="buyer", start=0.5, end=2.0, confidence=0.9),
    TIP,
    Control(t=4.0, action="dismiss", source="phone", tip_id=TIP.tip_id, call_id=1),
    ControlResult(t=4.0, action="dismiss", source="phone", outcome="applied", tip_id=TIP.tip_id, call_id=1),
    Status(t=0.0, call_active=True, call_id=1),
    CallState(t=0.0, active=True, call_id=1),
    RECAP,
    SUMMARY,
    BoxStatus(t=1765000000.0, state="online", agent="0.1.0", group="emea"),
    Telemetry(t=1765000000.0, cpu_percent=12.5, calls=3, phone_link="connected", tips_by_moment={"objection_price": 2},
              versions={"intent": "1.4.0"}),
    UpdateProgress(t=1765000000.0, update_id="5f3c0c2e", state="rejected", reason="downgrade: intent 1.3.0 is not newer than 1.4.0"),
]


def test_the_phone_gets_the_reps_own_things_whole_and_nothing_of_the_conversation() -> None:
    for event in EVERY_KIND:
        wire = outward("phone", event)
        if event.type in {"tip", "control", "control_result", "status", "recap"}:
            assert wire == event.to_dict()  # nothing of these is dropped today
            assert parse_event(wire) == event
        else:
            assert wire is None, event.type


def test_the_fleet_gets_counters_and_versions_only() -> None:
    assert {e.type for e in EVERY_KIND if outward("fleet", e) is not None} == {"summary", "box_status", "telemetry", "update_progress"}
    wire = outward("fleet", SUMMARY)
    assert wire == {"type": "summary", "v": 1, "t": 60.0, "duration_s": 60.0, "cpu_s": 3.2, "utterances": 12,
                    "tips": 2, "recognizer_rtf": 0.31, "versions": {"intent": "2026.12.01", "whisper-tiny.en": "1"}}
    # The rep's coaching figures stay on the box.
    assert "talk_ratio_rep" not in wire and "pace_wpm" not in wire


def test_a_text_value_never_reaches_the_fleet_even_under_an_allowed_name() -> None:
    sneaky = Summary(t=1.0, duration_s=1.0, cpu_s=0.1, extra={
        "tips": "Ask what they compare it with.",
        "versions": {"intent": "that is too expensive"},
    })
    wire = outward("fleet", sneaky)
    assert wire == {"type": "summary", "v": 1, "t": 1.0, "duration_s": 1.0, "cpu_s": 0.1}


def test_fields_not_listed_stay_on_the_box() -> None:
    # A field added to an event later is not sent until it is listed: emulate one with a summary figure.
    wire = outward("fleet", Summary(t=1.0, duration_s=1.0, cpu_s=0.1, extra={"new_counter": 3}))
    assert wire is not None and "new_counter" not in wire


@settings(max_examples=300, deadline=None)
@given(ALL_EVENTS)
def test_every_outward_dict_is_allowlisted_and_parses(event: Event) -> None:
    for channel, table in ALLOWLIST.items():
        wire = outward(channel, event)
        if wire is None:
            # Not on this channel, or (fleet) a required field failed its shape check.
            assert event.type not in table or channel == "fleet"
            continue
        assert set(wire) <= table[event.type] | {"type", "v"}
        parse_event(wire)  # still a valid event for the reader on the other end
        if channel == "fleet":
            for key, value in wire.items():
                if key in FLEET_STRINGS:
                    assert FLEET_STRINGS[key].fullmatch(value), (key, value)
                elif key == "tips_by_moment":
                    assert all(type(v) is int for v in value.values()), value
                elif key == "phone":  # the phone link's figures: numbers and flags under fixed-shape names
                    assert all(PHONE_NAME.fullmatch(k) and type(v) in (bool, int) for k, v in value.items()), value
                elif key not in {"type", "versions"}:
                    assert not isinstance(value, (str, list, tuple, dict)), (key, value)


def test_attached_channels_see_only_their_allowlist() -> None:
    bus = EventBus()
    phone: list[dict[str, Any]] = []
    fleet: list[dict[str, Any]] = []
    detach_phone = attach(bus, "phone", phone.append)
    attach(bus, "fleet", fleet.append)
    for event in EVERY_KIND:
        bus.publish(event)
    assert [w["type"] for w in phone] == ["tip", "control", "control_result", "status", "recap"]
    assert [w["type"] for w in fleet] == ["summary", "box_status", "telemetry", "update_progress"]
    detach_phone()
    bus.publish(TIP)
    assert len(phone) == 5


def test_an_unknown_channel_is_refused() -> None:
    import pytest

    with pytest.raises(ValueError, match="unknown outward channel"):
        attach(EventBus(), "email", print)  # type: ignore[arg-type]


def test_the_fleet_agents_messages_pass_whole_and_prose_does_not() -> None:
    for event in EVERY_KIND[-3:]:
        assert outward("fleet", event) == event.to_dict()
        assert outward("phone", event) is None
    # A reason that carries a line of a call (newline, quotes, long) is not a reason: the field stays home.
    chatty = UpdateProgress(t=1.0, update_id="5f3c", state="rejected", reason='buyer said "that is too expensive"\nand left')
    assert "reason" not in (outward("fleet", chatty) or {})
    # A tip count keyed by something that is not a moment kind stays on the box.
    leaky = Telemetry(t=1.0, tips_by_moment={"Ask what they compare it with.": 1})
    assert "tips_by_moment" not in (outward("fleet", leaky) or {})
    # A required field that fails its check keeps the whole event home rather than sending half of it.
    assert outward("fleet", UpdateProgress(t=1.0, update_id="not an id, a sentence", state="applied")) is None
