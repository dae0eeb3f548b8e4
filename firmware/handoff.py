"""Bounded, never-blocking hand-offs between threads, and from threads into asyncio.

The producer side of every hand-off here is a thread that must keep its period (the audio
thread, the replay feeder): when the consumer is slow the item is dropped and counted,
never waited for.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class DropQueue(Generic[T]):
    """A bounded thread-to-thread queue whose ``offer`` drops (and counts) instead of blocking."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self._queue: queue.Queue[T] = queue.Queue(maxsize)
        self._lock = threading.Lock()
        self.dropped = 0

    def offer(self, item: T) -> bool:
        try:
            self._queue.put_nowait(item)
            return True
        except queue.Full:
            with self._lock:
                self.dropped += 1
            return False

    def put(self, item: T, timeout: float | None = None) -> None:
        """Blocking put, only for producers that are not real-time (a file replay)."""
        self._queue.put(item, timeout=timeout)

    def get(self, timeout: float | None = None) -> T:
        """Raise ``queue.Empty`` after ``timeout`` seconds without an item."""
        return self._queue.get(timeout=timeout)

    def task_done(self) -> None:
        self._queue.task_done()

    def join(self) -> None:
        """Wait until every item taken with ``get`` has been marked ``task_done``."""
        self._queue.join()

    def qsize(self) -> int:
        return self._queue.qsize()


class ThreadToAsync(Generic[T]):
    """The one way work crosses from a thread into an asyncio loop.

    ``post`` may be called from any thread and returns at once; items arrive in order on an
    ``asyncio.Queue`` owned by ``loop``. A full queue drops the newest item and counts it.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, maxsize: int = 64) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[T] = asyncio.Queue(maxsize)
        self._lock = threading.Lock()
        self.dropped = 0

    def post(self, item: T) -> None:
        try:
            self._loop.call_soon_threadsafe(self._put, item)
        except RuntimeError:  # loop closed during shutdown: nothing left to deliver to
            self._count_drop()

    def _put(self, item: T) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self._count_drop()

    def _count_drop(self) -> None:
        with self._lock:
            self.dropped += 1

    async def get(self) -> T:
        return await self._queue.get()

    def get_nowait(self) -> T:
        return self._queue.get_nowait()
