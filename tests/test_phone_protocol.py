"""The phone wire protocol: sessions, tampering, replay, truncation, 20-byte chunks, fuzzing."""

from __future__ import annotations

import os
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware.errors import PhoneLinkError
from firmware.phone import protocol as p
from firmware.phone.secret import BondedPhone, PairingStore, parse_qr_payload

SECRET = bytes(range(32))
KEY_ID = 7


def _pair(secret: bytes = SECRET, phone_secret: bytes = SECRET) -> tuple[p.Session, p.Session]:
    box_nonce, phone_nonce = os.urandom(16), os.urandom(16)
    hello = p.box_hello(KEY_ID, box_nonce)
    key_id, seen_nonce = p.parse_box_hello(hello)
    reply = p.phone_hello(phone_secret, key_id, seen_nonce, phone_nonce)
    box = p.Session.box_side(secret, KEY_ID, box_nonce, reply)
    phone = p.Session.phone_side(phone_secret, key_id, seen_nonce, phone_nonce)
    return box, phone


def test_data_and_ack_round_trip() -> None:
    box, phone = _pair()
    frame = box.seal(p.Kind.DATA, b'{"type": "tip"}')
    opened = phone.open(frame)
    assert (opened.kind, opened.seq, opened.plaintext, opened.duplicate) == (p.Kind.DATA, 1, b'{"type": "tip"}', False)
    ack = box.open(phone.ack(opened.seq))
    assert ack.kind is p.Kind.ACK and ack.acked_seq == 1


def test_every_session_has_fresh_keys() -> None:
    box1, _ = _pair()
    box2, phone2 = _pair()
    frame = box1.seal(p.Kind.DATA, b"x")
    with pytest.raises(p.ProtocolError) as err:
        phone2.open(frame)  # same seq 1, same secret, other session: not accepted
    assert err.value.reason == "unauthenticated"


def test_wrong_secret_is_refused_at_hello() -> None:
    with pytest.raises(p.ProtocolError) as err:
        _pair(phone_secret=bytes(32))
    assert err.value.reason == "unauthenticated"


def test_error_frame_from_a_phone_with_an_old_key() -> None:
    with pytest.raises(p.ProtocolError) as err:
        p.Session.box_side(SECRET, KEY_ID, os.urandom(16), p.error_frame(KEY_ID, p.ErrorCode.UNKNOWN_KEY))
    assert err.value.reason == "refused" and "unknown_key" in str(err.value)


@pytest.mark.parametrize("where", [0, 1, 3, 7, 8, 20, -1])
def test_any_flipped_bit_is_rejected(where: int) -> None:
    box, phone = _pair()
    frame = bytearray(box.seal(p.Kind.DATA, b'{"type": "status", "call_active": true}'))
    frame[where] ^= 0x01
    with pytest.raises(p.ProtocolError) as err:
        phone.open(bytes(frame))
    assert err.value.reason in ("unauthenticated", "malformed")
    # the session survives and the genuine next frame is still accepted
    assert phone.open(box.seal(p.Kind.DATA, b"{}")).seq == 2


def test_replay_is_a_duplicate_never_delivered_twice() -> None:
    box, phone = _pair()
    first = box.seal(p.Kind.DATA, b"a")
    second = box.seal(p.Kind.DATA, b"b")
    assert not phone.open(first).duplicate
    assert not phone.open(second).duplicate
    assert phone.open(first).duplicate
    assert phone.open(second).duplicate


def test_truncated_frames_are_rejected() -> None:
    box, phone = _pair()
    frame = box.seal(p.Kind.DATA, b"hello phone")
    for n in (0, 3, 8, 12, len(frame) - 1):
        with pytest.raises(p.ProtocolError):
            phone.open(frame[:n])


@pytest.mark.parametrize("size", [20, 21, 64, 182, 244, 512])
def test_chunks_fit_the_payload_and_reassemble(size: int) -> None:
    frame = os.urandom(1500)
    chunks = p.chunk(frame, size, tag=200)
    assert all(len(c) <= size for c in chunks)
    r = p.Reassembler()
    out = [r.push(c) for c in chunks]
    assert out[:-1] == [None] * (len(chunks) - 1) and out[-1] == frame


def test_twenty_byte_mtu_carries_a_recap_sized_frame() -> None:
    box, phone = _pair()
    body = b'{"type": "recap", "text": "' + b"x" * 1800 + b'"}'
    chunks = p.chunk(box.seal(p.Kind.DATA, body), 20, tag=1)
    assert max(map(len, chunks)) == 20
    r = p.Reassembler()
    frames = [f for f in map(r.push, chunks) if f is not None]
    assert phone.open(frames[0]).plaintext == body


def test_a_lost_chunk_drops_the_frame_and_the_next_one_still_arrives() -> None:
    r = p.Reassembler()
    a, b = p.chunk(os.urandom(60), 20, tag=1), p.chunk(os.urandom(60), 20, tag=2)
    r.push(a[0])
    with pytest.raises(p.ProtocolError):
        r.push(a[2])  # a[1] lost
    assert [r.push(c) for c in b][-1] == b"".join(c[2:] for c in b)
    # a new frame starting while one is unfinished counts it as truncated
    r.push(a[0])
    assert [r.push(c) for c in b][-1] is not None and r.truncated == 1


def test_oversized_frames_are_refused_both_ways() -> None:
    with pytest.raises(p.ProtocolError):
        p.chunk(bytes(p.MAX_CHUNKS * 18 + 1), 20, tag=0)
    r = p.Reassembler(max_frame=100)
    chunks = p.chunk(bytes(200), 64, tag=3)
    with pytest.raises(p.ProtocolError):
        for c in chunks:
            r.push(c)


@settings(max_examples=1000, deadline=None, database=None)
@given(st.lists(st.binary(max_size=40), max_size=12))
def test_malformed_chunks_never_crash_the_receiver(chunks: list[bytes]) -> None:
    """1,000 random chunk streams: the only outcome is a frame, None, or ProtocolError."""
    _, phone = _pair_cached()
    r = p.Reassembler()
    for c in chunks:
        try:
            frame = r.push(c)
            if frame is not None:
                phone.open(frame)
        except p.ProtocolError:
            pass


@settings(max_examples=1000, deadline=None, database=None)
@given(st.binary(max_size=120), st.integers(0, 119), st.integers(1, 255))
def test_mutated_genuine_frames_are_rejected(prefix: bytes, where: int, flip: int) -> None:
    box, phone = _pair()
    frame = bytearray(box.seal(p.Kind.DATA, prefix))
    where %= len(frame)
    frame[where] ^= flip
    with pytest.raises(p.ProtocolError):
        phone.open(bytes(frame))


_CACHED: list[tuple[p.Session, p.Session]] = []


def _pair_cached() -> tuple[p.Session, p.Session]:
    if not _CACHED:
        _CACHED.append(_pair())
    return _CACHED[0]


# -- the secret and the bond ---------------------------------------------------------------------


def test_secret_is_private_rotates_and_survives_a_restart(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = PairingStore(tmp_path / "state")
    first = store.ensure_secret()
    path = tmp_path / "state" / "phone-secret.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert PairingStore(tmp_path / "state").ensure_secret() == first
    rotated = store.rotate()
    assert rotated.key_id == first.key_id + 1 and rotated.secret != first.secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [f.name for f in (tmp_path / "state").iterdir()] == ["phone-secret.json"]  # no temp files left


def test_qr_payload_round_trips(tmp_path) -> None:  # type: ignore[no-untyped-def]
    secret = PairingStore(tmp_path).ensure_secret()
    parsed, name = parse_qr_payload(secret.qr_payload("box 12/a"))
    assert parsed == secret and name == "box 12/a"
    with pytest.raises(PhoneLinkError):
        parse_qr_payload("parallax-pair:v1?k=1&s=AAAA")


def test_bond_is_remembered_and_forgotten(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = PairingStore(tmp_path)
    assert store.bonded() is None
    store.remember(BondedPhone("AA:BB:CC:DD:EE:FF", "Rep's phone"))
    assert PairingStore(tmp_path).bonded() == BondedPhone("AA:BB:CC:DD:EE:FF", "Rep's phone")
    assert stat.S_IMODE((tmp_path / "phone-bond.json").stat().st_mode) == 0o600
    store.forget()
    assert store.bonded() is None
    (tmp_path / "phone-secret.json").write_text("[1, 2]")
    with pytest.raises(PhoneLinkError):
        store.secret()
