"""The protocol document's test vectors: made by the box's code, read back by the independent app."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))

import phone_sim  # noqa: E402
import phone_vectors  # noqa: E402

from firmware.phone import protocol as p  # noqa: E402

DOC = REPO / "docs" / "phone-protocol.md"


def test_the_document_holds_exactly_the_generated_vectors() -> None:
    text = DOC.read_text("utf-8")
    assert phone_vectors.render() in text, "run: python tools/phone_vectors.py --write"


def test_the_independent_app_decodes_every_vector_to_its_meaning() -> None:
    decoded = dict(phone_sim.decode_vectors(DOC))
    assert decoded["box-hello"] == "HELLO key 1 box_nonce " + phone_vectors.BOX_NONCE.hex()
    assert decoded["phone-hello"].endswith("proof ok")
    assert decoded["error-unknown-key"] == "ERROR code 1"
    assert decoded["ack-tip"] == "ACK seq 1: 1" and decoded["ack-control"] == "ACK seq 2: 2"
    for name, event in (("tip", phone_vectors.TIP), ("control", phone_vectors.CONTROL), ("status", phone_vectors.STATUS)):
        head, _, body = decoded[name].partition(": ")
        assert head.startswith("DATA seq") and json.loads(body) == event


def test_the_box_reads_the_apps_frames_and_the_chunk_vector() -> None:
    vectors = {v.name: v for v in phone_vectors.vectors()}
    box = p.Session.box_side(phone_vectors.SECRET, 1, phone_vectors.BOX_NONCE, vectors["phone-hello"].frame)
    assert box.open(vectors["ack-tip"].frame).acked_seq == 1
    assert json.loads(box.open(vectors["control"].frame).plaintext) == phone_vectors.CONTROL
    text = DOC.read_text("utf-8")
    chunks = [bytes.fromhex(line.strip()) for line in text.split("**tip-chunks-20**")[1].split("<!--")[0].splitlines()[2:] if line.strip()]
    r = p.Reassembler()
    assert [r.push(c) for c in chunks][-1] == vectors["tip"].frame and max(map(len, chunks)) == 20


def test_the_app_and_the_box_talk_at_twenty_bytes() -> None:
    secret = bytes(range(32))
    app = phone_sim.PhoneApp(secret, 3, mtu_payload=20)
    nonce = p.new_nonce()
    reply_chunks = []
    for c in p.chunk(p.box_hello(3, nonce), 20, tag=1):
        reply_chunks += app.on_write(c)
    r = p.Reassembler()
    reply = [f for f in map(r.push, reply_chunks) if f][0]
    box = p.Session.box_side(secret, 3, nonce, reply)
    frames = []
    for c in p.chunk(box.seal(p.Kind.DATA, json.dumps(phone_vectors.TIP).encode()), 20, tag=2):
        frames += app.on_write(c)
    ack = [f for f in map(r.push, frames) if f][0]
    assert box.open(ack).acked_seq == 1
    assert app.screen.tips["5eed0001-3"]["text"] == phone_vectors.TIP["text"]
    seq, chunks = app.control("dismiss", tip_id="5eed0001-3")
    opened = box.open([f for f in map(r.push, chunks) if f][0])
    assert json.loads(opened.plaintext)["action"] == "dismiss" and opened.seq == seq
    assert "5eed0001-3" not in app.screen.tips


def test_an_app_without_the_secret_answers_error_and_the_box_refuses() -> None:
    app = phone_sim.PhoneApp(None, 3)
    nonce = p.new_nonce()
    out = []
    for c in p.chunk(p.box_hello(3, nonce), 20, tag=1):
        out += app.on_write(c)
    r = p.Reassembler()
    with pytest.raises(p.ProtocolError) as err:
        p.Session.box_side(bytes(32), 3, nonce, [f for f in map(r.push, out) if f][0])
    assert err.value.reason == "refused"
