"""Where the coach's events go besides the box itself: the rep's phone.

:class:`PhoneSink` is the seam the BLE phone link implements. :class:`InMemoryPhoneSink` is a
complete implementation that keeps what it is sent in memory (tests, the demo, a box with no
phone paired); nothing it holds is ever written anywhere.
"""

from __future__ import annotations

import threading
from typing import Protocol

from firmware.events import ControlResult, Event, RecapEvent, Status, Tip

# Applied controls after which the phone stops showing the tip they name (or the one showing).
_HIDES_TIP = frozenset({"dismiss", "snooze", "mute"})


class PhoneSink(Protocol):
    def send(self, event: Event) -> None:
        """One event for the rep's phone: a Tip, Status, RecapEvent or ControlResult.

        Called on the coach's thread (or a control's caller's thread), with the coach's lock held:
        it must return at once and never block on I/O; a radio link queues the event and hands
        it to its own loop (``firmware.handoff.ThreadToAsync``). A link serialises with
        ``firmware.outward.outward("phone", event)``, the one allowlist of what the phone sees.
        """
        ...


class InMemoryPhoneSink:
    """Keeps the last ``keep`` events of each kind; ``current`` is the tip the phone would show."""

    def __init__(self, keep: int = 100) -> None:
        self._lock = threading.Lock()
        self._keep = keep
        self.events: list[Event] = []
        self.tips: list[Tip] = []
        self.recaps: list[RecapEvent] = []
        self.statuses: list[Status] = []
        self.results: list[ControlResult] = []
        self.current: Tip | None = None

    def send(self, event: Event) -> None:
        with self._lock:
            self.events = (self.events + [event])[-self._keep :]
            if isinstance(event, Tip):
                self.tips = (self.tips + [event])[-self._keep :]
                self.current = event
            elif isinstance(event, RecapEvent):
                self.recaps = (self.recaps + [event])[-self._keep :]
            elif isinstance(event, Status):
                self.statuses = (self.statuses + [event])[-self._keep :]
                if not event.call_active:
                    self.current = None
            elif isinstance(event, ControlResult):
                self.results = (self.results + [event])[-self._keep :]
                if (
                    event.outcome == "applied"
                    and event.action in _HIDES_TIP
                    and self.current is not None
                    and event.tip_id in (None, self.current.tip_id)
                ):
                    self.current = None
