"""One direction of the bridge: capture -> FIFO -> drift resampler -> playback.

A :class:`Leg` owns its two device slots, its FIFO, resampler and fill controller, and the
preallocated buffers of one period. The bridge's loop calls :meth:`Leg.drain` (read every
captured period that is ready) and :meth:`Leg.serve` (give the playback every period it has
room for) once per cycle; both do bounded work and never block.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from firmware.audio.config import BridgeConfig
from firmware.audio.drift import FillController, FractionalResampler, SampleFifo
from firmware.audio.pcm import XRUN, PcmDevice
from firmware.errors import AudioDeviceError

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]

MAX_PERIODS_PER_CYCLE = 8  # bounds one cycle's work after a late wake-up
# Samples stay in int16 units from capture to playback (so a plain copy is exact and no
# scaling is spent per period); the taps and the speech threshold apply 1/32768 themselves.
INT16_MAX = np.float32(32767.0)
INT16_MIN = np.float32(-32768.0)
_clip = np.core.umath.clip  # the ufunc itself: np.clip's Python wrapper costs more than the work


class DeviceSlot:
    """A PcmDevice that may vanish: closed on failure, reopened later with exponential backoff."""

    def __init__(self, device: PcmDevice, *, initial_backoff_s: float, max_backoff_s: float) -> None:
        self.device = device
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self._backoff_s = initial_backoff_s
        self._retry_at = 0.0
        self.opens = 0
        self.failures = 0
        self.xruns = 0
        self.last_error = ""
        self._outage_reported = False

    @property
    def ok(self) -> bool:
        return self.device.is_open

    def try_open(self, now: float) -> bool:
        if self.device.is_open:
            return True
        if now < self._retry_at:
            return False
        try:
            self.device.open()
        except AudioDeviceError as exc:
            if not self._outage_reported:  # once per outage, not once per retry
                log.warning("%s (retrying, at most every %.1f s)", exc, self.max_backoff_s)
                self._outage_reported = True
            self._schedule_retry(now, str(exc))
            return False
        self.opens += 1
        self._backoff_s = self.initial_backoff_s
        if self._outage_reported or self.opens > 1:
            log.warning("%s PCM %r is back", self.device.direction, self.device.name)
        self._outage_reported = False
        return True

    def lost(self, now: float, exc: AudioDeviceError) -> None:
        self.device.close()
        self.failures += 1
        log.warning("%s", exc)
        self._outage_reported = True  # this was the report; retries stay quiet
        self._backoff_s = self.initial_backoff_s
        self._schedule_retry(now, str(exc))

    def _schedule_retry(self, now: float, error: str) -> None:
        self.last_error = error
        self._retry_at = now + self._backoff_s
        self._backoff_s = min(self.max_backoff_s, self._backoff_s * 2)


class Leg:
    def __init__(
        self,
        name: str,
        capture: DeviceSlot,
        playback: DeviceSlot,
        config: BridgeConfig,
        on_captured: Callable[[F32], None] | None = None,
    ) -> None:
        self.name = name
        self.capture = capture
        self.playback = playback
        self.channels = config.channels
        self.period = config.period_frames
        self.margin = config.playback_margin_frames
        self.fifo = SampleFifo(config.period_frames * 32)
        self.resampler = FractionalResampler(config.period_frames)
        # The controller holds everything buffered in this direction: unread capture, FIFO and
        # queued playback. That total moves smoothly, whereas the FIFO alone jumps by a period
        # whenever the two clocks' period boundaries slip past each other.
        self.total_target = config.target_buffered_frames
        self.controller = FillController(
            self.total_target,
            kp_ppm_per_frame=config.fill_kp_ppm_per_frame,
            ki_ppm_per_frame_s=config.fill_ki_ppm_per_frame_s,
            deadband_frames=config.fill_deadband_frames,
            smoothing_s=config.fill_smoothing_s,
            max_correction_ppm=config.max_correction_ppm,
        )
        self._on_captured = on_captured
        n = config.period_frames * config.channels
        self._in_f32 = np.zeros(config.period_frames, dtype=np.float32)
        self._out_f32 = np.zeros(config.period_frames, dtype=np.float32)
        self._out_i16 = np.zeros(n, dtype=np.int16)
        self._pending = False
        self._primed = False
        self._resync = False
        self._play_queued = 0.0
        self._last_t: float | None = None
        self.frames_in = 0
        self.frames_out = 0
        self.silence_periods = 0  # periods played as silence because the FIFO ran dry
        self.underflows = 0  # dry FIFO while capture was running: an audible gap
        self.capture_xruns = 0
        self.playback_xruns = 0
        self.cycle_mean_square = 0.0
        self.resyncs = 0
        self.resync_frames = 2 * config.period_frames + config.fill_deadband_frames
        self.fill_min = 0
        self.fill_max = 0
        self.smoothed_min = 0.0
        self.smoothed_max = 0.0
        self.reset_fill_stats()

    def reset_fill_stats(self) -> None:
        self.fill_min, self.fill_max = 1 << 30, -(1 << 30)
        self.smoothed_min, self.smoothed_max = float("inf"), float("-inf")

    def drain(self, now: float) -> int:
        """Read every ready capture period into the FIFO; return frames read."""
        self.cycle_mean_square = 0.0
        if not self.capture.try_open(now):
            return 0
        total = 0
        device = self.capture.device
        try:
            captured = device.queued_frames()
            ready = int(captured) // self.period
        except AudioDeviceError as exc:
            self.capture.lost(now, exc)
            self._primed = False
            return 0
        for _ in range(min(ready, MAX_PERIODS_PER_CYCLE)):
            try:
                got = device.read_view()
            except AudioDeviceError as exc:
                self.capture.lost(now, exc)
                self._primed = False
                break
            if isinstance(got, int):
                if got == XRUN:
                    self.capture_xruns += 1
                    self.capture.xruns += 1
                    self._resync = True
                break
            frames = len(got) // self.channels
            block = self.fifo.push(got if self.channels == 1 else self._downmix(got, frames))
            ms = float(np.dot(block, block)) / frames
            if ms > self.cycle_mean_square:
                self.cycle_mean_square = ms
            if self._on_captured is not None:
                self._on_captured(block)
            total += frames
        self.frames_in += total
        if not self.playback.ok:
            # Nowhere to play: keep only what would be the target, so a returning device
            # starts with normal latency instead of a backlog.
            excess = self.fifo.fill - self.total_target
            if excess > 0:
                self.fifo.discard(excess)
        return total

    def _downmix(self, interleaved: npt.NDArray[np.int16], frames: int) -> F32:
        # the FIFO and everything after it is mono
        pairs = interleaved[: frames * 2].reshape(frames, 2)
        mono = self._in_f32[:frames]
        np.add(pairs[:, 0], pairs[:, 1], out=mono, dtype=np.float32)
        mono *= np.float32(0.5)
        return mono

    def serve(self, now: float) -> int:
        """Write as many periods as the playback takes; return periods written."""
        if not self.playback.try_open(now):
            self._pending = False
            return 0
        written = 0
        device = self.playback.device
        for _ in range(MAX_PERIODS_PER_CYCLE):
            try:
                queued = device.queued_frames()
            except AudioDeviceError as exc:
                self.playback.lost(now, exc)
                self._pending = False
                return written
            self._play_queued = queued
            if queued >= self.period + self.margin:
                break
            if not self._pending:
                self._produce()
            try:
                frames = device.write(self._out_i16)
            except AudioDeviceError as exc:
                self.playback.lost(now, exc)
                self._pending = False
                return written
            if frames == XRUN:
                # pyalsaaudio re-prepared the stream; the period is still pending and goes
                # out on the next try, so an underrun costs a click, never lost samples.
                self.playback_xruns += 1
                self.playback.xruns += 1
                self._resync = True
                continue
            if frames <= 0:
                break
            self._pending = False
            self._play_queued = queued + frames
            self.frames_out += frames
            written += 1
        self._regulate(now)
        return written

    def _produce(self) -> None:
        capture_running = self.capture.ok
        if not self._primed and capture_running:
            try:
                buffered = self._buffered()
            except AudioDeviceError:
                buffered = 0.0  # a device just went; drain or serve handles it next
            if buffered >= self.total_target:
                # Start (or restart after a gap) with exactly the target latency in place, so
                # with matched clocks the controller never leaves its dead band.
                self.fifo.discard(int(buffered - self.total_target))
                self._primed = True
                self.controller.hold()
        if self._primed and self.resampler.pull(self.fifo, self.controller.ratio, self._out_f32):
            pass
        else:
            self._out_f32[:] = 0.0
            self.silence_periods += 1
            if self._primed and capture_running:
                self.underflows += 1
            self._primed = False
        # one ufunc: saturate and convert. Exact for copied samples (they are whole numbers);
        # interpolated ones truncate toward zero, an error below 1 LSB.
        if self.channels == 1:
            _clip(self._out_f32, INT16_MIN, INT16_MAX, out=self._out_i16, casting="unsafe")
        else:
            _clip(self._out_f32[:, None], INT16_MIN, INT16_MAX, out=self._out_i16.reshape(-1, 2), casting="unsafe")
        self._pending = True

    def _buffered(self) -> float:
        return self.capture.device.queued_frames() + self.fifo.fill + self.playback.device.queued_frames()

    def _regulate(self, now: float) -> None:
        dt = 0.0 if self._last_t is None else now - self._last_t
        self._last_t = now
        if not (self._primed and self.capture.ok and self.playback.ok) or dt <= 0:
            return
        # The playback queue was just measured by serve; the unread capture is measured now,
        # right after it, so that a delay inside this cycle (between drain and serve) shifts
        # both alike and cannot fake a jump in the total.
        try:
            unread = self.capture.device.queued_frames()
        except AudioDeviceError:
            return  # the next drain notices and handles the lost device
        fill = unread + self.fifo.fill + self._play_queued
        excess = fill - self.total_target
        if self._resync or abs(excess) > self.resync_frames:
            # An xrun or a stall moved the buffer far more than drift ever could: put the
            # latency back at once (cut the backlog, or re-prime with silence) instead of
            # letting the controller wind up over seconds. The gap has already happened.
            self._resync = False
            self.resyncs += 1
            if excess > 0:
                self.fifo.discard(int(excess))
                self.controller.hold()
            else:
                self._primed = False
            return
        self.controller.update(fill, dt)
        if excess < self.fill_min:
            self.fill_min = excess
        if excess > self.fill_max:
            self.fill_max = excess
        smoothed = self.controller.smoothed - self.total_target
        if smoothed < self.smoothed_min:
            self.smoothed_min = smoothed
        if smoothed > self.smoothed_max:
            self.smoothed_max = smoothed

    def stats(self) -> dict[str, float | int]:
        return {
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "fifo_fill_frames": self.fifo.fill,
            "smoothed_total_error_frames": round(self.controller.smoothed - self.total_target, 1),
            "correction_ppm": round(self.controller.correction_ppm, 2),
            "silence_periods": self.silence_periods,
            "underflows": self.underflows,
            "capture_xruns": self.capture_xruns,
            "playback_xruns": self.playback_xruns,
            "capture_reopens": max(0, self.capture.opens - 1),
            "playback_reopens": max(0, self.playback.opens - 1),
            "fifo_overflow_frames": self.fifo.overflow_frames,
            "resyncs": self.resyncs,
        }
