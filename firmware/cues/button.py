"""The box's one button: short press dismisses the tip, hold snoozes, double press mutes,
a long hold (5 s by default) enters phone pairing mode.

A short press acts at once (dismiss); a second short press within ``double_press_s`` then
upgrades it to mute, so nothing waits on a timer. The long hold passes through the snooze hold
on its way (a snooze between calls is refused, so pairing between calls changes nothing else).
None of it is reported anywhere.
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
        self._presses = 0
        self._last_short_release = float("-inf")
        self._on_long: Callable[[], None] | None = None
        self._long_s = 0.0
        self._long_timer: threading.Timer | None = None
        self.button = Button(pin, pull_up=True, hold_time=hold_s, pin_factory=pin_factory)
        self.button.when_pressed = self._pressed
        self.button.when_held = self._hold
        self.button.when_released = self._released

    def on_long_press(self, callback: Callable[[], None], hold_s: float) -> None:
        """Run ``callback`` (on a timer thread; it must return at once) once the button has been
        held ``hold_s`` seconds, which must be longer than the snooze hold."""
        if hold_s <= self.button.hold_time:
            raise ValueError("the long press must be longer than the snooze hold")
        with self._lock:
            self._on_long, self._long_s = callback, hold_s

    def close(self) -> None:
        with self._lock:
            if self._long_timer is not None:
                self._long_timer.cancel()
        self.button.close()

    def _pressed(self) -> None:
        with self._lock:
            self._held = False
            self._presses += 1

    def _hold(self) -> None:
        with self._lock:
            self._held = True
            if self._on_long is not None:
                press = self._presses
                self._long_timer = threading.Timer(self._long_s - self.button.hold_time, self._long_check, (press,))
                self._long_timer.daemon = True
                self._long_timer.start()
        self._on_snooze()

    def _long_check(self, press: int) -> None:
        with self._lock:
            still = self._presses == press and self._held and self.button.is_pressed
            callback = self._on_long
        if still and callback is not None:
            callback()

    def _released(self) -> None:
        with self._lock:
            if self._long_timer is not None:
                self._long_timer.cancel()
                self._long_timer = None
            if self._held:
                return
            now = self._clock()
            double = now - self._last_short_release <= self._double_press_s
            self._last_short_release = float("-inf") if double else now
        if double:
            self._on_mute()
        else:
            self._on_dismiss()
