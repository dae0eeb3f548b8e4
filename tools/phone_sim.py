#!/usr/bin/env python3
"""The rep's app, side of docs/phone-protocol.md: a reference implementation written from the spec.

It shares no code with the box (``firmware/phone``) on purpose: it is what a mobile team would
write from the document, so the tests that run the box against it check the document too.
It needs only ``cryptography``.

    python tools/phone_sim.py vectors                 # decode the test vectors in the spec
    python tools/phone_sim.py qr 'parallax-pair:v1?...'   # what a pairing code holds

In tests and the fake BlueZ (``firmware/testing/fakebluez.py``) a :class:`PhoneApp` is the GATT
server's logic: ``on_write(chunk)`` for each write to the inbox returns the chunks to notify on
the outbox; ``control(...)`` returns the chunks of a control to notify.
"""

from __future__ import annotations

import base64
import json
import os
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SERVICE_UUID = "a43508c4-d346-40b9-b2f5-795b595142c4"
INBOX_UUID = "9e7a269f-09cc-41e4-a08c-c6bba2d3cc0d"
OUTBOX_UUID = "ef274bf6-e2f3-49f3-a5e3-1e370186a154"

HELLO, DATA, ACK, ERROR = 0x01, 0x02, 0x03, 0x7F
_HDR = struct.Struct(">BBHI")


def parse_pairing_code(code: str) -> tuple[int, bytes, str]:
    """(key id, secret, box name) from the QR payload."""
    parts = urlsplit(code)
    if parts.scheme != "parallax-pair" or parts.path != "v1":
        raise ValueError("not a v1 pairing code")
    q = parse_qs(parts.query)
    raw = q["s"][0]
    secret = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    if len(secret) != 32:
        raise ValueError("secret must be 32 bytes")
    return int(q["k"][0]), secret, unquote(q.get("n", [""])[0])


def _nonce(direction: int, seq: int) -> bytes:
    return bytes([direction]) + bytes(7) + struct.pack(">I", seq)


def _keys(secret: bytes, box_nonce: bytes, phone_nonce: bytes) -> tuple[bytes, bytes]:
    okm = HKDF(hashes.SHA256(), 64, box_nonce + phone_nonce, b"parallax-phone/1 session keys").derive(secret)
    return okm[:32], okm[32:]


def split(frame: bytes, payload: int, tag: int) -> list[bytes]:
    room = payload - 2
    pieces = [frame[i : i + room] for i in range(0, len(frame), room)] or [b""]
    return [bytes([(0x80 if i == len(pieces) - 1 else 0) | i, tag & 0xFF]) + x for i, x in enumerate(pieces)]


@dataclass
class Screen:
    """What the app shows: the tips on screen, the call status, recaps, control answers."""

    tips: dict[str, dict[str, Any]] = field(default_factory=dict)  # tip_id -> tip, newest last
    status: dict[str, Any] | None = None
    recaps: list[dict[str, Any]] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    box_controls: list[dict[str, Any]] = field(default_factory=list)

    def render(self, width: int = 36) -> list[str]:
        """The phone's screen as text lines (the demo prints them)."""
        line = "+" + "-" * (width - 2) + "+"
        out = [line]

        def row(text: str) -> None:
            while True:
                out.append("| " + text[: width - 4].ljust(width - 4) + " |")
                text = text[width - 4 :]
                if not text:
                    break

        st = self.status or {}
        if st.get("call_active"):
            state = "muted" if st.get("muted") else ("snoozed" if st.get("snoozed_until_s") else "coaching")
            row(f"Call #{st.get('call_id', '?')}: {state}")
        else:
            row("No call")
        for tip in list(self.tips.values())[-3:]:
            row("")
            row(f"[{tip.get('moment', '')}] p{tip.get('priority', '')}")
            row(str(tip.get("text", "")))
        if self.recaps:
            row("")
            row("Recap: " + ", ".join(f"{k}={v}" for k, v in self.recaps[-1].items() if k not in ("type", "v", "t")))
        out.append(line)
        return out


class PhoneApp:
    """The app's protocol state for one box. Single-threaded: the caller serialises calls.

    ``clock`` (seconds) drives tip expiry and control retries; tests pass a fake one.
    """

    def __init__(
        self,
        secret: bytes | None,
        key_id: int,
        *,
        mtu_payload: int = 20,
        clock: Callable[[], float] | None = None,
        ack: bool = True,
    ) -> None:
        import time

        self.secret, self.key_id = secret, key_id
        self.payload = mtu_payload
        self.clock = clock or time.monotonic
        self.ack_enabled = ack  # False: a broken app that never acknowledges (retry tests)
        self.screen = Screen()
        self.received: list[dict[str, Any]] = []  # every event delivered, in order
        self.raw_frames: list[bytes] = []  # every whole frame the box wrote (the demo shows bytes)
        self.rejected: dict[str, int] = {"malformed": 0, "unauthenticated": 0, "duplicate": 0}
        self.acked_controls: set[int] = set()
        self._shown_at: dict[str, float] = {}
        self._tag = 0
        self.on_connect()

    # -- connection ------------------------------------------------------------------------------

    def on_connect(self) -> None:
        self._send: ChaCha20Poly1305 | None = None
        self._recv: ChaCha20Poly1305 | None = None
        self._seq = 0
        self._highest = 0
        self._parts: list[bytes] = []
        self._part_tag: int | None = None
        self._pending: dict[int, tuple[bytes, float, int]] = {}  # seq -> (frame, sent_at, writes)

    @property
    def in_session(self) -> bool:
        return self._send is not None

    def on_write(self, data: bytes) -> list[bytes]:
        """One write to the inbox; returns the chunks to notify on the outbox."""
        frame = self._reassemble(bytes(data))
        if frame is None:
            return []
        self.raw_frames.append(frame)
        if len(frame) < 8:
            self.rejected["malformed"] += 1
            return []
        version, kind, key_id, seq = _HDR.unpack_from(frame)
        if version != 1:
            return self._chunks(_HDR.pack(1, ERROR, key_id, 0) + b"\x02")
        if kind == HELLO and len(frame) == 24:
            return self._hello(key_id, frame[8:])
        if kind in (DATA, ACK) and self._recv is not None and key_id == self.key_id and seq > 0:
            try:
                plain = self._recv.decrypt(_nonce(0x42, seq), frame[8:], frame[:8])
            except InvalidTag:
                self.rejected["unauthenticated"] += 1
                return []
            duplicate = seq <= self._highest
            self._highest = max(self._highest, seq)
            if kind == ACK:
                if len(plain) == 4:
                    self._pending.pop(struct.unpack(">I", plain)[0], None)
                    self.acked_controls.add(struct.unpack(">I", plain)[0])
                return []
            if duplicate:
                self.rejected["duplicate"] += 1
            else:
                self._deliver(plain)
            return self._seal(ACK, struct.pack(">I", seq)) if self.ack_enabled else []
        self.rejected["malformed" if kind not in (DATA, ACK) else "unauthenticated"] += 1
        return []

    def _hello(self, key_id: int, box_nonce: bytes) -> list[bytes]:
        if self.secret is None or key_id != self.key_id:
            return self._chunks(_HDR.pack(1, ERROR, key_id, 0) + b"\x01")
        phone_nonce = os.urandom(16)
        b2p, p2b = _keys(self.secret, box_nonce, phone_nonce)
        self._send, self._recv = ChaCha20Poly1305(p2b), ChaCha20Poly1305(b2p)
        self._seq, self._highest = 0, 0
        head = _HDR.pack(1, HELLO, key_id, 0) + phone_nonce
        return self._chunks(head + self._send.encrypt(_nonce(0x50, 0), b"", head))

    def _deliver(self, plain: bytes) -> None:
        try:
            event = json.loads(plain.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            self.rejected["malformed"] += 1
            return
        if not isinstance(event, dict):
            self.rejected["malformed"] += 1
            return
        self.received.append(event)
        kind = event.get("type")
        if kind == "tip" and isinstance(event.get("tip_id"), str):
            if event["tip_id"] not in self.screen.tips:  # the same tip can come twice across reconnects
                self.screen.tips[event["tip_id"]] = event
                self._shown_at[event["tip_id"]] = self.clock()
        elif kind == "status":
            self.screen.status = event
        elif kind == "recap":
            self.screen.recaps.append(event)
        elif kind == "control_result":
            self.screen.results.append(event)
        elif kind == "control":
            self.screen.box_controls.append(event)
            if event.get("action") == "dismiss":
                self.screen.tips.pop(str(event.get("tip_id")), None)
        self.expire()

    def expire(self) -> None:
        now = self.clock()
        for tip_id, tip in list(self.screen.tips.items()):
            ttl = tip.get("ttl_s")
            if isinstance(ttl, (int, float)) and now - self._shown_at.get(tip_id, now) > ttl:
                del self.screen.tips[tip_id]

    # -- controls --------------------------------------------------------------------------------

    def control(self, action: str, **fields: Any) -> tuple[int, list[bytes]]:
        """A control as the rep gives it: (its seq, the chunks to notify)."""
        if self._send is None:
            raise RuntimeError("no session with the box yet")
        event = {"type": "control", "v": 1, "t": 0, "action": action, "source": "phone", **fields}
        if action == "dismiss":
            self.screen.tips.pop(str(fields.get("tip_id")), None)
        plain = json.dumps(event, separators=(",", ":")).encode("utf-8")
        chunks = self._seal(DATA, plain)
        self._pending[self._seq] = (self._last_frame, self.clock(), 1)
        return self._seq, chunks

    def retries(self) -> list[bytes]:
        """Chunks of controls not acknowledged within 1 s, written again (3 writes at most)."""
        out: list[bytes] = []
        now = self.clock()
        for seq, (frame, sent, writes) in list(self._pending.items()):
            if now - sent >= 1.0:
                if writes >= 3:
                    del self._pending[seq]
                    continue
                self._pending[seq] = (frame, now, writes + 1)
                out += self._chunks(frame)
        return out

    def raw_data(self, plaintext: bytes) -> list[bytes]:
        """A DATA frame with any plaintext (tests send the box garbage that authenticates)."""
        return self._seal(DATA, plaintext)

    # -- framing ---------------------------------------------------------------------------------

    def _seal(self, kind: int, plain: bytes) -> list[bytes]:
        assert self._send is not None
        self._seq += 1
        head = _HDR.pack(1, kind, self.key_id, self._seq)
        self._last_frame = head + self._send.encrypt(_nonce(0x50, self._seq), plain, head)
        return self._chunks(self._last_frame)

    def _chunks(self, frame: bytes) -> list[bytes]:
        self._tag = (self._tag + 1) % 256
        return split(frame, self.payload, self._tag)

    def _reassemble(self, data: bytes) -> bytes | None:
        if len(data) < 2:
            self.rejected["malformed"] += 1
            self._parts, self._part_tag = [], None
            return None
        index, last, tag = data[0] & 0x7F, bool(data[0] & 0x80), data[1]
        if index == 0:
            self._parts, self._part_tag = [], tag
        elif tag != self._part_tag or index != len(self._parts):
            self.rejected["malformed"] += 1
            self._parts, self._part_tag = [], None
            return None
        self._parts.append(data[2:])
        if sum(map(len, self._parts)) > 4096:
            self.rejected["malformed"] += 1
            self._parts, self._part_tag = [], None
            return None
        if not last:
            return None
        frame, self._parts, self._part_tag = b"".join(self._parts), [], None
        return frame


def decode_vectors(doc: Path) -> list[tuple[str, str]]:
    """Read the spec's vectors as an app would: returns (name, what it decoded to)."""
    text = doc.read_text("utf-8")
    block = text[text.index("<!-- vectors:begin") : text.index("<!-- vectors:end -->")]
    secret = bytes.fromhex(block.split("secret = `")[1].split("`")[0])
    box_nonce = bytes.fromhex(block.split("box nonce = `")[1].split("`")[0])
    phone_nonce = bytes.fromhex(block.split("phone nonce = `")[1].split("`")[0])
    b2p, p2b = _keys(secret, box_nonce, phone_nonce)
    keys = {"box->phone": (ChaCha20Poly1305(b2p), 0x42), "phone->box": (ChaCha20Poly1305(p2b), 0x50)}
    out: list[tuple[str, str]] = []
    name = direction = ""
    for line in block.splitlines():
        if line.startswith("**") and "(" in line:
            name = line[2 : line.index("**", 2)]
            direction = line[line.index("(") + 1 : line.index(")")]
        elif line.strip().startswith("frame "):
            frame = bytes.fromhex(line.split()[1])
            version, kind, key_id, seq = _HDR.unpack_from(frame)
            if kind == HELLO and direction == "box->phone":
                out.append((name, f"HELLO key {key_id} box_nonce {frame[8:].hex()}"))
            elif kind == HELLO:
                aead, d = keys["phone->box"]
                aead.decrypt(_nonce(d, 0), frame[24:], frame[:24])  # raises if the proof is wrong
                out.append((name, f"HELLO key {key_id} phone_nonce {frame[8:24].hex()} proof ok"))
            elif kind == ERROR:
                out.append((name, f"ERROR code {frame[8]}"))
            else:
                aead, d = keys[direction]
                plain = aead.decrypt(_nonce(d, seq), frame[8:], frame[:8])
                what = "DATA" if kind == DATA else "ACK"
                shown = plain.decode("utf-8") if kind == DATA else str(struct.unpack(">I", plain)[0])
                out.append((name, f"{what} seq {seq}: {shown}"))
    return out


def main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("vectors", help="decode the test vectors of the spec")
    v.add_argument("--doc", type=Path, default=Path(__file__).resolve().parent.parent / "docs" / "phone-protocol.md")
    q = sub.add_parser("qr", help="show what a pairing code holds")
    q.add_argument("code")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "vectors":
            for name, meaning in decode_vectors(args.doc):
                print(f"{name:20s} {meaning}")
        else:
            key_id, secret, box = parse_pairing_code(args.code)
            print(f"box {box!r}, key id {key_id}, secret of {len(secret)} bytes")
    except (OSError, ValueError, KeyError, IndexError, InvalidTag) as exc:
        print(f"phone_sim: {exc or type(exc).__name__}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
