"""Call-audio taps: the bridge's non-blocking writer and the coach's reader.

The bridge decimates each direction to 16 kHz mono and sends one 20 ms datagram per frame
(rep and buyer together) to a Unix datagram socket the coach binds. ``sendto`` is issued with
``MSG_DONTWAIT`` on a socket that is never connected: a slow coach (full receive queue), an
absent one (no socket file) or a crashed one (stale file, ECONNREFUSED) costs a dropped,
counted frame and a few microseconds, never a blocked audio thread. A restarted coach binds
the same path and the next frame reaches it.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from firmware.audio.frames import ANALYSIS_RATE_HZ, FRAME_SAMPLES, CallFrame
from firmware.errors import AudioDeviceError
from firmware.handoff import DropQueue

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]

MAGIC = b"PXT1"
# magic, seq, stream time (s), call id (0 = no call), call time (s), flags, samples per side
HEADER = struct.Struct("<4sQdQdHH")
FLAG_CALL_ACTIVE = 1
FLAG_REP_PRESENT = 2
FLAG_BUYER_PRESENT = 4
PACKET_BYTES = HEADER.size + 2 * FRAME_SAMPLES * 4


class Decimator:
    """Integer-factor low-pass decimation to 16 kHz with state carried across periods."""

    def __init__(self, in_rate_hz: int, max_block: int, gain: float = 1.0) -> None:
        if in_rate_hz % ANALYSIS_RATE_HZ:
            raise ValueError(f"cannot decimate {in_rate_hz} Hz to {ANALYSIS_RATE_HZ} Hz by an integer")
        self.factor = in_rate_hz // ANALYSIS_RATE_HZ
        taps = 16 * self.factor + 1
        n = np.arange(taps) - (taps - 1) / 2
        cutoff = 0.45 / self.factor  # 7.2 kHz at 16 kHz out: keeps speech, rejects aliases
        kernel = 2 * cutoff * np.sinc(2 * cutoff * n) * np.blackman(taps)
        # a gain rides on the kernel for free
        self._kernel = (kernel / kernel.sum() * gain).astype(np.float32)
        self._history = np.zeros(taps - 1 + max_block + self.factor, dtype=np.float32)
        # Output i is the dot product of the kernel with history[factor * i : ... + taps]:
        # one strided matrix-vector product computes only the samples kept (a full-rate
        # convolution would compute ``factor`` times as many and throw most away). It is an
        # einsum, never np.dot: a BLAS gemv this size runs on OpenBLAS's worker threads, and
        # a real-time thread spinning on ordinary ones that a busy box does not schedule
        # stalls for tens of ms.
        self._windows = np.lib.stride_tricks.sliding_window_view(self._history, taps)[:: self.factor]
        self._held = taps - 1  # end of the samples in _history: the filter's history, then pending ones
        self._taps = taps
        self.capacity = max_block  # pending samples it can hold
        self._out = np.zeros(max_block // self.factor + 1, dtype=np.float32)

    @property
    def pending(self) -> int:
        """Samples pushed and not yet decimated."""
        return self._held - (self._taps - 1)

    def push(self, samples: F32) -> None:
        """Queue samples; beyond ``capacity`` the oldest pending ones are dropped."""
        n = len(samples)
        over = self.pending + n - self.capacity
        if over > 0:
            start = self._taps - 1
            h = self._history
            h[start : self._held - over] = h[start + over : self._held]
            self._held -= over
        self._history[self._held : self._held + n] = samples
        self._held += n

    def pad(self, n: int) -> None:
        """Queue ``n`` samples of silence."""
        self._history[self._held : self._held + n] = 0.0
        self._held += n

    def emit(self, out: F32) -> None:
        """Decimate the oldest ``len(out) * factor`` pending samples into ``out``."""
        count = len(out)
        np.einsum("ij,j->i", self._windows[:count], self._kernel, out=out)
        consumed = count * self.factor
        keep = self._held - consumed
        h = self._history
        h[:keep] = h[consumed : self._held]
        self._held = keep

    def process(self, block: F32) -> F32:
        """Return the decimated samples this block completes (a view, valid until the next call)."""
        self.push(block)
        count = self.pending // self.factor
        out = self._out[:count]
        if count > 0:
            self.emit(out)
        return out


@dataclass(frozen=True, slots=True)
class TapPacket:
    seq: int
    stream_t: float
    call_id: int
    call_t: float
    call_active: bool
    rep_present: bool
    buyer_present: bool
    rep: F32
    buyer: F32

    def to_frame(self) -> CallFrame:
        return CallFrame(t=self.call_t, rep=self.rep, buyer=self.buyer)


class TapWriter:
    """Collects both sides at the bridge rate, and per 20 ms decimates them to 16 kHz and
    offers the frame to the coach without ever blocking.

    Samples arrive as float32 in [-1, 1), the bridge's scale. Decimating once per frame
    rather than once per cycle keeps the audio thread's per-cycle cost down.
    """

    def __init__(self, path: Path, rate_hz: int, *, max_lag_frames: int = 3, input_gain: float = 1.0) -> None:
        self.path = str(path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._packet = bytearray(PACKET_BYTES)
        self._view = memoryview(self._packet)
        self._payload = np.frombuffer(self._packet, dtype=np.float32, offset=HEADER.size)
        self.block = rate_hz * FRAME_SAMPLES // ANALYSIS_RATE_HZ  # one frame at the bridge rate
        cap = self.block * (max_lag_frames + 2)
        self._max_lag = max_lag_frames * self.block
        # each side's samples wait in its decimator until both sides have a frame
        self._rep_dec = Decimator(rate_hz, cap, gain=input_gain)
        self._buyer_dec = Decimator(rate_hz, cap, gain=input_gain)
        self._rep_out = self._payload[:FRAME_SAMPLES]
        self._buyer_out = self._payload[FRAME_SAMPLES:]
        self.seq = 0
        self.sent = 0
        self.dropped = 0
        self.dropped_absent = 0
        self.dropped_busy = 0
        self._rep_present = False
        self._buyer_present = False
        # mean square of the louder side of the last frame emitted (full scale 1): the
        # bridge's speech detector reads it once per frame instead of measuring every cycle
        self.frame_mean_square = 0.0
        self._ms_scale = 1.0 / (input_gain * input_gain * FRAME_SAMPLES)

    def add_rep(self, block: F32) -> None:
        self._rep_dec.push(block)  # only when the other side lags far behind: keeps the newest
        self._rep_present = True

    def add_buyer(self, block: F32) -> None:
        self._buyer_dec.push(block)
        self._buyer_present = True

    def flush(self, *, call_id: int, call_t0: float) -> int:
        """Emit every frame both sides have completed (a stopped side is padded with silence);
        return how many."""
        b = self.block
        rep, buyer = self._rep_dec, self._buyer_dec
        if rep.pending >= self._max_lag and buyer.pending < b:
            buyer.pad(b - buyer.pending)
            self._buyer_present = False
        if buyer.pending >= self._max_lag and rep.pending < b:
            rep.pad(b - rep.pending)
            self._rep_present = False
        emitted = 0
        while rep.pending >= b and buyer.pending >= b:
            self._emit(call_id, call_t0)
            emitted += 1
        return emitted

    def _emit(self, call_id: int, call_t0: float) -> None:
        stream_t = self.seq * FRAME_SAMPLES / ANALYSIS_RATE_HZ
        flags = (FLAG_CALL_ACTIVE if call_id else 0) | (FLAG_REP_PRESENT if self._rep_present else 0)
        flags |= FLAG_BUYER_PRESENT if self._buyer_present else 0
        call_t = stream_t - call_t0 if call_id else 0.0
        HEADER.pack_into(self._packet, 0, MAGIC, self.seq, stream_t, call_id, call_t, flags, FRAME_SAMPLES)
        rep, buyer = self._rep_out, self._buyer_out
        self._rep_dec.emit(rep)  # straight into the datagram
        self._buyer_dec.emit(buyer)
        rep_ms, buyer_ms = float(np.dot(rep, rep)), float(np.dot(buyer, buyer))
        self.frame_mean_square = (rep_ms if rep_ms > buyer_ms else buyer_ms) * self._ms_scale
        self.seq += 1
        try:
            self._sock.sendto(self._view, socket.MSG_DONTWAIT, self.path)
            self.sent += 1
        except (BlockingIOError, InterruptedError):
            self.dropped += 1
            self.dropped_busy += 1
        except OSError as exc:
            self.dropped += 1
            if exc.errno in (errno.ENOENT, errno.ECONNREFUSED, errno.ENOTSOCK, errno.EACCES):
                self.dropped_absent += 1
            else:
                self.dropped_busy += 1

    @property
    def stream_t(self) -> float:
        """Stream time (s) of the next frame to be emitted."""
        return self.seq * FRAME_SAMPLES / ANALYSIS_RATE_HZ

    def close(self) -> None:
        self._sock.close()


def decode_packet(data: bytes) -> TapPacket:
    if len(data) < HEADER.size:
        raise AudioDeviceError(f"tap packet too short ({len(data)} bytes)")
    magic, seq, stream_t, call_id, call_t, flags, n = HEADER.unpack_from(data)
    if magic != MAGIC or len(data) != HEADER.size + 8 * n:
        raise AudioDeviceError("tap packet has a bad header or length")
    samples = np.frombuffer(data, dtype=np.float32, offset=HEADER.size).copy()
    return TapPacket(
        seq=seq,
        stream_t=stream_t,
        call_id=call_id,
        call_t=call_t,
        call_active=bool(flags & FLAG_CALL_ACTIVE),
        rep_present=bool(flags & FLAG_REP_PRESENT),
        buyer_present=bool(flags & FLAG_BUYER_PRESENT),
        rep=samples[:n],
        buyer=samples[n:],
    )


class TapReader:
    """The coach's end: binds the tap socket; a receiver thread empties it at once.

    The kernel queues only ``net.unix.max_dgram_qlen`` datagrams (10 by default, 512 with the
    board's sysctl), so a coach busy in inference for a moment would lose frames if the
    socket were read from the analysis loop. The receiver thread moves every datagram into a
    bounded in-process queue (``buffer_frames``, 10 s by default) that absorbs such pauses;
    frames lost anyway (bridge side or here) show up as gaps in ``seq``, counted in ``missed``.
    """

    def __init__(self, path: Path, *, receive_buffer_bytes: int = 1 << 20, buffer_frames: int = 500) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.path.unlink()  # left behind by a coach that was killed
        except FileNotFoundError:
            pass
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer_bytes)
            self._sock.bind(str(self.path))
        except OSError as exc:
            self._sock.close()
            raise AudioDeviceError(f"cannot bind tap socket {self.path}: {exc}") from None
        self._sock.settimeout(0.2)
        self._queue: DropQueue[TapPacket] = DropQueue(buffer_frames)
        self._last_seq: int | None = None
        self.received = 0
        self.missed = 0
        self.malformed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive_loop, name="parallax-taps", daemon=True)
        self._thread.start()

    @property
    def overflowed(self) -> int:
        """Frames dropped because the analysis fell more than ``buffer_frames`` behind."""
        return self._queue.dropped

    def _receive_loop(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(PACKET_BYTES + 64)
            except (TimeoutError, BlockingIOError):
                continue
            except OSError:
                return  # socket closed
            try:
                packet = decode_packet(data)
            except AudioDeviceError:
                self.malformed += 1
                continue
            self._queue.offer(packet)

    def receive(self, timeout_s: float | None) -> TapPacket | None:
        """The next packet, or None when none arrives within ``timeout_s``."""
        try:
            packet = self._queue.get(timeout=timeout_s)
        except queue.Empty:
            return None
        if self._last_seq is not None and packet.seq > self._last_seq + 1:
            self.missed += packet.seq - self._last_seq - 1
        self._last_seq = packet.seq
        self.received += 1
        return packet

    def packets(self, idle_timeout_s: float | None = None) -> Iterator[TapPacket]:
        """Yield packets until ``idle_timeout_s`` passes without one (forever when None)."""
        while True:
            packet = self.receive(idle_timeout_s)
            if packet is None:
                return
            yield packet

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1.0)
        self._sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def __enter__(self) -> TapReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
