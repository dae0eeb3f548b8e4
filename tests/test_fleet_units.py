"""Fleet pieces without a broker: envelopes, manifests, versions, counters and what telemetry carries."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from firmware.fleet.agent import Agent
from firmware.fleet.config import FleetConfig
from firmware.fleet.counters import CoachCounters, counters_dir, read_counters, write_bridge_counters
from firmware.fleet.manifest import check_fresh, parse_offer, version_key
from firmware.fleet.messages import to_wire
from firmware.fleet.signing import PinnedKeys, Rejected, SigningKey
from firmware.fleet import admin


def _offer(**change: object) -> dict[str, object]:
    art = admin.describe("model", "intent", "1.5.0", b"x" * 10000, topic_base="parallax/v1/group/emea", url_base=None, chunk_bytes=4096)
    offer = admin.make_offer([art], group="emea")
    offer.update(change)
    return offer


def test_an_envelope_opens_only_with_a_pinned_key_and_an_intact_payload() -> None:
    key, other = SigningKey.generate(), SigningKey.generate()
    pinned = PinnedKeys([key.public_line])
    offer = _offer()
    assert pinned.open(key.seal(offer)) == json.loads(json.dumps(offer, sort_keys=True))
    with pytest.raises(Rejected, match="unknown key"):
        pinned.open(other.seal(offer))
    sealed = json.loads(key.seal(offer))
    sealed["sig"] = other.seal(offer).decode().split('"sig":"')[1].split('"')[0]
    with pytest.raises(Rejected, match="bad signature"):
        pinned.open(json.dumps(sealed).encode())
    with pytest.raises(Rejected, match="malformed: envelope larger"):
        pinned.open(b" " * (2 << 20))


def test_versions_compare_as_numbers_and_offers_are_checked_field_by_field() -> None:
    assert version_key("1.10.0") > version_key("1.9.3") > version_key("1.9")
    assert parse_offer(_offer()).artifacts[0].chunks == 3
    for change, reason in (
        ({"update_id": "../x"}, "update_id"),
        ({"artifacts": []}, "1 to 8 artifacts"),
        ({"target": {}}, "no group and no box"),
        ({"expires_at": "soon"}, "expires_at"),
    ):
        with pytest.raises(Rejected, match=reason):
            parse_offer(_offer(**change))
    bad_art = dict(_offer()["artifacts"][0], name="playbook")  # a model may not be named playbook
    with pytest.raises(Rejected, match="name"):
        parse_offer(_offer(artifacts=[bad_art]))
    with pytest.raises(Rejected, match="expired"):
        check_fresh(0.0, 100.0, 200.0, 1e6)
    with pytest.raises(Rejected, match="life"):
        check_fresh(0.0, 1e7, 1.0, 1e6)


def test_config_refuses_what_would_break_the_link() -> None:
    with pytest.raises(ValueError, match="admin_keys"):
        FleetConfig(admin_keys=("rsa:abc",))
    with pytest.raises(ValueError, match="reconnect_max_s = 30.0 is not allowed"):
        FleetConfig(reconnect_max_s=30.0)
    with pytest.raises(ValueError, match="reconnect_min_s <= reconnect_max_s"):
        FleetConfig(reconnect_min_s=5.0, reconnect_max_s=2.0)
    with pytest.raises(ValueError, match="topic level"):
        FleetConfig(group="emea/#")


def test_telemetry_carries_counters_and_never_text(tmp_path: Path) -> None:
    key = SigningKey.generate()
    cfg = FleetConfig(box_id="box-01", group="emea", admin_keys=(key.public_line,), ca_file=tmp_path / "ca", cert_file=tmp_path / "c", key_file=tmp_path / "k")
    state = tmp_path / "state"
    coach = CoachCounters(state, {"intent": "1.4.0"})
    coach.tip("objection_price")
    coach.tip("objection_price")
    coach.call_ended(recognizer_rtf=0.25)
    coach.set_phone_link("connected")
    coach.write()
    write_bridge_counters(state, xruns=2, tap_drops=7)
    # A counters file someone tampered with to smuggle words: they must not reach the broker.
    raw = read_counters(counters_dir(state) / "coach.json")
    assert raw is not None
    raw["tips_by_moment"]["Ask what they compare it with."] = 1
    raw["phone_link"] = "the buyer said no"
    (counters_dir(state) / "coach.json").write_text(json.dumps(raw))
    agent = Agent(cfg, state, _NoStore())  # type: ignore[arg-type]
    wire = json.loads(to_wire(agent.telemetry()) or b"{}")
    assert wire["type"] == "telemetry" and wire["calls"] == 1 and wire["recognizer_rtf"] == 0.25
    assert wire["bridge_xruns"] == 2 and wire["tap_drops"] == 7
    assert "phone_link" not in wire and "tips_by_moment" not in wire  # the whole field stays home
    assert "compare" not in json.dumps(wire) and "buyer" not in json.dumps(wire)
    assert wire["mem_total_mb"] > 0 and time.time() - wire["t"] < 60


class _NoStore:
    def names(self) -> list[str]:
        return ["intent"]

    def current(self, name: str) -> None:
        return None

    def versions(self, name: str) -> list[str]:
        return []


def test_parallax_agent_bad_setup_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from firmware.cli.main import main

    cfg = tmp_path / "parallax.toml"
    cfg.write_text(f'[paths]\nstate_dir = "{tmp_path}"\n\n[fleet]\nbox_id = "box-01"\n')
    assert main(["--config", str(cfg), "agent"]) == 2
    key = SigningKey.generate()
    cfg.write_text(f'[paths]\nstate_dir = "{tmp_path}"\n\n[fleet]\nbox_id = "box-01"\nadmin_keys = ["{key.public_line}"]\nca_file = "{tmp_path}/none.crt"\n')
    assert main(["--config", str(cfg), "agent"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "parallax: error: no admin keys pinned ([fleet] admin_keys): the box could trust no update"
    assert err[1].startswith("parallax: error: TLS file not found:") and len(err) == 2


def test_the_coach_counts_for_the_fleet_from_its_bus(tmp_path: Path) -> None:
    """parallax run's hook: tips by moment kind, calls, RTF, the versions a call ran on and the ones it
    fell back from; the tip's text never reaches the file."""
    import dataclasses

    from firmware.bus import EventBus
    from firmware.cli.run import _count_for_the_fleet
    from firmware.config import Config
    from firmware.events import Summary, Tip

    config = Config()
    config = dataclasses.replace(config, paths=dataclasses.replace(config.paths, state_dir=tmp_path))
    bus = EventBus()
    _count_for_the_fleet(bus, config, None)
    first = read_counters(counters_dir(tmp_path) / "coach.json")
    assert first is not None and first["calls"] == 0 and first["phone_link"] == "absent"
    bus.publish(Tip(t=1.0, tip_id="ab-1", call_id=1, moment="objection_price", text="Ask what they compare it with.", priority=50, ttl_s=10.0))
    bus.publish(Summary(t=60.0, duration_s=60.0, cpu_s=3.0, extra={
        "recognizer_rtf": 0.2, "recognizer_errors": 0, "versions": {"intent": "1.4.0"},
        "model_fallbacks": ["intent 1.5.0 failed to load, call ran on 1.4.0: ModelError: bad"]}))
    after = read_counters(counters_dir(tmp_path) / "coach.json")
    assert after is not None
    assert after["calls"] == 1 and after["calls_failed"] == 0 and after["recognizer_rtf"] == 0.2
    assert after["tips_by_moment"] == {"objection_price": 1}
    assert after["versions"] == {"intent": "1.4.0"} and after["fallbacks"] == {"intent": "1.5.0"}
    assert "compare" not in (counters_dir(tmp_path) / "coach.json").read_text()


def test_the_phone_links_figures_reach_the_fleet_and_no_address_or_text_does(tmp_path: Path) -> None:
    """Issue 14: the link's state and counters (PhoneLink.health) go coach file -> telemetry ->
    outward("fleet"); the last error only as its code, never its text or the phone's address."""
    from firmware.outward import outward
    from firmware.phone.config import PhoneConfig
    from firmware.phone.link import ERROR_CODES, PhoneLink, _Fault
    from firmware.phone.secret import BondedPhone, PairingStore

    mac = "AA:BB:CC:DD:EE:FF"
    link = PhoneLink(PhoneConfig(), PairingStore(tmp_path / "phone"))
    link._set(bonded=BondedPhone(mac, "Rep's phone"))  # noqa: SLF001 - what a bonding leaves
    link._count("sent", 5)  # noqa: SLF001
    link._count("rejected_stale", 2)  # noqa: SLF001
    link._error(_Fault(f"bonded phone {mac} not in range", "not_in_range"))  # noqa: SLF001 - as the link raises it
    assert mac in str(link.status()) and mac not in str(link.health())

    state = tmp_path / "state"
    coach = CoachCounters(state)
    coach.set_phone_link("disconnected")
    coach.set_phone_health(link.health())
    coach.write()
    cfg = FleetConfig(box_id="box-01", group="emea", admin_keys=(SigningKey.generate().public_line,),
                      ca_file=tmp_path / "ca", cert_file=tmp_path / "c", key_file=tmp_path / "k")  # fmt: skip
    agent = Agent(cfg, state, _NoStore())  # type: ignore[arg-type]
    wire = json.loads(to_wire(agent.telemetry()) or b"{}")
    phone = wire["phone"]
    assert phone["connected"] is False and phone["bonded"] is True and phone["pairing"] is False
    assert phone["sent"] == 5 and phone["rejected_stale"] == 2 and phone["link_errors"] == 1
    assert phone["last_error"] == ERROR_CODES["not_in_range"] and phone["queued"] == 0
    assert {"rejected_malformed", "rejected_unauthenticated", "dropped_expired", "dropped_handoff"} <= set(phone)
    assert all(type(v) in (bool, int) for v in phone.values())
    assert wire["phone_link"] == "disconnected"
    assert mac not in json.dumps(wire) and "range" not in json.dumps(wire)

    # The writer keeps only numbers and flags of the fixed name shape ...
    coach.set_phone_health({"phone_bonded_phone": mac, "phone_last_error": "BleakError: hci0 gone", "phone_rtt": 1.5,
                            "Phone Name": 1, "phone_sent": 7})  # fmt: skip
    coach.write()
    assert read_counters(counters_dir(state) / "coach.json")["phone"] == {"sent": 7}  # type: ignore[index]
    # ... the agent drops what a tampered file smuggles in ...
    raw = read_counters(counters_dir(state) / "coach.json")
    assert raw is not None
    raw["phone"] = {"bonded_phone": mac, "last_error": "the buyer said no", "sent": 7, "AA:BB": 1}
    (counters_dir(state) / "coach.json").write_text(json.dumps(raw))
    wire = json.loads(to_wire(agent.telemetry()) or b"{}")
    assert wire["phone"] == {"sent": 7} and mac not in json.dumps(wire) and "buyer" not in json.dumps(wire)
    # ... and the fleet allowlist refuses the whole field if a text value or an address reaches it.
    from firmware.events import Telemetry

    for bad in ({"bonded_phone": mac}, {"last_error": "BleakError: hci0 gone"}, {mac: 1}, {"rtt": 1.5}, {"sent": None}):
        out = outward("fleet", Telemetry(t=1.0, phone=bad, calls=1))  # type: ignore[arg-type]
        assert out is not None and "phone" not in out and out["calls"] == 1, bad
    assert outward("fleet", Telemetry(t=1.0, phone={"connected": True, "sent": 3}))["phone"] == {"connected": True, "sent": 3}  # type: ignore[index]
