"""The BLE phone link end to end: bleak's real BlueZ backend against the fake BlueZ on a private bus,
with the independent app implementation (tools/phone_sim.py) as the phone."""

from __future__ import annotations

import os
import stat
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))

import phone_sim  # noqa: E402

from firmware.events import Control, RecapEvent, Status, Tip, Utterance  # noqa: E402
from firmware.phone import protocol as p  # noqa: E402
from firmware.phone.config import PhoneConfig  # noqa: E402
from firmware.phone.link import PhoneLink  # noqa: E402
from firmware.phone.secret import BondedPhone, PairingStore  # noqa: E402
from firmware.testing.fakebluez import FakeBlueZ, PrivateBus  # noqa: E402

PHONE = "AA:BB:CC:DD:EE:01"
STRANGER = "AA:BB:CC:DD:EE:66"
FAST = PhoneConfig(scan_s=0.3, backoff_initial_s=0.05, backoff_max_s=0.3, ack_timeout_s=0.3, hello_timeout_s=1.0)


def wait_until(pred: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    """Polls; the timeout only turns a hang into a failure (no timing is asserted)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for: {what}")


@dataclass
class Rig:
    fake: FakeBlueZ
    store: PairingStore
    app: phone_sim.PhoneApp
    link: PhoneLink
    controls: list[Control]

    def counters(self) -> dict[str, int]:
        return self.link.status()["counters"]

    def connected(self) -> bool:
        return bool(self.link.status()["connected"])

    def phone(self, act: Callable[[phone_sim.PhoneApp], Any], send: bool = True) -> Any:
        """Run ``act`` on the app where the fake runs it; ``send``: notify the chunks it returns."""

        def run(app: phone_sim.PhoneApp) -> tuple[Any, list[bytes]]:
            if not app.in_session:
                return None, []
            out = act(app)
            chunks = out[1] if isinstance(out, tuple) else out
            return out, (chunks if send else [])

        return self.fake.phone_does(PHONE, run)


@pytest.fixture
def bus(monkeypatch: pytest.MonkeyPatch) -> Iterator[PrivateBus]:
    with PrivateBus() as b:
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", b.address)
        yield b


def make_rig(bus: PrivateBus, tmp_path: Path, *, config: PhoneConfig = FAST, bonded: bool = True, **app_kw: Any) -> Rig:
    fake = FakeBlueZ(bus.address)
    store = PairingStore(tmp_path / "state")
    secret = store.ensure_secret()
    app = phone_sim.PhoneApp(secret.secret, secret.key_id, **app_kw)
    fake.add_phone(PHONE, app)
    if bonded:
        fake.phones[PHONE].paired = True
        store.remember(BondedPhone(PHONE, "Rep phone"))
    controls: list[Control] = []
    link = PhoneLink(config, store, control=controls.append)
    return Rig(fake, store, app, link, controls)


@pytest.fixture
def rig(bus: PrivateBus, tmp_path: Path) -> Iterator[Rig]:
    r = make_rig(bus, tmp_path)
    r.link.start()
    try:
        wait_until(r.connected, "link up")
        yield r
    finally:
        r.link.stop()
        r.fake.close()


def tip(n: int, ttl_s: float = 30.0, text: str = "Ask what budget they had in mind.") -> Tip:
    return Tip(t=float(n), tip_id=f"5eed0001-{n}", call_id=1, moment="price_objection", text=text,
               priority=2, ttl_s=ttl_s, cues=("led", "phone"))  # fmt: skip


def test_pairing_bonds_only_the_phone_with_the_secret(bus: PrivateBus, tmp_path: Path) -> None:
    r = make_rig(bus, tmp_path, bonded=False)
    stranger = phone_sim.PhoneApp(os.urandom(32), r.store.ensure_secret().key_id)
    r.fake.add_phone(STRANGER, stranger, name="someone else")
    pairing_led: list[bool] = []
    r.link = PhoneLink(FAST, r.store, control=r.controls.append, on_pairing=pairing_led.append)
    r.link.start()
    try:
        assert not r.link.status()["connected"] and r.store.bonded() is None
        r.fake.phones[PHONE].in_range = False  # the rep's phone shows up after the stranger
        r.link.enter_pairing()
        wait_until(lambda: r.counters()["wrong_phone"] == 1, "the stranger refused")
        assert r.store.bonded() is None
        r.fake.set_in_range(PHONE, True)
        wait_until(lambda: r.store.bonded() is not None, "bonded")
        assert r.store.bonded() == BondedPhone(PHONE, "Rep phone")
        assert stat.S_IMODE((tmp_path / "state" / "phone-bond.json").stat().st_mode) == 0o600
        wait_until(r.connected, "link up with the bonded phone")
        assert pairing_led == [True, False]
        c = r.counters()
        assert c["pairings"] == 1 and c["wrong_phone"] == 1
        # the stranger was bonded by BlueZ, failed HELLO, and was removed again
        assert r.fake.removed == [STRANGER] and not r.fake.phones[STRANGER].paired
        assert (STRANGER, True) in r.fake.pair_requests and stranger.screen.tips == {}
        r.link.send(tip(1))
        wait_until(lambda: "5eed0001-1" in r.app.screen.tips, "tip on the phone")
        assert stranger.received == []
    finally:
        r.link.stop()
        r.fake.close()


def test_a_tip_reaches_the_phone_in_20_byte_writes_and_is_acknowledged(rig: Rig) -> None:
    rig.link.send(tip(1))
    wait_until(lambda: rig.counters()["acked"] == 1, "ack")
    shown = rig.app.screen.tips["5eed0001-1"]
    assert shown["text"] == "Ask what budget they had in mind." and shown["priority"] == 2 and shown["ttl_s"] == 30.0
    writes = rig.fake.phones[PHONE].writes
    assert max(map(len, writes)) == 20 and len(writes) > 5
    assert rig.link.ack_latencies_ms() and rig.link.status()["queued"] == 0
    health = rig.link.health()
    assert health["phone_connected"] is True and health["phone_bonded"] is True and health["phone_acked"] == 1
    assert all(isinstance(v, (bool, int)) for v in health.values())  # the fleet takes numbers only


def test_status_and_recap_reach_the_phone_and_nothing_else_does(rig: Rig) -> None:
    rig.link.send(Utterance(t=1.0, speaker="buyer", start=0.0, end=1.0, text="our budget is tight"))
    rig.link.send(Status(t=2.0, call_active=True, call_id=1, muted=True))
    rig.link.send(RecapEvent(t=60.0, call_id=1, duration_s=60.0, longest_monologue_s=12.0, questions_asked=4,
                             went_well="asked about budget", try_next="pause after objections"))  # fmt: skip
    wait_until(lambda: rig.app.screen.recaps, "recap")
    assert rig.app.screen.status is not None and rig.app.screen.status["muted"] is True
    assert [e["type"] for e in rig.app.received] == ["status", "recap"]
    assert "budget is tight" not in repr(rig.link.status())


def test_a_control_from_the_phone_goes_through_the_control_path_once(rig: Rig) -> None:
    rig.link.send(tip(1))
    wait_until(lambda: rig.counters()["acked"] == 1, "tip acked")
    seq, chunks = rig.phone(lambda app: app.control("dismiss", tip_id="5eed0001-1"))
    wait_until(lambda: seq in rig.app.acked_controls, "control acked by the box")
    assert len(rig.controls) == 1
    control = rig.controls[0]
    assert (control.action, control.source, control.tip_id) == ("dismiss", "phone", "5eed0001-1")
    # the same frame again (a replay, or a retransmission): acknowledged, never applied twice
    rig.fake.notify(PHONE, chunks)
    wait_until(lambda: rig.counters()["rejected_stale"] == 1, "replay counted")
    assert len(rig.controls) == 1 and rig.counters()["controls_applied"] == 1


def test_a_control_pretending_to_be_the_button_is_refused(rig: Rig) -> None:
    rig.phone(lambda app: app.raw_data(b'{"type":"control","v":1,"t":0,"action":"mute","source":"button"}'))
    wait_until(lambda: rig.counters()["controls_rejected"] == 1, "refused")
    assert rig.controls == []


def test_tampered_and_truncated_frames_are_rejected_and_the_link_carries_on(rig: Rig) -> None:
    _, chunks = rig.phone(lambda app: app.control("mute"), send=False)
    tampered = [bytearray(c) for c in chunks]
    tampered[-1][-1] ^= 0x40
    rig.fake.notify(PHONE, [bytes(c) for c in tampered])
    wait_until(lambda: rig.counters()["rejected_unauthenticated"] == 1, "tampered frame rejected")
    _, chunks = rig.phone(lambda app: app.control("unmute"), send=False)
    rig.fake.notify(PHONE, chunks[:1] + chunks[2:])  # a chunk lost on the way
    wait_until(lambda: rig.counters()["rejected_malformed"] >= 1, "truncated frame rejected")
    assert rig.controls == []
    rig.phone(lambda app: app.control("snooze", minutes=5.0))
    wait_until(lambda: len(rig.controls) == 1, "a good control after the bad ones")
    assert rig.controls[0].action == "snooze" and rig.controls[0].minutes == 5.0


def test_a_thousand_malformed_control_frames_do_not_crash_the_link(rig: Rig) -> None:
    import random

    rnd = random.Random(14)
    sent = 0
    for i in range(1000):
        time.sleep(0.002)  # a phone's notifications come at radio pace, not as one burst into D-Bus
        kind = i % 4
        if kind == 0:  # random chunk bytes
            junk = bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 21)))
            rig.fake.notify(PHONE, [junk])
            sent += 1
            continue
        if kind == 1:  # authenticated, but not an event
            body = bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 40)))
        elif kind == 2:  # authenticated JSON of the wrong shape
            body = b'{"type":"control","v":1,"t":0,"action":"explode","source":"phone"}'
        else:  # a genuine control with its tag damaged
            body = b'{"type":"control","v":1,"t":0,"action":"mute","source":"phone"}'
        chunks = rig.phone(lambda app, b=body: app.raw_data(b), send=kind != 3)
        if chunks and kind == 3:
            chunks = chunks[:-1] + [chunks[-1][:-1] + bytes([chunks[-1][-1] ^ rnd.randrange(1, 256)])]
            rig.fake.notify(PHONE, chunks)
        sent += bool(chunks)
    assert sent > 500
    # the link survives (it may hang up on a flood of unauthenticated frames, then comes back)
    wait_until(rig.connected, "link up after the flood")
    rig.link.send(tip(7))
    wait_until(lambda: "5eed0001-7" in rig.app.screen.tips, "a tip after the flood")
    c = rig.counters()
    assert rig.controls == []
    rejected = c["controls_rejected"] + c["rejected_malformed"] + c["rejected_unauthenticated"] + c["rejected_stale"]
    assert c["controls_rejected"] > 0 and c["rejected_unauthenticated"] > 0 and rejected >= 500


def test_the_link_heals_when_the_phone_comes_back_and_drops_expired_tips(rig: Rig) -> None:
    rig.fake.set_in_range(PHONE, False)
    wait_until(lambda: not rig.connected(), "link down")
    rig.link.send(tip(1, ttl_s=0.2))  # expires while the phone is away
    rig.link.send(tip(2, ttl_s=60.0))
    wait_until(lambda: rig.counters()["dropped_expired"] == 1, "expired tip dropped")
    rig.fake.set_in_range(PHONE, True)
    wait_until(lambda: "5eed0001-2" in rig.app.screen.tips, "queued tip after reconnect")
    assert "5eed0001-1" not in rig.app.screen.tips
    c = rig.counters()
    assert c["connects"] >= 2 and c["disconnects"] >= 1 and rig.link.status()["last_error"] is None


def test_the_link_survives_a_bluez_restart(rig: Rig) -> None:
    rig.fake.restart()
    wait_until(lambda: rig.fake.restarts == 1 and rig.connected() and rig.fake.default_agent is not None,
               "reconnected to the restarted BlueZ, agent registered again")  # fmt: skip
    rig.link.send(tip(3))
    wait_until(lambda: "5eed0001-3" in rig.app.screen.tips, "tip after restart")


def test_the_link_notices_a_silent_bluez_crash(rig: Rig) -> None:
    rig.fake.crash()  # no signal tells bleak the connection is gone
    wait_until(lambda: rig.counters()["disconnects"] >= 1, "the session noticed")
    wait_until(lambda: rig.connected() and rig.fake.phones[PHONE].connected, "reconnected")
    rig.link.send(tip(5))
    wait_until(lambda: "5eed0001-5" in rig.app.screen.tips, "tip after the crash")


def test_the_link_survives_the_adapter_vanishing(rig: Rig) -> None:
    rig.fake.remove_adapter()
    wait_until(lambda: not rig.connected() and rig.link.status()["last_error"] is not None, "adapter gone")
    rig.link.send(tip(4))
    rig.fake.add_adapter()
    wait_until(lambda: "5eed0001-4" in rig.app.screen.tips, "tip once the adapter is back")


def test_a_phone_that_never_acknowledges_gets_retries_then_a_new_session(bus: PrivateBus, tmp_path: Path) -> None:
    r = make_rig(bus, tmp_path, ack=False)
    r.link.start()
    try:
        wait_until(r.connected, "link up")
        r.link.send(tip(1))
        wait_until(lambda: r.counters()["retried"] >= 2 and r.counters()["connects"] >= 2, "retries, then reconnect")
        assert r.app.rejected["duplicate"] >= 2  # the retransmissions reached the app as duplicates
        wait_until(lambda: [e["tip_id"] for e in r.app.received].count("5eed0001-1") >= 2, "re-sent in the new session")
        assert list(r.app.screen.tips) == ["5eed0001-1"]  # and shown once
    finally:
        r.link.stop()
        r.fake.close()


def test_a_full_queue_drops_the_oldest_tip_and_keeps_the_newest_status(bus: PrivateBus, tmp_path: Path) -> None:
    cfg = PhoneConfig(scan_s=0.3, backoff_initial_s=0.05, backoff_max_s=0.3, queue_max=3)
    r = make_rig(bus, tmp_path, config=cfg)
    r.fake.phones[PHONE].in_range = False
    r.link.start()
    try:
        for n in range(1, 6):
            r.link.send(tip(n))
            r.link.send(Status(t=float(n), call_active=True, call_id=1, muted=n % 2 == 0))
        wait_until(lambda: r.counters()["dropped_overflow"] >= 1 and r.link.status()["queued"] == 3, "queue bounded")
        r.fake.set_in_range(PHONE, True)
        wait_until(lambda: r.link.status()["queued"] == 0 and r.counters()["acked"] == 3, "queue drained")
        statuses = [e for e in r.app.received if e["type"] == "status"]
        assert len(statuses) == 1 and statuses[0]["t"] == 5.0
        assert list(r.app.screen.tips) == ["5eed0001-4", "5eed0001-5"]
    finally:
        r.link.stop()
        r.fake.close()


def test_a_bigger_mtu_is_used_when_the_phone_offers_one(bus: PrivateBus, tmp_path: Path) -> None:
    r = make_rig(bus, tmp_path)
    r.fake.phones[PHONE].mtu = 185
    r.link.start()
    try:
        wait_until(r.connected, "link up")
        r.link.send(tip(1, text="x" * 150))
        wait_until(lambda: "5eed0001-1" in r.app.screen.tips, "tip")
        writes = r.fake.phones[PHONE].writes
        assert max(map(len, writes)) > 20 and max(map(len, writes)) <= 182
    finally:
        r.link.stop()
        r.fake.close()


def test_stop_joins_and_send_after_stop_is_harmless(bus: PrivateBus, tmp_path: Path) -> None:
    r = make_rig(bus, tmp_path)
    r.link.start()
    wait_until(r.connected, "link up")
    r.link.stop()
    assert not any(t.name == "phone-link" for t in __import__("threading").enumerate())
    assert not r.link.status()["connected"]
    r.link.send(tip(9))  # the coach may still call it while shutting down
    r.fake.close()


def test_without_a_bonded_phone_the_link_waits_quietly(bus: PrivateBus, tmp_path: Path) -> None:
    r = make_rig(bus, tmp_path, bonded=False)
    r.link.start()
    try:
        r.link.send(tip(1))
        time.sleep(0.3)
        s = r.link.status()
        assert not s["connected"] and s["bonded_phone"] is None and s["counters"]["link_errors"] == 0
        assert r.fake.scans == 0
    finally:
        r.link.stop()
        r.fake.close()


def test_frames_never_exceed_the_chunk_limits_for_the_largest_recap() -> None:
    assert p.MAX_CHUNKS * (p.MIN_CHUNK - p.CHUNK_HEADER) >= 2048


def test_the_rep_mutes_the_call_from_the_phone_through_the_coach_box(bus: PrivateBus, tmp_path: Path) -> None:
    """End to end: a real CoachBox with the link as its phone; the phone's control goes through
    CoachBox.control and its result and the new status come back to the phone."""
    from firmware.coach.build import CoachBox
    from firmware.config import Config, PathsConfig
    from firmware.cues.pins import make_pin_factory
    from firmware.phone.link import attach

    r = make_rig(bus, tmp_path)
    config = Config(paths=PathsConfig(state_dir=tmp_path / "coach"))
    published: list[Any] = []
    box = CoachBox(config, phone=r.link, pin_factory=make_pin_factory("mock"), publish=published.append)
    attach(r.link, box, config.phone.pair_hold_s)
    r.link.start()
    try:
        wait_until(r.connected, "link up")
        box.start_call(published.append, call_id=7)
        wait_until(lambda: (r.app.screen.status or {}).get("call_active") is True, "call status on the phone")
        r.phone(lambda app: app.control("mute", call_id=7))
        wait_until(lambda: r.app.screen.results, "the box's answer on the phone")
        result = r.app.screen.results[-1]
        assert (result["action"], result["source"], result["outcome"]) == ("mute", "phone", "applied")
        wait_until(lambda: (r.app.screen.status or {}).get("muted") is True, "muted status on the phone")
        assert box.coach is not None and box.coach.muted
        assert any(getattr(e, "type", "") == "control" and e.source == "phone" for e in published)
        box.end_call(30.0)
        wait_until(lambda: r.app.screen.recaps, "recap on the phone")
    finally:
        r.link.stop()
        box.close()
        r.fake.close()
