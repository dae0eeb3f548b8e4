"""The one event shape used on the internal bus, in ``replay --json``, over MQTT and over BLE.

On the wire an event is a flat JSON object: ``{"type": ..., "v": SCHEMA_VERSION, "t": ..., **fields}``
where ``t`` is call time in seconds when the event was emitted. Each event type is a frozen
dataclass registered here, so the whole schema reads in one file. Adding an optional field is
backwards compatible; renaming or removing one bumps :data:`SCHEMA_VERSION`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from firmware.errors import EventSchemaError

SCHEMA_VERSION = 1

Speaker = Literal["rep", "buyer"]

_REGISTRY: dict[str, type[Event]] = {}


def _register(cls: type[Event]) -> type[Event]:
    _REGISTRY[cls.type] = cls
    return cls


@dataclass(frozen=True, kw_only=True)
class Event:
    type: ClassVar[str]
    t: float

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "v": SCHEMA_VERSION}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue  # optional fields are absent rather than null
            if f.name == "extra":
                out.update({k: _round(v) for k, v in value.items()})
            else:
                out[f.name] = _round(value)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(", ", ": "))


def _round(value: Any) -> Any:
    # Milliseconds are the resolution of everything we time; more digits are noise on the wire.
    if isinstance(value, float):
        return round(value, 3) if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [_round(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _round(v) for k, v in value.items()}
    return value


@dataclass(frozen=True, kw_only=True)
class _Transcript(Event):
    """Speaker-attributed, timed text with its intent: the shape of utterances and partials."""

    speaker: Speaker
    start: float
    end: float
    text: str
    intent: str | None = None
    confidence: float | None = None


@_register
@dataclass(frozen=True, kw_only=True)
class Utterance(_Transcript):
    """One speaker-attributed, timed stretch of transcribed speech."""

    type: ClassVar[str] = "utterance"


@_register
@dataclass(frozen=True, kw_only=True)
class Moment(Event):
    """Something in the call worth coaching: a buyer intent or a talk dynamic, over [start, end]."""

    type: ClassVar[str] = "moment"
    kind: str
    speaker: Speaker
    start: float
    end: float
    confidence: float

    def describe(self) -> str:
        return f"MOMENT {self.kind} ({self.speaker} {self.start:.1f}-{self.end:.1f} s, {self.confidence:.2f})"


@_register
@dataclass(frozen=True, kw_only=True)
class Tip(Event):
    """A tip shown to the rep for a moment; ``cues`` names the channels used (led, haptic, phone)."""

    type: ClassVar[str] = "tip"
    moment: str
    text: str
    cues: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"TIP    {self.moment}: {self.text} [{', '.join(self.cues)}]"


@_register
@dataclass(frozen=True, kw_only=True)
class Partial(_Transcript):
    """An early transcript of speech still going on (so far only the buyer's).

    The final :class:`Utterance` with the same ``start`` follows and supersedes it; transcripts
    are built from utterances only. The coach acts on a partial's intent so a tip can be ready
    while the buyer still holds the floor.
    """

    type: ClassVar[str] = "partial"


@_register
@dataclass(frozen=True, kw_only=True)
class Summary(Event):
    """Emitted once when a call (or a replay) ends. Subsystems add their figures to ``extra``."""

    type: ClassVar[str] = "summary"
    duration_s: float
    cpu_s: float
    extra: Mapping[str, Any] = field(default_factory=dict)


@_register
@dataclass(frozen=True, kw_only=True)
class CallState(Event):
    """The bridge's view of the call: published when a call starts or ends.

    ``t`` is call time (0 at the start, the call's length at the end); ``call_id`` ties the
    start and end together; ``reason`` says what ended it (silence, host closed the stream).
    """

    type: ClassVar[str] = "call_state"
    active: bool
    call_id: int
    reason: str | None = None

    def describe(self) -> str:
        what = "CALL STARTED" if self.active else "CALL ENDED"
        return f"{what} #{self.call_id}" + (f" ({self.reason})" if self.reason else "")


def event_types() -> Mapping[str, type[Event]]:
    return dict(_REGISTRY)


def parse_event(obj: Mapping[str, Any] | str | bytes) -> Event:
    """Validate a wire payload and return the typed event; raise EventSchemaError otherwise."""
    if isinstance(obj, (str, bytes)):
        try:
            obj = json.loads(obj)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise EventSchemaError(f"event is not valid JSON: {exc}") from None
    if not isinstance(obj, Mapping):
        raise EventSchemaError("event must be a JSON object")
    kind = obj.get("type")
    cls = _REGISTRY.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise EventSchemaError(f"unknown event type {kind!r}")
    version = obj.get("v", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise EventSchemaError(f"event schema v{version} is not supported (this firmware speaks v{SCHEMA_VERSION})")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in obj.items():
        if key in ("type", "v"):
            continue
        if key in names and key != "extra":
            _check_type(hints[key], value, f"{kind}.{key}")
            kwargs[key] = value
        elif "extra" in names:
            extra[key] = value
        else:
            raise EventSchemaError(f"{kind}: unexpected field {key!r}")
    if "extra" in names:
        kwargs["extra"] = extra
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise EventSchemaError(f"{kind}: {exc}") from None


def _check_type(hint: Any, value: Any, where: str) -> None:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Literal:
        if value not in args:
            raise EventSchemaError(f"{where}: {value!r} is not one of {args}")
        return
    if origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                _check_type(option, value, where)
                return
            except EventSchemaError:
                continue
        raise EventSchemaError(f"{where}: bad value {value!r}")
    if hint is type(None):
        if value is not None:
            raise EventSchemaError(f"{where}: expected null")
        return
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise EventSchemaError(f"{where}: expected a number, got {value!r}")
        return
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise EventSchemaError(f"{where}: expected a list")
        return
    if origin is Mapping or origin is dict:
        if not isinstance(value, Mapping):
            raise EventSchemaError(f"{where}: expected an object")
        return
    if isinstance(hint, type) and hint is not Any:
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise EventSchemaError(f"{where}: expected {hint.__name__}, got {value!r}")
