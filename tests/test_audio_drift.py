"""The drift core: FIFO, fractional resampler, fill controller, and an hour of +-300 ppm."""

from __future__ import annotations

import numpy as np
import pytest

from firmware.audio.bridge import Bridge, Devices, capture_periods
from firmware.audio.config import SLIP_FRAMES, BridgeConfig
from firmware.audio.drift import FillController, FractionalResampler, SampleFifo, SlipResampler
from firmware.testing.paced import ClockedPcm, SimClock

RATE = 48000


def resample_all(signal: np.ndarray, ratio: float, period: int = 96, pull: int = 96) -> np.ndarray:
    fifo = SampleFifo(period * 32)
    resampler = FractionalResampler(period)
    out = np.zeros(pull, dtype=np.float32)
    pieces = []
    for start in range(0, len(signal) - period + 1, period):
        fifo.push(signal[start : start + period])
        while fifo.fill >= resampler.needed(ratio, pull):
            assert resampler.pull(fifo, ratio, out)
            pieces.append(out.copy())
    return np.concatenate(pieces)


def test_ratio_one_copies_bit_for_bit() -> None:
    rng = np.random.default_rng(3)
    signal = rng.integers(-32768, 32767, RATE).astype(np.float32)
    out = resample_all(signal, 1.0)
    assert len(out) > RATE - 200
    np.testing.assert_array_equal(out, signal[: len(out)])


# pulls shorter than the resampler's chunk, and longer ones, which it takes chunk by chunk
@pytest.mark.parametrize("pull", [96, 250])
@pytest.mark.parametrize("ppm", [300.0, -300.0, 2000.0])
def test_fractional_ratio_follows_the_continuous_signal(ppm: float, pull: int) -> None:
    ratio = 1.0 + ppm * 1e-6
    n = np.arange(RATE * 2)
    signal = (0.5 * np.sin(2 * np.pi * 1000 * n / RATE) + 0.3 * np.sin(2 * np.pi * 3100 * n / RATE)).astype(np.float32)
    out = resample_all(signal, ratio, pull=pull)
    k = np.arange(len(out))
    expected = 0.5 * np.sin(2 * np.pi * 1000 * k * ratio / RATE) + 0.3 * np.sin(2 * np.pi * 3100 * k * ratio / RATE)
    # output sample k lies at input position k * ratio: -60 dB or better across the band
    assert np.max(np.abs(out[20:] - expected[20:])) < 1e-3
    # and the number of samples produced is the input length divided by the ratio
    assert abs(len(out) - len(signal) / ratio) < 2 * max(96, pull)


def slip_all(signal: np.ndarray, ratio: float, pull: int) -> tuple[np.ndarray, SlipResampler]:
    """``signal`` through a SlipResampler at ``ratio``, ``pull`` frames at a time."""
    fifo = SampleFifo(4096)
    resampler = SlipResampler(288)
    out = np.zeros(pull, dtype=np.float32)
    pieces = []
    for start in range(0, len(signal) - 96 + 1, 96):
        fifo.push(signal[start : start + 96])
        while fifo.fill >= resampler.needed(ratio, pull):
            assert resampler.pull(fifo, ratio, out)
            pieces.append(out.copy())
    return np.concatenate(pieces), resampler


def exact_offsets(out: np.ndarray, signal: np.ndarray, most: int) -> np.ndarray:
    """For each output sample, the whole-sample offset (within +-``most``) at which it and a
    neighbour are exact copies of the input, or a sentinel (1 << 20) where there is none.
    On a noise input a float32 equals another by chance about once in 10^8 pairs; two
    neighbours both doing so at the same offset, never."""
    offsets = np.full(len(out), 1 << 20)
    k = np.arange(len(out))
    for s in range(-most, most + 1):
        j = k + s
        ok = (j >= 0) & (j < len(signal))
        equal = np.zeros(len(out) + 2, dtype=bool)
        equal[1:-1][ok] = out[ok] == signal[j[ok]]
        hit = equal[1:-1] & (equal[:-2] | equal[2:])
        offsets[hit] = s
    return offsets


@pytest.mark.parametrize("pull", [192, 250])
@pytest.mark.parametrize("ppm", [300.0, -300.0])
def test_slips_copy_bit_for_bit_between_smooth_one_sample_slips(ppm: float, pull: int) -> None:
    ratio = 1.0 + ppm * 1e-6
    noise = np.random.default_rng(5).standard_normal(RATE * 4).astype(np.float32) * 0.2
    out, resampler = slip_all(noise, ratio, pull)
    # it consumes ratio x as many samples as it produces, one slip per 1 / |ratio - 1| frames
    assert abs(len(out) - len(noise) / ratio) < 2 * pull
    assert abs(resampler.slips - len(out) * abs(ppm) * 1e-6) <= 1
    offsets = exact_offsets(out, noise, resampler.slips + 1)
    copied = offsets != 1 << 20
    # every slip resamples SLIP_FRAMES - 1 frames (its first lies on a whole sample); every
    # other frame is an exact copy, and each slip moves the copy's offset by exactly one
    assert (~copied).sum() == pytest.approx(resampler.slips * (SLIP_FRAMES - 1), abs=SLIP_FRAMES)
    steps = np.diff(offsets[copied])
    assert set(np.unique(steps)) <= {0, 1 if ppm > 0 else -1}
    assert np.count_nonzero(steps) >= resampler.slips - 1
    resampled = np.flatnonzero(~copied)
    run_lengths = np.diff(np.flatnonzero(np.diff(resampled) > 1), prepend=-1, append=len(resampled) - 1)
    assert len(run_lengths) == pytest.approx(resampler.slips, abs=1)  # one run per slip
    assert run_lengths.max() <= SLIP_FRAMES - 1

    # Inside a slip the position moves evenly by one sample over SLIP_FRAMES frames: a two-tone
    # signal through the same schedule (it depends on the ratio and pulls, not the audio) must
    # match the continuous signal at those positions, to -60 dB.
    n = np.arange(RATE * 4)
    tones = (0.5 * np.sin(2 * np.pi * 1000 * n / RATE) + 0.3 * np.sin(2 * np.pi * 3100 * n / RATE)).astype(np.float32)
    out_tones, _ = slip_all(tones, ratio, pull)
    position = np.arange(len(out), dtype=np.float64)
    sign = 1.0 if ppm > 0 else -1.0
    first = np.flatnonzero(copied)[0]
    last_offset, last_copy = offsets[first], first
    for k in range(first, len(out)):
        if copied[k]:
            last_offset, last_copy = offsets[k], k
            position[k] += offsets[k]
        else:
            position[k] += last_offset + sign * (k - last_copy) / SLIP_FRAMES
    expected = 0.5 * np.sin(2 * np.pi * 1000 * position / RATE) + 0.3 * np.sin(2 * np.pi * 3100 * position / RATE)
    assert np.max(np.abs(out_tones[first:] - expected[first:])) < 1e-3


def test_slips_owe_at_most_two_samples_when_asked_beyond_their_rate() -> None:
    fifo = SampleFifo(4096)
    resampler = SlipResampler(288)
    out = np.zeros(192, dtype=np.float32)
    feed = iter(np.random.default_rng(6).standard_normal(RATE * 5).astype(np.float32).reshape(-1, 96) * 0.2)

    def run(ratio: float, pulls: int) -> int:
        consumed = 0
        for _ in range(pulls):
            while fifo.fill < resampler.needed(ratio, 192):
                fifo.push(next(feed))
            before = fifo.fill
            assert resampler.pull(fifo, ratio, out)
            consumed += before - fifo.fill
        return consumed

    # 5000 ppm is more than slips back to back follow (one sample per 512 frames)
    consumed = run(1.005, 500)
    assert consumed == pytest.approx(500 * 192 * (1 + 1 / SLIP_FRAMES), abs=2)
    slips = resampler.slips
    assert slips == pytest.approx(500 * 192 / SLIP_FRAMES, abs=1)
    # back at ratio 1 it pays off what it still owes (at most two samples), then copies
    run(1.0, 500)
    assert resampler.slips - slips <= 2
    assert not resampler.slipping
    fifo.push(next(feed))
    fifo.push(next(feed))
    assert resampler.take_copy(fifo, 1.0, 96) is not None


def test_take_copy_hands_out_the_fifo_itself_and_stands_aside_for_a_slip() -> None:
    fifo = SampleFifo(1024)
    fifo.push(np.arange(400, dtype=np.float32))
    resampler = SlipResampler(288)
    view = resampler.take_copy(fifo, 1.0, 192)
    assert view is not None and np.array_equal(np.asarray(view), np.arange(192, dtype=np.float32))
    assert fifo.fill == 400 - 192
    assert resampler.take_copy(fifo, 1.0, 200) is None  # short: 200 + the look-ahead are not there
    assert fifo.fill == 400 - 192
    # a ratio that has asked for half a sample starts a slip: no copy until it is done
    assert resampler.take_copy(fifo, 1.0 + 0.6 / 96, 96) is None
    out = np.zeros(96, dtype=np.float32)
    assert resampler.pull(fifo, 1.0 + 0.6 / 96, out) and resampler.slipping
    fifo.push(np.arange(400, 1000, dtype=np.float32))
    assert resampler.take_copy(fifo, 1.0, 96) is None


def test_resampler_sized_for_the_largest_correction_accepts_it() -> None:
    # the controller clamps at max_correction_ppm: that ratio must never stop the audio thread
    for ppm in (2000.0, 300.0, 1.0):
        resampler = FractionalResampler(FractionalResampler.chunk_for(ppm, 288))
        fifo = SampleFifo(4096)
        fifo.push(np.ones(1024, dtype=np.float32))
        fifo.discard(16)  # history of ones too, so every window sees the constant
        for ratio in (1.0 + ppm * 1e-6, 1.0 - ppm * 1e-6):
            out = np.zeros(resampler.chunk, dtype=np.float32)
            assert resampler.pull(fifo, ratio, out)
            np.testing.assert_allclose(out, 1.0, atol=1e-5)  # a constant stays constant


def test_resampler_reports_a_short_fifo_and_outputs_silence() -> None:
    fifo = SampleFifo(1024)
    resampler = FractionalResampler(96)
    fifo.push(np.ones(50, dtype=np.float32))
    out = np.full(96, 7.0, dtype=np.float32)
    assert not resampler.pull(fifo, 1.0, out)
    assert not out.any()
    assert fifo.fill == 50  # nothing consumed


def test_fifo_overflow_keeps_the_newest_and_counts() -> None:
    fifo = SampleFifo(256)
    fifo.push(np.arange(200, dtype=np.float32))
    fifo.push(np.arange(200, 400, dtype=np.float32))
    assert fifo.overflow_frames > 0
    data, start = fifo.window()
    assert data[start + fifo.fill - 1] == 399


def test_controller_holds_inside_the_dead_band_and_learns_drift_outside() -> None:
    controller = FillController(400, kp_ppm_per_frame=6, ki_ppm_per_frame_s=1, deadband_frames=24, smoothing_s=0.5, max_correction_ppm=2000)
    for _ in range(1000):
        assert controller.update(410, 0.002) == 1.0
    # a source 300 ppm fast fills the buffer: simulate the plant and let the loop settle
    fill = 400.0
    corrections, fills = [], []
    for step in range(120 * 500):
        ratio = controller.update(fill, 0.002)
        fill += 96 * (1.0003 - ratio)
        if step >= 60 * 500:
            corrections.append(controller.correction_ppm)
            fills.append(fill)
    # inside the dead band the correction holds, so it dithers around the drift it learnt
    assert np.mean(corrections) == pytest.approx(300, abs=3)
    assert max(abs(f - 400) for f in fills) < 24 + 8


def simulated_bridge(config: BridgeConfig, host_ppm: float) -> tuple[Bridge, SimClock, list[ClockedPcm]]:
    clock = SimClock()

    def pcm(name: str, direction: str, ppm: float) -> ClockedPcm:
        periods = capture_periods(config) if direction == "capture" else config.periods
        return ClockedPcm(name, direction, clock, rate_hz=RATE, period_frames=config.period_frames, periods=periods, ppm=ppm)  # type: ignore[arg-type]

    devices = [pcm("headset-in", "capture", 0), pcm("headset-out", "playback", 0), pcm("host-in", "capture", host_ppm), pcm("host-out", "playback", host_ppm)]
    bridge = Bridge(config, Devices(*devices), clock=clock, taps=False)
    return bridge, clock, devices


def run_drift(config: BridgeConfig, host_ppm: float, seconds: float) -> None:
    bridge, clock, devices = simulated_bridge(config, host_ppm)
    settled = False
    while clock.now() < seconds:
        bridge.cycle()
        if not settled and clock.now() > 60:  # the first minute learns the drift
            bridge.rep.reset_fill_stats()
            bridge.buyer.reset_fill_stats()
            settled = True
    period = config.period_frames
    for leg in (bridge.rep, bridge.buyer):
        # both directions see the host clock's offset, with opposite signs
        assert abs(abs(leg.controller.correction_ppm) - abs(host_ppm)) < 30, leg.stats()
        assert -period <= leg.smoothed_min and leg.smoothed_max <= period, leg.stats()
        assert -period <= leg.fill_min and leg.fill_max <= period, leg.stats()
        assert leg.underflows == 0 and leg.resyncs == 0, leg.stats()
        assert leg.capture_xruns == 0 and leg.playback_xruns == 0, leg.stats()
        # frames in and out differ by the drift, not by lost audio
        expected = leg.frames_in * (1 - leg.controller.correction_ppm * 1e-6)
        assert abs(leg.frames_out - expected) < 3 * leg.frames_in * 50e-6 + 4 * period
    assert all(d.xruns == 0 for d in devices)
    assert bridge.rep.controller.correction_ppm * host_ppm < 0  # rep: host consumes faster
    assert bridge.buyer.controller.correction_ppm * host_ppm > 0  # buyer: host produces faster


def test_one_simulated_hour_at_plus_300_ppm_without_xruns() -> None:
    # The hour runs at a 20 ms cycle so it takes seconds, not minutes; the same core at
    # the device's 4 ms cycle is checked over three minutes below (and for an hour by
    # tools/bench_bridge.py).
    # target: cycle + margin + look-ahead + unread period + dead band, and 100 frames of headroom
    config = BridgeConfig(
        period_frames=480, periods=4, periods_per_cycle=2, playback_margin_frames=480,
        target_buffered_frames=2 * 480 + 480 + 10 + 480 + 24 + 100, max_correction_ppm=400, sched_fifo=False,
    )
    assert config.target_buffered_frames == config.buffered_floor_frames + 100
    run_drift(config, host_ppm=300.0, seconds=3600.0)


@pytest.mark.parametrize(("host_ppm", "drift"), [(300.0, "slips"), (-300.0, "slips"), (300.0, "continuous")])
def test_three_minutes_at_the_device_period(host_ppm: float, drift: str) -> None:
    run_drift(BridgeConfig(sched_fifo=False, drift_correction=drift), host_ppm=host_ppm, seconds=180.0)  # type: ignore[arg-type]


def test_under_drift_the_call_passes_bit_exact_between_slips() -> None:
    config = BridgeConfig(sched_fifo=False)
    clock = SimClock()
    period = config.period_frames
    played: list[np.ndarray] = []

    def noise(out: np.ndarray, index: int) -> None:  # the same period for the same index
        out[:period] = np.random.default_rng(index).standard_normal(period).astype(np.float32) * 0.2

    def pcm(name: str, direction: str, ppm: float) -> ClockedPcm:
        periods = capture_periods(config) if direction == "capture" else config.periods
        return ClockedPcm(
            name, direction, clock, rate_hz=RATE, period_frames=period, periods=periods, ppm=ppm,  # type: ignore[arg-type]
            source=noise if name == "headset-in" else None,
            sink=(lambda data: played.append(np.array(data))) if name == "host-out" else None,
        )

    devices = [pcm("headset-in", "capture", 0), pcm("headset-out", "playback", 0), pcm("host-in", "capture", 300), pcm("host-out", "playback", 300)]
    bridge = Bridge(config, Devices(*devices), clock=clock, taps=False)
    while clock.now() < 10.0:
        bridge.cycle()
    out = np.concatenate(played)
    out = out[np.flatnonzero(out)[0] :]
    source = np.zeros(len(out) + RATE, dtype=np.float32)
    for index in range(len(source) // period):
        noise(source[index * period :], index)
    start = next(j for j in range(2 * config.target_buffered_frames) if np.array_equal(out[:32], source[j : j + 32]))
    slips = bridge.rep.resampler.slips
    # the computer takes the rep's voice 300 ppm faster than the headset gives it: each slip
    # plays one sample more, and the controller has learnt most of the drift within seconds
    assert 0.5 * len(out) * 300e-6 < slips <= len(out) * 300e-6 + 2
    offsets = exact_offsets(out, source[start:], slips + 2)
    copied = offsets != 1 << 20
    # everything the slips did not resample is the rep's voice, sample for sample
    assert (~copied).sum() <= slips * (SLIP_FRAMES - 1)
    # and between copies the offset only ever steps back by one, once per slip (the last
    # may still be under way)
    assert set(np.unique(np.diff(offsets[copied]))) == {0, -1}
    assert -slips <= offsets[copied][-1] <= -slips + 1
    assert bridge.rep.underflows == 0 and bridge.rep.resyncs == 0


def test_a_stall_is_an_xrun_that_is_counted_and_recovered() -> None:
    config = BridgeConfig(sched_fifo=False)
    bridge, clock, devices = simulated_bridge(config, 0.0)
    while clock.now() < 5:
        bridge.cycle()
    clock.sleep(0.05)  # the audio thread misses 25 periods
    while clock.now() < 15:
        bridge.cycle()
    assert devices[0].xruns >= 1 and devices[3].xruns >= 1  # capture overran, playback ran dry
    assert bridge.rep.capture_xruns >= 1 and bridge.rep.playback_xruns >= 1
    out_before = {leg.name: leg.frames_out for leg in (bridge.rep, bridge.buyer)}
    while clock.now() < 20:
        bridge.cycle()
    for leg in (bridge.rep, bridge.buyer):
        assert leg.resyncs >= 1
        # back to steady state: playing at the clock rate, buffer at target
        assert leg.frames_out - out_before[leg.name] == pytest.approx(5 * RATE, abs=4 * 96)
        assert abs(leg.controller.smoothed - leg.total_target) <= config.fill_deadband_frames + 1
        assert leg.controller.correction_ppm == 0.0


def test_stereo_devices_are_mixed_down_and_played_on_both_channels() -> None:
    config = BridgeConfig(channels=2, sched_fifo=False)
    clock = SimClock()
    period = config.period_frames
    played: list[np.ndarray] = []

    def stereo_source(out: np.ndarray, index: int) -> None:
        n = np.arange(index * period, (index + 1) * period)
        out[0::2] = (1000 + n % 7) / 32768  # left
        out[1::2] = (3000 - n % 5) / 32768  # right

    def pcm(name: str, direction: str) -> ClockedPcm:
        periods = capture_periods(config) if direction == "capture" else config.periods
        return ClockedPcm(
            name, direction, clock, rate_hz=RATE, period_frames=period, periods=periods, channels=2,  # type: ignore[arg-type]
            source=stereo_source if direction == "capture" else None,
            sink=(lambda data: played.append(data.copy())) if name == "host-out" else None,
        )

    bridge = Bridge(config, Devices(pcm("headset-in", "capture"), pcm("headset-out", "playback"), pcm("host-in", "capture"), pcm("host-out", "playback")), clock=clock, taps=False)
    while clock.now() < 1.0:
        bridge.cycle()
    out = np.concatenate(played).reshape(-1, 2)
    audio = out[np.flatnonzero(out[:, 0])[0] :]
    np.testing.assert_array_equal(audio[:, 0], audio[:, 1])  # the mono mix on both channels
    n = np.arange(len(audio) + 1000)
    mix = (((1000 + n % 7) + (3000 - n % 5)) / 2 / 32768).astype(np.float32)  # exact in float32
    offset = next(j for j in range(1000) if np.array_equal(audio[:50, 0], mix[j : j + 50]))
    np.testing.assert_array_equal(audio[:, 0], mix[offset : offset + len(audio)])


def test_a_capture_vanishing_while_unprimed_never_escapes_the_cycle() -> None:
    config = BridgeConfig(sched_fifo=False)
    bridge, clock, devices = simulated_bridge(config, 0.0)
    bridge.cycle()  # devices open; the legs are still priming
    devices[0].unplug()  # headset capture gone before the first pull
    devices[2].unplug()
    while clock.now() < 1.0:
        bridge.cycle()
    assert bridge.rep.capture.failures == 1 and bridge.buyer.capture.failures == 1
    assert devices[3].xruns == 0  # the computer still got (silent) periods on time
