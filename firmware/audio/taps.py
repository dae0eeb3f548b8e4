"""Call-audio taps: the bridge's non-blocking writer and the coach's reader.

The bridge decimates each direction to 16 kHz mono and sends one 20 ms datagram per frame
(rep and buyer together) to a Unix datagram socket the coach binds. The writer connects to
that path once (so the kernel resolves it once, not per frame) and sends with
``MSG_DONTWAIT``: a slow coach (full receive queue), an absent one (no socket file) or a
crashed one (stale file or dead peer, ECONNREFUSED) costs a dropped, counted frame and a few
microseconds, never a blocked audio thread. After a refusal the writer connects again with the
next frame, so a restarted coach that binds the same path receives the next frame.
"""

from __future__ import annotations

import errno
import functools
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

from firmware.audio.drift import c_einsum
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
REP_ROW, BUYER_ROW = 0, 1  # the decimator's rows, in the datagram's order
# the coach is not there: no socket file, a stale one (killed coach), a dead peer, no access
ABSENT_ERRNOS = frozenset({errno.ENOENT, errno.ECONNREFUSED, errno.ENOTCONN, errno.ENOTSOCK, errno.EACCES})


class Decimator:
    """Integer-factor low-pass decimation to 16 kHz of ``rows`` streams, state carried across blocks.

    Each stream is pushed on its own (as raw float32 bytes: a memoryview copy, no numpy call)
    and all are decimated together, so a frame of both tap sides costs one einsum. The rows
    live in one linear buffer read from ``_start``; it is compacted only when a push reaches
    its end (every few frames), not shifted on every output.
    """

    def __init__(self, in_rate_hz: int, capacity: int, *, rows: int = 1, gain: float = 1.0) -> None:
        if in_rate_hz % ANALYSIS_RATE_HZ:
            raise ValueError(f"cannot decimate {in_rate_hz} Hz to {ANALYSIS_RATE_HZ} Hz by an integer")
        self.factor = in_rate_hz // ANALYSIS_RATE_HZ
        taps = 16 * self.factor + 1
        n = np.arange(taps) - (taps - 1) / 2
        cutoff = 0.45 / self.factor  # 7.2 kHz at 16 kHz out: keeps speech, rejects aliases
        kernel = 2 * cutoff * np.sinc(2 * cutoff * n) * np.blackman(taps)
        # a gain rides on the kernel for free
        self._kernel = (kernel / kernel.sum() * gain).astype(np.float32)
        self._taps = taps
        self.capacity = capacity  # pending samples a row can hold
        # room for the filter's history, a full row of pending samples and as much again
        # before the buffer needs compacting
        self._history = np.zeros((rows, taps - 1 + 2 * capacity), dtype=np.float32)
        self._end = self._history.shape[1]
        self._full = taps - 1 + capacity  # a row's end may lie this far past _start
        self._rows = [memoryview(self._history[r]).cast("B") for r in range(rows)]
        # Output i is the dot product of the kernel with history[start + factor * i : ... + taps]:
        # one strided product computes only the samples kept (a full-rate convolution would
        # compute ``factor`` times as many and throw most away). It is an einsum, never np.dot
        # or matmul: a BLAS call this size runs on OpenBLAS's worker threads, and a real-time
        # thread spinning on ordinary ones that a busy box does not schedule stalls for tens of ms.
        self._windows = np.lib.stride_tricks.sliding_window_view(self._history, taps, axis=1)[:, :: self.factor]
        self._start = 0  # first history sample of the next output; a multiple of ``factor``
        self._held = [taps - 1] * rows  # end of each row's samples: the filter's history, then pending ones
        self._compactions = 0

    def pending(self, row: int) -> int:
        """Samples of ``row`` pushed and not yet decimated."""
        return self._held[row] - self._start - (self._taps - 1)

    def push(self, row: int, data: memoryview) -> None:
        """Queue float32 samples given as bytes; beyond ``capacity`` the row's oldest pending ones are dropped."""
        held = self._held[row]
        end = held + (len(data) >> 2)
        # every cycle, twice: the usual case (room, within capacity) in as few steps as possible
        if end <= self._end and end - self._start <= self._full:
            self._rows[row][4 * held : 4 * end] = data
            self._held[row] = end
            return
        n = end - held
        if end > self._end:
            self._compact()
            held = self._held[row]
        over = held - self._start - (self._taps - 1) + n - self.capacity
        if over > 0:  # only if the other row stalls for several frames and nobody flushes
            if n > self.capacity:
                data, n = data[4 * (n - self.capacity) :], self.capacity
                over = held - self._start - (self._taps - 1)
            first = self._start + self._taps - 1
            h = self._history[row]
            h[first : held - over] = h[first + over : held]
            held -= over
        self._rows[row][4 * held : 4 * (held + n)] = data
        self._held[row] = held + n

    def pad(self, row: int, n: int) -> None:
        """Queue ``n`` samples of silence on ``row``."""
        held = self._held[row]
        if held + n > self._history.shape[1]:
            self._compact()
            held = self._held[row]
        self._history[row, held : held + n] = 0.0
        self._held[row] = held + n

    def emit(self, out: F32) -> None:
        """Decimate the oldest ``out.shape[1] * factor`` pending samples of every row into ``out``
        (rows x count); every row must hold them."""
        count = out.shape[-1]
        first = self._start // self.factor
        c_einsum("rij,j->ri", self._windows[:, first : first + count], self._kernel, out=out)
        self._start += count * self.factor

    def _compact(self) -> None:
        start = self._start
        if start == 0:
            return
        end = max(self._held)
        self._history[:, : end - start] = self._history[:, start:end]
        self._held = [held - start for held in self._held]
        self._start = 0
        self._compactions += 1


def as_bytes(samples: F32 | memoryview) -> memoryview:
    """float32 samples as the raw bytes :meth:`Decimator.push` takes."""
    if isinstance(samples, memoryview):
        return samples
    return memoryview(np.ascontiguousarray(samples, dtype=np.float32)).cast("B")


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
    rather than once per cycle, and both sides in one call, keeps the audio thread's cost down.
    """

    def __init__(self, path: Path, rate_hz: int, *, max_lag_frames: int = 3, input_gain: float = 1.0) -> None:
        self._path = str(path)
        self._connected = False
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._packet = bytearray(PACKET_BYTES)
        self._view = memoryview(self._packet)
        # rep then buyer, decimated straight into the datagram
        self._sides = np.frombuffer(self._packet, dtype=np.float32, offset=HEADER.size).reshape(2, FRAME_SAMPLES)
        self._mean_squares = np.zeros(2, dtype=np.float32)
        self.block = rate_hz * FRAME_SAMPLES // ANALYSIS_RATE_HZ  # one frame at the bridge rate
        cap = self.block * (max_lag_frames + 2)
        self._max_lag = max_lag_frames * self.block
        # each side's samples wait in the decimator until both sides have a frame
        self._dec = Decimator(rate_hz, cap, rows=2, gain=input_gain)
        # what the bridge's legs call with each cycle's captured bytes
        self.push_rep = functools.partial(self._dec.push, REP_ROW)
        self.push_buyer = functools.partial(self._dec.push, BUYER_ROW)
        self.seq = 0
        self.sent = 0
        self.dropped = 0
        self.dropped_absent = 0
        self.dropped_busy = 0
        self._rep_padded = False
        self._buyer_padded = False
        # mean square of the louder side of the last frame emitted (full scale 1): the
        # bridge's speech detector reads it once per frame instead of measuring every cycle
        self.frame_mean_square = 0.0
        self._ms_scale = 1.0 / (input_gain * input_gain * FRAME_SAMPLES)

    def add_rep(self, block: F32 | memoryview) -> None:
        self._dec.push(REP_ROW, as_bytes(block))

    def add_buyer(self, block: F32 | memoryview) -> None:
        self._dec.push(BUYER_ROW, as_bytes(block))

    def flush(self, *, call_id: int, call_t0: float) -> int:
        """Emit every frame both sides have completed (a stopped side is padded with silence
        and marked absent in that frame); return how many."""
        b = self.block
        dec = self._dec
        # called every cycle and mostly finds no frame: pending() inlined
        first = dec._start + dec._taps - 1
        rep, buyer = dec._held[REP_ROW] - first, dec._held[BUYER_ROW] - first
        if rep < b or buyer < b:
            if rep >= self._max_lag and buyer < b:
                dec.pad(BUYER_ROW, b - buyer)
                self._buyer_padded = True
            elif buyer >= self._max_lag and rep < b:
                dec.pad(REP_ROW, b - rep)
                self._rep_padded = True
            else:
                return 0
        emitted = 0
        while dec.pending(REP_ROW) >= b and dec.pending(BUYER_ROW) >= b:
            self._emit(call_id, call_t0)
            emitted += 1
        return emitted

    def _emit(self, call_id: int, call_t0: float) -> None:
        stream_t = self.seq * FRAME_SAMPLES / ANALYSIS_RATE_HZ
        flags = (FLAG_CALL_ACTIVE if call_id else 0) | (0 if self._rep_padded else FLAG_REP_PRESENT)
        flags |= 0 if self._buyer_padded else FLAG_BUYER_PRESENT
        self._rep_padded = self._buyer_padded = False
        call_t = stream_t - call_t0 if call_id else 0.0
        HEADER.pack_into(self._packet, 0, MAGIC, self.seq, stream_t, call_id, call_t, flags, FRAME_SAMPLES)
        sides = self._sides
        self._dec.emit(sides)
        rep_ms, buyer_ms = c_einsum("ri,ri->r", sides, sides, out=self._mean_squares).tolist()
        self.frame_mean_square = (rep_ms if rep_ms > buyer_ms else buyer_ms) * self._ms_scale
        self.seq += 1
        try:
            if not self._connected:
                self._sock.connect(self._path)  # resolves the path once, not on every frame
                self._connected = True
            self._sock.send(self._view, socket.MSG_DONTWAIT)
            self.sent += 1
        except (BlockingIOError, InterruptedError):
            self.dropped += 1
            self.dropped_busy += 1
        except OSError as exc:
            self.dropped += 1
            if exc.errno in ABSENT_ERRNOS:
                # the coach is gone (a dead peer refuses and disconnects us) or was never
                # there: look the path up again with the next frame, where a restarted
                # coach may have bound it
                self._connected = False
                self.dropped_absent += 1
            else:
                self.dropped_busy += 1

    @property
    def path(self) -> str:
        return self._path

    @path.setter
    def path(self, path: str) -> None:
        # a datagram socket cannot be disconnected portably: a fresh one for the new path
        self._sock.close()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._path, self._connected = str(path), False

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
