"""`parallax doctor` against fakes of each thing it checks: a healthy box in a fake sysfs/configfs/
/proc/dev tree, then one fault at a time (a missing device, a wrong group, a corrupt model, an
expired certificate, ...) and the status, finding and fix each produces."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from firmware.doctor import (
    Check,
    CommandResult,
    Probes,
    bluez_objects,
    check_account,
    check_bluetooth,
    check_certificates,
    check_clock,
    check_gadget,
    check_gpio,
    check_headset,
    check_models,
    check_mqtt,
    check_services,
    check_temperature,
    healthy,
    run_checks,
)

ROOT = Path(__file__).resolve().parents[1]
NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.timezone.utc)
CARDS = (
    " 0 [Headset        ]: USB-Audio - Jabra EVOLVE 20 MS\n"
    "                      GN Netcom A/S Jabra EVOLVE 20 MS at usb-0000:01:00.0-1.3, full speed\n"
    " 1 [UAC2Gadget     ]: UAC2_Gadget - UAC2_Gadget\n"
    "                      UAC2_Gadget 0\n"
)


def commands(answers: dict[str, str | None]) -> "callable[[Sequence[str]], CommandResult | None]":  # type: ignore[valid-type]
    """A fake runner: the answer for a command's first word (None: not installed)."""

    def run(argv: Sequence[str]) -> CommandResult | None:
        out = answers.get(argv[0])
        return None if out is None else CommandResult(0, out)

    return run


@pytest.fixture
def box(tmp_path: Path) -> Probes:
    """A healthy box, as trees and fakes."""
    sysfs, configfs, proc, dev = (tmp_path / d for d in ("sys", "config", "proc", "dev"))
    gadget = configfs / "usb_gadget/parallax"
    gadget.mkdir(parents=True)
    (gadget / "UDC").write_text("fe980000.usb\n")
    (sysfs / "class/udc/fe980000.usb").mkdir(parents=True)
    (sysfs / "class/udc/fe980000.usb/state").write_text("configured\n")
    (sysfs / "class/thermal/thermal_zone0").mkdir(parents=True)
    (sysfs / "class/thermal/thermal_zone0/temp").write_text("52100\n")
    (proc / "asound").mkdir(parents=True)
    (proc / "asound/cards").write_text(CARDS)
    dev.mkdir()
    chip = dev / "gpiochip0"
    chip.write_text("")
    chip.chmod(0o660)
    gid = chip.stat().st_gid  # the fake gpio group is whatever group the test's files get
    group = tmp_path / "group"
    group.write_text(f"root:x:0:\naudio:x:29:pulse,parallax\ngpio:x:{gid}:parallax\nbluetooth:x:112:parallax\nparallax:x:998:\n")
    state = tmp_path / "state"
    (state / "certs").mkdir(parents=True)
    return Probes(
        sysfs=sysfs, configfs=configfs, proc=proc, dev=dev, group_file=group, state_dir=state,
        models_dir=tmp_path / "models", cert_dirs=(state / "certs",),
        run=commands({"vcgencmd": "throttled=0x0\n", "timedatectl": "yes\n",
                      "systemctl": "active\nactive\nactive\nactive\n"}),
        bluez=lambda: {
            "/org/bluez/hci0": {"org.bluez.Adapter1": {"Powered": True, "Address": "DC:A6:32:00:00:01"}},
            "/org/bluez/hci0/dev_AA": {"org.bluez.Device1": {"Alias": "Rep's Pixel", "Bonded": True, "Connected": True}},
        },
        has_module=lambda name: True,
        now=lambda: NOW,
    )


# --- the gadget and the headset ------------------------------------------------------------------

def test_gadget_bound_enumerated_and_carded(box: Probes) -> None:
    c = check_gadget(box)
    assert c.status == "ok" and "fe980000.usb" in c.detail and "enumerated" in c.detail


def test_gadget_not_configured_says_to_check_the_overlay(box: Probes) -> None:
    shutil.rmtree(box.configfs / "usb_gadget")
    c = check_gadget(box)
    assert c.status == "fail" and "dtoverlay=dwc2" in c.fix


def test_gadget_unbound_udc(box: Probes) -> None:
    (box.configfs / "usb_gadget/parallax/UDC").write_text("\n")
    c = check_gadget(box)
    assert c.status == "fail" and "no USB device controller" in c.detail


def test_gadget_not_enumerated_by_the_computer(box: Probes) -> None:
    (box.sysfs / "class/udc/fe980000.usb/state").write_text("not attached\n")
    c = check_gadget(box)
    assert c.status == "warn" and "not attached" in c.detail and "data cable" in c.fix


def test_missing_headset(box: Probes) -> None:
    (box.proc / "asound/cards").write_text(CARDS.split(" 1 ")[0].replace("Headset", "Device ") + " 1 [UAC2Gadget     ]: x\n")
    c = check_headset(box)
    assert c.status == "fail" and "udev" in c.fix  # a card, but not named: the rule is the fix
    (box.proc / "asound/cards").write_text(" 1 [UAC2Gadget     ]: UAC2_Gadget - UAC2_Gadget\n")
    c = check_headset(box)
    assert c.status == "fail" and "plug" in c.fix


# --- account, GPIO --------------------------------------------------------------------------------

def test_wrong_group(box: Probes) -> None:
    assert check_account(box).status == "ok"
    text = box.group_file.read_text().replace("gpio:x:", "gpio-old:x:").replace("bluetooth:x:112:parallax", "bluetooth:x:112:")
    box.group_file.write_text(text)
    c = check_account(box)
    assert c.status == "fail" and "gpio, bluetooth" in c.detail and "usermod -aG gpio,bluetooth parallax" in c.fix


def test_gpio_ok_then_each_fault(box: Probes) -> None:
    assert check_gpio(box).status == "ok"
    assert check_gpio(replace(box, has_module=lambda name: name != "lgpio")).status == "fail"
    assert check_gpio(replace(box, pin_factory="mock")).status == "warn"
    (box.dev / "gpiochip0").chmod(0o600)  # group may not open it
    c = check_gpio(box)
    assert c.status == "fail" and "gpiochip0" in c.detail
    (box.dev / "gpiochip0").unlink()
    assert check_gpio(box).status == "fail"


# --- Bluetooth --------------------------------------------------------------------------------------

def test_bluetooth_bonded_phone(box: Probes) -> None:
    c = check_bluetooth(box)
    assert c.status == "ok" and "Rep's Pixel" in c.detail


def test_bluetooth_faults_and_degrading(box: Probes) -> None:
    no_phone = replace(box, bluez=lambda: {"/org/bluez/hci0": {"org.bluez.Adapter1": {"Powered": True}}})
    assert check_bluetooth(no_phone).status == "warn"
    off = replace(box, bluez=lambda: {"/org/bluez/hci0": {"org.bluez.Adapter1": {"Powered": False}}})
    assert check_bluetooth(off).status == "fail"
    # BlueZ not on the bus: an adapter in sysfs is a warning (bonding unknown), none a failure
    no_bus = replace(box, bluez=lambda: None)
    assert check_bluetooth(no_bus).status == "fail"
    (box.sysfs / "class/bluetooth/hci0").mkdir(parents=True)
    c = check_bluetooth(no_bus)
    assert c.status == "warn" and "D-Bus" in c.detail


def test_busctl_json_is_unwrapped() -> None:
    reply = {"type": "a{oa{sa{sv}}}", "data": [{
        "/org/bluez/hci0": {"org.bluez.Adapter1": {"Powered": {"type": "b", "data": True}}},
        "/org/bluez/hci0/dev_AA": {"org.bluez.Device1": {"Bonded": {"type": "b", "data": True}, "Alias": {"type": "s", "data": "P"}}},
    }]}
    objects = bluez_objects(commands({"busctl": json.dumps(reply)}))
    assert objects == {"/org/bluez/hci0": {"org.bluez.Adapter1": {"Powered": True}},
                       "/org/bluez/hci0/dev_AA": {"org.bluez.Device1": {"Bonded": True, "Alias": "P"}}}
    assert bluez_objects(commands({})) is None  # no busctl
    assert bluez_objects(commands({"busctl": "not json"})) is None


# --- MQTT, certificates --------------------------------------------------------------------------

def test_mqtt_reachable_and_not(box: Probes) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        assert check_mqtt(replace(box, mqtt=("127.0.0.1", port), connect=Probes().connect)).status == "ok"
    c = check_mqtt(replace(box, mqtt=("127.0.0.1", port), connect=Probes().connect))  # now closed
    assert c.status == "fail" and f"127.0.0.1:{port}" in c.detail
    assert check_mqtt(box).status == "warn"  # no broker configured


def write_cert(path: Path, not_before: dt.datetime, not_after: dt.datetime) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "box-0001")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after)
            .sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def test_certificates_valid_expiring_expired_corrupt(box: Probes) -> None:
    certs = box.cert_dirs[0]
    assert check_certificates(box).status == "warn"  # none: not provisioned
    write_cert(certs / "box.pem", NOW - dt.timedelta(days=10), NOW + dt.timedelta(days=300))
    c = check_certificates(box)
    assert c.status == "ok" and "2027-10-02" in c.detail
    write_cert(certs / "ca.pem", NOW - dt.timedelta(days=10), NOW + dt.timedelta(days=5))
    c = check_certificates(box)
    assert c.status == "warn" and "ca.pem" in c.detail
    write_cert(certs / "old.pem", NOW - dt.timedelta(days=400), NOW - dt.timedelta(days=1))
    c = check_certificates(box)
    assert c.status == "fail" and "old.pem" in c.detail and "expired 2026-12-05" in c.detail and "renew" in c.fix
    (certs / "old.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    assert check_certificates(box).status == "fail"


# --- models ---------------------------------------------------------------------------------------

FAMILIES = {"whisper-tiny.en": "whisper", "silero-vad": "silero-vad", "intent": "intent", "playbook": "playbook"}


def make_store(root: Path) -> None:
    """A model store with every model the box runs (small stand-in files, real manifests and pointers)."""
    from firmware.store import write_manifest

    for name, family in FAMILIES.items():
        version = root / name / "1"
        version.mkdir(parents=True)
        (version / "model.bin").write_bytes(name.encode() * 100)
        write_manifest(version, name=name, version="1", family=family, licence="MIT", files={"model": "model.bin"})
        (root / name / "current").symlink_to("1")


def test_models_intact_then_corrupt_then_missing(box: Probes) -> None:
    make_store(box.models_dir)
    c = check_models(box)
    assert c.status == "ok" and "whisper-tiny.en 1" in c.detail and "playbook 1" in c.detail
    vad = box.models_dir / "silero-vad/1/model.bin"
    data = bytearray(vad.read_bytes())
    data[10] ^= 0xFF
    vad.write_bytes(bytes(data))
    c = check_models(box)
    assert c.status == "fail" and "silero-vad" in c.detail and "corrupt" in c.detail and "rollback" in c.fix
    (box.models_dir / "intent/current").unlink()
    c = check_models(box)
    assert "intent: model intent: no current version" in c.detail


def test_missing_models(box: Probes) -> None:
    c = check_models(box)
    assert c.status == "fail" and "whisper-tiny.en" in c.detail


# --- clock, temperature, services ----------------------------------------------------------------

def test_clock(box: Probes) -> None:
    assert check_clock(box).status == "ok"
    assert check_clock(replace(box, run=commands({"timedatectl": "no\n"}))).status == "fail"
    # no timedatectl: the kernel's adjtimex view decides
    assert check_clock(replace(box, run=commands({})), kernel_synced=lambda: True).detail == "synchronised (adjtimex)"
    assert check_clock(replace(box, run=commands({})), kernel_synced=lambda: None).status == "warn"


def test_temperature_and_throttling(box: Probes) -> None:
    c = check_temperature(box)
    assert c.status == "ok" and "52.1 °C" in c.detail
    hot = box.sysfs / "class/thermal/thermal_zone0/temp"
    hot.write_text("86500\n")
    assert check_temperature(box).status == "fail"
    hot.write_text("52100\n")
    undervolt_now = check_temperature(replace(box, run=commands({"vcgencmd": "throttled=0x50005\n"})))
    assert undervolt_now.status == "fail" and "now: under-voltage, throttled" in undervolt_now.detail and "supply" in undervolt_now.fix
    past = check_temperature(replace(box, run=commands({"vcgencmd": "throttled=0x50000\n"})))
    assert past.status == "warn" and "since boot: under-voltage, throttled" in past.detail
    assert check_temperature(replace(box, run=commands({}))).status == "ok"  # no vcgencmd: the zone alone


def systemctl(active: str, enabled: str) -> "callable[[Sequence[str]], CommandResult]":  # type: ignore[valid-type]
    def run(argv: Sequence[str]) -> CommandResult:
        return CommandResult(3, "\n".join((active if argv[1] == "is-active" else enabled).split()) + "\n")

    return run


def test_services(box: Probes) -> None:
    assert check_services(replace(box, run=systemctl("active " * 4, "enabled " * 4))).status == "ok"
    down = replace(box, run=systemctl("active failed active inactive", "enabled " * 4))
    c = check_services(down)
    assert c.status == "fail" and "parallax-bridge.service failed; parallax-agent.service inactive" == c.detail
    assert "journalctl -u parallax-bridge.service" in c.fix
    # a unit that is not enabled (the agent before the fleet is set up) is not a failure
    agentless = replace(box, run=systemctl("active active active inactive", "enabled enabled enabled disabled"))
    c = check_services(agentless)
    assert c.status == "ok" and c.detail == "running: gadget, bridge, coach"
    assert check_services(replace(box, run=commands({}))).status == "warn"


# --- the whole run and the command ----------------------------------------------------------------

def test_a_healthy_box_apart_from_models(box: Probes) -> None:
    results = run_checks(box)
    by_name = {c.name: c for c in results}
    assert [n for n, c in by_name.items() if c.status != "ok"] == ["mqtt", "certificates", "models"]  # an empty store
    assert not healthy(results) and healthy([c for c in results if c.name != "models"])


def test_a_check_that_raises_is_reported_not_raised(box: Probes) -> None:
    def broken(probes: Probes) -> Check:
        raise RuntimeError("boom")

    (result,) = run_checks(box, [broken])
    assert result.status == "fail" and "boom" in result.detail and result.name == "broken"


def test_command_json_and_exit_status(tmp_path: Path) -> None:
    """On this machine (no gadget, no GPIO): exit 1, one JSON object, no traceback."""
    proc = subprocess.run([sys.executable, "-m", "firmware", "doctor", "--json"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["healthy"] is False
    names = [c["name"] for c in report["checks"]]
    assert names == ["config", "gadget", "headset", "account", "bluetooth", "gpio", "mqtt", "certificates",
                     "models", "disk", "clock", "temperature", "services"]
    assert all(c["status"] in ("ok", "warn", "fail") for c in report["checks"])
    assert all(c["fix"] for c in report["checks"] if c["status"] == "fail" and c["name"] != "services")
    assert "Traceback" not in proc.stderr


def test_bad_config_is_a_failed_check_not_a_crash(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[bridge]\nrate_hz = 44100\n")
    proc = subprocess.run([sys.executable, "-m", "firmware", "--config", str(bad), "doctor"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[0].startswith("FAIL  config") and "rate_hz" in proc.stdout
    bad_flag = subprocess.run([sys.executable, "-m", "firmware", "doctor", "--mqtt", "nohost"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert bad_flag.returncode == 2 and "HOST:PORT" in bad_flag.stderr and "Traceback" not in bad_flag.stderr
