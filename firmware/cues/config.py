"""LED and haptic cue settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

PinFactoryName = Literal["default", "mock"]


@dataclass(frozen=True)
class CuesConfig:
    # board/pins.toml maps the RGB LED, the haptic motor and the button to BCM pins.
    pin_map: Path = Path("board/pins.toml")
    # "default" lets gpiozero choose (lgpio on a Pi 5); "mock" is for machines without GPIO.
    pin_factory: PinFactoryName = "default"
    led_brightness: float = 0.6
    tick_s: float = 0.08
    tick_gap_s: float = 0.12
    # How long the LED shows a tip before going dark again.
    tip_led_s: float = 8.0
    button_hold_s: float = 2.0
    double_press_s: float = 0.4

    def __post_init__(self) -> None:
        if not 0.0 < self.led_brightness <= 1.0:
            raise ValueError("led_brightness must be within (0, 1]")
        for name in ("tick_s", "tick_gap_s", "tip_led_s", "button_hold_s", "double_press_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
