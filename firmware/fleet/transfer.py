"""Fetching an artifact, chunk by checked chunk, over MQTT or HTTPS; resumable after anything.

The bytes land in ``<downloads>/<sha256>.part``, preallocated to the artifact's size; a chunk is
written at its offset only after its SHA-256 matches the signed manifest. What is on disk is never
trusted on its own: on start (and after a reconnect) the file is re-hashed chunk by chunk, and only
the chunks still missing are asked for. Runs on the agent's worker thread.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import random
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from firmware.fleet.crashpoint import crashpoint
from firmware.fleet.manifest import Artifact
from firmware.fleet.signing import Rejected

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
RECONNECTED = ("", b"reconnected")
MAX_BAD_CHUNKS = 3


class PartFile:
    def __init__(self, folder: Path, artifact: Artifact) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.artifact = artifact
        self.path = folder / f"{artifact.sha256}.part"
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        self._f = os.fdopen(fd, "r+b")
        if os.fstat(fd).st_size != artifact.size:
            self._f.truncate(artifact.size)
        self.have: set[int] = set()
        self.rescan()

    def rescan(self) -> None:
        """Which chunks on disk hash right (after a crash, a cut, or a reconnect)."""
        self.have.clear()
        for i, expected in enumerate(self.artifact.chunk_sha256):
            start, end = self.artifact.chunk_range(i)
            self._f.seek(start)
            if hashlib.sha256(self._f.read(end - start)).hexdigest() == expected:
                self.have.add(i)

    @property
    def missing(self) -> list[int]:
        return [i for i in range(self.artifact.chunks) if i not in self.have]

    @property
    def bytes_done(self) -> int:
        return sum(self.artifact.chunk_range(i)[1] - self.artifact.chunk_range(i)[0] for i in self.have)

    def put(self, index: int, data: bytes) -> bool:
        """Write chunk ``index`` if it hashes right; False (nothing written) otherwise."""
        if not 0 <= index < self.artifact.chunks:
            return False
        start, end = self.artifact.chunk_range(index)
        if len(data) != end - start or hashlib.sha256(data).hexdigest() != self.artifact.chunk_sha256[index]:
            return False
        self._f.seek(start)
        self._f.write(data)
        self.have.add(index)
        return True

    def finish(self) -> Path:
        """Flush, check the whole artifact's SHA-256, and return the file."""
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.seek(0)
        digest = hashlib.file_digest(self._f, "sha256").hexdigest()
        if digest != self.artifact.sha256:
            raise Rejected("corrupt: the whole artifact does not match its SHA-256")
        return self.path

    def close(self) -> None:
        self._f.close()


class ChunkLink(Protocol):
    """The agent's MQTT connection as the fetcher needs it (callable from the worker thread)."""

    def subscribe(self, topic: str) -> None: ...

    def unsubscribe(self, topic: str) -> None: ...


def fetch_mqtt(part: PartFile, link: ChunkLink, inbox: queue.Queue[tuple[str, bytes]], *, window: int, chunk_timeout_s: float, stall_s: float, progress: Progress, stop: Callable[[], bool]) -> None:
    """Fill ``part`` from the retained chunk topics under ``artifact.topic``, ``window`` at a time.

    ``inbox`` receives ``(topic, payload)`` for this artifact's chunk topics, and
    :data:`RECONNECTED` after the agent reconnects (subscriptions are gone then: ask again).
    """
    art = part.artifact
    assert art.topic is not None
    prefix = art.topic + "/"
    pending: dict[int, float] = {}
    bad: dict[int, int] = {}
    last_progress = time.monotonic()

    def ask(i: int) -> None:
        pending[i] = time.monotonic()
        link.subscribe(f"{prefix}{i}")

    while True:
        missing = [i for i in part.missing if i not in pending]
        while missing and len(pending) < window:
            ask(missing.pop(0))
        if not pending:
            return
        if stop():
            raise Rejected("transfer: the agent is stopping")
        try:
            topic, payload = inbox.get(timeout=0.5)
        except queue.Empty:
            topic, payload = "", b""
            progress(part.bytes_done, art.size)
        now = time.monotonic()
        if (topic, payload) == RECONNECTED:
            for i in list(pending):
                ask(i)
            continue
        if topic.startswith(prefix):
            try:
                index = int(topic[len(prefix):])
            except ValueError:
                continue
            if index not in pending:
                continue  # a duplicate (retained message delivered twice), already handled
            if part.put(index, payload):
                del pending[index]
                link.unsubscribe(topic)
                last_progress = now
                progress(part.bytes_done, art.size)
                crashpoint(f"chunk-{index}")
            else:
                bad[index] = bad.get(index, 0) + 1
                log.warning("chunk %d of %s does not match its hash (%d times)", index, art.sha256[:12], bad[index])
                if bad[index] >= MAX_BAD_CHUNKS:
                    for i in pending:
                        link.unsubscribe(f"{prefix}{i}")
                    raise Rejected(f"corrupt: chunk {index} failed its SHA-256 {bad[index]} times")
                link.unsubscribe(topic)
                ask(index)  # the broker may hold a good copy by now
        for i, asked in list(pending.items()):
            if now - asked > chunk_timeout_s:
                ask(i)
        if now - last_progress > stall_s:
            for i in pending:
                link.unsubscribe(f"{prefix}{i}")
            raise Rejected(f"transfer: no chunk arrived for {stall_s:.0f} s")


def fetch_https(part: PartFile, *, ca_file: Path | None, stall_s: float, jitter_s: float, progress: Progress, stop: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Fill ``part`` from ``artifact.url`` with Range requests from the first missing chunk on."""
    art = part.artifact
    assert art.url is not None
    ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    if jitter_s:
        time.sleep(random.uniform(0.0, jitter_s))
    last_progress = time.monotonic()
    backoff = 0.5
    bad = 0
    while part.missing:
        if stop():
            raise Rejected("transfer: the agent is stopping")
        first = part.missing[0]
        start = art.chunk_range(first)[0]
        request = urllib.request.Request(art.url, headers={"Range": f"bytes={start}-"})
        try:
            with urllib.request.urlopen(request, context=ctx, timeout=timeout_s) as response:
                if response.status == 200:
                    start, first = 0, 0  # the server ignored the Range: read from the beginning
                elif response.status != 206:
                    raise Rejected(f"transfer: HTTP {response.status} from the artifact URL")
                index = first
                while index < art.chunks:
                    lo, hi = art.chunk_range(index)
                    data = response.read(hi - lo)
                    if len(data) != hi - lo:
                        raise ConnectionError("short read")
                    if index not in part.have:
                        if not part.put(index, data):
                            bad += 1
                            if bad >= MAX_BAD_CHUNKS:
                                raise Rejected(f"corrupt: chunk {index} from the artifact URL failed its SHA-256")
                            break  # ask again from this chunk
                        progress(part.bytes_done, art.size)
                        crashpoint(f"chunk-{index}")
                    last_progress = time.monotonic()
                    backoff = 0.5
                    index += 1
        except Rejected:
            raise
        except urllib.error.HTTPError as exc:
            if 400 <= exc.code < 500 and exc.code not in (408, 429):
                raise Rejected(f"transfer: HTTP {exc.code} from the artifact URL") from None
            log.info("artifact fetch: HTTP %s, retrying", exc.code)
        except (OSError, ConnectionError, ssl.SSLError) as exc:
            log.info("artifact fetch cut (%s), resuming", exc)
        if part.missing:
            if time.monotonic() - last_progress > stall_s:
                raise Rejected(f"transfer: no progress from the artifact URL for {stall_s:.0f} s")
            time.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
