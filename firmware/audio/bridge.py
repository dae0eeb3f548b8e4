"""The inline bridge: one real-time thread copying both directions, a cycle at a time.

    host capture (buyer, computer's clock)   -> FIFO -> resampler -> headset playback
    headset capture (rep, headset's clock)   -> FIFO -> resampler -> host playback

The thread wakes on a timer once per cycle (``periods_per_cycle`` ALSA periods), as
PulseAudio's and PipeWire's timer-based scheduling do: on a box whose cost is per wake-up
(cold caches after every sleep), one wake-up per 4 ms doing both directions costs much
less than one per 2 ms period. Each cycle reads every whole period from both captures, tops
both playbacks up to one cycle plus the margin, updates each leg's drift controller and call
detection, and offers 16 kHz taps to the coach. The timer and the two USB clocks slide past
one another; the latency arithmetic (``latency_frames``) holds for every phase between them.
The cycle's own work is timed into a preallocated ring for the p99 figure. Nothing in a
cycle waits on a device.
"""

from __future__ import annotations

import array
import gc
import logging
import os
import threading
import time
from collections.abc import Callable
from time import perf_counter_ns
from pathlib import Path
from typing import Protocol

import numpy as np

from firmware.audio.callstate import CallChange, CallDetector
from firmware.audio.config import BridgeConfig
from firmware.audio.drift import FractionalResampler, SampleFifo, SlipResampler
from firmware.audio.frames import ANALYSIS_RATE_HZ, FRAME_SAMPLES
from firmware.audio.legs import DeviceSlot, Leg
from firmware.audio.pcm import AlsaPcm, PcmDevice
from firmware.audio.taps import TapWriter
from firmware.errors import AudioDeviceError
from firmware.handoff import DropQueue

log = logging.getLogger(__name__)

RING_MASK = (1 << 16) - 1  # per-cycle figures kept for the most recent 65536 cycles (4 min)

# Capture buffers may be deep (16 ms): a cycle reads every whole period there, so depth adds
# no delay; it only decides how long a stalled thread may be away before the capture overruns.
CAPTURE_BUFFER_FRAMES = 768


def capture_periods(config: BridgeConfig) -> int:
    return max(config.periods, -(-CAPTURE_BUFFER_FRAMES // config.period_frames))


class Clock(Protocol):
    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class Devices:
    """The four PCMs of the bridge."""

    def __init__(self, headset_capture: PcmDevice, headset_playback: PcmDevice, host_capture: PcmDevice, host_playback: PcmDevice) -> None:
        self.headset_capture = headset_capture
        self.headset_playback = headset_playback
        self.host_capture = host_capture
        self.host_playback = host_playback

    @classmethod
    def alsa(cls, config: BridgeConfig) -> Devices:
        def pcm(name: str, capture: bool) -> AlsaPcm:
            return AlsaPcm(
                name,
                "capture" if capture else "playback",
                rate_hz=config.rate_hz,
                channels=config.channels,
                period_frames=config.period_frames,
                periods=capture_periods(config) if capture else config.periods,
            )

        return cls(
            pcm(config.headset_capture, True),
            pcm(config.headset_playback, False),
            pcm(config.host_capture, True),
            pcm(config.host_playback, False),
        )


def latency_frames(config: BridgeConfig) -> dict[str, int]:
    """One-way added latency by configuration, per term (frames at ``rate_hz``).

    A captured sample waits behind everything already buffered in its direction (unread
    capture + FIFO + queued playback), which the drift controller holds at
    ``target_buffered_frames``; the resampler adds its look-ahead; the controller's dead band
    is the most the buffered total sits above target before it acts. How the target is made
    up: :func:`buffered_terms`.
    """
    return {
        "buffered_target": config.target_buffered_frames,
        "resampler_lookahead": FractionalResampler.delay_frames,
        "controller_deadband": int(config.fill_deadband_frames),
    }


def buffered_terms(config: BridgeConfig) -> dict[str, int]:
    """What ``target_buffered_frames`` must cover (frames), and the headroom left over."""
    terms = {
        "cycle": config.cycle_frames,
        "playback_margin": config.playback_margin_frames,
        "pull_lookahead": 10,
        "unread_capture_period": config.period_frames,
        "controller_deadband": int(config.fill_deadband_frames),
    }
    terms["headroom"] = config.target_buffered_frames - sum(terms.values())
    return terms


class Bridge:
    def __init__(
        self,
        config: BridgeConfig,
        devices: Devices | None = None,
        *,
        clock: Clock | None = None,
        taps: bool = True,
        on_call_change: Callable[[CallChange], None] | None = None,
    ) -> None:
        self.config = config
        self.devices = devices or Devices.alsa(config)
        self.clock = clock or MonotonicClock()
        backoff = {"initial_backoff_s": config.reopen_initial_s, "max_backoff_s": config.reopen_max_s}
        self.tap_writer = TapWriter(config.tap_socket, config.rate_hz) if taps else None
        self.rep = Leg(
            "rep",
            DeviceSlot(self.devices.headset_capture, **backoff),
            DeviceSlot(self.devices.host_playback, **backoff),
            config,
            on_captured=self.tap_writer.push_rep if self.tap_writer else None,
            measure_speech=self.tap_writer is None,
        )
        self.buyer = Leg(
            "buyer",
            DeviceSlot(self.devices.host_capture, **backoff),
            DeviceSlot(self.devices.headset_playback, **backoff),
            config,
            on_captured=self.tap_writer.push_buyer if self.tap_writer else None,
            measure_speech=self.tap_writer is None,
        )
        # With taps, speech is measured on each 20 ms tap frame (already decimated, two dot
        # products per frame); without, on each cycle's captured block.
        self._detect_s = FRAME_SAMPLES / ANALYSIS_RATE_HZ if self.tap_writer is not None else config.cycle_s
        self._host_audio = False
        self.detector = CallDetector(
            period_s=self._detect_s,
            speech_threshold_dbfs=config.speech_threshold_dbfs,
            start_speech_s=config.call_start_speech_s,
            end_silence_s=config.call_end_silence_s,
            stream_idle_s=config.stream_idle_s,
        )
        self.changes: DropQueue[CallChange] = DropQueue(64)
        self._on_call_change = on_call_change
        self.cycles = 0
        self.idle_cycles = 0  # cycles with neither capture open
        self._cycle_s = config.cycle_s
        self._due: float | None = None
        # array.array rather than numpy: storing a Python int there is no numpy call
        self._proc_ns = array.array("q", bytes(8 * (RING_MASK + 1)))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.realtime = False
        self.thread_cpu_s = 0.0
        self.max_cycle_gap_ns = 0  # longest wall time between two cycles: a stalled thread shows here
        self._gap_ns = array.array("q", bytes(8 * (RING_MASK + 1)))
        # a cycle starting later than one cycle plus the playback margin after the previous
        # one finds the playbacks run dry: the machine, not the bridge, made that xrun
        self.late_cycles = 0
        self._late_ns = int(1e9 * (config.cycle_s + config.playback_margin_frames / config.rate_hz))
        self._last_start_ns = 0
        self.thread_wall_s = 0.0
        self._stream_t = 0.0

    # --- the cycle ----------------------------------------------------------------------
    def cycle(self) -> None:
        """Sleep until this cycle is due, then one cycle of work."""
        clock = self.clock
        # Deadlines on the monotonic clock, so sleeping's own overshoot never accumulates.
        now = clock.now()
        due = now if self._due is None else self._due
        delay = due - now
        if delay > 0:
            clock.sleep(delay)
            now = clock.now()
        elif delay < -self._cycle_s:
            due = now  # far behind (a stall): carry on from now rather than in a burst
        self._due = due + self._cycle_s
        start = perf_counter_ns()
        cycles = self.cycles
        if self._last_start_ns:
            gap = start - self._last_start_ns
            self._gap_ns[cycles & RING_MASK] = gap
            if gap > self._late_ns:
                self.late_cycles += 1
            if gap > self.max_cycle_gap_ns:
                self.max_cycle_gap_ns = gap
        self._last_start_ns = start
        rep, buyer = self.rep, self.buyer
        rep.step(now)
        if buyer.step(now):
            self._host_audio = True
        if not (rep.capture.ok or buyer.capture.ok):
            self.idle_cycles += 1
        writer = self.tap_writer
        if writer is not None:
            frames = writer.flush(call_id=self.detector.call_id, call_t0=self.detector.call_start_t)
            if frames:  # usually one frame every fifth cycle, or none
                for i in range(frames - 1, -1, -1):
                    self._detect(writer.stream_t - i * self._detect_s, writer.frame_mean_square)
        else:
            self._stream_t += self._cycle_s
            rep_ms, buyer_ms = rep.cycle_mean_square, buyer.cycle_mean_square
            self._detect(self._stream_t, rep_ms if rep_ms > buyer_ms else buyer_ms)
        self._proc_ns[cycles & RING_MASK] = perf_counter_ns() - start
        self.cycles = cycles + 1

    def _detect(self, stream_t: float, mean_square: float) -> None:
        change = self.detector.update(stream_t, self._host_audio, mean_square)
        self._host_audio = False
        if change is not None:
            self.changes.offer(change)
            if self._on_call_change is not None:
                self._on_call_change(change)

    def processing_ms(self) -> np.ndarray:
        """Processing time of the most recent cycles (up to 65536), in ms."""
        n = min(self.cycles, len(self._proc_ns))
        return np.frombuffer(self._proc_ns, dtype=np.int64)[:n] / 1e6

    def cycle_gaps_ms(self) -> np.ndarray:
        """Wall time from each cycle's start to the next one's, most recent cycles, in ms."""
        gaps = np.frombuffer(self._gap_ns, dtype=np.int64)
        if self.cycles > len(gaps):
            return gaps / 1e6
        return gaps[1 : self.cycles] / 1e6

    # --- thread -------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Run every numpy path of a cycle once on scratch data, before the audio thread goes
        real-time: first calls resolve lazy imports and caches that would cost a period."""
        cycle = self.config.cycle_frames
        scratch = SampleFifo(cycle * 8)
        resampler = SlipResampler(cycle)
        out = np.zeros(cycle, dtype=np.float32)
        for ratio in (1.0, 1.01, 1.0, 0.99, 1.0):  # a copy, a slip each way
            scratch.space(cycle * 3)[: 4 * cycle * 3] = bytes(4 * cycle * 3)
            scratch.commit(cycle * 3)
            resampler.pull(scratch, ratio, out)
        writer = TapWriter(Path("/nonexistent/parallax-warm-up.sock"), self.config.rate_hz)
        block = memoryview(np.zeros(writer.block, dtype=np.float32)).cast("B")
        writer.push_rep(block)
        writer.push_buyer(block)
        writer.flush(call_id=0, call_t0=0.0)
        writer.close()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("bridge already started")
        self.warm_up()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="parallax-bridge", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        for slot in (self.rep.capture, self.rep.playback, self.buyer.capture, self.buyer.playback):
            slot.close()
        if self.tap_writer is not None:
            self.tap_writer.close()

    def _run(self) -> None:
        self.realtime = self._enter_realtime()
        gc.collect()
        gc.freeze()  # the long-lived set-up objects never need scanning again from this thread
        cpu0, wall0 = time.thread_time(), time.monotonic()
        try:
            while not self._stop.is_set():
                self.cycle()
                if not self.cycles & 63:  # thread_time is a system call: not every cycle
                    # published for the stats without a lock: two floats, written by this thread only
                    self.thread_cpu_s = time.thread_time() - cpu0
                    self.thread_wall_s = time.monotonic() - wall0
        except Exception:  # a bug: log it, the unit's watchdog restarts the process
            log.exception("bridge loop crashed")
            raise
        finally:
            self.thread_cpu_s = time.thread_time() - cpu0
            self.thread_wall_s = time.monotonic() - wall0

    def _enter_realtime(self) -> bool:
        if self.config.audio_cpu >= 0:
            try:
                os.sched_setaffinity(0, {self.config.audio_cpu})  # this thread only
            except (OSError, ValueError) as exc:
                log.warning("cannot pin the audio thread to CPU %d (%s)", self.config.audio_cpu, exc)
        if not self.config.sched_fifo:
            return False
        try:
            # pid 0 = the calling thread on Linux: only the audio thread becomes real-time
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self.config.sched_priority))
        except (PermissionError, OSError, AttributeError) as exc:
            log.warning("SCHED_FIFO priority %d not permitted (%s): running best-effort", self.config.sched_priority, exc)
            return False
        return True

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stats(self) -> dict[str, object]:
        proc = self.processing_ms()
        out: dict[str, object] = {
            "cycles": self.cycles,
            "idle_cycles": self.idle_cycles,
            "realtime": self.realtime,
            "call_active": self.detector.active,
            "host_streaming": self.detector.host_streaming,
            "thread_cpu_percent": round(100 * self.thread_cpu_s / self.thread_wall_s, 2) if self.thread_wall_s else 0.0,
            "max_cycle_gap_ms": round(self.max_cycle_gap_ns / 1e6, 3),
            "late_cycles": self.late_cycles,
            "proc_p99_ms": round(float(np.percentile(proc, 99)), 4) if len(proc) else 0.0,
            "rep": self.rep.stats(),
            "buyer": self.buyer.stats(),
        }
        if self.tap_writer is not None:
            out["taps"] = {"sent": self.tap_writer.sent, "dropped": self.tap_writer.dropped, "dropped_absent": self.tap_writer.dropped_absent, "dropped_busy": self.tap_writer.dropped_busy}
        return out
