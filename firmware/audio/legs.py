"""One direction of the bridge: capture -> FIFO -> drift resampler -> playback.

A :class:`Leg` owns its two device slots, its FIFO, resampler and fill controller, and the
preallocated buffers of one cycle. The bridge's loop calls :meth:`Leg.step` once per cycle:
measure the capture and the playback (back to back, so the buffered total is consistent),
regulate, read every whole captured period, and top the playback up to one cycle plus the
margin with a single pull and a single write. It does bounded work and never blocks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from firmware.audio.config import BridgeConfig
from firmware.audio.drift import FillController, FractionalResampler, SampleFifo, SlipResampler
from firmware.audio.pcm import SAMPLE_BYTES, XRUN, PcmDevice
from firmware.errors import AudioDeviceError

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]

MAX_READS_PER_CYCLE = 16  # bounds one cycle's work after a late wake-up
RATIO_EVERY_CYCLES = 8  # the drift ratio changes at most every 8 cycles (32 ms)


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
        # whether the device is open, kept here (a plain attribute, read every cycle) by the
        # slot, which alone opens and closes it
        self.ok = False

    def try_open(self, now: float) -> bool:
        if self.ok:
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
        self.ok = True
        self.opens += 1
        self._backoff_s = self.initial_backoff_s
        if self._outage_reported or self.opens > 1:
            log.warning("%s PCM %r is back", self.device.direction, self.device.name)
        self._outage_reported = False
        return True

    def close(self) -> None:
        self.ok = False
        self.device.close()

    def lost(self, now: float, exc: AudioDeviceError) -> None:
        self.close()
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
        on_captured: Callable[[memoryview], None] | None = None,
        measure_speech: bool = True,
    ) -> None:
        self.name = name
        self.measure_speech = measure_speech  # off when the taps measure it per 20 ms frame
        self.capture = capture
        self.playback = playback
        self.channels = config.channels
        self.period = config.period_frames
        # after each top-up the playback holds one cycle plus the margin; the next wake-up
        # may come up to the margin late before it runs dry
        self.play_target = config.cycle_frames + config.playback_margin_frames
        self.max_reads = MAX_READS_PER_CYCLE
        self.fifo = SampleFifo(config.period_frames * (32 + 2 * MAX_READS_PER_CYCLE))  # target + a late cycle's reads, twice
        max_write = config.period_frames * config.periods  # the playback buffer
        self.resampler: SlipResampler | FractionalResampler = (
            SlipResampler(max_write)
            if config.drift_correction == "slips"
            else FractionalResampler(FractionalResampler.chunk_for(config.max_correction_ppm, max_write))
        )
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
            ratio_every=RATIO_EVERY_CYCLES,
        )
        self._on_captured = on_captured
        # Mono captures are read straight into the FIFO's storage (no numpy call at all);
        # stereo ones into this buffer, then mixed down into the FIFO.
        self._raw = np.zeros(config.period_frames * MAX_READS_PER_CYCLE * config.channels, dtype=np.float32)
        self._raw_bytes = memoryview(self._raw).cast("B")
        self._frame_bytes = SAMPLE_BYTES * config.channels
        self._mono = np.zeros(config.period_frames * MAX_READS_PER_CYCLE, dtype=np.float32)
        self._mono_bytes = memoryview(self._mono).cast("B")
        self._out = np.zeros(max_write, dtype=np.float32)  # the resampler writes the playback's samples here
        self._out_views: dict[int, F32] = {}
        self._out_pairs = np.zeros((max_write, 2), dtype=np.float32)
        self._primed = False
        self._resync = False
        self._last_t: float | None = None
        self.frames_in = 0
        self.frames_out = 0
        self.silence_periods = 0  # top-ups played as silence because the FIFO ran dry
        self.underflows = 0  # dry FIFO while capture was running: an audible gap
        self.capture_xruns = 0
        self.playback_xruns = 0
        self.lost_frames = 0  # produced but refused by the playback (never seen: counted if it is)
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

    def step(self, now: float) -> int:
        """One cycle of this direction; return the frames captured."""
        # (runs twice per cycle with cold caches: attributes are read once into locals)
        self.cycle_mean_square = 0.0
        capture, playback, fifo = self.capture, self.playback, self.fifo
        capture_ok = capture.ok or capture.try_open(now)
        playback_ok = playback.ok or playback.try_open(now)
        unread = queued = 0.0
        # Measured back to back: a delay anywhere else in the cycle shifts neither, so the
        # total cannot jump by the delay.
        if capture_ok:
            try:
                unread = capture.device.queued_frames()
            except AudioDeviceError as exc:
                capture.lost(now, exc)
                self._primed = capture_ok = False
        if playback_ok:
            try:
                queued = playback.device.queued_frames()
            except AudioDeviceError as exc:
                playback.lost(now, exc)
                playback_ok = False
        buffered = unread + (fifo._write - fifo._read) + queued
        captured = self._read(now, int(unread) // self.period) if capture_ok else 0
        if not playback_ok:
            # Nowhere to play: keep only what would be the target, so a returning device
            # starts with normal latency instead of a backlog.
            excess = self.fifo.fill - self.total_target
            if excess > 0:
                self.fifo.discard(excess)
            self._last_t = None
            return captured
        capture_ok = capture.ok  # a read may have lost it
        if not self._primed and capture_ok and buffered >= self.total_target:
            # Start (or restart after a gap) with exactly the target latency in place, so
            # with matched clocks the controller never leaves its dead band.
            self.fifo.discard(int(buffered - self.total_target))
            buffered = self.total_target
            self._primed = True
            self.controller.hold()
            self._last_t = None
        elif self._primed and capture_ok:
            self._regulate(now, buffered)
        self._top_up(now, queued, capture_ok)
        return captured

    def _read(self, now: float, ready: int) -> int:
        """Read ``ready`` whole periods into the FIFO; the cycle's block goes to the taps once
        (as float32 bytes)."""
        read_into = self.capture.device.read_into
        reads = ready if ready < self.max_reads else self.max_reads
        fifo = self.fifo
        if self.channels != 1:
            raw = self._raw_bytes
        elif fifo._write + reads * self.period <= fifo.end:  # room without compacting: space() inline
            raw = fifo._bytes[4 * fifo._write :]
        else:
            raw = fifo.space(reads * self.period)
        frame_bytes = self._frame_bytes
        offset = 0
        while reads:
            reads -= 1
            try:
                got = read_into(raw[offset:] if offset else raw)
            except AudioDeviceError as exc:
                self.capture.lost(now, exc)
                self._primed = False
                break
            if got <= 0:
                if got == XRUN:
                    self.capture_xruns += 1
                    self.capture.xruns += 1
                    self._resync = True
                break
            offset += got * frame_bytes
        total = offset // frame_bytes
        if total:
            if self.channels == 1:
                fifo._write += total  # commit(), inline
                captured = raw[:offset]  # the FIFO's own bytes: the taps copy them with no numpy call
            else:
                fifo.push(self._downmix(self._raw[: 2 * total], total))
                captured = self._mono_bytes[: 4 * total]
            if self.measure_speech:
                block = np.frombuffer(captured, dtype=np.float32)
                self.cycle_mean_square = float(np.dot(block, block)) / total
            if self._on_captured is not None:
                self._on_captured(captured)
            self.frames_in += total
        return total

    def _downmix(self, interleaved: F32, frames: int) -> F32:
        # the FIFO and everything after it is mono
        pairs = interleaved.reshape(frames, 2)
        mono = self._mono[:frames]
        np.add(pairs[:, 0], pairs[:, 1], out=mono)
        mono *= np.float32(0.5)
        return mono

    def _top_up(self, now: float, queued: float, capture_running: bool) -> None:
        """One pull and one write that bring the playback to one cycle plus the margin."""
        n = int(self.play_target - queued)
        if n <= 0:
            return
        pcm: F32 | memoryview | None = None
        if self._primed and self.channels == 1:
            # the usual cycle: the FIFO's own samples go to the device, no numpy call at all
            pcm = self.resampler.take_copy(self.fifo, self.controller.ratio, n)
        if pcm is None:
            out = self._out_views.get(n)
            if out is None:  # one view per top-up length, made once: no numpy slicing per cycle
                out = self._out_views[n] = self._out[:n]
            if not (self._primed and self.resampler.pull(self.fifo, self.controller.ratio, out)):
                out[:] = 0.0
                self.silence_periods += 1
                if self._primed and capture_running:
                    self.underflows += 1
                self._primed = False
            # float32 straight to the device: libasound's plug saturates and converts to S16
            if self.channels == 1:
                pcm = out
            else:
                pairs = self._out_pairs[:n]
                np.copyto(pairs, out[:, None])  # the mono mix on both channels
                pcm = pairs.reshape(-1)
        device = self.playback.device
        for _ in range(2):  # a second try only after an underrun, which re-prepared the stream
            try:
                frames = device.write(pcm)
            except AudioDeviceError as exc:
                self.playback.lost(now, exc)
                return
            if frames != XRUN:
                break
            self.playback_xruns += 1
            self.playback.xruns += 1
            self._resync = True
        else:
            frames = 0
        if frames < n:
            self.lost_frames += n - max(frames, 0)
        self.frames_out += max(frames, 0)

    def _regulate(self, now: float, fill: float) -> None:
        last_t = self._last_t
        self._last_t = now
        if last_t is None or now <= last_t:
            return
        excess = fill - self.total_target
        limit = self.resync_frames
        if excess > limit or excess < -limit or self._resync:
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
        controller = self.controller
        controller.update(fill, now - last_t)
        if excess < self.fill_min:
            self.fill_min = excess
        if excess > self.fill_max:
            self.fill_max = excess
        smoothed = controller.smoothed - self.total_target
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
            "lost_frames": self.lost_frames,
            "capture_reopens": max(0, self.capture.opens - 1),
            "playback_reopens": max(0, self.playback.opens - 1),
            "fifo_overflow_frames": self.fifo.overflow_frames,
            "resyncs": self.resyncs,
            "drift_slips": self.resampler.slips if isinstance(self.resampler, SlipResampler) else 0,
        }
