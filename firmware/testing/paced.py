"""Clocked PCMs for unpaced plugins and for simulated time.

ALSA's ``file`` and ``null`` plugins move data as fast as they are called; a real USB device
moves it at its own clock. :class:`ClockedPcm` gives a PCM that clock: a capture yields a
period only once the clock has produced it (and overruns if it is not read in time); a
playback accepts a period only when its buffer has room (and underruns if it drains dry).
It wraps a real :class:`~firmware.audio.pcm.AlsaPcm` on file/null PCMs (the tests' real-ALSA
harness) or, with no inner device, generates and swallows audio itself (hour-long drift
simulation on :class:`SimClock`). ``ppm`` offsets the clock to model drift. The tests and
``tools/bench_bridge.py`` use it; the device never does.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from firmware.audio.pcm import XRUN, Direction, PcmDevice, PlaybackData, SampleBuffer
from firmware.errors import AudioDeviceError


_cpu_ns = time.perf_counter_ns


class SimClock:
    """Simulated time: sleeping advances it instantly."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.t += seconds


class RealClock:
    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


ClockLike = SimClock | RealClock


class ClockedPcm:
    def __init__(
        self,
        name: str,
        direction: Direction,
        clock: ClockLike,
        *,
        rate_hz: int,
        period_frames: int,
        periods: int,
        channels: int = 1,
        ppm: float = 0.0,
        inner: PcmDevice | None = None,
        source: Callable[[SampleBuffer, int], None] | None = None,
        sink: Callable[[SampleBuffer], None] | None = None,
    ) -> None:
        self.name = name
        self.direction = direction
        self.clock = clock
        self.rate_hz = rate_hz * (1.0 + ppm * 1e-6)
        self.period_frames = period_frames
        self.periods = periods
        self.channels = channels
        self.inner = inner
        self.source = source
        self.sink = sink
        self.xruns = 0
        self.harness_ns = 0
        self._inner_ns = 0
        self._scratch = np.zeros(period_frames * channels, dtype=np.float32)
        self.unplugged = False
        self._open = False
        self._t0 = 0.0
        self._periods_done = 0
        self._frames_written = 0

    @property
    def is_open(self) -> bool:
        return self._open

    def open(self) -> None:
        if self._open:
            return
        if self.unplugged:
            raise AudioDeviceError(f"cannot open {self.direction} PCM {self.name!r}: No such device")
        if self.inner is not None:
            self.inner.open()
        self._open = True
        self._t0 = self.clock.now()
        self._periods_done = 0
        self._frames_written = 0

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()
        self._open = False

    def unplug(self) -> None:
        """Model a USB device vanishing: every call fails until :meth:`replug`."""
        self.unplugged = True

    def replug(self) -> None:
        self.unplugged = False

    def _elapsed_frames(self) -> float:
        return (self.clock.now() - self._t0) * self.rate_hz

    def _check(self) -> None:
        if not self._open:
            raise AudioDeviceError(f"PCM {self.name!r} is not open")
        if self.unplugged:
            raise AudioDeviceError(f"{self.direction} PCM {self.name!r} failed: No such device")

    # Each public call is timed, less the time spent in the inner (real ALSA) device and in
    # sleeping, into ``harness_ns``: what this simulated clock costs the calling thread, so a
    # benchmark can report the bridge's own CPU apart from its test harness. The clock is the
    # cheap wall clock (vDSO): a thread CPU clock is a system call, whose own cost would land
    # on the bridge. Wall time equals CPU time here only while the caller is not preempted,
    # which holds for a SCHED_FIFO audio thread, not for an ordinary one on a busy machine.

    def read(self, out: SampleBuffer) -> int:
        start = _cpu_ns()
        self._inner_ns = 0
        try:
            return self._read(out, None)
        finally:
            self.harness_ns += _cpu_ns() - start - self._inner_ns

    def read_into(self, out: memoryview) -> int:
        start = _cpu_ns()
        self._inner_ns = 0
        try:
            return self._read(self._scratch, out)
        finally:
            self.harness_ns += _cpu_ns() - start - self._inner_ns

    def _read(self, out: SampleBuffer, out_bytes: memoryview | None) -> int:
        self._check()
        ready = int(self._elapsed_frames() // self.period_frames) - self._periods_done
        if ready <= 0:
            return 0
        if ready > self.periods:  # not read in time: the buffer overran, as ALSA would say
            self._periods_done += ready
            self.xruns += 1
            return XRUN
        if self.inner is not None:
            t = _cpu_ns()
            frames = self.inner.read(out) if out_bytes is None else self.inner.read_into(out_bytes)
            self._inner_ns += _cpu_ns() - t
            if frames <= 0:
                return frames
        else:
            if self.source is not None:
                self.source(out, self._periods_done)
            else:
                out[:] = 0
            frames = self.period_frames
            if out_bytes is not None:
                out_bytes[: out.nbytes] = memoryview(out).cast("B")
        self._periods_done += 1
        return frames

    def write(self, data: PlaybackData) -> int:
        start = _cpu_ns()
        self._inner_ns = 0
        try:
            return self._write(data)
        finally:
            self.harness_ns += _cpu_ns() - start - self._inner_ns

    def _write(self, data: PlaybackData) -> int:
        self._check()
        drained = self._elapsed_frames()
        queued = self._frames_written - drained
        if queued < 0 and self._frames_written > 0:
            # ran dry: ALSA reports -EPIPE and re-prepares; the stream restarts from now
            self.xruns += 1
            self._t0 = self.clock.now()
            self._frames_written = 0
            return XRUN
        if self._frames_written == 0:
            self._t0 = self.clock.now()  # a playback starts when first fed
            queued = 0.0
        frames = len(data) // self.channels  # any length, as snd_pcm_writei takes
        if queued + frames > self.period_frames * self.periods:
            return 0
        if self.inner is not None:
            t = _cpu_ns()
            frames = self.inner.write(data)
            self._inner_ns += _cpu_ns() - t
            if frames <= 0:
                return frames
        elif self.sink is not None:
            self.sink(np.asarray(data))  # an array view of a memoryview too
        self._frames_written += frames
        return frames

    def wait(self, timeout_s: float) -> bool:
        start = _cpu_ns()
        self._check()
        next_frames = (self._periods_done + 1) * self.period_frames
        due = self._t0 + next_frames / self.rate_hz
        now = self.clock.now()
        self.harness_ns += _cpu_ns() - start
        if due <= now:
            return True
        if due - now > timeout_s:
            self.clock.sleep(timeout_s)
            return False
        self.clock.sleep(due - now + 1e-9)
        return True

    def queued_frames(self) -> float:
        """Playback: frames written, not yet played. Capture: frames captured, not yet read."""
        start = _cpu_ns()
        self._check()
        if self.direction == "capture":
            queued = max(0.0, self._elapsed_frames() - self._periods_done * self.period_frames)
        else:
            queued = max(0.0, self._frames_written - self._elapsed_frames())
        self.harness_ns += _cpu_ns() - start
        return queued


def tone(frequency_hz: float, rate_hz: int, period_frames: int, amplitude: float = 0.3) -> Callable[[SampleBuffer, int], None]:
    """A capture source: a sine whose phase continues across periods, on the S16 grid."""
    step = 2 * math.pi * frequency_hz / rate_hz
    scratch = np.arange(period_frames, dtype=np.float64)

    def fill(out: npt.NDArray[np.float32], period_index: int) -> None:
        phase = (period_index * period_frames + scratch) * step
        out[:period_frames] = np.round(np.sin(phase) * amplitude * 32767) / 32768

    return fill
