"""The coaching playbook: what to say for each moment, how to cue it, and when to hold back.

A TOML file (``models/playbook/*.toml``, later pushed by admins) validated against the schema
below; every problem is reported as one :class:`~firmware.errors.PlaybookError` line naming the
key. Tip texts are short templates; the only slots are ``{competitor}`` (filled with the
battlecard's name that was heard) and ``{persona}`` (the buyer persona when known), so the
length limit can be checked at load time against the longest value each slot can take.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware.coach.config import SKILL_LEVELS, SkillLevel
from firmware.errors import PlaybookError
from firmware.intent.labels import INTENT_KINDS
from firmware.tomlfile import read_toml

SCHEMA_VERSION = 1
MAX_TIP_CHARS = 60
DYNAMIC_KINDS = (
    "rep_monologue", "rep_fast_speech", "interruption", "long_silence", "quick_reply", "talk_ratio",
    "few_questions",
)  # fmt: skip
MOMENT_KINDS = INTENT_KINDS + DYNAMIC_KINDS
LED_COLOURS = ("red", "amber", "yellow", "green", "cyan", "blue", "purple", "white")
LED_PATTERNS = ("solid", "blink", "pulse")
HAPTIC_PATTERNS = ("none", "single", "double")
_SLOTS = ("competitor", "persona")
_SLOT_RE = re.compile(r"\{([^{}]*)\}")


@dataclass(frozen=True)
class MomentPlay:
    kind: str
    tips: tuple[str, ...]
    led_colour: str
    led_pattern: str
    haptic: str
    priority: int
    cooldown_s: float
    min_skill: SkillLevel
    persona_tips: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Phrases in a rep's question that invite this moment in the buyer's answer ("who else").
    invited_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class Battlecard:
    name: str
    aliases: tuple[str, ...]
    tip: str

    def matches(self, text: str) -> bool:
        return any(re.search(rf"\b{re.escape(n)}\b", text, re.IGNORECASE) for n in (self.name, *self.aliases))


@dataclass(frozen=True)
class Persona:
    name: str
    label: str
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class Playbook:
    name: str
    moments: Mapping[str, MomentPlay]
    battlecards: tuple[Battlecard, ...]
    personas: Mapping[str, Persona]

    def play(self, kind: str) -> MomentPlay | None:
        return self.moments.get(kind)

    def battlecard_for(self, text: str) -> Battlecard | None:
        return next((card for card in self.battlecards if card.matches(text)), None)

    def persona_hits(self, text: str) -> dict[str, int]:
        words = set(re.findall(r"[a-z']+", text.lower()))
        return {p.name: sum(k in words for k in p.keywords) for p in self.personas.values()}


def load_playbook(path: Path) -> Playbook:
    raw = read_toml(path, "playbook", PlaybookError)
    return parse_playbook(raw, where=Path(path).name)


def parse_playbook(raw: Mapping[str, Any], where: str = "playbook") -> Playbook:
    _keys(raw, where, required=("schema", "name", "moments"), optional=("battlecards", "personas"))
    if raw["schema"] != SCHEMA_VERSION:
        raise PlaybookError(f"{where}: schema {raw['schema']!r} is not supported (expected {SCHEMA_VERSION})")
    name = _str(raw["name"], f"{where}.name")
    personas = {
        key: _persona(key, value, f"{where}.personas.{key}")
        for key, value in _table(raw.get("personas", {}), f"{where}.personas").items()
    }
    cards_raw = _table(raw.get("battlecards", {}), f"{where}.battlecards")
    cards = tuple(_battlecard(key, value, f"{where}.battlecards.{key}") for key, value in cards_raw.items())
    longest = {
        "competitor": max((len(c.name) for c in cards), default=0),
        "persona": max((len(p.label) for p in personas.values()), default=0),
    }
    for card in cards:
        _check_tip(card.tip, f"{where}.battlecards.{card.name}.tip", longest)
    moments_raw = _table(raw["moments"], f"{where}.moments")
    moments = {}
    for kind, value in moments_raw.items():
        if kind not in MOMENT_KINDS:
            raise PlaybookError(f"{where}.moments: unknown moment {kind!r} (known: {', '.join(MOMENT_KINDS)})")
        moments[kind] = _moment(kind, value, f"{where}.moments.{kind}", longest, set(personas))
    return Playbook(name=name, moments=moments, battlecards=cards, personas=personas)


def fill(template: str, slots: Mapping[str, str]) -> str | None:
    """Fill a tip template; None when it needs a slot whose value is not known."""
    needed = _SLOT_RE.findall(template)
    if any(slot not in slots for slot in needed):
        return None
    return _SLOT_RE.sub(lambda m: slots[m.group(1)], template)


def _moment(kind: str, raw: Any, where: str, longest: Mapping[str, int], personas: set[str]) -> MomentPlay:
    table = _table(raw, where)
    _keys(
        table, where,
        required=("tips", "led_colour", "led_pattern", "haptic", "priority", "cooldown_s"),
        optional=("min_skill", "personas", "invited_by"),
    )  # fmt: skip
    tips = _tips(table["tips"], f"{where}.tips", longest)
    persona_tips: dict[str, tuple[str, ...]] = {}
    for persona, value in _table(table.get("personas", {}), f"{where}.personas").items():
        if persona not in personas:
            raise PlaybookError(f"{where}.personas: {persona!r} is not a persona defined under [personas]")
        sub = _table(value, f"{where}.personas.{persona}")
        _keys(sub, f"{where}.personas.{persona}", required=("tips",), optional=())
        persona_tips[persona] = _tips(sub["tips"], f"{where}.personas.{persona}.tips", longest)
    priority = table["priority"]
    if not isinstance(priority, int) or isinstance(priority, bool) or not 1 <= priority <= 5:
        raise PlaybookError(f"{where}.priority: expected an integer 1-5, got {priority!r}")
    cooldown = table["cooldown_s"]
    if isinstance(cooldown, bool) or not isinstance(cooldown, (int, float)) or cooldown < 0:
        raise PlaybookError(f"{where}.cooldown_s: expected a number >= 0, got {cooldown!r}")
    return MomentPlay(
        kind=kind,
        tips=tips,
        led_colour=_choice(table["led_colour"], LED_COLOURS, f"{where}.led_colour"),
        led_pattern=_choice(table["led_pattern"], LED_PATTERNS, f"{where}.led_pattern"),
        haptic=_choice(table["haptic"], HAPTIC_PATTERNS, f"{where}.haptic"),
        priority=priority,
        cooldown_s=float(cooldown),
        min_skill=_choice(table.get("min_skill", "new"), SKILL_LEVELS, f"{where}.min_skill"),  # type: ignore[arg-type]
        persona_tips=persona_tips,
        invited_by=_phrases(table.get("invited_by", []), f"{where}.invited_by"),
    )


def _phrases(raw: Any, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(p, str) and p.strip() for p in raw):
        raise PlaybookError(f"{where}: expected a list of non-empty strings")
    return tuple(p.strip() for p in raw)


def _battlecard(key: str, raw: Any, where: str) -> Battlecard:
    table = _table(raw, where)
    _keys(table, where, required=("names", "tip"), optional=())
    names = table["names"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise PlaybookError(f"{where}.names: expected a non-empty list of names")
    return Battlecard(name=names[0].strip(), aliases=tuple(n.strip() for n in names[1:]), tip=_str(table["tip"], f"{where}.tip"))


def _persona(key: str, raw: Any, where: str) -> Persona:
    table = _table(raw, where)
    _keys(table, where, required=("label", "keywords"), optional=())
    keywords = table["keywords"]
    if not isinstance(keywords, list) or not keywords or not all(isinstance(k, str) and k for k in keywords):
        raise PlaybookError(f"{where}.keywords: expected a non-empty list of words")
    return Persona(name=key, label=_str(table["label"], f"{where}.label"), keywords=tuple(k.lower() for k in keywords))


def _tips(raw: Any, where: str, longest: Mapping[str, int]) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw:
        raise PlaybookError(f"{where}: expected a non-empty list of tip texts")
    for i, tip in enumerate(raw):
        _check_tip(tip, f"{where}[{i}]", longest)
    return tuple(raw)


def _check_tip(tip: Any, where: str, longest: Mapping[str, int]) -> None:
    if not isinstance(tip, str) or not tip.strip():
        raise PlaybookError(f"{where}: expected a tip text")
    for slot in _SLOT_RE.findall(tip):
        if slot not in _SLOTS:
            raise PlaybookError(f"{where}: unknown slot {{{slot}}} (slots: {', '.join(_SLOTS)})")
        if longest[slot] == 0:
            raise PlaybookError(f"{where}: slot {{{slot}}} has no possible value in this playbook")
    worst = _SLOT_RE.sub(lambda m: "x" * longest[m.group(1)], tip)
    if len(worst) > MAX_TIP_CHARS:
        raise PlaybookError(f"{where}: {len(worst)} characters once filled (max {MAX_TIP_CHARS}): {tip!r}")


def _keys(table: Mapping[str, Any], where: str, required: tuple[str, ...], optional: tuple[str, ...]) -> None:
    missing = [k for k in required if k not in table]
    if missing:
        raise PlaybookError(f"{where}: missing key(s) {', '.join(missing)}")
    unknown = sorted(set(table) - set(required) - set(optional))
    if unknown:
        raise PlaybookError(f"{where}: unknown key(s) {', '.join(unknown)}")


def _table(raw: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise PlaybookError(f"{where}: expected a table")
    return raw


def _str(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise PlaybookError(f"{where}: expected a non-empty string")
    return raw.strip()


def _choice(raw: Any, choices: tuple[str, ...], where: str) -> str:
    if raw not in choices:
        raise PlaybookError(f"{where}: {raw!r} is not one of {', '.join(choices)}")
    return str(raw)
