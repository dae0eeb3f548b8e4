"""Audio settings shared by replay, the live taps and the inline bridge."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

# A drift slip: one input sample gained or lost, spread over this many output frames (10.7 ms
# at 48 kHz). A power of two, so the interpolation phase returns to exactly 0 after it.
SLIP_FRAMES = 512
SLIP_PPM = 1e6 / SLIP_FRAMES  # 1953 ppm: the most drift slips back to back can follow


@dataclass(frozen=True)
class AudioConfig:
    # Everything downstream of the taps (VAD, recogniser, dynamics) runs at 16 kHz mono.
    analysis_rate_hz: int = 16000
    frame_ms: int = 20


@dataclass(frozen=True)
class BridgeConfig:
    """The inline headset <-> computer passthrough.

    PCM names are the stable ones ``board/asound.conf`` defines; each is a ``plug`` over the
    real card so the bridge always sees mono float32 at ``rate_hz`` whatever the hardware offers.
    The audio thread wakes once per cycle (``periods_per_cycle`` ALSA periods, on a timer),
    reads every whole period both captures hold and tops both playbacks up to one cycle plus
    the margin. One-way latency by configuration (see ``bridge.latency_frames``) is the
    buffered total the drift controller holds, plus the resampler's look-ahead and, at worst,
    the controller's dead band.
    """

    headset_capture: str = "parallax_headset_in"
    headset_playback: str = "parallax_headset_out"
    host_capture: str = "parallax_host_in"  # what the computer plays: the buyer
    host_playback: str = "parallax_host_out"  # what the computer records: the rep
    rate_hz: int = 48000
    channels: int = 1
    # The ALSA period (2 ms): the granularity of capture reads, since a partly filled period
    # waits for the next cycle. The playback buffer is ``periods`` of them.
    period_frames: int = 96
    periods: int = 3
    # Wake-ups are what the bridge's CPU costs on a box with cold caches after every sleep,
    # and so is every device call: the thread wakes once per two periods (4 ms, 250
    # wake-ups/s) and does both directions' two periods of work at once. (1 ms periods, four
    # per cycle, cost more: twice the reads. 5 ms cycles cost no less: more reads per cycle.)
    periods_per_cycle: int = 2
    # Everything buffered per direction (unread capture + FIFO + queued playback), held by
    # the drift controller; it is the one-way latency in frames, less the resampler's
    # look-ahead. When a cycle tops the playback up (it then holds the margin less the
    # wake-up's lateness), the FIFO must hold the pull (a cycle plus that lateness) and 10
    # frames of look-ahead, while up to one period sits unread in the capture:
    # cycle 192 + margin 48 + look-ahead 10 + unread period 96 + dead band 24 = 370, plus
    # 54 frames of headroom for the drift controller's excursions (it learns a 300 ppm
    # offset from cold with the total 52 frames low).
    target_buffered_frames: int = 424
    # Each cycle tops the playback up to exactly one cycle plus this margin: how late a
    # wake-up may come (1 ms) before the playback runs dry.
    playback_margin_frames: int = 48
    # Drift controller: proportional gain in ppm per frame of smoothed error, integral gain
    # in ppm per frame-second, a dead band inside which nothing changes (so equal clocks give
    # a sample-exact copy) and a hard clamp on the correction.
    fill_kp_ppm_per_frame: float = 6.0
    fill_ki_ppm_per_frame_s: float = 1.0
    fill_deadband_frames: float = 24.0
    fill_smoothing_s: float = 0.5
    max_correction_ppm: float = 1950.0
    # How the controller's ratio is followed. "slips": the FIFO is copied sample for sample,
    # and each time the ratio has asked for half a sample more (or less), one whole sample is
    # slipped, resampled smoothly over SLIP_FRAMES frames (a 3.4 cent pitch offset for
    # 10.7 ms). At 300 ppm of drift one frame in seven is resampled, the call is bit-exact
    # between slips, and the other cycles hand the FIFO to the device with no numpy call:
    # about a quarter of the audio thread's CPU on the dev VM. The cost is a phase wobble of
    # up to one sample (21 us) at the slip rate: a steady 4 kHz tone shows sidebands 21 dB
    # down 14 Hz away, a +-0.1 % frequency swing, near what the ear resolves on a pure tone
    # and far below it on speech. "continuous": every sample is resampled at the ratio (no
    # sidebands above -76 dB). ``tools/bench_bridge.py`` prints both.
    drift_correction: Literal["slips", "continuous"] = "slips"
    sched_fifo: bool = True
    sched_priority: int = 70
    # Pin the audio thread to this CPU (-1: any). With that core isolated (isolcpus=) the
    # thread finds its caches warm every period.
    audio_cpu: int = -1
    tap_socket: Path = Path("/run/parallax/taps.sock")
    call_state_file: Path = Path("/run/parallax/call_state.json")
    # Call detection: the host streams when its capture delivered audio within stream_idle_s;
    # speech is RMS above speech_threshold_dbfs; a call ends after call_end_silence_s of
    # silence or as soon as the host closes the stream.
    stream_idle_s: float = 0.5
    speech_threshold_dbfs: float = -45.0
    call_start_speech_s: float = 0.3
    call_end_silence_s: float = 30.0
    reopen_initial_s: float = 0.05
    reopen_max_s: float = 2.0

    def __post_init__(self) -> None:
        if self.rate_hz not in (16000, 32000, 48000, 96000):
            raise ValueError(f"rate_hz must be 16000, 32000, 48000 or 96000, got {self.rate_hz}")
        if self.rate_hz % 16000:
            raise ValueError("rate_hz must be a multiple of the 16 kHz analysis rate")
        if not 16 <= self.period_frames <= 4096:
            raise ValueError(f"period_frames must be 16..4096, got {self.period_frames}")
        if not 2 <= self.periods <= 16:
            raise ValueError(f"periods must be 2..16, got {self.periods}")
        if self.channels not in (1, 2):
            raise ValueError(f"channels must be 1 or 2, got {self.channels}")
        if not 1 <= self.periods_per_cycle <= 8:
            raise ValueError(f"periods_per_cycle must be 1..8, got {self.periods_per_cycle}")
        if not 0 <= self.playback_margin_frames <= self.period_frames * self.periods - self.cycle_frames:
            raise ValueError(
                "playback_margin_frames must be 0..periods x period_frames - one cycle "
                "(the playback buffer holds a cycle plus the margin)"
            )
        floor = self.buffered_floor_frames
        if not floor <= self.target_buffered_frames <= 32 * self.period_frames:
            raise ValueError(
                f"target_buffered_frames must be {floor}..{32 * self.period_frames} "
                "(cycle + playback margin + 10 + one period + dead band, at most 32 periods)"
            )
        if not 1 <= self.sched_priority <= 99:
            raise ValueError(f"sched_priority must be 1..99, got {self.sched_priority}")
        if self.audio_cpu < -1:
            raise ValueError(f"audio_cpu must be -1 (any) or a CPU number, got {self.audio_cpu}")
        if self.max_correction_ppm <= 0 or self.max_correction_ppm > 20000:
            raise ValueError("max_correction_ppm must be in (0, 20000]")
        if self.drift_correction == "slips" and self.max_correction_ppm > SLIP_PPM:
            raise ValueError(f"max_correction_ppm must be at most {SLIP_PPM:g} with slips (one sample per {SLIP_FRAMES} frames)")
        if self.drift_correction not in ("slips", "continuous"):
            raise ValueError(f"drift_correction must be 'slips' or 'continuous', got {self.drift_correction!r}")
        for name in ("fill_smoothing_s", "stream_idle_s", "call_end_silence_s", "reopen_initial_s", "reopen_max_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if self.reopen_max_s < self.reopen_initial_s:
            raise ValueError("reopen_max_s must be >= reopen_initial_s")

    @property
    def period_s(self) -> float:
        return self.period_frames / self.rate_hz

    @property
    def cycle_frames(self) -> int:
        return self.period_frames * self.periods_per_cycle

    @property
    def cycle_s(self) -> float:
        return self.cycle_frames / self.rate_hz

    @property
    def buffered_floor_frames(self) -> int:
        """The least buffered total that never starves a pull: a cycle + the playback margin
        (the pull after the latest allowed wake-up) + 10 (look-ahead) + one period (unread
        capture) + the dead band (how far below target the controller lets it sit)."""
        return self.cycle_frames + self.playback_margin_frames + 10 + self.period_frames + int(self.fill_deadband_frames)
