"""What the box's own cues can show, independent of the hardware that shows them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

BoxState = Literal["idle", "pairing", "updating", "error", "muted", "snoozed"]

# Named colours as (r, g, b) duty in [0, 1] before brightness scaling.
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (1.0, 0.0, 0.0),
    "amber": (1.0, 0.45, 0.0),
    "yellow": (1.0, 0.85, 0.0),
    "green": (0.0, 1.0, 0.0),
    "cyan": (0.0, 1.0, 1.0),
    "blue": (0.0, 0.0, 1.0),
    "purple": (0.6, 0.0, 1.0),
    "white": (1.0, 1.0, 1.0),
}


@dataclass(frozen=True)
class CueSpec:
    """One tip's cue. ``led_colour`` None: the rep turned the LED off; haptic "none" likewise."""

    led_colour: str | None
    led_pattern: str
    haptic: str

    def channels(self) -> tuple[str, ...]:
        out = []
        if self.led_colour is not None:
            out.append("led")
        if self.haptic != "none":
            out.append("haptic")
        return tuple(out)


class CueSink(Protocol):
    """The box's LED and haptic motor (gpiozero on the device, MockFactory in tests and demo)."""

    def tip(self, cue: CueSpec) -> None: ...

    def clear(self) -> None: ...

    def status(self, state: BoxState) -> None: ...

    def close(self) -> None: ...
