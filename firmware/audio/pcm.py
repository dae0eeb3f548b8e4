"""The ALSA boundary: a small PcmDevice protocol and its pyalsaaudio implementation.

The bridge only ever sees :class:`PcmDevice`. Every method either does its job, returns a
count (0 = would block, :data:`XRUN` = an xrun that was recovered) or raises
:class:`~firmware.errors.AudioDeviceError` when the device is unusable (unplugged, missing);
the bridge then closes it and reopens it with backoff. All devices are opened non-blocking:
one thread serves four PCMs on two clocks and never waits on any of them.

Samples are float32 in [-1, 1) (``FLOAT_LE``): the ``plug`` PCMs of ``board/asound.conf``
convert to and from the cards' S16 in libasound's C code (exactly for S16 values, and
saturating on the way out), so the bridge's Python spends no numpy call per cycle on
scaling, saturating or converting samples.
"""

from __future__ import annotations

import errno
import select
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from firmware.errors import AudioDeviceError

Direction = Literal["capture", "playback"]
SampleBuffer = npt.NDArray[np.float32]  # float32 in [-1, 1), channels interleaved
# what a playback takes: such an array, or a float32 ("f") memoryview of one (no numpy call)
PlaybackData = SampleBuffer | memoryview
SAMPLE_BYTES = 4

XRUN = -1


class PcmDevice(Protocol):
    """One PCM stream, mono or interleaved float32 at a fixed rate and period."""

    name: str
    direction: Direction
    period_frames: int

    def open(self) -> None: ...

    def close(self) -> None: ...

    @property
    def is_open(self) -> bool: ...

    def read(self, out: SampleBuffer) -> int:
        """Copy one period into ``out``; return frames, 0 when none is ready, XRUN after an overrun."""
        ...

    def read_into(self, out: memoryview) -> int:
        """Like :meth:`read` into the start of a writable byte view (no numpy call per period)."""
        ...

    def write(self, data: PlaybackData) -> int:
        """Queue ``data`` (any whole number of frames); return frames, 0 when the buffer is full, XRUN after an underrun."""
        ...

    def wait(self, timeout_s: float) -> bool:
        """Block until a capture period is ready (True) or the timeout passes (False)."""
        ...

    def queued_frames(self) -> float:
        """Playback: frames written and not yet played. Capture: frames captured, not yet read."""
        ...


class AlsaPcm:
    """A :class:`PcmDevice` on pyalsaaudio, opened lazily (``import alsaaudio`` happens on open)."""

    def __init__(
        self,
        name: str,
        direction: Direction,
        *,
        rate_hz: int,
        channels: int,
        period_frames: int,
        periods: int,
    ) -> None:
        self.name = name
        self.direction = direction
        self.rate_hz = rate_hz
        self.channels = channels
        self.period_frames = period_frames
        self.periods = periods
        self._pcm: Any = None
        self._poll: select.poll | None = None

    @property
    def is_open(self) -> bool:
        return self._pcm is not None

    def open(self) -> None:
        if self._pcm is not None:
            return
        import alsaaudio

        kind = alsaaudio.PCM_CAPTURE if self.direction == "capture" else alsaaudio.PCM_PLAYBACK
        try:
            pcm = alsaaudio.PCM(
                kind,
                alsaaudio.PCM_NONBLOCK,
                device=self.name,
                channels=self.channels,
                rate=self.rate_hz,
                format=alsaaudio.PCM_FORMAT_FLOAT_LE,
                periodsize=self.period_frames,
                periods=self.periods,
            )
        except alsaaudio.ALSAAudioError as exc:
            raise AudioDeviceError(f"cannot open {self.direction} PCM {self.name!r}: {exc}") from None
        info = pcm.info()
        got = (info.get("rate"), info.get("channels"), info.get("period_size"))
        if got != (self.rate_hz, self.channels, self.period_frames):
            pcm.close()
            hint = (
                f"set bridge.period_frames = {got[2]}"
                if got[:2] == (self.rate_hz, self.channels)
                else "define it as a plug PCM (board/asound.conf) so ALSA converts"
            )
            raise AudioDeviceError(
                f"PCM {self.name!r} offers rate/channels/period {got}, not "
                f"{(self.rate_hz, self.channels, self.period_frames)}: {hint}"
            )
        poll = select.poll()
        for fd, mask in pcm.polldescriptors():
            poll.register(fd, mask)
        self._pcm, self._poll = pcm, poll

    def close(self) -> None:
        pcm, self._pcm, self._poll = self._pcm, None, None
        if pcm is not None:
            try:
                pcm.close()
            except Exception:  # a vanished device may fail to close; it is gone either way
                pass

    def read(self, out: SampleBuffer) -> int:
        return self.read_into(memoryview(out).cast("B"))

    def read_into(self, out: memoryview) -> int:
        # the one capture path (``read`` comes here too); the bridge calls it for every period
        pcm = self._pcm
        if pcm is None:
            raise AudioDeviceError(f"PCM {self.name!r} is not open")
        try:
            frames, data = pcm.read()
        except Exception as exc:
            raise AudioDeviceError(f"capture PCM {self.name!r} failed: {exc}") from None
        if frames > 0:
            out[: len(data)] = data
            return frames
        if frames == -errno.EPIPE:
            return XRUN  # pyalsaaudio has already re-prepared the stream
        if frames < 0 and frames != -errno.EAGAIN:
            raise AudioDeviceError(f"capture PCM {self.name!r} failed: {errno.errorcode.get(-frames, frames)}")
        return 0

    def write(self, data: PlaybackData) -> int:
        pcm = self._pcm
        if pcm is None:
            raise AudioDeviceError(f"PCM {self.name!r} is not open")
        try:
            frames: int = pcm.write(data)  # any buffer: no bytes copy
        except Exception as exc:
            raise AudioDeviceError(f"playback PCM {self.name!r} failed: {exc}") from None
        if frames >= 0:
            return frames
        if frames == -errno.EPIPE:
            return XRUN
        if frames != -errno.EAGAIN:
            raise AudioDeviceError(f"playback PCM {self.name!r} failed: {errno.errorcode.get(-frames, frames)}")
        return 0

    def wait(self, timeout_s: float) -> bool:
        self._require()
        assert self._poll is not None
        try:
            return bool(self._poll.poll(max(0, int(timeout_s * 1000))))
        except InterruptedError:
            return False

    def queued_frames(self) -> float:
        pcm = self._pcm
        if pcm is None:
            raise AudioDeviceError(f"PCM {self.name!r} is not open")
        try:
            avail = pcm.avail()
        except Exception as exc:
            raise AudioDeviceError(f"playback PCM {self.name!r} failed: {exc}") from None
        if self.direction == "capture":
            # after an overrun avail is an error code: claim a period so that the next read
            # runs, reports the xrun and recovers the stream
            return float(avail) if avail >= 0 else float(self.period_frames)
        if avail < 0:
            return 0.0  # underrun pending: the next write reports and recovers it
        return float(max(0, self.period_frames * self.periods - avail))

    def _require(self) -> Any:
        if self._pcm is None:
            raise AudioDeviceError(f"PCM {self.name!r} is not open")
        return self._pcm
