"""The box's one button: short press dismisses the tip, hold snoozes, double press mutes,
a long hold (5 s by default) enters phone pairing mode.

A short press acts at once (dismiss); a second short press within ``double_press_s`` then
upgrades it to mute, so nothing waits on a timer. Snooze and pairing are one gesture or the other,
never both: without a long press registered, the snooze acts as soon as the hold time (2 s) is
reached; with one (``on_long_press``, the phone link's pairing), a hold decides on release. Released
between the hold time and the long press time, it snoozes at the release; held on to the long
press time, it enters pairing at that moment and the release adds nothing. So the snooze waits
only for the rep's finger to come up, and a press for pairing during a call does not also snooze
the coaching. None of it is reported anywhere.
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
        self._snooze_pending = False  # a hold that snoozes at its release unless it becomes a long press
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
        held ``hold_s`` seconds, which must be longer than the snooze hold. From then on a hold
        snoozes at its release, and only if released before ``hold_s`` (see the module's doc)."""
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
            self._snooze_pending = False
            self._presses += 1

    def _hold(self) -> None:
        with self._lock:
            self._held = True
            if self._on_long is None:
                snooze_now = True
            else:  # snooze or pairing: the release or the long press timer decides, whichever comes first
                snooze_now = False
                self._snooze_pending = True
                press = self._presses
                self._long_timer = threading.Timer(self._long_s - self.button.hold_time, self._long_check, (press,))
                self._long_timer.daemon = True
                self._long_timer.start()
        if snooze_now:
            self._on_snooze()

    def _long_check(self, press: int) -> None:
        with self._lock:
            still = self._presses == press and self._held and self._snooze_pending and self.button.is_pressed
            if still:
                self._snooze_pending = False  # a long press: pairing only
            callback = self._on_long
        if still and callback is not None:
            callback()

    def _released(self) -> None:
        snooze = double = False
        with self._lock:
            if self._long_timer is not None:
                self._long_timer.cancel()
                self._long_timer = None
            held = self._held
            if held:
                snooze, self._snooze_pending = self._snooze_pending, False
            else:
                now = self._clock()
                double = now - self._last_short_release <= self._double_press_s
                self._last_short_release = float("-inf") if double else now
        if held:
            if snooze:
                self._on_snooze()  # released before the long press: the hold was a snooze
        elif double:
            self._on_mute()
        else:
            self._on_dismiss()
