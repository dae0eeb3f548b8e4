"""Declared ranges and relations for every configuration setting, checked one way for all sections.

Each field of a config section is declared with :func:`setting`: its default and what values are
allowed, written next to the field. Each section class derives from :class:`Checked`, whose
``__post_init__`` checks every field against its declaration (and ``Literal`` fields against their
choices), then the class's ``RULES``: relations between its settings (a minimum below its maximum,
a segment bound that leaves room for speech). So a section cannot be built out of range, whether
from the TOML file, ``dataclasses.replace`` or a test.

A violation raises :class:`SettingError`, a ``ValueError`` whose message names the key, the value
and what is allowed; ``firmware.config.load_config`` prefixes the file and the key's full path:

    parallax.toml: speech.vad.threshold = 5.0 is not allowed (allowed: 0 < x < 1)

Every float must also be finite: TOML's ``inf`` and ``nan`` are refused everywhere.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, ClassVar

ALLOWED = "parallax.allowed"  # the dataclass field metadata key


@dataclass(frozen=True)
class Allowed:
    """What one setting may hold. Bounds apply to numbers; ``nonempty`` and ``unique`` to strings,
    paths and lists; ``optional`` lets ``None`` through (a setting that can be switched off)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[Any, ...] | None = None
    nonempty: bool = False
    unique: bool = False
    optional: bool = False

    @property
    def bounded(self) -> bool:
        return self.choices is not None or any(b is not None for b in (self.ge, self.gt, self.le, self.lt))

    def describe(self) -> str:
        parts: list[str] = []
        if self.choices is not None:
            parts.append("one of " + ", ".join(repr(c) for c in self.choices))
        lo = f"{_num(self.ge)} <= " if self.ge is not None else f"{_num(self.gt)} < " if self.gt is not None else ""
        hi = f" <= {_num(self.le)}" if self.le is not None else f" < {_num(self.lt)}" if self.lt is not None else ""
        if lo or hi:
            parts.append(f"{lo}x{hi}")
        if self.nonempty:
            parts.append("not empty")
        if self.unique:
            parts.append("no item twice")
        if self.optional:
            parts.append("or unset")
        return ", ".join(parts) or "any"

    def allows(self, value: Any) -> bool:
        if value is None:
            return self.optional
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.choices is not None and value not in self.choices:
            return False
        if any(b is not None for b in (self.ge, self.gt, self.le, self.lt)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return False
            if self.ge is not None and not value >= self.ge:
                return False
            if self.gt is not None and not value > self.gt:
                return False
            if self.le is not None and not value <= self.le:
                return False
            if self.lt is not None and not value < self.lt:
                return False
        if self.nonempty and not (str(value).strip() if isinstance(value, (str, os.PathLike)) else value):
            return False
        if self.nonempty and isinstance(value, os.PathLike) and str(value) == ".":
            return False  # Path("") is Path("."): an empty path string in the file
        if self.unique and isinstance(value, (tuple, list)) and len(set(value)) != len(value):
            return False
        return True


def setting(
    default: Any = dataclasses.MISSING,
    *,
    factory: Callable[[], Any] | Any = dataclasses.MISSING,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: Sequence[Any] | None = None,
    nonempty: bool = False,
    unique: bool = False,
    optional: bool = False,
) -> Any:
    """A config field with its default and its allowed values (see :class:`Allowed`)."""
    allowed = Allowed(ge, gt, le, lt, tuple(choices) if choices is not None else None, nonempty, unique, optional)
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata={ALLOWED: allowed})
    return dataclasses.field(default=default, metadata={ALLOWED: allowed})


@dataclass(frozen=True)
class Rule:
    """A relation between settings of one section: ``holds(*values of keys)`` must be true.
    Keys may be dotted to reach into a nested section (``"vad.min_speech_s"``)."""

    need: str  # how the README and the error say it: "questions_target_min <= questions_target_max"
    keys: tuple[str, ...]
    holds: Callable[..., bool]


def rule(need: str, *keys: str, holds: Callable[..., bool]) -> Rule:
    return Rule(need, keys, holds)


class SettingError(ValueError):
    """One setting (or one relation between settings) is out of what its section allows."""

    def __init__(self, section: str, keys: tuple[str, ...], values: tuple[Any, ...], allowed: str, relation: bool) -> None:
        self.section, self.keys, self.values, self.allowed, self.relation = section, keys, values, allowed, relation
        super().__init__(self.render(section))

    def render(self, section: str) -> str:
        """The one line, with ``section`` as the dotted path of the section in the file."""
        full = [f"{section}.{k}" if section else k for k in self.keys]
        if not self.relation:
            return f"{full[0]} = {_show(self.values[0])} is not allowed (allowed: {self.allowed})"
        pairs = ", ".join(f"{k} = {_show(v)}" for k, v in zip(full, self.values))
        return f"{pairs} do not fit together (need {self.allowed})"


class Checked:
    """Base of every config section: checks the declared ranges, then ``RULES``, on construction."""

    RULES: ClassVar[tuple[Rule, ...]] = ()

    def __post_init__(self) -> None:
        check(self)


def section_name(cls: type) -> str:
    """``VadLevelConfig`` -> ``vad_level``: the section's key in its parent (used when a section is
    built directly, outside a file; ``load_config`` names the full path instead)."""
    name = cls.__name__.removesuffix("Config")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def check(obj: Any) -> None:
    cls = type(obj)
    section = section_name(cls)
    literal_choices = _literal_choices(cls)
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        allowed: Allowed | None = f.metadata.get(ALLOWED)
        choices = literal_choices.get(f.name)
        if choices is not None:
            items = value if isinstance(value, tuple) else (value,)
            if any(item not in choices for item in items if item is not None):
                raise SettingError(section, (f.name,), (value,), "one of " + ", ".join(map(repr, choices)), False)
        if allowed is not None and not allowed.allows(value):
            raise SettingError(section, (f.name,), (value,), allowed.describe(), False)
    for r in cls.RULES:
        values = tuple(attrgetter(k)(obj) for k in r.keys)
        if not r.holds(*values):
            raise SettingError(section, r.keys, values, r.need, True)


@functools.cache
def _literal_choices(cls: type) -> dict[str, tuple[Any, ...]]:
    """Fields typed ``Literal[...]`` (or a tuple of one): their allowed values."""
    out: dict[str, tuple[Any, ...]] = {}
    for name, hint in typing.get_type_hints(cls).items():
        if typing.get_origin(hint) in (tuple, list):
            args = [a for a in typing.get_args(hint) if a is not Ellipsis]
            hint = args[0] if len(args) == 1 else hint
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            options = [a for a in typing.get_args(hint) if a is not type(None)]
            hint = options[0] if len(options) == 1 else hint
        if typing.get_origin(hint) is typing.Literal:
            out[name] = typing.get_args(hint)
    return out


def allowed_of(cls: type, name: str) -> Allowed | None:
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name == name:
            return f.metadata.get(ALLOWED)
    raise KeyError(name)


def _num(x: float) -> str:
    return f"{x:g}"


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, os.PathLike):
        return repr(str(value))
    return str(value)
