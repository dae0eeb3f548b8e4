"""The box's RGB LED and haptic motor through gpiozero: the real :class:`CueSink`.

Patterns run on gpiozero's own background threads, so a cue never blocks the caller; closing
the devices stops them. The pin factory is passed in (``pin_factory=``), chosen once by
:func:`firmware.cues.pins.make_pin_factory`.
"""

from __future__ import annotations

import threading
from typing import Any

from firmware.cues.config import CuesConfig
from firmware.cues.pins import PinMap
from firmware.cues.spec import COLOURS, BoxState, CueSpec

_OFF = (0.0, 0.0, 0.0)
# Box states: (colour, pattern, brightness factor). Muted stays dim so the rep knows coaching is off.
_STATES: dict[str, tuple[str, str, float]] = {
    "pairing": ("blue", "blink", 1.0),
    "updating": ("cyan", "pulse", 1.0),
    "error": ("red", "blink", 1.0),
    "muted": ("red", "solid", 0.15),
    "snoozed": ("amber", "solid", 0.15),
}


class GpioCues:
    def __init__(self, pins: PinMap, config: CuesConfig | None = None, pin_factory: Any = None) -> None:
        from gpiozero import PWMOutputDevice, RGBLED

        self._cfg = config or CuesConfig()
        self._lock = threading.Lock()
        self.led = RGBLED(
            pins.led_red, pins.led_green, pins.led_blue,
            active_high=pins.led_active_high, pwm=True, pin_factory=pin_factory,
        )  # fmt: skip
        self.haptic = PWMOutputDevice(pins.haptic, frequency=pins.haptic_frequency_hz, pin_factory=pin_factory)
        self.state: BoxState = "idle"
        self.last_tip: CueSpec | None = None

    def tip(self, cue: CueSpec) -> None:
        with self._lock:
            self.last_tip = cue
            if cue.led_colour is not None:
                self._led(cue.led_colour, cue.led_pattern, self._cfg.led_brightness, self._cfg.tip_led_s)
            if cue.haptic != "none":
                ticks = 2 if cue.haptic == "double" else 1
                self.haptic.blink(on_time=self._cfg.tick_s, off_time=self._cfg.tick_gap_s, n=ticks, background=True)

    def clear(self) -> None:
        with self._lock:
            self.last_tip = None
            self.haptic.off()
            self._show_state()

    def status(self, state: BoxState) -> None:
        with self._lock:
            self.state = state
            self._show_state()

    def close(self) -> None:
        with self._lock:
            self.led.close()
            self.haptic.close()

    def _show_state(self) -> None:
        if self.state == "idle":
            self.led.off()
            return
        colour, pattern, factor = _STATES[self.state]
        self._led(colour, pattern, self._cfg.led_brightness * factor, None)

    def _led(self, colour: str, pattern: str, brightness: float, duration_s: float | None) -> None:
        rgb = tuple(c * brightness for c in COLOURS[colour])
        if pattern == "solid":
            if duration_s is None:
                self.led.color = rgb
            else:
                self.led.blink(on_time=duration_s, off_time=0.01, on_color=rgb, off_color=_OFF, n=1, background=True)
        elif pattern == "blink":
            n = None if duration_s is None else max(1, round(duration_s / 0.5))
            self.led.blink(on_time=0.25, off_time=0.25, on_color=rgb, off_color=_OFF, n=n, background=True)
        else:
            n = None if duration_s is None else max(1, round(duration_s / 1.6))
            self.led.pulse(fade_in_time=0.8, fade_out_time=0.8, on_color=rgb, off_color=_OFF, n=n, background=True)
