"""The box's one button: short press dismisses the tip, hold snoozes, double press mutes.

A short press acts at once (dismiss); a second short press within ``double_press_s`` then
upgrades it to mute, so nothing waits on a timer. None of it is reported anywhere.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class CoachButton:
    def __init__(
        self,
        pin: int,
        *,
        on_dismiss: Callable[[], None],
        on_snooze: Callable[[], None],
        on_mute: Callable[[], None],
        hold_s: float = 2.0,
        double_press_s: float = 0.4,
        pin_factory: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from gpiozero import Button

        self._on_dismiss, self._on_snooze, self._on_mute = on_dismiss, on_snooze, on_mute
        self._double_press_s = double_press_s
        self._clock = clock
        self._lock = threading.Lock()
        self._held = False
        self._last_short_release = float("-inf")
        self.button = Button(pin, pull_up=True, hold_time=hold_s, pin_factory=pin_factory)
        self.button.when_pressed = self._pressed
        self.button.when_held = self._hold
        self.button.when_released = self._released

    def close(self) -> None:
        self.button.close()

    def _pressed(self) -> None:
        with self._lock:
            self._held = False

    def _hold(self) -> None:
        with self._lock:
            self._held = True
        self._on_snooze()

    def _released(self) -> None:
        with self._lock:
            if self._held:
                return
            now = self._clock()
            double = now - self._last_short_release <= self._double_press_s
            self._last_short_release = float("-inf") if double else now
        if double:
            self._on_mute()
        else:
            self._on_dismiss()
