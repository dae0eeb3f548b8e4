import json

import pytest

from firmware.errors import EventSchemaError
from firmware.events import SCHEMA_VERSION, Summary, Utterance, parse_event


def test_utterance_wire_shape_is_the_replay_contract() -> None:
    event = Utterance(t=12.3456, speaker="buyer", start=10.0, end=12.0, text="too expensive")
    wire = json.loads(event.to_json())
    assert wire == {"type": "utterance", "v": SCHEMA_VERSION, "t": 12.346, "speaker": "buyer",
                    "start": 10.0, "end": 12.0, "text": "too expensive"}
    assert parse_event(wire) == Utterance(t=12.346, speaker="buyer", start=10.0, end=12.0, text="too expensive")


def test_optional_fields_round_trip() -> None:
    event = Utterance(t=1.0, speaker="rep", start=0.1, end=0.9, text="hi", intent="other", confidence=0.5)
    assert parse_event(event.to_json()) == event


def test_summary_extra_figures_are_flat_on_the_wire() -> None:
    wire = Summary(t=5.0, duration_s=5.0, cpu_s=0.25, extra={"utterances": 3}).to_dict()
    assert wire["utterances"] == 3 and wire["cpu_s"] == 0.25
    assert parse_event(wire) == Summary(t=5.0, duration_s=5.0, cpu_s=0.25, extra={"utterances": 3})


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\xff\xfe", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"type": "nope", "t": 1}', "unknown event type"),
        ('{"type": "utterance", "t": 1, "speaker": "boss", "start": 0, "end": 1, "text": "x"}', "not one of"),
        ('{"type": "utterance", "t": "soon", "speaker": "rep", "start": 0, "end": 1, "text": "x"}', "expected a number"),
        ('{"type": "utterance", "t": 1, "speaker": "rep", "start": 0, "end": 1}', "text"),
        ('{"type": "utterance", "t": 1, "speaker": "rep", "start": 0, "end": 1, "text": "x", "audio": "..."}', "unexpected field"),
        ('{"type": "utterance", "v": 99, "t": 1, "speaker": "rep", "start": 0, "end": 1, "text": "x"}', "v99"),
    ],
)
def test_malformed_payloads_are_rejected_clearly(payload: str | bytes, message: str) -> None:
    with pytest.raises(EventSchemaError, match=message):
        parse_event(payload)


def test_partial_shares_the_transcript_shape_but_is_not_an_utterance() -> None:
    from firmware.events import Partial

    partial = Partial(t=3.0, speaker="buyer", start=1.0, end=3.0, text="that's over", intent="other", confidence=0.4)
    wire = partial.to_dict()
    assert wire["type"] == "partial" and wire["text"] == "that's over"
    assert parse_event(wire) == partial
    assert not isinstance(partial, Utterance)  # transcripts are built from utterances only
