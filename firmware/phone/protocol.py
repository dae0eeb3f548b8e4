"""The box <-> phone wire protocol, version 1: frames, session keys, chunks. Pure: no I/O, no clock.

``docs/phone-protocol.md`` is the specification; this module is the box's implementation of it
and the test vectors in that document are produced by it. Summary:

* A *frame* is ``header (8 bytes) || body``. The header is ``version u8, kind u8, key_id u16 BE,
  seq u32 BE`` and is the AEAD's associated data, so none of it can be altered unseen.
* HELLO frames (in clear apart from the phone's proof tag) exchange two 16-byte nonces; both
  ends then derive one ChaCha20-Poly1305 key per direction with HKDF-SHA256 from the per-box
  secret, so every connection has fresh keys and counters can restart at 1 without reusing
  a nonce or letting an old frame replay into a new session.
* DATA frames carry one event as UTF-8 JSON; ACK frames carry the 32-bit sequence number they
  acknowledge. Both are encrypted and authenticated; a receiver accepts only ``seq`` above the
  highest it has accepted in the session (a repeat is a duplicate: acknowledged again, never
  delivered twice).
* A frame is cut into *chunks* that fit one ATT write or notification (MTU - 3 bytes, 20 by
  default): ``[LAST flag | index (7 bits)] [message tag]`` then the data.

Every decoding function raises :class:`ProtocolError` (with a short ``reason`` for counters),
never anything else, whatever bytes it is given.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from enum import IntEnum

from firmware.errors import PhoneLinkError

VERSION = 1

# The GATT service the phone app hosts and the box (the BLE central) connects to.
SERVICE_UUID = "a43508c4-d346-40b9-b2f5-795b595142c4"
# The phone's inbox: the box writes chunks here (write with response).
INBOX_UUID = "9e7a269f-09cc-41e4-a08c-c6bba2d3cc0d"
# The phone's outbox: the phone notifies chunks here (HELLO reply, ACKs, controls).
OUTBOX_UUID = "ef274bf6-e2f3-49f3-a5e3-1e370186a154"

HEADER = struct.Struct(">BBHI")
NONCE_LEN = 16
TAG_LEN = 16
SECRET_LEN = 32
# A frame larger than this is refused on both ends: the recap is the largest event (~1 KB).
MAX_FRAME = 4096
MAX_CHUNKS = 128
# The default ATT MTU is 23; 3 bytes go to the ATT header, leaving 20 for a chunk.
MIN_CHUNK = 20
CHUNK_HEADER = 2
SEQ_MAX = 0xFFFF_FFFF

DIR_BOX_TO_PHONE = 0x42  # "B"
DIR_PHONE_TO_BOX = 0x50  # "P"
_KDF_INFO = b"parallax-phone/1 session keys"


class Kind(IntEnum):
    HELLO = 0x01
    DATA = 0x02
    ACK = 0x03
    ERROR = 0x7F


class ErrorCode(IntEnum):
    """Body of an ERROR frame (phone -> box, in clear, never trusted beyond display)."""

    UNKNOWN_KEY = 1
    UNSUPPORTED_VERSION = 2


class ProtocolError(PhoneLinkError):
    """A frame or chunk that must be rejected; ``reason`` is the counter it goes to."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class Header:
    version: int
    kind: Kind
    key_id: int
    seq: int

    def pack(self) -> bytes:
        return HEADER.pack(self.version, int(self.kind), self.key_id, self.seq)


def parse_header(frame: bytes) -> Header:
    if len(frame) < HEADER.size:
        raise ProtocolError("malformed", f"frame of {len(frame)} bytes is shorter than its header")
    version, kind, key_id, seq = HEADER.unpack_from(frame)
    if version != VERSION:
        raise ProtocolError("malformed", f"protocol version {version} (this box speaks {VERSION})")
    try:
        return Header(version, Kind(kind), key_id, seq)
    except ValueError:
        raise ProtocolError("malformed", f"unknown frame kind 0x{kind:02x}") from None


def _nonce(direction: int, seq: int) -> bytes:
    return bytes([direction]) + bytes(7) + seq.to_bytes(4, "big")


def derive_keys(secret: bytes, box_nonce: bytes, phone_nonce: bytes) -> tuple[bytes, bytes]:
    """(box->phone key, phone->box key) for one connection."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=box_nonce + phone_nonce, info=_KDF_INFO).derive(secret)
    return okm[:32], okm[32:]


# -- HELLO ---------------------------------------------------------------------------------------


def box_hello(key_id: int, box_nonce: bytes) -> bytes:
    """The box's opening frame: which secret it uses and its fresh nonce (in clear)."""
    if len(box_nonce) != NONCE_LEN:
        raise ValueError("box nonce must be 16 bytes")
    return Header(VERSION, Kind.HELLO, key_id, 0).pack() + box_nonce


def parse_box_hello(frame: bytes) -> tuple[int, bytes]:
    """Phone side: (key_id, box_nonce)."""
    header = parse_header(frame)
    if header.kind is not Kind.HELLO or len(frame) != HEADER.size + NONCE_LEN:
        raise ProtocolError("malformed", "not a box HELLO")
    return header.key_id, frame[HEADER.size :]


def phone_hello(secret: bytes, key_id: int, box_nonce: bytes, phone_nonce: bytes) -> bytes:
    """Phone side: its nonce plus a tag that proves it holds the secret (seq 0, empty plaintext)."""
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    _, p2b = derive_keys(secret, box_nonce, phone_nonce)
    header = Header(VERSION, Kind.HELLO, key_id, 0).pack()
    tag = ChaCha20Poly1305(p2b).encrypt(_nonce(DIR_PHONE_TO_BOX, 0), b"", header + phone_nonce)
    return header + phone_nonce + tag


def error_frame(key_id: int, code: ErrorCode) -> bytes:
    return Header(VERSION, Kind.ERROR, key_id, 0).pack() + bytes([int(code)])


def parse_error(frame: bytes) -> ErrorCode | int:
    if len(frame) != HEADER.size + 1:
        raise ProtocolError("malformed", "ERROR frame must carry one code byte")
    code = frame[HEADER.size]
    try:
        return ErrorCode(code)
    except ValueError:
        return code


class Session:
    """One connection's keys and counters, for either end.

    ``role`` is "box" or "phone". Not thread-safe: one asyncio task owns it. ``seal`` numbers
    frames from 1; ``open`` enforces strictly rising sequence numbers and reports a repeat as
    a duplicate (``Opened.duplicate``) so the caller can acknowledge it again without acting.
    """

    def __init__(self, role: str, key_id: int, send_key: bytes, recv_key: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

        if role not in ("box", "phone"):
            raise ValueError("role must be 'box' or 'phone'")
        self.role = role
        self.key_id = key_id
        self._send = ChaCha20Poly1305(send_key)
        self._recv = ChaCha20Poly1305(recv_key)
        self._send_dir = DIR_BOX_TO_PHONE if role == "box" else DIR_PHONE_TO_BOX
        self._recv_dir = DIR_PHONE_TO_BOX if role == "box" else DIR_BOX_TO_PHONE
        self.next_seq = 1
        self.highest_received = 0

    @classmethod
    def box_side(cls, secret: bytes, key_id: int, box_nonce: bytes, reply: bytes) -> Session:
        """Check the phone's HELLO reply; raise ProtocolError("unauthenticated") if it lacks the secret."""
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

        header = parse_header(reply)
        if header.kind is Kind.ERROR:
            code = parse_error(reply)
            name = code.name.lower() if isinstance(code, ErrorCode) else f"code {code}"
            raise ProtocolError("refused", f"phone refused the session ({name})")
        if header.kind is not Kind.HELLO or len(reply) != HEADER.size + NONCE_LEN + TAG_LEN:
            raise ProtocolError("malformed", "expected the phone's HELLO")
        if header.key_id != key_id or header.seq != 0:
            raise ProtocolError("unauthenticated", "HELLO names another key or sequence")
        phone_nonce = reply[HEADER.size : HEADER.size + NONCE_LEN]
        b2p, p2b = derive_keys(secret, box_nonce, phone_nonce)
        try:
            ChaCha20Poly1305(p2b).decrypt(_nonce(DIR_PHONE_TO_BOX, 0), reply[HEADER.size + NONCE_LEN :],
                                          reply[: HEADER.size + NONCE_LEN])  # fmt: skip
        except InvalidTag:
            raise ProtocolError("unauthenticated", "the phone does not hold this box's secret") from None
        return cls("box", key_id, b2p, p2b)

    @classmethod
    def phone_side(cls, secret: bytes, key_id: int, box_nonce: bytes, phone_nonce: bytes) -> Session:
        b2p, p2b = derive_keys(secret, box_nonce, phone_nonce)
        return cls("phone", key_id, p2b, b2p)

    def seal(self, kind: Kind, plaintext: bytes) -> bytes:
        if kind not in (Kind.DATA, Kind.ACK):
            raise ValueError("only DATA and ACK frames are sealed")
        if self.next_seq > SEQ_MAX:
            raise PhoneLinkError("sequence numbers exhausted: the session must be renewed")
        seq = self.next_seq
        self.next_seq += 1
        header = Header(VERSION, kind, self.key_id, seq).pack()
        frame = header + self._send.encrypt(_nonce(self._send_dir, seq), plaintext, header)
        if len(frame) > MAX_FRAME:
            raise ProtocolError("too_large", f"frame of {len(frame)} bytes exceeds {MAX_FRAME}")
        return frame

    def open(self, frame: bytes) -> Opened:
        from cryptography.exceptions import InvalidTag

        if len(frame) > MAX_FRAME:
            raise ProtocolError("malformed", f"frame of {len(frame)} bytes exceeds {MAX_FRAME}")
        header = parse_header(frame)
        if header.kind not in (Kind.DATA, Kind.ACK):
            raise ProtocolError("malformed", f"unexpected {header.kind.name} frame in a session")
        if header.key_id != self.key_id:
            raise ProtocolError("unauthenticated", f"frame names key {header.key_id}, session uses {self.key_id}")
        if len(frame) < HEADER.size + TAG_LEN or header.seq == 0:
            raise ProtocolError("malformed", "frame too short for its tag")
        try:
            plaintext = self._recv.decrypt(_nonce(self._recv_dir, header.seq), frame[HEADER.size :], frame[: HEADER.size])
        except InvalidTag:
            raise ProtocolError("unauthenticated", "authentication tag does not match") from None
        duplicate = header.seq <= self.highest_received
        if not duplicate:
            self.highest_received = header.seq
        if header.kind is Kind.ACK and len(plaintext) != 4:
            raise ProtocolError("malformed", "ACK must carry a 4-byte sequence number")
        return Opened(header.kind, header.seq, plaintext, duplicate)

    def ack(self, seq: int) -> bytes:
        return self.seal(Kind.ACK, seq.to_bytes(4, "big"))


@dataclass(frozen=True)
class Opened:
    kind: Kind
    seq: int
    plaintext: bytes
    duplicate: bool

    @property
    def acked_seq(self) -> int:
        return int.from_bytes(self.plaintext, "big")


def event_payload(wire: dict[str, object]) -> bytes:
    """A DATA frame's plaintext: the allowlisted wire dict as compact UTF-8 JSON."""
    import json

    return json.dumps(wire, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def new_nonce() -> bytes:
    return os.urandom(NONCE_LEN)


# -- chunks --------------------------------------------------------------------------------------


def chunk(frame: bytes, payload_size: int, tag: int) -> list[bytes]:
    """Cut ``frame`` into chunks of at most ``payload_size`` bytes (ATT MTU - 3)."""
    if payload_size < MIN_CHUNK:
        raise ValueError(f"payload size {payload_size} is below the {MIN_CHUNK}-byte minimum")
    room = payload_size - CHUNK_HEADER
    pieces = [frame[i : i + room] for i in range(0, len(frame), room)] or [b""]
    if len(pieces) > MAX_CHUNKS:
        raise ProtocolError("too_large", f"frame needs {len(pieces)} chunks (at most {MAX_CHUNKS})")
    last = len(pieces) - 1
    return [bytes([(0x80 if i == last else 0) | i, tag & 0xFF]) + piece for i, piece in enumerate(pieces)]


class Reassembler:
    """Joins chunks back into frames. ``push`` returns a whole frame or None; bad input raises.

    A chunk with index 0 always starts a new frame: an unfinished one is dropped and counted in
    ``truncated`` (the sender gave up on it, or a chunk was lost). Anything out of order drops
    the frame being built and raises.
    """

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._max = max_frame
        self._parts: list[bytes] = []
        self._tag: int | None = None
        self._size = 0
        self.truncated = 0

    def reset(self) -> None:
        """Forget a frame being built (a new connection starts clean)."""
        self._parts, self._tag, self._size = [], None, 0

    def push(self, data: bytes) -> bytes | None:
        if len(data) < CHUNK_HEADER:
            self.reset()
            raise ProtocolError("malformed", f"chunk of {len(data)} bytes has no header")
        flags, tag, piece = data[0], data[1], bytes(data[CHUNK_HEADER:])
        index, last = flags & 0x7F, bool(flags & 0x80)
        if index == 0:
            if self._parts:
                self.truncated += 1
            self._parts, self._tag, self._size = [], tag, 0
        elif self._tag is None or tag != self._tag or index != len(self._parts):
            self.reset()
            raise ProtocolError("malformed", f"chunk {index} of message {tag} is out of order")
        self._parts.append(piece)
        self._size += len(piece)
        if self._size > self._max:
            self.reset()
            raise ProtocolError("malformed", f"frame grows past {self._max} bytes")
        if not last:
            return None
        frame = b"".join(self._parts)
        self.reset()
        return frame
