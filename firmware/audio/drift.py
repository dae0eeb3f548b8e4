"""Clock-drift compensation: a sample FIFO, a fractional resampler and the fill controller.

Each bridge direction pushes captured samples into a :class:`SampleFifo` at one USB clock and
pulls what the playback needs out at another. :class:`FillController` turns the FIFO's smoothed fill
error into a resampling ratio a few hundred ppm from 1, and :class:`SlipResampler` produces the
samples the playback needs while consuming ``ratio`` times as many input samples on average:
it copies, and slips one whole sample through :class:`FractionalResampler` (polyphase windowed
sinc) whenever the ratio has asked for half a sample. All buffers are allocated once; a copy
is a view of the FIFO handed to the device (no numpy call), a slipping pull two numpy calls
on ~200 x 18 arrays.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from firmware.audio.config import SLIP_FRAMES, SLIP_PPM

F32 = npt.NDArray[np.float32]

try:  # einsum's C entry point: np.einsum adds a Python wrapper and a dispatch to every call
    from numpy._core.multiarray import c_einsum  # numpy >= 2
except ImportError:
    try:
        from numpy.core.multiarray import c_einsum  # numpy 1.x
    except ImportError:
        c_einsum = np.einsum

HALF_TAPS = 8
# Offsets -HALF_TAPS .. HALF_TAPS+1 around the output position's whole sample: one more than
# symmetric, so positions drifting up to half a sample either side of a period's starting
# phase need no re-gathering mid-period.
TAPS = 2 * HALF_TAPS + 2
PHASES = 512  # table rows per input sample
TABLE_SPAN = 2  # the table covers fractional positions -0.5 .. 1.5
MAX_DEBT = 2.0  # samples a slipping resampler may owe when asked beyond SLIP_PPM


class SampleFifo:
    """A float32 FIFO that keeps ``HALF_TAPS`` consumed samples of history for the resampler."""

    def __init__(self, capacity: int) -> None:
        self._data = np.zeros(capacity + 2 * HALF_TAPS, dtype=np.float32)
        self._bytes = memoryview(self._data).cast("B")  # the same storage, for reads straight in
        self._floats = memoryview(self._data)  # and as float32 items, for writes straight out
        self.end = len(self._data)  # samples the storage holds (the bridge's read path checks room inline)
        self._read = HALF_TAPS  # index of the oldest unconsumed sample
        self._write = HALF_TAPS
        self.overflow_frames = 0

    @property
    def fill(self) -> int:
        return self._write - self._read

    @property
    def capacity(self) -> int:
        return len(self._data) - 2 * HALF_TAPS

    def push(self, samples: npt.NDArray[np.float32] | npt.NDArray[np.int16]) -> F32:
        """Append ``samples`` (cast to float32); return a view of them as stored."""
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
        stored = self._data[self._write : self._write + n]
        stored[:] = samples
        self._write += n
        return stored

    def space(self, n: int) -> memoryview:
        """The bytes where the next ``n`` samples go, for a device to read into; then
        :meth:`commit` what it wrote. Samples are float32."""
        if self._write + n > len(self._data):
            self._compact()
            over = self._write + n - len(self._data)
            if over > 0:  # the consumer has stopped: make room, count what is lost
                self.overflow_frames += over
                self.discard(min(over, self.fill))
                self._compact()
        return self._bytes[4 * self._write :]

    def commit(self, n: int) -> F32:
        """Append the ``n`` samples just written into :meth:`space`; return a view of them."""
        stored = self._data[self._write : self._write + n]
        self._write += n
        return stored

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
    # Row r holds the TAPS weights for input samples (i - HALF_TAPS .. i + HALF_TAPS + 1) when
    # the output lies at i + r / PHASES - 0.5. The row for exactly i is a unit impulse, so a
    # ratio of 1 with no accumulated phase copies samples bit for bit.
    offsets = np.arange(-HALF_TAPS, HALF_TAPS + 2, dtype=np.float64)
    rows = PHASES * TABLE_SPAN + 1
    table = np.zeros((rows, TAPS), dtype=np.float64)
    half_width = HALF_TAPS + 0.5
    for r in range(rows):
        x = offsets - (r / PHASES - 0.5)
        w = np.sinc(x) * np.where(np.abs(x) < half_width, np.cos(np.pi * x / (2 * half_width)) ** 2, 0.0)
        table[r] = w / w.sum()
    exact = PHASES // 2
    table[exact] = 0.0
    table[exact][HALF_TAPS] = 1.0
    return table.astype(np.float32)


class FractionalResampler:
    """Produces any number of output samples per call from a FIFO, consuming ``ratio`` x as many.

    Output sample k of a pull lies at input position ``phase + k * ratio``. Within one chunk
    of ``chunk`` samples the drift moves that position less than half a sample from
    ``phase + k``, so each output is a TAPS-long dot product of a fixed sliding window with a
    per-sample table row: three numpy calls per chunk, and a bridge cycle is one chunk.
    """

    delay_frames = HALF_TAPS + 1  # look-ahead the interpolator needs beyond the output position
    max_ratio_offset = 0.4  # |ratio - 1| * chunk must stay below half a sample

    def __init__(self, chunk: int) -> None:
        self.chunk = chunk
        self.period = chunk  # the largest pull done in one piece
        self._table = _sinc_table()
        self._phase = 0.0  # fractional input position of the next output sample
        self._row_steps = np.arange(chunk, dtype=np.float64) * PHASES
        self._pos = np.zeros(chunk, dtype=np.float64)
        # Table rows sample k moves by during a chunk, rounded and made non-negative by
        # subtracting the lowest (``_steps_low``), for the ratio in ``_steps_ratio``; the
        # controller changes the ratio only outside its dead band, so mostly they are reused.
        self._steps = np.zeros(chunk, dtype=np.intp)
        self._steps_low = 0
        self._steps_ratio = 1.0
        self._weights = np.empty((chunk, TAPS), dtype=np.float32)
        # the table from each row on, made once: a list index instead of a numpy slice per pull
        self._table_from = [self._table[row:] for row in range(len(self._table))]
        self._views: dict[int, tuple[npt.NDArray[np.intp], F32]] = {}
        self._windows: npt.NDArray[np.float32] | None = None
        self._windows_of: F32 | None = None

    @staticmethod
    def chunk_for(max_correction_ppm: float, frames: int) -> int:
        """The largest piece (at most ``frames``) a correction of ``max_correction_ppm`` allows."""
        return max(1, min(frames, int(FractionalResampler.max_ratio_offset / (max_correction_ppm * 1e-6))))

    def take_copy(self, fifo: SampleFifo, ratio: float, n: int) -> memoryview | None:
        """The next ``n`` output samples as a float32 view of the FIFO (consumed), when they
        are a plain copy (ratio exactly 1, no phase); otherwise None: :meth:`pull` them. The
        view is valid until the FIFO is next written."""
        start = fifo._read
        # what pull() at ratio 1 needs: the look-ahead is held whatever the pull, so the
        # buffered total does not depend on how the samples leave
        if ratio != 1.0 or self._phase != 0.0 or fifo._write - start < n + HALF_TAPS + 1:
            return None
        fifo._read = start + n
        return fifo._floats[start : start + n]

    def needed(self, ratio: float, frames: int | None = None) -> int:
        """Input samples that must be in the FIFO for a pull of ``frames`` (default: one chunk) at ``ratio``."""
        n = self.chunk if frames is None else frames
        return int(math.floor(self._phase + (n - 1) * ratio + 0.5)) + HALF_TAPS + 2

    def pull(self, fifo: SampleFifo, ratio: float, out: F32) -> bool:
        """Fill ``out`` (any length); False (and silence) when the FIFO runs short.

        The bridge calls this twice per cycle on a machine whose caches are cold after every
        sleep, where each Python call and numpy call costs several microseconds: the FIFO's
        indices are used directly and a pull up to one chunk long runs inline.
        """
        n = len(out)
        start = fifo._read
        phase = self._phase
        # needed(): the input position of the last output plus the look-ahead (int() is
        # floor here: the position is positive)
        if fifo._write - start < int(phase + (n - 1) * ratio + 0.5) + HALF_TAPS + 2:
            out[:] = 0.0
            return False
        if ratio == 1.0 and phase == 0.0:  # before the row steps: a copy needs none
            out[:] = fifo._data[start : start + n]
            fifo._read = start + n
            return True
        if ratio != self._steps_ratio:
            self._set_ratio(ratio)
        if n > self.chunk:  # chunk by chunk; the whole is there, so each piece succeeds
            for done in range(0, n, self.chunk):
                self.pull(fifo, ratio, out[done : done + self.chunk])
            return True
        data = fifo._data
        if self._windows_of is not data:
            self._windows = np.lib.stride_tricks.sliding_window_view(data, TAPS)
            self._windows_of = data
        assert self._windows is not None
        views = self._views.get(n)
        if views is None:  # one pair per pull length, made once: no numpy slicing per pull
            views = self._views[n] = (self._steps[:n], self._weights[:n])
        steps, weights = views
        # row of sample k = round((phase + 0.5) * PHASES) + round(k (ratio - 1) * PHASES): at
        # most one row (1/512 sample) from rounding the sum, and no ufunc call per chunk.
        # The first term lies in 256..768 and |low| <= 0.4 * PHASES, so the slice starts
        # inside the table; "clip" guards its last row against the two roundings.
        self._table_from[int((phase + 0.5) * PHASES + 0.5) + self._steps_low].take(steps, axis=0, out=weights, mode="clip")
        c_einsum("ij,ij->i", self._windows[start - HALF_TAPS : start - HALF_TAPS + n], weights, out=out)
        advance = phase + n * ratio
        consumed = int(advance)
        self._phase = advance - consumed
        fifo._read = start + consumed
        return True

    def _set_ratio(self, ratio: float) -> None:
        """Row steps for a new ratio (the controller changes it at most every few cycles)."""
        # (with a hair of tolerance: the controller's clamped ratio 1 + max ppm * 1e-6 times
        # chunk_for()'s chunk is the limit itself, give or take a rounding)
        if abs(ratio - 1.0) * self.chunk > self.max_ratio_offset * (1.0 + 1e-9):
            raise ValueError(f"ratio {ratio} is too far from 1 for {self.chunk}-frame chunks")
        np.multiply(self._row_steps, ratio - 1.0, out=self._pos)
        np.rint(self._pos, out=self._pos)
        low = int(self._pos[-1]) if ratio < 1.0 else 0
        np.subtract(self._pos, low, out=self._steps, casting="unsafe")
        self._steps_low = low
        self._steps_ratio = ratio

    def reset(self) -> None:
        self._phase = 0.0


class SlipResampler:
    """Drift correction as whole-sample slips: between slips the FIFO is copied bit for bit.

    The controller asks for a ratio a few hundred ppm from 1. Rather than resample every
    sample at that ratio, this keeps count of the input the ratio has asked for beyond what
    was consumed; when that reaches half a sample, the next ``SLIP_FRAMES`` output frames are
    resampled at ``1 +- 1/SLIP_FRAMES``, which consumes exactly one sample more (or less) and
    ends with the interpolation phase back at exactly 0 (the offset is a power of two, so the
    phase sums are exact). A slip is a pitch offset of 3.4 cents for 10.7 ms through the same
    windowed sinc, not a dropped or repeated sample. At 300 ppm of drift about one output
    frame in seven is resampled and the rest are copies, which is where the audio thread's
    time went; between slips the call passes through sample-exact. What it costs in fidelity
    (a phase wobble of up to one sample at the slip rate) is set out at
    ``BridgeConfig.drift_correction``.
    """

    def __init__(self, max_pull_frames: int) -> None:
        self._resampler = FractionalResampler(FractionalResampler.chunk_for(SLIP_PPM, max_pull_frames))
        self._debt = 0.0  # input samples the ratio asked for beyond those consumed
        self._slip_left = 0  # output frames left in the slip under way
        self._slip_ratio = 1.0
        self.slips = 0

    @property
    def slipping(self) -> bool:
        return self._slip_left > 0

    def pull(self, fifo: SampleFifo, ratio: float, out: F32) -> bool:
        """Fill ``out`` consuming ``ratio`` x as many input samples on average; False (and
        silence) when the FIFO runs short."""
        n = len(out)
        debt = self._debt + (ratio - 1.0) * n
        # a ratio beyond the slip rate cannot be followed: owe at most two samples
        debt = MAX_DEBT if debt > MAX_DEBT else -MAX_DEBT if debt < -MAX_DEBT else debt
        done = 0
        while done < n:
            if not self._slip_left:
                if -0.5 < debt < 0.5:
                    if not self._resampler.pull(fifo, 1.0, out[done:]):
                        self._debt = debt
                        return False
                    break
                step = 1.0 if debt > 0 else -1.0
                debt -= step
                self._slip_left = SLIP_FRAMES
                self._slip_ratio = 1.0 + step / SLIP_FRAMES
                self.slips += 1
            k = min(n - done, self._slip_left)
            if not self._resampler.pull(fifo, self._slip_ratio, out[done : done + k]):
                self._debt = debt
                return False
            self._slip_left -= k
            done += k
        self._debt = debt
        return True

    def take_copy(self, fifo: SampleFifo, ratio: float, n: int) -> memoryview | None:
        """The next ``n`` output samples as a float32 view of the FIFO (consumed), when they
        are a plain copy, as most are; None when they slip or the FIFO runs short: then
        :meth:`pull` them."""
        if self._slip_left:
            return None
        debt = self._debt + (ratio - 1.0) * n
        if not -0.5 < debt < 0.5:
            return None
        view = self._resampler.take_copy(fifo, 1.0, n)
        if view is not None:
            self._debt = debt
        return view

    def needed(self, ratio: float, frames: int) -> int:
        """Input samples a pull of ``frames`` may need (the most a slip adds)."""
        return self._resampler.needed(1.0 + 1.0 / SLIP_FRAMES, frames)


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
        ratio_every: int = 1,
    ) -> None:
        self.target = float(target_frames)
        # The fill is smoothed at every update, the ratio recomputed at every ``ratio_every``-th:
        # a new ratio costs the resampler a few numpy calls (new row steps), and a drift
        # of hundreds of ppm needs no correction faster than every few tens of ms.
        self.ratio_every = ratio_every
        self._ticks = 0
        self._pending_dt = 0.0
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
        alpha = dt_s / self.smoothing_s  # plain comparisons, not min(): this runs twice per cycle
        if alpha > 1.0:
            alpha = 1.0
        self.smoothed += alpha * (fill_frames - self.smoothed)
        ticks = self._ticks + 1
        if ticks < self.ratio_every:
            self._ticks = ticks
            self._pending_dt += dt_s
            return self.ratio
        dt_s += self._pending_dt
        self._ticks, self._pending_dt = 0, 0.0
        error = self.smoothed - self.target
        if abs(error) <= self.deadband:
            error = 0.0
        else:
            error -= math.copysign(self.deadband, error)
        # plain comparisons rather than min/max: this runs twice per cycle
        integral = self.integral_ppm + self.ki * error * dt_s
        limit = self.max_ppm
        integral = limit if integral > limit else -limit if integral < -limit else integral
        self.integral_ppm = integral
        ppm = self.kp * error + integral
        self.correction_ppm = limit if ppm > limit else -limit if ppm < -limit else ppm
        self.ratio = 1.0 + self.correction_ppm * 1e-6
        return self.ratio

    def hold(self) -> None:
        """Forget the short-term error (after a gap) but keep the learnt drift."""
        self.smoothed = self.target
