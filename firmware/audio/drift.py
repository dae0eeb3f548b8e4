"""Clock-drift compensation: a sample FIFO, a fractional resampler and the fill controller.

Each bridge direction pushes captured samples into a :class:`SampleFifo` at one USB clock and
pulls fixed periods out at another. :class:`FillController` turns the FIFO's smoothed fill
error into a resampling ratio a few hundred ppm from 1, and :class:`FractionalResampler`
(polyphase windowed sinc) produces exactly one output period while consuming ``ratio``
times as many input samples. All buffers are allocated once; the per-period work is a few
numpy calls on ~100 x 16 arrays.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]

HALF_TAPS = 8
TAPS = 2 * HALF_TAPS
PHASES = 512


class SampleFifo:
    """A float32 FIFO that keeps ``HALF_TAPS`` consumed samples of history for the resampler."""

    def __init__(self, capacity: int) -> None:
        self._data = np.zeros(capacity + 2 * HALF_TAPS, dtype=np.float32)
        self._read = HALF_TAPS  # index of the oldest unconsumed sample
        self._write = HALF_TAPS
        self.overflow_frames = 0

    @property
    def fill(self) -> int:
        return self._write - self._read

    @property
    def capacity(self) -> int:
        return len(self._data) - 2 * HALF_TAPS

    def push(self, samples: F32) -> None:
        n = len(samples)
        if self._write + n > len(self._data):
            self._compact()
        room = len(self._data) - self._write
        if n > room:  # the consumer has stopped: keep the newest audio, count what was lost
            drop = n - room
            self.overflow_frames += drop
            self.discard(min(drop, self.fill))
            self._compact()
            samples = samples[len(samples) - (len(self._data) - self._write) :]
            n = len(samples)
        self._data[self._write : self._write + n] = samples
        self._write += n

    def discard(self, n: int) -> None:
        self._read += min(n, self.fill)

    def clear(self) -> None:
        self._data[:] = 0.0
        self._read = self._write = HALF_TAPS

    def window(self) -> tuple[F32, int]:
        """The backing array and the read index (history lies just before it)."""
        return self._data, self._read

    def _compact(self) -> None:
        start = self._read - HALF_TAPS
        if start <= 0:
            return
        live = self._write - start
        self._data[:live] = self._data[start : self._write]
        self._read -= start
        self._write -= start


def _sinc_table() -> F32:
    # Row p holds the TAPS weights for input samples (i - HALF_TAPS + 1 .. i + HALF_TAPS) at
    # fractional position i + p / PHASES. Row 0 is an exact unit impulse, so a ratio of 1 with
    # no accumulated phase copies samples bit for bit.
    offsets = np.arange(-HALF_TAPS + 1, HALF_TAPS + 1, dtype=np.float64)
    table = np.zeros((PHASES + 1, TAPS), dtype=np.float64)
    window_span = HALF_TAPS + 1.0
    for p in range(PHASES + 1):
        x = offsets - p / PHASES
        w = np.sinc(x) * np.cos(np.pi * x / (2 * window_span)) ** 2  # cosine-squared window
        table[p] = w / w.sum()
    table[0] = 0.0
    table[0][HALF_TAPS - 1] = 1.0
    table[PHASES] = 0.0
    table[PHASES][HALF_TAPS] = 1.0
    return table.astype(np.float32)


class FractionalResampler:
    """Produces ``period`` output samples per call from a FIFO, consuming ``ratio`` x as many."""

    delay_frames = HALF_TAPS  # look-ahead the interpolator needs beyond the output position

    def __init__(self, period: int) -> None:
        self.period = period
        self._table = _sinc_table()
        self._phase = 0.0  # fractional input position of the next output sample
        self._steps = np.arange(period, dtype=np.float64)
        self._pos = np.empty(period, dtype=np.float64)
        self._whole = np.empty(period, dtype=np.int64)
        self._row = np.empty(period, dtype=np.int64)
        self._gather = np.empty((period, TAPS), dtype=np.int64)
        self._offsets = np.arange(-HALF_TAPS + 1, HALF_TAPS + 1, dtype=np.int64)
        self._taps = np.empty((period, TAPS), dtype=np.float32)
        self._weights = np.empty((period, TAPS), dtype=np.float32)

    def needed(self, ratio: float) -> int:
        """Input samples that must be in the FIFO for one pull at ``ratio``."""
        last = self._phase + (self.period - 1) * ratio
        return int(math.floor(last)) + HALF_TAPS + 1

    def pull(self, fifo: SampleFifo, ratio: float, out: F32) -> bool:
        """Fill ``out`` (length ``period``); False (and silence) when the FIFO runs short."""
        if fifo.fill < self.needed(ratio):
            out[:] = 0.0
            return False
        data, start = fifo.window()
        if ratio == 1.0 and self._phase == 0.0:
            out[:] = data[start : start + self.period]
            fifo.discard(self.period)
            return True
        np.multiply(self._steps, ratio, out=self._pos)
        self._pos += self._phase
        np.floor(self._pos, out=self._pos)
        self._whole[:] = self._pos
        # position -> (whole sample, phase row); recomputed exactly rather than incrementally
        np.multiply(self._steps, ratio, out=self._pos)
        self._pos += self._phase
        self._pos -= self._whole
        self._pos *= PHASES
        np.rint(self._pos, out=self._pos)
        self._row[:] = self._pos
        np.add(self._whole[:, None], self._offsets[None, :], out=self._gather)
        self._gather += start
        np.take(data, self._gather, out=self._taps)
        np.take(self._table, self._row, axis=0, out=self._weights)
        np.multiply(self._taps, self._weights, out=self._taps)
        np.sum(self._taps, axis=1, out=out)
        advance = self._phase + self.period * ratio
        consumed = int(math.floor(advance))
        self._phase = advance - consumed
        fifo.discard(consumed)
        return True

    def reset(self) -> None:
        self._phase = 0.0


class FillController:
    """PI control of a FIFO's fill level with a dead band, giving a resampling ratio.

    A ratio above 1 consumes input faster (the FIFO is too full: the source clock is fast).
    Inside the dead band the integral holds, so once it has learnt the drift it keeps the
    ratio steady; with equal clocks it never leaves 1.0 exactly.
    """

    def __init__(
        self,
        target_frames: float,
        *,
        kp_ppm_per_frame: float,
        ki_ppm_per_frame_s: float,
        deadband_frames: float,
        smoothing_s: float,
        max_correction_ppm: float,
    ) -> None:
        self.target = float(target_frames)
        self.kp = kp_ppm_per_frame
        self.ki = ki_ppm_per_frame_s
        self.deadband = deadband_frames
        self.smoothing_s = smoothing_s
        self.max_ppm = max_correction_ppm
        self.smoothed = float(target_frames)
        self.integral_ppm = 0.0
        self.correction_ppm = 0.0
        self.ratio = 1.0

    def update(self, fill_frames: float, dt_s: float) -> float:
        alpha = min(1.0, dt_s / self.smoothing_s)
        self.smoothed += alpha * (fill_frames - self.smoothed)
        error = self.smoothed - self.target
        if abs(error) <= self.deadband:
            error = 0.0
        else:
            error -= math.copysign(self.deadband, error)
        self.integral_ppm += self.ki * error * dt_s
        self.integral_ppm = max(-self.max_ppm, min(self.max_ppm, self.integral_ppm))
        ppm = self.kp * error + self.integral_ppm
        self.correction_ppm = max(-self.max_ppm, min(self.max_ppm, ppm))
        self.ratio = 1.0 + self.correction_ppm * 1e-6
        return self.ratio

    def hold(self) -> None:
        """Forget the short-term error (after a gap) but keep the learnt drift."""
        self.smoothed = self.target
