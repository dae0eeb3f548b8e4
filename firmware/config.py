"""Configuration: one TOML file parsed once into frozen dataclasses.

Every subsystem owns the dataclass for its own section (``firmware/<subsystem>/config.py``);
this module composes them and does the parsing. Defaults are the dataclass defaults, so the
embedded defaults and the code can never disagree. On the device the file is
``/etc/parallax/parallax.toml``; ``--config`` points elsewhere.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from firmware.audio.config import AudioConfig, BridgeConfig
from firmware.coach.config import CoachConfig
from firmware.cues.config import CuesConfig
from firmware.errors import ConfigError
from firmware.intent.config import IntentConfig
from firmware.settings import Checked, SettingError, setting
from firmware.speech.config import SpeechConfig
from firmware.tomlfile import read_toml

DEVICE_CONFIG_PATH = Path("/etc/parallax/parallax.toml")
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class PathsConfig(Checked):
    # Relative paths resolve against the source tree, so a checkout works without install.
    models_dir: Path = setting(Path("models"), nonempty=True)
    state_dir: Path = setting(Path("/var/lib/parallax"), nonempty=True)

    def resolve(self, path: Path) -> Path:
        return path if path.is_absolute() else REPO_ROOT / path


@dataclass(frozen=True)
class Config(Checked):
    paths: PathsConfig = field(default_factory=PathsConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    speech: SpeechConfig = field(default_factory=SpeechConfig)
    intent: IntentConfig = field(default_factory=IntentConfig)
    coach: CoachConfig = field(default_factory=CoachConfig)
    cues: CuesConfig = field(default_factory=CuesConfig)
    bridge: BridgeConfig = field(default_factory=BridgeConfig)


T = TypeVar("T")


def load_config(path: Path | None = None) -> Config:
    """Parse ``path`` (or the device file when it exists, else the embedded defaults)."""
    if path is None:
        path = DEVICE_CONFIG_PATH if DEVICE_CONFIG_PATH.is_file() else None
    if path is None:
        return Config()
    raw = read_toml(path, "config file", ConfigError)
    try:
        return from_mapping(Config, raw, where="")
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def from_mapping(cls: type[T], raw: Any, where: str) -> T:
    """Build dataclass ``cls`` from a TOML table, rejecting unknown keys, wrong types and values
    outside the declared ranges (``firmware.settings``). ``where`` is the table's dotted key path
    ("" for the file's top level); every error names the full key."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where or 'the file'}: expected a table, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(raw) - set(known))
    if unknown:
        section = f"[{where}] " if where else ""
        raise ConfigError(f"{section}unknown key(s) {', '.join(unknown)} (known: {', '.join(known)})")
    values = {name: _coerce(hints[name], value, f"{where}.{name}" if where else name) for name, value in raw.items()}
    try:
        return cls(**values)
    except SettingError as exc:
        raise ConfigError(exc.render(where)) from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where or 'the file'}: {exc}") from None


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return from_mapping(hint, value, where)  # type: ignore[arg-type]
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(hint):
            if option is type(None) and value is None:
                return None
            try:
                return _coerce(option, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[-1] if errors else f"{where}: bad value {value!r}")
    if origin is typing.Literal:
        if value not in typing.get_args(hint):
            choices = ", ".join(repr(a) for a in typing.get_args(hint))
            raise ConfigError(f"{where}: {value!r} is not one of {choices}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list")
        args = typing.get_args(hint)
        item = args[0] if args else Any
        return tuple(_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if hint is Any:
        return value
    if hint is Path:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a path string")
        return Path(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint in (int, str, bool):
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
        return value
    return value
