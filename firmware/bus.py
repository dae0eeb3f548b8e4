"""The internal event bus: synchronous fan-out of :class:`~firmware.events.Event` objects.

Handlers run on the publisher's thread and must be quick; a handler that needs time hands
the event on (see :mod:`firmware.handoff`). A failing handler is logged and skipped so one
faulty consumer cannot take the producer down.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from firmware.events import Event

log = logging.getLogger(__name__)

Handler = Callable[[Event], None]


class EventBus:
    def __init__(self) -> None:
        self._handlers: list[Handler] = []
        self._lock = threading.Lock()
        self.handler_errors = 0

    def subscribe(self, handler: Handler) -> Callable[[], None]:
        with self._lock:
            self._handlers.append(handler)

        def unsubscribe() -> None:
            with self._lock:
                if handler in self._handlers:
                    self._handlers.remove(handler)

        return unsubscribe

    def publish(self, event: Event) -> None:
        with self._lock:
            handlers = list(self._handlers)
        for handler in handlers:
            try:
                handler(event)
            except Exception:
                self.handler_errors += 1
                log.exception("event handler %r failed on a %s event", handler, event.type)
