"""`parallax bridge` and `parallax run`'s live loop: latency arithmetic, bad config, missing
devices, and taps -> one session per call."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from firmware.audio.bridge import buffered_terms, latency_frames
from firmware.audio.config import BridgeConfig
from firmware.audio.frames import FRAME_SAMPLES, CallFrame
from firmware.audio.live import LiveCoach, run_live
from firmware.audio.taps import TapPacket, TapReader, TapWriter
from firmware.bus import EventBus
from firmware.cli.main import main
from firmware.events import CallState, Event


def test_configured_latency_is_within_10_ms(capsys: pytest.CaptureFixture[str]) -> None:
    config = BridgeConfig()
    terms = latency_frames(config)
    assert terms["buffered_target"] == config.target_buffered_frames
    assert 1000 * sum(terms.values()) / config.rate_hz <= 10.0
    # the target covers a cycle, the playback margin, the pull's look-ahead, an unread
    # capture period and the dead band, with headroom to spare
    parts = buffered_terms(config)
    assert sum(parts.values()) == config.target_buffered_frames and parts["headroom"] >= 0
    assert parts["cycle"] == config.cycle_frames == 2 * config.period_frames == 192  # 4 ms: 250 wake-ups/s
    assert main(["bridge", "--latency"]) == 0
    out = capsys.readouterr().out
    assert "worst one-way" in out and f"{1000 * sum(terms.values()) / 48000:.2f} ms" in out


@pytest.mark.parametrize(
    "toml, message",
    [
        ("[bridge]\nperiod_frames = 5\n", "period_frames"),
        ("[bridge]\ntarget_buffered_frames = 100\n", "target_buffered_frames"),
        ("[bridge]\nrate_hz = 44100\n", "rate_hz"),
        ("[bridge]\nsched_priority = 0\n", "sched_priority"),
        ("[bridge]\nheadset_capture = 3\n", "headset_capture"),
        ("[bridge]\ndrift_correction = \"drop\"\n", "drift_correction"),
        # slips follow at most one sample per 512 frames (1953 ppm); continuous resampling more
        ("[bridge]\nmax_correction_ppm = 3000.0\n", "max_correction_ppm"),
    ],
)
def test_bad_bridge_config_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], toml: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    assert main(["--config", str(path), "bridge", "--duration", "0.1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("parallax: error:") and message in err and "Traceback" not in err


def test_bridge_process_survives_missing_devices_and_publishes_state(tmp_path: Path) -> None:
    config = tmp_path / "parallax.toml"
    state = tmp_path / "call_state.json"
    config.write_text(
        "[bridge]\n"
        'headset_capture = "no_such_headset_in"\nheadset_playback = "no_such_headset_out"\n'
        'host_capture = "no_such_host_in"\nhost_playback = "no_such_host_out"\n'
        f'tap_socket = "{tmp_path}/taps.sock"\ncall_state_file = "{state}"\n'
        "sched_fifo = false\nreopen_initial_s = 0.05\nreopen_max_s = 0.2\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "firmware", "--config", str(config), "bridge", "--duration", "1.0"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "ALSA_CONFIG_PATH": "/usr/share/alsa/alsa.conf"},
    )
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout.strip().splitlines()[-1])
    # paced by its timer (4 ms cycles) with no device at all
    assert stats["cycles"] > 0.6 * 1.0 / BridgeConfig().cycle_s
    assert stats["idle_cycles"] == stats["cycles"]
    assert stats["rep"]["frames_in"] == 0
    assert "Traceback" not in proc.stderr
    assert json.loads(state.read_text())["reason"] == "bridge stopped"


class RecordingSession:
    def __init__(self, log: list[Any]) -> None:
        self.frames: list[CallFrame] = []
        self.ended = False
        self.closed = False
        log.append(self)

    def feed(self, frame: CallFrame) -> None:
        self.frames.append(frame)

    def end_call(self, extra: dict[str, object] | None = None) -> None:
        self.ended = True

    def close(self) -> None:
        self.closed = True


def packet(seq: int, call_id: int, call_t: float, value: float = 0.1) -> TapPacket:
    samples = np.full(FRAME_SAMPLES, value, dtype=np.float32)
    return TapPacket(seq=seq, stream_t=seq * 0.02, call_id=call_id, call_t=call_t, call_active=call_id != 0, rep_present=True, buyer_present=True, rep=samples, buyer=samples)


def test_live_coach_opens_one_session_per_call_and_fills_gaps() -> None:
    sessions: list[RecordingSession] = []
    bus = EventBus()
    events: list[Event] = []
    bus.subscribe(events.append)
    coach = LiveCoach(lambda call_id: RecordingSession(sessions), bus)
    coach.handle(packet(0, 0, 0.0))  # no call yet: nothing opened
    assert not sessions
    for seq in range(1, 6):
        coach.handle(packet(seq, 11, (seq - 1) * 0.02))
    coach.handle(packet(9, 11, 8 * 0.02))  # 3 frames lost on the way: replaced by silence
    coach.handle(packet(10, 0, 0.0))  # the bridge ended the call
    coach.handle(packet(11, 12, 0.0))  # and the next one starts
    assert len(sessions) == 2
    first = sessions[0]
    assert first.ended and first.closed
    assert [round(f.t, 3) for f in first.frames] == [round(i * 0.02, 3) for i in range(9)]
    assert [bool(f.rep.any()) for f in first.frames] == [True] * 5 + [False] * 3 + [True]
    assert coach.gap_frames_filled == 3
    states = [e for e in events if isinstance(e, CallState)]
    assert [(s.active, s.call_id) for s in states] == [(True, 11), (False, 11), (True, 12)]
    coach.end("test over")
    assert sessions[1].ended and sessions[1].closed


def test_run_live_ends_the_call_when_taps_stop(tmp_path: Path) -> None:
    sessions: list[RecordingSession] = []
    bus = EventBus()
    coach = LiveCoach(lambda call_id: RecordingSession(sessions), bus)
    stop = threading.Event()
    with TapReader(tmp_path / "taps.sock") as reader:
        worker = threading.Thread(target=run_live, args=(reader, coach, stop), kwargs={"idle_end_s": 0.3})
        worker.start()
        writer = TapWriter(tmp_path / "taps.sock", 48000)
        block = np.full(960, 3000 / 32768, dtype=np.float32)
        for _ in range(10):
            writer.add_rep(block)
            writer.add_buyer(block)
            writer.flush(call_id=99, call_t0=0.0)
        writer.close()
        deadline = time.monotonic() + 5
        while not (sessions and sessions[0].ended) and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        worker.join(5)
    assert len(sessions) == 1 and sessions[0].ended and len(sessions[0].frames) == 10
    assert sessions[0].frames[0].rep[100] == pytest.approx(3000 / 32768, rel=0.05)


def test_audio_thread_alone_is_pinned_and_made_real_time_when_asked() -> None:
    from firmware.audio.bridge import Bridge, Devices
    from firmware.testing.paced import ClockedPcm, SimClock

    cpu = min(os.sched_getaffinity(0))
    clock = SimClock()

    def pcm(name: str, direction: str) -> ClockedPcm:
        return ClockedPcm(name, direction, clock, rate_hz=48000, period_frames=96, periods=3)  # type: ignore[arg-type]

    bridge = Bridge(BridgeConfig(audio_cpu=cpu, sched_priority=5), Devices(pcm("a", "capture"), pcm("b", "playback"), pcm("c", "capture"), pcm("d", "playback")), clock=clock, taps=False)
    seen: dict[str, Any] = {}

    def audio_thread() -> None:
        seen["realtime"] = bridge._enter_realtime()
        seen["affinity"] = os.sched_getaffinity(0)
        seen["policy"] = os.sched_getscheduler(0)

    before = os.sched_getaffinity(0)
    worker = threading.Thread(target=audio_thread)
    worker.start()
    worker.join()
    assert seen["affinity"] == {cpu}
    assert os.sched_getaffinity(0) == before  # the calling thread is untouched
    assert os.sched_getscheduler(0) == os.SCHED_OTHER
    # SCHED_FIFO where this machine permits it; otherwise a warning and best effort
    assert seen["realtime"] == (seen["policy"] == os.SCHED_FIFO)
