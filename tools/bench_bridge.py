#!/usr/bin/env python3
"""Benchmark the inline audio bridge: latency, processing time, CPU, xruns, drift.

1. Latency by configuration (the device defaults): the buffered total the drift controller
   holds (and what it must cover), the resampler's look-ahead and the controller's dead band.
   Then a machine reference: how much slower the same work runs right after a sleep of one
   cycle than back to back.
2. A simulated call of ``--minutes`` (default 60) per drift sign: the bridge's real code on
   simulated USB clocks, the computer's clock +300 ppm, then -300 ppm, against the headset
   (so each run corrects both ways: one direction's source is fast, the other's slow).
   Counts xruns and gaps, the buffered total's excursion from its target, and the share of
   output frames the drift correction resampled (with slips, the rest are exact copies).
3. A real-time run of ``--realtime-seconds`` (default 30) on real pyalsaaudio/libasound
   (file/null PCMs given USB clocks in software), device configuration, SCHED_FIFO when
   permitted, with a coach process consuming the taps and burning CPU flat out beside it
   plus a second CPU burner, so both cores are saturated. Measures the bridge thread's CPU
   (total, and without the software clock's own share), its per-cycle processing time and
   its xruns, and the longest gap between two cycles (what the machine itself stalled).
   Before it, the I/O floor: the same thread and devices doing only the sleeps, reads and
   writes of a cycle, i.e. what waking once per cycle costs on this machine.
   CPU is the bridge thread's own CPU time (``time.thread_time`` in that thread), less the
   time spent in the software clocks that pace the file/null PCMs (timed inside them; the
   calls into them are not, about 0.3 points here). The playbacks write to /dev/null, as a
   device's mmap'd ring costs nothing like a tmpfs file growing with every write.

``--drift-correction continuous`` runs it all with every sample resampled, for comparison; a
fidelity table shows what either correction does to a pure tone.
Prints readable tables; the last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from firmware.audio.bridge import Bridge, Devices, buffered_terms, capture_periods, latency_frames  # noqa: E402
from firmware.audio.config import SLIP_FRAMES, BridgeConfig  # noqa: E402
from firmware.testing.paced import ClockedPcm, RealClock, SimClock, tone  # noqa: E402

RATE = 48000

COACH = """
import sys, time
import numpy as np
from pathlib import Path
from firmware.audio.taps import TapReader
reader = TapReader(Path(sys.argv[1]))
a = np.random.default_rng(0).standard_normal((300, 300)).astype(np.float32)
frames = 0
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    while reader.receive(0) is not None:
        frames += 1
    a = np.tanh(a @ a * 0.01)  # inference stand-in: CPU flat out between frames
print(frames, reader.missed)
"""

BURNER = """
import sys, time
end = time.monotonic() + float(sys.argv[1])
x = 0
while time.monotonic() < end:
    x = (x * 1103515245 + 12345) % 2147483648
"""


def section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 70 - len(title)))


def bench_latency(config: BridgeConfig) -> dict[str, float]:
    section("Latency by configuration (one way, frames at 48 kHz)")
    terms = latency_frames(config)
    for name, frames in terms.items():
        print(f"  {name:22s} {frames:5d} frames  {1000 * frames / config.rate_hz:6.2f} ms")
    worst = sum(terms.values())
    typical = terms["buffered_target"] + terms["resampler_lookahead"]
    print(f"  {'typical (held target)':22s} {typical:5d} frames  {1000 * typical / config.rate_hz:6.2f} ms")
    print(f"  {'worst (+ dead band)':22s} {worst:5d} frames  {1000 * worst / config.rate_hz:6.2f} ms")
    parts = buffered_terms(config)
    print("  buffered_target covers (one cycle's top-up may need it all at once):")
    for name, frames in parts.items():
        print(f"    {name:24s} {frames:5d} frames  {1000 * frames / config.rate_hz:6.2f} ms")
    print(
        f"  one wake-up per cycle of {config.periods_per_cycle} x {config.period_frames}-frame periods ="
        f" {config.cycle_frames} frames ({1000 * config.cycle_s:.0f} ms, {1 / config.cycle_s:.0f} wake-ups/s);"
        f" a wake-up may be {1000 * config.playback_margin_frames / config.rate_hz:.1f} ms late before a playback runs dry"
    )
    return {
        "latency_ms": 1000 * worst / config.rate_hz,
        "latency_typical_ms": 1000 * typical / config.rate_hz,
        "cycle_ms": 1000 * config.cycle_s,
        "wakeups_per_s": 1 / config.cycle_s,
        "playback_margin_ms": 1000 * config.playback_margin_frames / config.rate_hz,
        "headroom_frames": float(parts["headroom"]),
    }


def bench_simulated(config: BridgeConfig, minutes: float) -> dict[str, float]:
    section(f"Simulated {minutes:g}-minute call, computer clock off by +-300 ppm")
    print(f"  {'host ppm':>8s} {'xruns':>6s} {'gaps':>5s} {'resync':>6s} {'fill min..max (frames)':>24s} {'smoothed':>16s} {'correction ppm':>16s} {'us/cycle':>9s} {'resampled':>9s}")  # bridge code only
    worst_fill = most_resampled = 0.0
    xruns_total = gaps_total = 0
    cpu_us = []
    for host_ppm in (300.0, -300.0):
        clock = SimClock()

        def pcm(name: str, direction: str, ppm: float, freq: float | None) -> ClockedPcm:
            periods = capture_periods(config) if direction == "capture" else config.periods
            source = tone(freq, RATE, config.period_frames) if freq else None
            return ClockedPcm(name, direction, clock, rate_hz=RATE, period_frames=config.period_frames, periods=periods, ppm=ppm, source=source)  # type: ignore[arg-type]

        pcms = [pcm("headset-in", "capture", 0, 440.0), pcm("headset-out", "playback", 0, None), pcm("host-in", "capture", host_ppm, 1000.0), pcm("host-out", "playback", host_ppm, None)]
        bridge = Bridge(replace(config, sched_fifo=False), Devices(*pcms), clock=clock, taps=False)
        settled = False
        while clock.now() < minutes * 60:
            bridge.cycle()
            if not settled and clock.now() >= min(60.0, minutes * 15):  # the first minute learns the drift
                bridge.rep.reset_fill_stats()
                bridge.buyer.reset_fill_stats()
                settled = True
        # this thread is not real-time, so on a busy machine it is preempted inside cycles:
        # the median cycle's work (bridge code and the simulated devices' calls) is robust
        cpu_us.append(float(np.median(bridge.processing_ms())) * 1000)
        xruns = sum(p.xruns for p in pcms)
        gaps = bridge.rep.underflows + bridge.buyer.underflows
        resyncs = bridge.rep.resyncs + bridge.buyer.resyncs
        xruns_total += xruns
        gaps_total += gaps + resyncs
        for leg in (bridge.rep, bridge.buyer):
            worst_fill = max(worst_fill, abs(leg.fill_min), abs(leg.fill_max))
            # output frames the drift correction resampled (the rest are copies of the input)
            slips = leg.stats()["drift_slips"]
            resampled = slips * (SLIP_FRAMES - 1) / leg.frames_out if config.drift_correction == "slips" else 1.0
            most_resampled = max(most_resampled, resampled)
            print(
                f"  {host_ppm:+8.0f} {xruns:6d} {gaps:5d} {resyncs:6d} {leg.name:>6s} {leg.fill_min:+7.1f}..{leg.fill_max:+7.1f}"
                f"   {leg.smoothed_min:+6.1f}..{leg.smoothed_max:+6.1f} {leg.controller.correction_ppm:+16.1f} {cpu_us[-1]:9.1f} {100 * resampled:8.1f}%"
            )
    print(f"  one period = {config.period_frames} frames; worst excursion {worst_fill:.1f} frames = {worst_fill / config.period_frames:.2f} periods")
    cycles_per_s = 1 / config.cycle_s
    print(
        f"  bridge code back to back (warm caches, no I/O; median cycle incl. simulated devices): {np.mean(cpu_us):.1f} us per cycle"
        f" = {np.mean(cpu_us) * cycles_per_s / 1e4:.2f} % of one core at {cycles_per_s:.0f} cycles/s"
    )
    return {
        "sim_minutes": minutes,
        "sim_resampled_fraction": most_resampled,
        "sim_xruns": xruns_total,
        "sim_gaps": gaps_total,
        "fill_error_max_frames": worst_fill,
        "fill_error_max_periods": worst_fill / config.period_frames,
        "sim_cycle_us": float(np.mean(cpu_us)),
        "sim_cpu_percent": float(np.mean(cpu_us)) * cycles_per_s / 1e4,
    }


def bench_fidelity(config: BridgeConfig) -> dict[str, float]:
    """What each drift correction does to a pure tone at 300 ppm: the strongest spectral
    component more than 5 Hz from the tone, relative to it. Slips move the phase by one
    sample every ~70 ms (a 14 Hz wobble of up to 21 us); continuous resampling does not."""
    from firmware.audio.drift import FractionalResampler, SampleFifo, SlipResampler

    section("Drift correction fidelity: a pure tone through 300 ppm of correction")
    ratio, n = 1 + 300e-6, RATE * 6
    figures: dict[str, float] = {}
    print(f"  {'correction':12s} {'tone':>8s} {'strongest spur':>16s} {'at':>10s}")
    for mode in ("slips", "continuous"):
        for tone_hz in (1000.0, 4000.0):
            resampler = SlipResampler(288) if mode == "slips" else FractionalResampler(288)
            signal = (0.5 * np.sin(2 * np.pi * tone_hz * np.arange(n) / RATE)).astype(np.float32)
            fifo, out, pieces = SampleFifo(4096), np.zeros(config.cycle_frames, dtype=np.float32), []
            for start in range(0, n - config.period_frames + 1, config.period_frames):
                fifo.push(signal[start : start + config.period_frames])
                while fifo.fill >= resampler.needed(ratio, len(out)) + 2:
                    resampler.pull(fifo, ratio, out)
                    pieces.append(out.copy())
            played = np.concatenate(pieces)[RATE : 5 * RATE]  # past the start, whole seconds
            spectrum = np.abs(np.fft.rfft(played * np.hanning(len(played))))
            freqs = np.fft.rfftfreq(len(played), 1 / RATE)
            away = np.abs(freqs - freqs[spectrum.argmax()]) > 5.0
            spur_db = 20 * np.log10(spectrum[away].max() / spectrum.max())
            print(f"  {mode:12s} {tone_hz:6.0f} Hz {spur_db:13.1f} dB {freqs[away][spectrum[away].argmax()]:8.1f} Hz")
            figures[f"{mode}_spur_{int(tone_hz) // 1000}khz_db"] = float(spur_db)
    print(f"  the device runs {config.drift_correction!r} ([bridge] drift_correction)")
    return figures


def bench_machine(config: BridgeConfig) -> dict[str, float]:
    """How much a sleep of one cycle costs the next piece of work on this machine (cold caches
    after other processes ran; mitigations on context switches in a VM): the same resampler
    pull timed back to back and right after sleeping one cycle."""
    from firmware.audio.drift import FractionalResampler, SampleFifo

    n = config.cycle_frames
    section(f"Machine reference: one {n}-frame resampler pull, warm vs after a {1000 * config.cycle_s:.0f} ms sleep")
    fifo, resampler = SampleFifo(4096), FractionalResampler(n)
    out = np.zeros(n, dtype=np.float32)
    block = np.zeros(n, dtype=np.float32)
    timings: dict[str, list[int]] = {"warm": [], "after_sleep": []}
    for label, pause in (("warm", 0.0), ("after_sleep", config.cycle_s)):
        for _ in range(500):
            fifo.push(block)
            if pause:
                time.sleep(pause)
            start = time.perf_counter_ns()
            resampler.pull(fifo, 1.0003, out)
            timings[label].append(time.perf_counter_ns() - start)
    warm_us = float(np.median(timings["warm"])) / 1000
    cold_us = float(np.median(timings["after_sleep"])) / 1000
    print(f"  warm {warm_us:.1f} us, after a {1000 * config.cycle_s:.0f} ms sleep {cold_us:.1f} us: x{cold_us / warm_us:.1f}")
    return {"machine_pull_warm_us": warm_us, "machine_pull_after_sleep_us": cold_us}


def bench_io_floor(config: BridgeConfig, seconds: float) -> dict[str, float]:
    """The same real-time thread doing only the I/O of a cycle (sleep to the next deadline, read
    both captures' whole periods, top both playbacks up; no FIFO, resampling, taps or control):
    the floor under the bridge's CPU figure on this machine, measured under the same load."""
    import threading

    from firmware.testing.testbed import clocked_devices

    devices = clocked_devices(config, RealClock())
    pcms = [devices.headset_capture, devices.headset_playback, devices.host_capture, devices.host_playback]
    silence = np.zeros(config.period_frames * config.periods, dtype=np.float32)
    raw = memoryview(np.zeros(config.period_frames * 16, dtype=np.float32)).cast("B")
    play_target = config.cycle_frames + config.playback_margin_frames
    result: dict[str, float] = {}

    def loop() -> None:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(config.sched_priority))
        except OSError:
            pass
        for pcm in pcms:
            pcm.open()
        cpu0, wall0 = time.thread_time(), time.monotonic()
        due = wall0
        while due - wall0 < seconds:
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            due += config.cycle_s
            for capture, playback in ((devices.headset_capture, devices.host_playback), (devices.host_capture, devices.headset_playback)):
                unread, queued = capture.queued_frames(), playback.queued_frames()
                offset = 0
                for _ in range(int(unread) // config.period_frames):
                    offset += 4 * max(0, capture.read_into(raw[offset:]))
                n = int(play_target - queued)
                if n > 0:
                    playback.write(silence[:n])
        wall = time.monotonic() - wall0
        harness = sum(p.harness_ns for p in pcms if isinstance(p, ClockedPcm)) / 1e9
        result["io_floor_cpu_percent"] = 100 * (time.thread_time() - cpu0 - harness) / wall
        for pcm in pcms:
            pcm.close()

    worker = threading.Thread(target=loop)
    worker.start()
    worker.join()
    return result


def bench_realtime(config: BridgeConfig, seconds: float, load: bool, host_ppm: float) -> dict[str, float]:
    from firmware.testing.testbed import alsa_config_path, clocked_devices, write_alsa_config

    section(f"Real time, {seconds:g} s on real libasound (file/null PCMs), computer clock {host_ppm:+g} ppm, coach {'flat out' if load else 'absent'}")
    root = Path(tempfile.mkdtemp(prefix="parallax-bench-", dir="/dev/shm" if os.access("/dev/shm", os.W_OK) else None))
    sock = root / "taps.sock"
    config = replace(config, tap_socket=sock, call_state_file=root / "call_state.json")
    files = write_alsa_config(root, config, record_playback=False)  # played audio is not checked here
    os.environ["ALSA_CONFIG_PATH"] = alsa_config_path(files)
    t = np.arange(int(RATE * (seconds + 5))) / RATE
    (np.sin(2 * np.pi * 440 * t) * 0.25).astype("<f4").tofile(files.headset_in)  # the testbed's files are float32
    (np.sin(2 * np.pi * 1000 * t) * 0.25).astype("<f4").tofile(files.host_in)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    helpers = []
    if load:
        busy_s = str(seconds + min(10.0, seconds) + 3)  # through the I/O floor and the bridge run
        helpers.append(subprocess.Popen([sys.executable, "-c", COACH, str(sock), busy_s], stdout=subprocess.PIPE, text=True, env=env))
        helpers.append(subprocess.Popen([sys.executable, "-c", BURNER, busy_s], env=env))
        time.sleep(1.0)  # the coach binds its socket
    floor = bench_io_floor(config, min(10.0, seconds))  # same load, same devices
    clock = RealClock()
    # the computer's clock off the headset's, so the drift resampler works as on a real call
    devices = clocked_devices(config, clock, host_ppm=host_ppm)
    bridge = Bridge(config, devices, clock=clock)
    bridge.start()
    time.sleep(seconds)
    bridge.stop()
    coach_frames, coach_missed = -1, -1
    for proc in helpers:
        out, _ = proc.communicate(timeout=30)
        if out:
            coach_frames, coach_missed = (int(x) for x in out.split())
    for path in root.iterdir():
        path.unlink()
    root.rmdir()
    pcms = [devices.headset_capture, devices.headset_playback, devices.host_capture, devices.host_playback]
    harness_s = sum(p.harness_ns for p in pcms if isinstance(p, ClockedPcm)) / 1e9
    wall = bridge.thread_wall_s or seconds
    total_pct = 100 * bridge.thread_cpu_s / wall
    own_pct = 100 * max(0.0, bridge.thread_cpu_s - harness_s) / wall
    proc_ms = bridge.processing_ms()
    xruns = sum(p.xruns for p in pcms if isinstance(p, ClockedPcm))
    stats = bridge.stats()
    gaps_ms = bridge.cycle_gaps_ms()
    late = bridge.late_cycles
    lateness_ms = gaps_ms - 1000 * config.cycle_s
    worst_late_ms = float(lateness_ms.max()) if len(lateness_ms) else 0.0
    # every ms of margin is a ms of latency (the buffered target grows with it)
    margin_ms = 1000 * config.playback_margin_frames / RATE
    worst_latency_ms = 1000 * sum(latency_frames(config).values()) / RATE
    worst_with_margin_ms = worst_latency_ms + max(0.0, worst_late_ms - margin_ms)
    budget_margin_ms = margin_ms + 10.0 - worst_latency_ms
    rows = [
        ("real-time thread (SCHED_FIFO)", str(bridge.realtime)),
        ("cycles", f"{bridge.cycles} ({bridge.cycles / wall:.0f}/s)"),
        ("processing p50 / p99 / max", f"{np.percentile(proc_ms, 50):.3f} / {np.percentile(proc_ms, 99):.3f} / {proc_ms.max():.3f} ms"),
        ("bridge thread CPU, total", f"{total_pct:.2f} % of one core"),
        ("  of which software clock", f"{100 * harness_s / wall:.2f} %"),
        ("  bridge itself", f"{own_pct:.2f} %"),
        ("  I/O floor (wake, read, write)", f"{floor['io_floor_cpu_percent']:.2f} % (same thread doing only a cycle's I/O)"),
        ("  bridge above the I/O floor", f"{own_pct - floor['io_floor_cpu_percent']:.2f} %"),
        ("xruns (device level)", str(xruns)),
        ("gaps (FIFO ran dry) / resyncs", f"{bridge.rep.underflows + bridge.buyer.underflows} / {bridge.rep.resyncs + bridge.buyer.resyncs}"),
        ("longest gap between cycles", f"{stats['max_cycle_gap_ms']} ms (cycle {1000 * config.cycle_s:.0f} ms, playback margin {1000 * config.playback_margin_frames / RATE:.1f} ms)"),
        ("cycle gaps p50 / p99 / p99.9", f"{np.percentile(gaps_ms, 50):.2f} / {np.percentile(gaps_ms, 99):.2f} / {np.percentile(gaps_ms, 99.9):.2f} ms"),
        ("wake-ups later than the margin", f"{late} (gap > cycle + margin = {1000 * config.cycle_s + 1000 * config.playback_margin_frames / RATE:.1f} ms)"),
        ("wake-ups late by more than", "  ".join(f">{x:g} ms: {int(np.sum(lateness_ms > x))}" for x in (1, 2, 5, 10, 20))),
        ("margin to cover the worst", f"{worst_late_ms:.1f} ms late: one-way worst {worst_with_margin_ms:.1f} ms (budget 10 ms allows {budget_margin_ms:.1f} ms of margin)"),
        ("drift correction rep / buyer", f"{bridge.rep.controller.correction_ppm:+.0f} / {bridge.buyer.controller.correction_ppm:+.0f} ppm ({config.drift_correction})"),
        ("drift slips rep / buyer", f"{stats['rep']['drift_slips']} / {stats['buyer']['drift_slips']}"),  # type: ignore[index]
        ("taps sent / dropped", f"{stats.get('taps', {}).get('sent')} / {stats.get('taps', {}).get('dropped')}"),
        ("coach received / missed", f"{coach_frames} / {coach_missed}"),
    ]
    for name, value in rows:
        print(f"  {name:32s} {value}")
    return {
        "rt_seconds": seconds,
        "rt_sched_fifo": bridge.realtime,
        "p50_ms": float(np.percentile(proc_ms, 50)),
        "p99_ms": float(np.percentile(proc_ms, 99)),
        "max_ms": float(proc_ms.max()),
        "cpu_percent": own_pct,
        "cpu_percent_with_harness": total_pct,
        "rt_xruns": xruns,
        "rt_gaps": bridge.rep.underflows + bridge.buyer.underflows,
        "rt_max_cycle_gap_ms": float(stats["max_cycle_gap_ms"]),  # type: ignore[arg-type]
        "rt_cycle_gap_p999_ms": float(np.percentile(gaps_ms, 99.9)),
        "rt_late_wakeups": late,
        "rt_worst_lateness_ms": worst_late_ms,
        "rt_latency_to_cover_worst_ms": worst_with_margin_ms,
        "load_avg_1min": os.getloadavg()[0],
        "rt_taps_dropped": float(stats.get("taps", {}).get("dropped", 0)),  # type: ignore[union-attr]
        **floor,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="simulated call length per drift sign")
    parser.add_argument("--realtime-seconds", type=float, default=30.0)
    parser.add_argument("--no-load", action="store_true", help="real-time run without the coach and CPU burner")
    parser.add_argument("--host-ppm", type=float, default=300.0, help="computer clock offset in the real-time run")
    parser.add_argument("--drift-correction", choices=("slips", "continuous"), default=BridgeConfig.drift_correction, help="how the bridge follows drift (default: the device's)")
    args = parser.parse_args()
    config = BridgeConfig(drift_correction=args.drift_correction)
    figures: dict[str, float] = {}
    figures.update(bench_latency(config))
    figures.update(bench_fidelity(config))
    figures.update(bench_machine(config))
    figures.update(bench_realtime(config, args.realtime_seconds, load=not args.no_load, host_ppm=args.host_ppm))
    figures.update(bench_simulated(config, args.minutes))
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
