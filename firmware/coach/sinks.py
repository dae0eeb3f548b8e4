"""Where tips go besides the box itself: the rep's phone.

:class:`PhoneSink` is the interface the BLE phone link implements. :class:`InMemoryPhoneSink`
is a complete implementation that keeps the messages in memory (tests, the demo, a box with no
phone paired); nothing it holds is ever written anywhere.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

from firmware.coach.recap import Recap


@dataclass(frozen=True)
class PhoneTip:
    t: float
    moment: str
    text: str
    priority: int


class PhoneSink(Protocol):
    def send_tip(self, tip: PhoneTip) -> None: ...

    def dismiss_tip(self) -> None: ...

    def send_recap(self, recap: Recap) -> None: ...


class InMemoryPhoneSink:
    def __init__(self, keep: int = 100) -> None:
        self._lock = threading.Lock()
        self._keep = keep
        self.tips: list[PhoneTip] = []
        self.recaps: list[Recap] = []
        self.current: PhoneTip | None = None

    def send_tip(self, tip: PhoneTip) -> None:
        with self._lock:
            self.tips = (self.tips + [tip])[-self._keep :]
            self.current = tip

    def dismiss_tip(self) -> None:
        with self._lock:
            self.current = None

    def send_recap(self, recap: Recap) -> None:
        with self._lock:
            self.recaps = (self.recaps + [recap])[-self._keep :]
