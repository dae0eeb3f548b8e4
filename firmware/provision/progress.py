"""Progress lines on stderr for build steps that take more than a moment."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Prints ``[models] <message>`` lines with elapsed time; silent when disabled (tests)."""

    def __init__(self, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self.stream = stream
        self._started = time.monotonic()

    def line(self, message: str) -> None:
        if self.enabled:
            stream = self.stream or sys.stderr
            print(f"[models {time.monotonic() - self._started:6.1f}s] {message}", file=stream, flush=True)
