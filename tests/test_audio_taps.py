"""Tap socket: 20 ms frames at 16 kHz, never blocking the writer; call-state detection and file."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from firmware.audio.callstate import CallDetector, read_state, wait_until_idle, write_state
from firmware.audio.frames import FRAME_SAMPLES
from firmware.audio.taps import PACKET_BYTES, Decimator, TapReader, TapWriter, as_bytes, decode_packet
from firmware.errors import AudioDeviceError, EventSchemaError
from firmware.events import CallState, parse_event

RATE = 48000


def tone(freq: float, n: int, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(n) / RATE)).astype(np.float32)


def decimate(signal: np.ndarray, block: int = 96) -> np.ndarray:
    """One row through the tap decimator, a block at a time, each output taken as soon as it is complete."""
    dec = Decimator(RATE, 4 * block)
    pieces = []
    for i in range(0, len(signal), block):
        dec.push(0, as_bytes(signal[i : i + block]))
        out = np.zeros((1, dec.pending(0) // 3), dtype=np.float32)
        dec.emit(out)
        pieces.append(out[0])
    return np.concatenate(pieces)


def test_decimator_keeps_speech_band_and_rejects_what_would_alias() -> None:
    n = RATE
    passed = decimate(tone(1000, n))
    k = np.arange(len(passed))
    delay = 8  # 49-tap filter: 24 input samples = 8 output samples
    expected = 0.5 * np.sin(2 * np.pi * 1000 * (k - delay) / 16000)
    assert len(passed) == n // 3
    assert np.max(np.abs(passed[50:] - expected[50:])) < 5e-3
    aliased = decimate(tone(11000, n))  # would fold to 5 kHz
    assert np.sqrt(np.mean(aliased[50:] ** 2)) < 0.5 / np.sqrt(2) * 10 ** (-40 / 20)


def test_decimator_output_does_not_depend_on_block_size() -> None:
    signal = np.random.default_rng(1).standard_normal(9600).astype(np.float32)
    np.testing.assert_allclose(decimate(signal, 96), decimate(signal, 960), atol=1e-6)


def test_both_sides_decimate_together_exactly_as_the_filter_defines(tmp_path: Path) -> None:
    # Sides arrive in different block sizes and one runs ahead; frames are decimated jointly,
    # a frame at a time, while the buffer compacts many times: every output must still be
    # the low-pass filter applied to that side's own stream and kept every third sample.
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((2, 48000)).astype(np.float32)
    dec = Decimator(RATE, 4800, rows=2)
    kernel = dec._kernel.astype(np.float64)
    outs: list[np.ndarray] = []
    ia = ib = 0
    while ia < len(a) or ib < len(b):
        if ia < len(a):
            dec.push(0, as_bytes(a[ia : ia + 96]))
            ia += 96
        if ib < len(b) and ia > 3000:  # the second side starts late, in other blocks
            dec.push(1, as_bytes(b[ib : ib + 104]))
            ib += 104
        while dec.pending(0) >= 960 and dec.pending(1) >= 960:
            out = np.zeros((2, 320), dtype=np.float32)
            dec.emit(out)
            outs.append(out)
    got = np.concatenate(outs, axis=1)
    for row, signal in enumerate((a, b)):
        full = np.convolve(np.concatenate([np.zeros(48), signal]).astype(np.float64), kernel[::-1], mode="valid")
        expected = full[::3][: got.shape[1]]
        np.testing.assert_allclose(got[row], expected, atol=2e-5)
    assert got.shape[1] >= 15000 and dec._compactions >= 5


def test_a_side_far_ahead_keeps_its_newest_samples() -> None:
    dec = Decimator(RATE, 960, rows=2)
    ramp = np.arange(3000, dtype=np.float32)
    for i in range(0, 3000, 100):  # the other side never arrives and nobody emits
        dec.push(0, as_bytes(ramp[i : i + 100]))
    assert dec.pending(0) == 960 and dec.pending(1) == 0
    dec.pad(1, 960)
    out = np.zeros((2, 320), dtype=np.float32)
    dec.emit(out)
    # the kept samples are the newest 960 (2040..2999): their filtered level, not the oldest
    # (output i is centred on pending sample 3 i - 24: the 49-tap filter delays by 24)
    assert out[0, -1] == pytest.approx(2040 + 3 * 319 - 24, abs=1.0) and not out[1].any()


def test_frames_reach_the_reader_in_order(tmp_path: Path) -> None:
    path = tmp_path / "taps.sock"
    with TapReader(path) as reader:
        writer = TapWriter(path, RATE)
        rep, buyer = tone(440, RATE), tone(1000, RATE)
        for i in range(0, RATE, 96):
            writer.add_rep(rep[i : i + 96])
            writer.add_buyer(buyer[i : i + 96])
            writer.flush(call_id=7, call_t0=0.1)
            time.sleep(0.0005)  # a period's pace, roughly: the kernel queues only a few datagrams
        packets = list(reader.packets(idle_timeout_s=0.5))
        writer.close()
    assert writer.seq == 50 and writer.sent + writer.dropped == 50
    assert writer.sent >= 40  # a loaded test machine may starve the receiver thread briefly
    assert len(packets) == writer.sent and reader.missed == writer.dropped - (49 - packets[-1].seq) - packets[0].seq
    assert [p.seq for p in packets] == sorted(p.seq for p in packets)
    assert all(p.call_active and p.call_id == 7 and p.rep_present and p.buyer_present for p in packets)
    reference = decimate(rep)
    for p in packets:
        assert p.call_t == pytest.approx(p.seq * 0.02 - 0.1)
        np.testing.assert_allclose(p.rep, reference[p.seq * FRAME_SAMPLES : (p.seq + 1) * FRAME_SAMPLES], atol=1e-5)
    frame = packets[-1].to_frame()
    assert frame.rep.dtype == np.float32 and len(frame.rep) == FRAME_SAMPLES and frame.t == packets[-1].call_t


def test_absent_coach_costs_a_counted_drop_never_an_exception(tmp_path: Path) -> None:
    writer = TapWriter(tmp_path / "nobody.sock", RATE)
    block = np.zeros(960, dtype=np.float32)
    for _ in range(5):
        writer.add_rep(block)
        writer.add_buyer(block)
        writer.flush(call_id=0, call_t0=0.0)
    assert writer.dropped == writer.dropped_absent == 5 and writer.sent == 0
    # a coach killed with -9 leaves its socket file behind: still a drop, not an error
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    stale.bind(str(tmp_path / "stale.sock"))
    stale.close()
    writer.path = str(tmp_path / "stale.sock")
    writer.add_rep(block)
    writer.add_buyer(block)
    writer.flush(call_id=0, call_t0=0.0)
    assert writer.dropped_absent == 6
    writer.close()


def test_writer_follows_a_coach_that_dies_and_binds_the_path_again(tmp_path: Path) -> None:
    path = tmp_path / "taps.sock"
    writer = TapWriter(path, RATE)
    block = np.zeros(960, dtype=np.float32)

    def frame() -> None:
        writer.add_rep(block)
        writer.add_buyer(block)
        writer.flush(call_id=0, call_t0=0.0)

    def coach() -> socket.socket:
        path.unlink(missing_ok=True)  # as TapReader does with a killed coach's file
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(str(path))
        s.setblocking(False)
        return s

    first = coach()
    frame()
    assert decode_packet(first.recv(PACKET_BYTES)).seq == 0
    first.close()  # killed: the writer's peer is dead, its file left behind
    frame()
    frame()
    assert writer.dropped == writer.dropped_absent == 2
    second = coach()
    frame()  # the very next frame reaches the new coach
    assert decode_packet(second.recv(PACKET_BYTES)).seq == 3
    assert writer.sent == 2 and writer.dropped == 2
    second.close()
    writer.close()


def test_slow_coach_fills_its_queue_and_the_writer_drops(tmp_path: Path) -> None:
    path = tmp_path / "taps.sock"
    coach = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # bound, never read: a hung coach
    coach.bind(str(path))
    try:
        writer = TapWriter(path, RATE)
        block = np.zeros(960, dtype=np.float32)
        for _ in range(2000):
            writer.add_rep(block)
            writer.add_buyer(block)
            writer.flush(call_id=0, call_t0=0.0)
        assert writer.dropped_busy > 0 and writer.sent + writer.dropped == 2000
        coach.setblocking(False)
        seqs = []
        while True:
            try:
                seqs.append(decode_packet(coach.recv(PACKET_BYTES)).seq)
            except BlockingIOError:
                break
        assert len(seqs) == writer.sent and seqs == sorted(seqs)  # the oldest kept, in order
        writer.close()
    finally:
        coach.close()


def test_reader_absorbs_a_busy_analysis_loop(tmp_path: Path) -> None:
    path = tmp_path / "taps.sock"
    with TapReader(path, buffer_frames=100) as reader:
        writer = TapWriter(path, RATE)
        block = np.zeros(960, dtype=np.float32)
        for _ in range(60):  # 1.2 s of frames while nobody calls receive()
            writer.add_rep(block)
            writer.add_buyer(block)
            writer.flush(call_id=0, call_t0=0.0)
            time.sleep(0.001)
        writer.close()
        packets = list(reader.packets(idle_timeout_s=0.3))
    # far more than the kernel's 10-datagram queue got through while nobody called receive()
    assert len(packets) == writer.sent and writer.sent >= 30
    assert reader.overflowed == 0 and reader.missed == writer.dropped - (59 - packets[-1].seq) - packets[0].seq


def test_one_silent_side_does_not_stall_the_other(tmp_path: Path) -> None:
    path = tmp_path / "taps.sock"
    with TapReader(path) as reader:
        writer = TapWriter(path, RATE)
        for _ in range(20):
            writer.add_buyer(np.ones(960, dtype=np.float32))
            writer.flush(call_id=0, call_t0=0.0)
            time.sleep(0.002)
        packets = list(reader.packets(idle_timeout_s=0.5))
        writer.close()
    assert writer.seq >= 17 and len(packets) == writer.sent and writer.sent >= 10
    assert all(not p.rep_present and p.buyer_present and not p.rep.any() for p in packets)


def test_reader_skips_malformed_datagrams(tmp_path: Path) -> None:
    path = tmp_path / "taps.sock"
    with TapReader(path) as reader:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(b"garbage", str(path))
        assert reader.receive(0.3) is None
        assert reader.malformed == 1
    with pytest.raises(AudioDeviceError):
        decode_packet(b"PXT1" + bytes(10))


def detector() -> CallDetector:
    return CallDetector(period_s=0.002, speech_threshold_dbfs=-45, start_speech_s=0.3, end_silence_s=2.0, stream_idle_s=0.5)


def test_call_starts_on_speech_while_the_host_streams_and_ends_on_silence() -> None:
    d = detector()
    loud = 0.1**2  # -20 dBFS (mean square, full scale 1)
    t = 0.0
    for _ in range(500):  # speech, but the host has not opened the stream: no call
        assert d.update(t, False, loud) is None
        t += 0.002
    changes = []
    for _ in range(1000):
        change = d.update(t, True, loud)
        if change:
            changes.append(change)
        t += 0.002
    assert len(changes) == 1 and changes[0].active
    assert changes[0].stream_t == pytest.approx(1.0, abs=0.01)  # speech began at 1.0 s
    for _ in range(1100):
        change = d.update(t, True, 0.0)
        if change:
            changes.append(change)
        t += 0.002
    assert len(changes) == 2 and not changes[1].active and changes[1].reason == "silence"
    assert changes[1].call_id == changes[0].call_id


def test_call_ends_when_the_host_closes_the_stream() -> None:
    d = detector()
    loud = 0.1**2
    for i in range(300):
        d.update(i * 0.002, True, loud)
    assert d.active
    change = None
    for i in range(300, 700):
        change = d.update(i * 0.002, False, loud) or change
    assert change is not None and not change.active and change.reason == "host closed the stream"


def test_state_file_round_trips_and_gates_the_fleet_agent(tmp_path: Path) -> None:
    path = tmp_path / "run" / "call_state.json"
    assert read_state(path) is None and wait_until_idle(path, 0.0)
    write_state(path, CallState(t=0.0, active=True, call_id=5, reason="speech"))
    assert json.loads(path.read_text())["type"] == "call_state"
    state = read_state(path)
    assert state is not None and state.active and state.call_id == 5
    assert parse_event(path.read_text()) == state
    assert not wait_until_idle(path, 0.05, poll_s=0.01)
    write_state(path, CallState(t=61.5, active=False, call_id=5, reason="silence"))
    assert wait_until_idle(path, 0.05, poll_s=0.01)
    path.write_text("{not json")
    with pytest.raises(EventSchemaError):
        read_state(path)
