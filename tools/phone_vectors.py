#!/usr/bin/env python3
"""Test vectors for docs/phone-protocol.md, made by the box's own protocol code.

    python tools/phone_vectors.py            # print the vectors section (Markdown)
    python tools/phone_vectors.py --write    # replace it in docs/phone-protocol.md (atomically)

tests/test_phone_docs.py checks that the document holds exactly what this prints, and that the
independent app-side decoder in tools/phone_sim.py reads every vector to its stated meaning, so
the document cannot drift from the code.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from firmware.phone import protocol as p  # noqa: E402

DOC = REPO / "docs" / "phone-protocol.md"
BEGIN, END = "<!-- vectors:begin (tools/phone_vectors.py --write) -->", "<!-- vectors:end -->"

SECRET = bytes(range(0x20))
KEY_ID = 1
BOX_NONCE = bytes(range(0xA0, 0xB0))
PHONE_NONCE = bytes(range(0xB0, 0xC0))

TIP = {"type": "tip", "v": 1, "t": 12.5, "tip_id": "5eed0001-3", "call_id": 4, "moment": "price_objection",
       "text": "Ask what budget they had in mind.", "priority": 2, "ttl_s": 20.0}  # fmt: skip
STATUS = {"type": "status", "v": 1, "t": 30.0, "call_active": True, "call_id": 4, "muted": False,
          "snoozed_until_s": 330.0}  # fmt: skip
CONTROL = {"type": "control", "v": 1, "t": 0, "action": "dismiss", "source": "phone", "tip_id": "5eed0001-3"}


@dataclass(frozen=True)
class Vector:
    name: str
    direction: str  # "box->phone" or "phone->box"
    meaning: str
    frame: bytes
    plaintext: bytes | None = None


def payload(event: dict[str, object]) -> bytes:
    """Events travel as compact UTF-8 JSON (the separators the spec names)."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def vectors() -> list[Vector]:
    box = p.Session.box_side(SECRET, KEY_ID, BOX_NONCE, p.phone_hello(SECRET, KEY_ID, BOX_NONCE, PHONE_NONCE))
    phone = p.Session.phone_side(SECRET, KEY_ID, BOX_NONCE, PHONE_NONCE)
    tip, status, control = payload(TIP), payload(STATUS), payload(CONTROL)
    out = [
        Vector("box-hello", "box->phone", "HELLO, key id 1, box nonce a0..af", p.box_hello(KEY_ID, BOX_NONCE)),
        Vector("phone-hello", "phone->box", "HELLO reply, phone nonce b0..bf, proof tag",
               p.phone_hello(SECRET, KEY_ID, BOX_NONCE, PHONE_NONCE)),  # fmt: skip
        Vector("tip", "box->phone", "DATA seq 1: a tip", box.seal(p.Kind.DATA, tip), tip),
        Vector("ack-tip", "phone->box", "ACK seq 1 acknowledging box seq 1", phone.ack(1), (1).to_bytes(4, "big")),
        Vector("control", "phone->box", "DATA seq 2: dismiss that tip", phone.seal(p.Kind.DATA, control), control),
        Vector("ack-control", "box->phone", "ACK seq 2 acknowledging phone seq 2", box.ack(2), (2).to_bytes(4, "big")),
        Vector("status", "box->phone", "DATA seq 3: status", box.seal(p.Kind.DATA, status), status),
        Vector("error-unknown-key", "phone->box", "ERROR: the phone does not hold key id 1",
               p.error_frame(KEY_ID, p.ErrorCode.UNKNOWN_KEY)),  # fmt: skip
    ]
    return out


def session_keys() -> tuple[bytes, bytes]:
    return p.derive_keys(SECRET, BOX_NONCE, PHONE_NONCE)


def render() -> str:
    b2p, p2b = session_keys()
    lines = [
        BEGIN,
        "",
        "Inputs: secret = `" + SECRET.hex() + "` (32 bytes), key id = 1,",
        "box nonce = `" + BOX_NONCE.hex() + "`, phone nonce = `" + PHONE_NONCE.hex() + "`.",
        "",
        "Derived: box->phone key = `" + b2p.hex() + "`,",
        "phone->box key = `" + p2b.hex() + "`.",
        "",
        "QR payload for that secret (box name `demo-box`): `" + _qr() + "`",
        "",
    ]
    for v in vectors():
        lines.append(f"**{v.name}** ({v.direction}): {v.meaning}")
        lines.append("")
        lines.append("    frame     " + v.frame.hex())
        if v.plaintext is not None:
            shown = v.plaintext.decode("utf-8") if v.plaintext[:1] == b"{" else v.plaintext.hex()
            lines.append("    plaintext " + shown)
        lines.append("")
    tip = vectors()[2].frame
    lines.append("**tip-chunks-20**: the tip frame above cut for a 20-byte ATT payload (message tag 0x05):")
    lines.append("")
    for c in p.chunk(tip, 20, tag=5):
        lines.append("    " + c.hex())
    lines.append("")
    lines.append(END)
    return "\n".join(lines)


def _qr() -> str:
    from firmware.phone.secret import BoxSecret

    return BoxSecret(KEY_ID, SECRET).qr_payload("demo-box")


def replace_in(text: str, block: str) -> str:
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"{DOC}: vector markers not found")
    return text[:start] + block + text[end + len(END) :]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true", help=f"replace the vectors in {DOC.relative_to(REPO)}")
    args = ap.parse_args()
    block = render()
    if not args.write:
        print(block)
        return 0
    text = replace_in(DOC.read_text("utf-8"), block)
    fd, tmp = tempfile.mkstemp(prefix=".phone-protocol.", dir=DOC.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, DOC)
    return 0


if __name__ == "__main__":
    sys.exit(main())
