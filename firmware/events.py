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
import collections.abc
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
    """A tip shown to the rep for a moment; ``cues`` names the channels used (led, haptic, phone).

    ``tip_id`` is unique on the box across restarts ("<boot nonce>-<counter>", see
    :class:`firmware.coach.tips.TipIds`), so a control from the phone can name the tip it acts on; ``ttl_s`` is how
    long after ``t`` the tip stops being useful (the phone hides it then).
    """

    type: ClassVar[str] = "tip"
    tip_id: str
    call_id: int
    moment: str
    text: str
    priority: int
    ttl_s: float
    cues: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"TIP    {self.moment}: {self.text} [{', '.join(self.cues)}] #{self.tip_id}"


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

    def __post_init__(self) -> None:
        # ``extra`` is flattened onto the wire: a figure named like a field would be read back as it.
        clash = set(self.extra) & ({"type", "v"} | {f.name for f in dataclasses.fields(self)})
        if clash:
            raise ValueError(f"summary figures may not be named {', '.join(sorted(clash))}")


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


ControlAction = Literal["dismiss", "snooze", "mute", "unmute", "skill", "persona", "helpful", "not_helpful"]
ControlSource = Literal["button", "phone", "cli"]
ControlOutcome = Literal["applied", "next_call", "refused"]


@_register
@dataclass(frozen=True, kw_only=True)
class Control(Event):
    """The rep asks the coach for something: from the box's button, the phone, or the command line.

    ``tip_id`` names the tip acted on (dismiss, helpful, not_helpful; None = the one showing);
    ``minutes`` is the snooze length (None = the configured one); ``value`` is the skill level or
    persona name; ``call_id`` the call the sender believes is running (None = whichever is).
    Every control is answered by a :class:`ControlResult`.
    """

    type: ClassVar[str] = "control"
    action: ControlAction
    source: ControlSource
    tip_id: str | None = None
    minutes: float | None = None
    value: str | None = None
    call_id: int | None = None

    def describe(self) -> str:
        args = [f"{k} {v}" for k, v in (("tip", self.tip_id), ("minutes", self.minutes), ("value", self.value)) if v is not None]
        source = "command line" if self.source == "cli" else self.source
        return f"CONTROL {self.action} from the {source}" + (f" ({', '.join(args)})" if args else "")


@_register
@dataclass(frozen=True, kw_only=True)
class ControlResult(Event):
    """What became of a control: applied now, kept for the next call, or refused (``reason`` says why)."""

    type: ClassVar[str] = "control_result"
    action: ControlAction
    source: ControlSource
    outcome: ControlOutcome
    reason: str | None = None
    tip_id: str | None = None
    call_id: int | None = None

    def describe(self) -> str:
        return f"RESULT {self.action} {self.outcome.replace('_', ' ')}" + (f": {self.reason}" if self.reason else "")


@_register
@dataclass(frozen=True, kw_only=True)
class Status(Event):
    """The coach's state as the rep sees it; published whenever a call starts or ends, or mute or
    snooze changes. ``snoozed_until_s`` is in call time, like ``t``."""

    type: ClassVar[str] = "status"
    call_active: bool
    call_id: int | None = None
    muted: bool = False
    snoozed_until_s: float | None = None


@_register
@dataclass(frozen=True, kw_only=True)
class RecapEvent(Event):
    """The rep's private end-of-call recap, for their phone only (never the fleet)."""

    type: ClassVar[str] = "recap"
    call_id: int | None = None
    duration_s: float
    talk_ratio_rep: float | None = None
    longest_monologue_s: float
    questions_asked: int
    went_well: str
    try_next: str

    def lines(self) -> list[str]:
        ratio = "n/a" if self.talk_ratio_rep is None else f"{self.talk_ratio_rep:.0%}"
        return [
            f"You talked {ratio} of the time",
            f"Longest monologue {self.longest_monologue_s:.0f} s",
            f"Questions asked: {self.questions_asked}",
            f"Went well: {self.went_well}",
            f"Try next: {self.try_next}",
        ]



# -- the fleet link (docs/fleet-protocol.md): here ``t`` is Unix time, not call time -----------
UpdateState = Literal["offered", "downloading", "verifying", "staged", "waiting_for_idle", "applied", "rolled_back", "rejected"]
PhoneLink = Literal["connected", "disconnected", "absent"]


@_register
@dataclass(frozen=True, kw_only=True)
class BoxStatus(Event):
    """The fleet agent's retained presence; its MQTT Last Will says ``offline``."""

    type: ClassVar[str] = "box_status"
    state: Literal["online", "offline"]
    agent: str | None = None
    group: str | None = None


@_register
@dataclass(frozen=True, kw_only=True)
class Telemetry(Event):
    """The box's health and anonymous counters: numbers, version strings and moment kinds, never text."""

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
    phone_link: PhoneLink | None = None
    # The phone link's flags and counters (PhoneLink.health() without its "phone_" prefix:
    # connected, bonded, pairing, queued, last_error (a code), sent, rejected_stale, ...).
    phone: Mapping[str, int | bool] = field(default_factory=dict)
    calls: int | None = None
    calls_failed: int | None = None
    tips_by_moment: Mapping[str, int] = field(default_factory=dict)
    versions: Mapping[str, str] = field(default_factory=dict)


@_register
@dataclass(frozen=True, kw_only=True)
class UpdateProgress(Event):
    """One state of a fleet update (or admin command) on this box; ``reason`` for rejected/rolled_back."""

    type: ClassVar[str] = "update_progress"
    update_id: str
    state: UpdateState
    reason: str | None = None
    artifact: str | None = None
    version: str | None = None
    bytes_done: int | None = None
    bytes_total: int | None = None


def event_types() -> Mapping[str, type[Event]]:
    return dict(_REGISTRY)


def parse_event(obj: Mapping[str, Any] | str | bytes) -> Event:
    """Validate a wire payload and return the typed event; raise EventSchemaError otherwise.

    Fields this firmware does not know are ignored (a newer sender may add optional ones), except
    on types with an ``extra`` mapping, which collect them. Known fields are checked strictly:
    Literal values, element types of lists, no booleans where numbers belong. Lists come back as
    tuples where the field is a tuple, so ``parse_event(e.to_json()) == e`` for every type (exactly
    for times and figures at the wire's millisecond resolution; finer ones come back rounded).
    """
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
    if type(version) is not int or version != SCHEMA_VERSION:
        raise EventSchemaError(f"event schema v{version} is not supported (this firmware speaks v{SCHEMA_VERSION})")
    hints = _hints(cls)
    has_extra = "extra" in hints
    kwargs: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in obj.items():
        if key in ("type", "v"):
            continue
        if key in hints and key != "extra":
            kwargs[key] = _check_type(hints[key], value, f"{kind}.{key}")
        elif has_extra:
            extra[key] = value
        # else: a field from a newer schema; ignoring it is what keeps old readers working
    if has_extra:
        kwargs["extra"] = extra
    missing = [name for name, f in _fields(cls).items() if name not in kwargs and _required(f)]
    if missing:
        raise EventSchemaError(f"{kind}: missing field(s) {', '.join(missing)}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise EventSchemaError(f"{kind}: {exc}") from None


def _fields(cls: type[Event]) -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(cls)}


def _required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


_HINTS: dict[type[Event], dict[str, Any]] = {}


def _hints(cls: type[Event]) -> dict[str, Any]:
    """The dataclass fields' resolved type hints (ClassVars left out), cached per type."""
    hints = _HINTS.get(cls)
    if hints is None:
        resolved = typing.get_type_hints(cls)
        hints = _HINTS[cls] = {name: resolved[name] for name in _fields(cls)}
    return hints


def _check_type(hint: Any, value: Any, where: str) -> Any:
    """Return ``value`` as the field holds it (lists -> tuples, ints -> floats), or raise."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin is Literal:
        # `type(...) is` so that True does not pass for 1, nor 1 for True.
        if not any(type(value) is type(a) and value == a for a in args):
            raise EventSchemaError(f"{where}: {value!r} is not one of {args}")
        return value
    if origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                return _check_type(option, value, where)
            except EventSchemaError:
                continue
        raise EventSchemaError(f"{where}: bad value {value!r}")
    if hint is type(None):
        if value is not None:
            raise EventSchemaError(f"{where}: expected null, got {value!r}")
        return None
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise EventSchemaError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise EventSchemaError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_check_type(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise EventSchemaError(f"{where}: expected {len(args)} items, got {len(value)}")
        return tuple(_check_type(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise EventSchemaError(f"{where}: expected a list, got {value!r}")
        return [_check_type(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)] if args else list(value)
    if origin in (Mapping, dict, collections.abc.Mapping):
        if not isinstance(value, Mapping):
            raise EventSchemaError(f"{where}: expected an object, got {value!r}")
        key_hint, value_hint = args if args else (Any, Any)
        return {
            _check_type(key_hint, k, f"{where} key"): _check_type(value_hint, v, f"{where}.{k}") for k, v in value.items()
        }
    if hint in (str, int, bool):
        if type(value) is not hint:  # bool is an int subclass; neither passes for the other
            raise EventSchemaError(f"{where}: expected {hint.__name__}, got {value!r}")
        return value
    raise EventSchemaError(f"{where}: no wire check for type {hint!r}")  # a schema bug, caught by the round-trip test
