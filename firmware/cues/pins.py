"""The box's pin map (``board/pins.toml``) and the one place a gpiozero pin factory is chosen."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware.errors import ConfigError
from firmware.tomlfile import read_toml

_BCM_PINS = range(0, 28)


@dataclass(frozen=True)
class PinMap:
    led_red: int
    led_green: int
    led_blue: int
    led_active_high: bool
    haptic: int
    haptic_frequency_hz: int
    button: int


def load_pin_map(path: Path) -> PinMap:
    raw = read_toml(path, "pin map", ConfigError)
    where = Path(path).name
    led, haptic, button = (_table(raw, key, where) for key in ("led", "haptic", "button"))
    pins = PinMap(
        led_red=_pin(led, "red", f"{where}: led"),
        led_green=_pin(led, "green", f"{where}: led"),
        led_blue=_pin(led, "blue", f"{where}: led"),
        led_active_high=_bool(led.get("active_high", True), f"{where}: led.active_high"),
        haptic=_pin(haptic, "pin", f"{where}: haptic"),
        haptic_frequency_hz=_int(haptic.get("frequency_hz", 200), f"{where}: haptic.frequency_hz", 1, 50000),
        button=_pin(button, "pin", f"{where}: button"),
    )
    used = [pins.led_red, pins.led_green, pins.led_blue, pins.haptic, pins.button]
    if len(set(used)) != len(used):
        raise ConfigError(f"{where}: the same GPIO is assigned twice ({used})")
    return pins


def make_pin_factory(name: str) -> Any:
    """``None`` lets gpiozero pick the board's factory; "mock" is MockFactory with PWM-capable pins."""
    if name == "default":
        return None
    if name == "mock":
        from gpiozero.pins.mock import MockFactory, MockPWMPin

        return MockFactory(pin_class=MockPWMPin)
    raise ConfigError(f"unknown pin factory {name!r} (choose default or mock)")


def _table(raw: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = raw.get(key)
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: missing [{key}] table")
    return value


def _pin(table: dict[str, Any], key: str, where: str) -> int:
    if key not in table:
        raise ConfigError(f"{where}.{key} is missing")
    return _int(table[key], f"{where}.{key}", _BCM_PINS.start, _BCM_PINS.stop - 1)


def _int(value: Any, where: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(f"{where}: expected an integer {low}-{high}, got {value!r}")
    return value


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    return value
