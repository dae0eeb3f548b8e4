"""LED and haptic cue settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from firmware.settings import Checked, setting

PinFactoryName = Literal["default", "mock"]


@dataclass(frozen=True)
class CuesConfig(Checked):
    # board/pins.toml maps the RGB LED, the haptic motor and the button to BCM pins.
    pin_map: Path = setting(Path("board/pins.toml"), nonempty=True)
    # "default" lets gpiozero choose (lgpio on a Pi 5); "mock" is for machines without GPIO.
    pin_factory: PinFactoryName = setting("default")
    led_brightness: float = setting(0.6, gt=0.0, le=1.0)
    tick_s: float = setting(0.08, gt=0.0, le=2.0)
    tick_gap_s: float = setting(0.12, gt=0.0, le=2.0)
    # How long the LED shows a tip before going dark again.
    tip_led_s: float = setting(8.0, gt=0.0, le=600.0)
    button_hold_s: float = setting(2.0, gt=0.0, le=10.0)
    double_press_s: float = setting(0.4, gt=0.0, le=2.0)

