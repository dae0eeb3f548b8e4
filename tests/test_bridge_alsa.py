"""The bridge on real pyalsaaudio/libasound (file and null PCMs), paced in real time.

Every scenario runs through ``without_stalls``: a run in which the (virtual) machine held the
real-time thread off the CPU for longer than the playback margin is repeated, not judged.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bridge_support import (  # noqa: F401  (_alsa_session and rig are fixtures)
    RATE,
    BridgeRig,
    _alsa_session,
    aligned,
    random_audio,
    rig,
    socket_is_bound,
    spawn_coach,
    without_stalls,
)

from firmware.audio.bridge import Bridge
from firmware.audio.callstate import read_state
from firmware.audio.config import BridgeConfig
from firmware.audio.service import CallStatePublisher
from firmware.audio.taps import TapPacket, TapReader


def run_for(bridge: Bridge, seconds: float) -> None:
    bridge.start()
    try:
        time.sleep(seconds)
    finally:
        bridge.stop()


def assert_exact(output: np.ndarray, source: np.ndarray, config: BridgeConfig) -> None:
    start, offset = aligned(output, source)
    # Priming plays silence until the buffered total reaches the target, then skips the
    # excess (less than the cycle that crossed it): the first sample played left the
    # capture one target latency earlier (both devices start within the first cycle).
    assert offset <= config.cycle_frames + config.period_frames
    assert start <= config.target_buffered_frames + config.cycle_frames + config.period_frames
    assert abs(start - offset - config.target_buffered_frames) <= config.period_frames
    played = output[start:]
    np.testing.assert_array_equal(played, source[offset : offset + len(played)])


def assert_clean(bridge: Bridge) -> None:
    for leg in (bridge.rep, bridge.buyer):
        assert leg.underflows == 0, leg.stats()
        assert leg.capture_xruns == 0 and leg.playback_xruns == 0, leg.stats()
        assert leg.resyncs == 0, leg.stats()
        assert leg.controller.correction_ppm == 0.0, leg.stats()


def test_passthrough_is_sample_exact_both_ways(rig: BridgeRig) -> None:
    headset, host = random_audio(5, 1), random_audio(5, 2)

    def scenario() -> tuple[Bridge, None]:
        rig.write_inputs(headset, host)
        bridge, _ = rig.bridge(taps=False)
        run_for(bridge, 2.0)
        return bridge, None

    bridge, _ = without_stalls(rig.config, scenario)
    assert_clean(bridge)
    to_host, to_headset = rig.output("host"), rig.output("headset")
    assert len(to_host) >= 1.8 * RATE and len(to_headset) >= 1.8 * RATE
    assert_exact(to_host, headset, rig.config)  # the rep's voice to the call
    assert_exact(to_headset, host, rig.config)  # the buyer into the rep's ear
    assert len(bridge.processing_ms()) == bridge.cycles


def sines(seconds: float, freqs: tuple[float, float]) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return np.round(8000 * (np.sin(2 * np.pi * freqs[0] * t) + np.sin(2 * np.pi * freqs[1] * t))).astype(np.int16)


def expected_tap(n: int, freqs: tuple[float, float]) -> np.ndarray:
    # tap sample k stands for input sample 3k - 24 (the decimator's 49-tap filter delay)
    t = (3 * np.arange(n) - 24) / RATE
    return (8000 / 32768) * (np.sin(2 * np.pi * freqs[0] * t) + np.sin(2 * np.pi * freqs[1] * t))


def test_taps_carry_both_sides_at_16k_stamped_with_call_time(rig: BridgeRig) -> None:
    rep_f, buyer_f = (440.0, 1230.0), (350.0, 2900.0)

    def scenario() -> tuple[Bridge, tuple[list[TapPacket], int]]:
        rig.write_inputs(sines(5, rep_f), sines(5, buyer_f))
        with TapReader(rig.config.tap_socket) as reader:
            bridge, _ = rig.bridge()
            run_for(bridge, 2.0)
            packets = list(reader.packets(idle_timeout_s=0.3))
        return bridge, (packets, reader.missed)

    bridge, (packets, missed) = without_stalls(rig.config, scenario)
    assert_clean(bridge)
    writer = bridge.tap_writer
    assert writer is not None and writer.seq >= 90
    # what the coach missed is exactly what the bridge counted as dropped
    assert missed + (writer.seq - 1 - packets[-1].seq) + packets[0].seq == writer.dropped
    assert len(packets) >= 85
    rep = np.concatenate([p.rep for p in packets])
    buyer = np.concatenate([p.buyer for p in packets])
    if writer.dropped == 0:
        np.testing.assert_allclose(rep[16:], expected_tap(len(rep), rep_f)[16:], atol=0.01)
        np.testing.assert_allclose(buyer[16:], expected_tap(len(buyer), buyer_f)[16:], atol=0.01)
    else:  # a starved test machine dropped some frames on the way: compare frame by frame
        for p in packets[1:]:
            k = np.arange(p.seq * 320, (p.seq + 1) * 320)
            np.testing.assert_allclose(p.rep, expected_tap(k[-1] + 1, rep_f)[k], atol=0.01)
    # the tones are speech-loud and the host streams: a call starts, frames carry call time
    active = [p for p in packets if p.call_active]
    assert active and len({p.call_id for p in active}) == 1
    assert active[0].seq < 25  # within half a second
    for a, b in zip(active, active[1:]):
        assert b.call_t - a.call_t == pytest.approx(0.02 * (b.seq - a.seq), abs=1e-9)
    assert active[0].to_frame().t == pytest.approx(active[0].call_t)


def test_absent_coach_never_touches_passthrough(rig: BridgeRig) -> None:
    headset, host = random_audio(5, 3), random_audio(5, 4)

    def scenario() -> tuple[Bridge, None]:
        rig.write_inputs(headset, host)
        bridge, _ = rig.bridge()
        run_for(bridge, 1.0)  # nobody listens
        return bridge, None

    bridge, _ = without_stalls(rig.config, scenario)
    assert bridge.tap_writer is not None
    assert bridge.tap_writer.dropped_absent >= 40 and bridge.tap_writer.sent == 0
    assert_clean(bridge)
    assert_exact(rig.output("host"), headset, rig.config)
    assert_exact(rig.output("headset"), host, rig.config)


def test_hung_coach_never_touches_passthrough(rig: BridgeRig) -> None:
    headset, host = random_audio(5, 3), random_audio(5, 4)

    def scenario() -> tuple[Bridge, None]:
        rig.write_inputs(headset, host)
        hung = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # bound, never read
        hung.bind(str(rig.config.tap_socket))
        try:
            bridge, _ = rig.bridge()
            run_for(bridge, 1.5)
        finally:
            hung.close()
            rig.config.tap_socket.unlink()
        return bridge, None

    bridge, _ = without_stalls(rig.config, scenario)
    assert bridge.tap_writer is not None and bridge.tap_writer.dropped_busy >= 40
    assert_clean(bridge)
    assert_exact(rig.output("host"), headset, rig.config)
    assert_exact(rig.output("headset"), host, rig.config)


def test_coach_killed_and_restarted_causes_no_gap(rig: BridgeRig) -> None:
    headset, host = random_audio(6, 5), random_audio(6, 6)
    path = rig.config.tap_socket

    def scenario() -> tuple[Bridge, tuple[list[int], list[int]]]:
        rig.write_inputs(headset, host)
        first = spawn_coach(path)
        bridge, _ = rig.bridge()
        bridge.start()
        try:
            time.sleep(1.0)
            os.kill(first.pid, signal.SIGKILL)
            first.wait()
            assert path.exists() and not socket_is_bound(path)  # a stale socket file stays behind
            time.sleep(0.5)
            second = spawn_coach(path)
            time.sleep(1.0)
        finally:
            bridge.stop()
        second.terminate()
        out, _ = second.communicate(timeout=5)
        assert first.stdout is not None
        seen_first = [int(x) for x in first.stdout.read().split()]
        first.stdout.close()
        return bridge, (seen_first, [int(x) for x in out.split()])

    bridge, (seen_first, seen_second) = without_stalls(rig.config, scenario)
    assert len(seen_first) >= 30 and len(seen_second) >= 30  # both lives of the coach got frames
    assert bridge.tap_writer is not None and bridge.tap_writer.dropped_absent >= 10  # while it was dead
    assert_clean(bridge)
    assert_exact(rig.output("host"), headset, rig.config)
    assert_exact(rig.output("headset"), host, rig.config)


def test_headset_unplugged_mid_call_is_reopened_while_the_host_side_runs_on(rig: BridgeRig) -> None:
    headset, host = random_audio(8, 7), random_audio(8, 8)
    files = rig.files

    def scenario() -> tuple[Bridge, dict[str, Any]]:
        rig.write_inputs(headset, host)
        with TapReader(rig.config.tap_socket) as reader:
            bridge, pcms = rig.bridge()
            headset_in, headset_out, _, host_out = pcms
            bridge.start()
            started = time.monotonic()
            try:
                time.sleep(1.0)
                # the USB headset goes: its PCMs fail, and reopening fails in libasound itself
                hidden = files.headset_in.with_suffix(".gone")
                files.headset_in.rename(hidden)
                headset_in.unplug()
                headset_out.unplug()
                time.sleep(0.8)
                hidden.rename(files.headset_in)
                headset_in.replug()
                headset_out.replug()
                time.sleep(1.2)
            finally:
                bridge.stop()
            elapsed = time.monotonic() - started
            packets = list(reader.packets(idle_timeout_s=0.3))
        return bridge, {"elapsed": elapsed, "packets": packets, "missed": reader.missed, "host_out_xruns": host_out.xruns}

    bridge, run = without_stalls(rig.config, scenario)
    rep_leg, buyer_leg = bridge.rep, bridge.buyer
    assert rep_leg.capture.failures >= 1 and buyer_leg.playback.failures >= 1
    assert rep_leg.capture.opens >= 2 and buyer_leg.playback.opens >= 2  # reopened
    assert "No such file or directory" in rep_leg.capture.last_error or "No such device" in rep_leg.capture.last_error
    # the computer's side never stopped: it was fed silence for the gap, without an xrun
    assert run["host_out_xruns"] == 0 and rep_leg.playback_xruns == 0
    to_host = rig.output("host")
    assert len(to_host) >= (run["elapsed"] - 0.3) * RATE
    gap = to_host[int(1.4 * RATE) : int(1.6 * RATE)]
    assert not gap.any()
    # after the replug the rep's voice flows again (the file PCM restarts from its beginning)
    tail = to_host[-RATE // 2 :]
    start, offset = aligned(tail, headset)
    np.testing.assert_array_equal(tail[start:], headset[offset : offset + len(tail) - start])
    # the buyer side kept flowing to the coach the whole time; the rep side was marked absent
    writer = bridge.tap_writer
    assert writer is not None and writer.seq >= (run["elapsed"] - 0.5) / 0.02
    packets = run["packets"]
    assert run["missed"] + packets[0].seq + (writer.seq - 1 - packets[-1].seq) == writer.dropped
    assert all(p.buyer_present for p in packets)
    assert any(not p.rep_present for p in packets)


def test_call_state_is_published_and_ends_when_the_host_closes_the_stream(rig: BridgeRig) -> None:
    def scenario() -> tuple[Bridge, tuple[Any, Any]]:
        rig.write_inputs(sines(6, (300.0, 800.0)), sines(6, (500.0, 1500.0)))
        bridge, pcms = rig.bridge(taps=False)
        publisher = CallStatePublisher(bridge)
        publisher.start()
        bridge.start()
        try:
            time.sleep(0.8)
            during = read_state(rig.config.call_state_file)
            pcms[2].unplug()  # the computer stops streaming to the gadget
            time.sleep(1.2)
            after = read_state(rig.config.call_state_file)
        finally:
            bridge.stop()
            publisher.stop()
        return bridge, (during, after)

    _, (during, after) = without_stalls(rig.config, scenario)
    assert during is not None and during.active and during.call_id > 0
    assert after is not None and not after.active
    assert after.call_id == during.call_id and after.reason == "host closed the stream"
    assert after.t > 0.3  # the call's length
    final = read_state(rig.config.call_state_file)
    assert final is not None and not final.active and final.reason == "bridge stopped"


PLUG_CHECK = """
import time
import numpy as np
from firmware.audio.pcm import AlsaPcm
pcm = AlsaPcm("parallax_plug_check", "playback", rate_hz=48000, channels=1, period_frames=48, periods=6)
pcm.open()
samples = np.concatenate([np.arange(-32768, 32768) / 32768, [1.0, 1.5, -1.0, -1.5, 1e9, -1e9]]).astype(np.float32)
i = 0
while i < len(samples):
    written = pcm.write(samples[i : i + 240])
    i += written
    if not written:
        time.sleep(0.002)
pcm.close()
"""


def test_box_plug_turns_float_samples_into_s16_exactly_and_saturates(tmp_path: Path) -> None:
    # board/asound.conf's PCMs are plugs over S16 cards; the bridge writes float32 to them
    out = tmp_path / "out.raw"
    conf = tmp_path / "asound.conf"
    conf.write_text(
        'pcm.parallax_plug_check {\n  type plug\n  slave {\n    pcm "check_s16"\n    format S16_LE\n  }\n}\n'
        f'pcm.check_s16 {{\n  type file\n  slave.pcm "null"\n  file "{out}"\n  format "raw"\n}}\n'
    )
    env = {**os.environ, "ALSA_CONFIG_PATH": f"/usr/share/alsa/alsa.conf:{conf}"}
    subprocess.run([sys.executable, "-c", PLUG_CHECK], check=True, timeout=60, env=env)
    played = np.fromfile(out, dtype="<i2")
    np.testing.assert_array_equal(played[:65536], np.arange(-32768, 32768))  # every S16 value, exactly
    np.testing.assert_array_equal(played[65536:], [32767, 32767, -32768, -32768, 32767, -32768])
