"""Audio settings shared by replay, the live taps and the inline bridge."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from firmware.settings import Checked, rule, setting

# A drift slip: one input sample gained or lost, spread over this many output frames (10.7 ms
# at 48 kHz). A power of two, so the interpolation phase returns to exactly 0 after it.
SLIP_FRAMES = 512
SLIP_PPM = 1e6 / SLIP_FRAMES  # 1953 ppm: the most drift slips back to back can follow


@dataclass(frozen=True)
class AudioConfig(Checked):
    # Everything downstream of the taps (VAD, recogniser, dynamics) runs at 16 kHz mono in 20 ms
    # frames (firmware.audio.frames): fixed values, stated here so a file cannot claim others.
    analysis_rate_hz: int = setting(16000, choices=(16000,))
    frame_ms: int = setting(20, choices=(20,))


@dataclass(frozen=True)
class BridgeConfig(Checked):
    """The inline headset <-> computer passthrough.

    PCM names are the stable ones ``board/asound.conf`` defines; each is a ``plug`` over the
    real card so the bridge always sees mono float32 at ``rate_hz`` whatever the hardware offers.
    The audio thread wakes once per cycle (``periods_per_cycle`` ALSA periods, on a timer),
    reads every whole period both captures hold and tops both playbacks up to one cycle plus
    the margin. One-way latency by configuration (see ``bridge.latency_frames``) is the
    buffered total the drift controller holds, plus the resampler's look-ahead and, at worst,
    the controller's dead band.
    """

    headset_capture: str = setting("parallax_headset_in", nonempty=True)
    headset_playback: str = setting("parallax_headset_out", nonempty=True)
    host_capture: str = setting("parallax_host_in", nonempty=True)  # what the computer plays: the buyer
    host_playback: str = setting("parallax_host_out", nonempty=True)  # what the computer records: the rep
    # Multiples of the 16 kHz analysis rate only.
    rate_hz: int = setting(48000, choices=(16000, 32000, 48000, 96000))
    channels: int = setting(1, choices=(1, 2))
    # The ALSA period (2 ms): the granularity of capture reads, since a partly filled period
    # waits for the next cycle. The playback buffer is ``periods`` of them.
    period_frames: int = setting(96, ge=16, le=4096)
    periods: int = setting(3, ge=2, le=16)
    # Wake-ups are what the bridge's CPU costs on a box with cold caches after every sleep,
    # and so is every device call: the thread wakes once per two periods (4 ms, 250
    # wake-ups/s) and does both directions' two periods of work at once. (1 ms periods, four
    # per cycle, cost more: twice the reads. 5 ms cycles cost no less: more reads per cycle.)
    periods_per_cycle: int = setting(2, ge=1, le=8)
    # Everything buffered per direction (unread capture + FIFO + queued playback), held by
    # the drift controller; it is the one-way latency in frames, less the resampler's
    # look-ahead. When a cycle tops the playback up (it then holds the margin less the
    # wake-up's lateness), the FIFO must hold the pull (a cycle plus that lateness) and 10
    # frames of look-ahead, while up to one period sits unread in the capture:
    # cycle 192 + margin 48 + look-ahead 10 + unread period 96 + dead band 24 = 370, plus
    # 54 frames of headroom for the drift controller's excursions (it learns a 300 ppm
    # offset from cold with the total 52 frames low).
    target_buffered_frames: int = setting(424, ge=1)  # and see RULES
    # Each cycle tops the playback up to exactly one cycle plus this margin: how late a
    # wake-up may come (1 ms) before the playback runs dry.
    playback_margin_frames: int = setting(48, ge=0)  # and see RULES
    # Drift controller: proportional gain in ppm per frame of smoothed error, integral gain
    # in ppm per frame-second, a dead band inside which nothing changes (so equal clocks give
    # a sample-exact copy) and a hard clamp on the correction.
    fill_kp_ppm_per_frame: float = setting(6.0, ge=0.0, le=1000.0)
    fill_ki_ppm_per_frame_s: float = setting(1.0, ge=0.0, le=1000.0)
    fill_deadband_frames: float = setting(24.0, ge=0.0, le=1024.0)
    fill_smoothing_s: float = setting(0.5, gt=0.0, le=60.0)
    max_correction_ppm: float = setting(1950.0, gt=0.0, le=20000.0)  # and see RULES
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
    drift_correction: Literal["slips", "continuous"] = setting("slips")
    sched_fifo: bool = setting(True)
    sched_priority: int = setting(70, ge=1, le=99)
    # Pin the audio thread to this CPU (-1: any). With that core isolated (isolcpus=) the
    # thread finds its caches warm every period.
    audio_cpu: int = setting(-1, ge=-1, le=1023)
    tap_socket: Path = setting(Path("/run/parallax/taps.sock"), nonempty=True)
    call_state_file: Path = setting(Path("/run/parallax/call_state.json"), nonempty=True)
    # Call detection: the host streams when its capture delivered audio within stream_idle_s;
    # speech is RMS above speech_threshold_dbfs; a call ends after call_end_silence_s of
    # silence or as soon as the host closes the stream.
    stream_idle_s: float = setting(0.5, gt=0.0, le=60.0)
    speech_threshold_dbfs: float = setting(-45.0, ge=-120.0, le=0.0)
    call_start_speech_s: float = setting(0.3, ge=0.0, le=60.0)
    call_end_silence_s: float = setting(30.0, gt=0.0, le=3600.0)
    reopen_initial_s: float = setting(0.05, gt=0.0, le=60.0)
    reopen_max_s: float = setting(2.0, gt=0.0, le=600.0)

    RULES = (
        rule(
            "0 <= playback_margin_frames <= periods x period_frames - one cycle (the playback buffer holds a cycle plus the margin)",
            "playback_margin_frames", "periods", "period_frames", "periods_per_cycle",
            holds=lambda margin, periods, period, per_cycle: margin <= periods * period - per_cycle * period,
        ),
        rule(
            "cycle + playback margin + 10 + one period + dead band <= target_buffered_frames <= 32 x period_frames",
            "target_buffered_frames", "period_frames", "periods_per_cycle", "playback_margin_frames", "fill_deadband_frames",
            holds=lambda target, period, per_cycle, margin, dead: (
                period * per_cycle + margin + 10 + period + int(dead) <= target <= 32 * period
            ),
        ),
        rule(
            f"max_correction_ppm <= {SLIP_PPM:g} with drift_correction = 'slips' (one sample per {SLIP_FRAMES} frames)",
            "max_correction_ppm", "drift_correction",
            holds=lambda ppm, drift: drift != "slips" or ppm <= SLIP_PPM,
        ),
        rule("reopen_initial_s <= reopen_max_s", "reopen_initial_s", "reopen_max_s", holds=lambda a, b: a <= b),
    )  # fmt: skip

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
