"""What is wrong with this box, and how to fix it: the checks behind ``parallax doctor``.

Each check looks at one thing (the USB gadget, the headset, Bluetooth, GPIO, the broker, the
certificates, the models, disk, clock, temperature, the services) and returns a :class:`Check`:
``ok``, ``warn`` (works, but needs attention) or ``fail`` (a part of the box does not work), what
it found, and the fix. Every place a check looks is a field of :class:`Probes` (sysfs, configfs,
/proc, /dev, the group file, the commands it runs, the D-Bus query), so tests point them at fake
trees: a missing device, a wrong group, a corrupt model, an expired certificate.

Checks run on the caller's thread, one after another; each command has a short timeout, and a
probe that is absent (no ``vcgencmd``, no BlueZ on the bus) degrades to a clear ``warn`` instead
of an error. Nothing here changes the system.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import logging
import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

Status = Literal["ok", "warn", "fail"]
UNITS = ("parallax-gadget.service", "parallax-bridge.service", "parallax-coach.service", "parallax-agent.service")
GROUPS = ("audio", "gpio", "bluetooth")
CERT_WARN_DAYS = 30


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: str


# Runs a command; None when it is not installed (or timed out): the check then degrades.
Runner = Callable[[Sequence[str]], CommandResult | None]


def run_command(argv: Sequence[str], timeout_s: float = 5.0) -> CommandResult | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.debug("%s: %s", argv[0], exc)
        return None
    return CommandResult(done.returncode, done.stdout)


BluezObjects = dict[str, dict[str, dict[str, Any]]]


def bluez_objects(run: Runner) -> BluezObjects | None:
    """BlueZ's objects over D-Bus (``busctl``, part of systemd): path -> interface -> properties.
    None when busctl or BlueZ is not there."""
    result = run(["busctl", "--system", "--json=short", "call", "org.bluez", "/",
                  "org.freedesktop.DBus.ObjectManager", "GetManagedObjects"])
    if result is None or result.returncode != 0:
        return None
    try:
        data = json.loads(result.stdout)["data"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    # busctl wraps each property as {"type": ..., "data": value}
    return {path: {iface: {k: (v.get("data") if isinstance(v, dict) else v) for k, v in props.items()}
                   for iface, props in ifaces.items()} for path, ifaces in data.items()}


@dataclass(frozen=True)
class Probes:
    """Where the checks look. The defaults are the real box; tests replace any of them."""

    sysfs: Path = Path("/sys")
    configfs: Path = Path("/sys/kernel/config")
    proc: Path = Path("/proc")
    dev: Path = Path("/dev")
    group_file: Path = Path("/etc/group")
    user: str = "parallax"
    gadget_name: str = "parallax"
    headset_card: str = "Headset"
    gadget_card: str = "UAC2Gadget"
    state_dir: Path = Path("/var/lib/parallax")
    models_dir: Path = Path("/var/lib/parallax/models")
    cert_dirs: tuple[Path, ...] = (Path("/var/lib/parallax/certs"), Path("/etc/parallax/certs"))
    pin_factory: str = "default"
    mqtt: tuple[str, int] | None = None
    units: tuple[str, ...] = UNITS
    run: Runner = run_command
    bluez: Callable[[], BluezObjects | None] | None = None  # None: through busctl with ``run``
    has_module: Callable[[str], bool] = field(default=lambda name: importlib.util.find_spec(name) is not None)
    now: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.timezone.utc))
    connect: Callable[[str, int, float], None] = field(default=lambda host, port, timeout: _connect(host, port, timeout))


def _connect(host: str, port: int, timeout_s: float) -> None:
    with socket.create_connection((host, port), timeout_s):
        pass


# --- audio --------------------------------------------------------------------------------------

def _cards(probes: Probes) -> dict[str, str]:
    """ALSA card id -> description, from /proc/asound/cards."""
    cards: dict[str, str] = {}
    try:
        text = (probes.proc / "asound/cards").read_text()
    except OSError:
        return cards
    for line in text.splitlines():
        if "[" in line and "]:" in line:
            card_id = line[line.index("[") + 1 : line.index("]")].strip()
            cards[card_id] = line.split("]:", 1)[1].strip()
    return cards


def check_gadget(probes: Probes) -> Check:
    gadget = probes.configfs / "usb_gadget" / probes.gadget_name
    if not (probes.configfs / "usb_gadget").is_dir():
        return Check("gadget", "fail", f"no configfs gadget tree at {probes.configfs}/usb_gadget",
                     "the USB-C port is not in device mode: check 'dtoverlay=dwc2,dr_mode=peripheral' in "
                     "/boot/firmware/config.txt, reboot, then 'systemctl status parallax-gadget'")
    if not gadget.is_dir():
        return Check("gadget", "fail", f"gadget {probes.gadget_name!r} is not configured",
                     "sudo systemctl restart parallax-gadget; then 'journalctl -u parallax-gadget -b'")
    try:
        udc = (gadget / "UDC").read_text().strip()
    except OSError:
        udc = ""
    if not udc:
        return Check("gadget", "fail", "the gadget is configured but bound to no USB device controller",
                     "ls /sys/class/udc must list the dwc2 controller (dtoverlay=dwc2 and a reboot); then "
                     "sudo systemctl restart parallax-gadget")
    try:
        state = (probes.sysfs / "class/udc" / udc / "state").read_text().strip()
    except OSError:
        state = "unknown"
    if state != "configured":
        return Check("gadget", "warn", f"bound to {udc}, but the computer has not enumerated it (state {state})",
                     "connect the box's USB-C port to the computer with a data cable (not a charge-only one)")
    if probes.gadget_card not in _cards(probes):
        return Check("gadget", "fail", f"the computer enumerated the gadget but ALSA has no {probes.gadget_card} card",
                     "the UAC2 function did not load: 'modprobe usb_f_uac2', then restart parallax-gadget")
    return Check("gadget", "ok", f"bound to {udc}, enumerated by the computer, ALSA card {probes.gadget_card}")


def check_headset(probes: Probes) -> Check:
    cards = _cards(probes)
    if probes.headset_card in cards:
        return Check("headset", "ok", f"ALSA card {probes.headset_card}: {cards[probes.headset_card]}")
    others = ", ".join(sorted(set(cards) - {probes.gadget_card})) or "none"
    if others != "none":
        return Check("headset", "fail", f"no ALSA card named {probes.headset_card} (other cards: {others})",
                     "the udev rule did not name it: check /etc/udev/rules.d/90-parallax-headset.rules and replug the headset")
    return Check("headset", "fail", "no USB headset found", "plug the rep's USB headset into a USB-A port of the box")


def check_account(probes: Probes) -> Check:
    """The service user and the groups that open its devices (audio, gpio, bluetooth)."""
    try:
        lines = probes.group_file.read_text().splitlines()
    except OSError as exc:
        return Check("account", "fail", f"cannot read {probes.group_file}: {exc}", "")
    members = {f[0]: f[3].split(",") if len(f) > 3 and f[3] else [] for f in (line.split(":") for line in lines) if f and f[0]}
    missing = [g for g in GROUPS if probes.user not in members.get(g, [])]
    if missing:
        return Check("account", "fail", f"user {probes.user} is not in group(s) {', '.join(missing)}",
                     f"sudo usermod -aG {','.join(missing)} {probes.user} && sudo systemctl restart parallax-bridge parallax-coach")
    return Check("account", "ok", f"user {probes.user} in {', '.join(GROUPS)}")


# --- Bluetooth ----------------------------------------------------------------------------------

def check_bluetooth(probes: Probes) -> Check:
    objects = probes.bluez() if probes.bluez is not None else bluez_objects(probes.run)
    if objects is None:
        adapters = sorted(p.name for p in (probes.sysfs / "class/bluetooth").glob("hci*"))
        if not adapters:
            return Check("bluetooth", "fail", "no Bluetooth adapter (and BlueZ not on D-Bus)",
                         "sudo apt install bluez && sudo systemctl enable --now bluetooth; 'rfkill list' must not show it blocked")
        return Check("bluetooth", "warn", f"adapter {adapters[0]} present, but BlueZ is not answering on D-Bus, so bonding is unknown",
                     "sudo systemctl enable --now bluetooth")
    adapters = {p: i["org.bluez.Adapter1"] for p, i in objects.items() if "org.bluez.Adapter1" in i}
    if not adapters:
        return Check("bluetooth", "fail", "BlueZ runs but sees no adapter", "'rfkill unblock bluetooth'; check 'dmesg | grep -i hci'")
    path, adapter = sorted(adapters.items())[0]
    if not adapter.get("Powered"):
        return Check("bluetooth", "fail", f"adapter {path} is powered off", "bluetoothctl power on (and 'rfkill unblock bluetooth')")
    bonded = [i["org.bluez.Device1"] for i in objects.values()
              if "org.bluez.Device1" in i and (i["org.bluez.Device1"].get("Bonded") or i["org.bluez.Device1"].get("Paired"))]
    if not bonded:
        return Check("bluetooth", "warn", f"adapter {path} on, no phone bonded", "pair the rep's phone from the Parallax app")
    name = bonded[0].get("Alias") or bonded[0].get("Name") or bonded[0].get("Address", "?")
    connected = "connected" if bonded[0].get("Connected") else "not connected now"
    return Check("bluetooth", "ok", f"adapter {path} on; phone {name!r} bonded ({connected})")


# --- GPIO ---------------------------------------------------------------------------------------

def check_gpio(probes: Probes) -> Check:
    if probes.pin_factory == "mock":
        return Check("gpio", "warn", "cues run on mock pins ([cues] pin_factory = \"mock\"): no LED, haptic or button",
                     "set [cues] pin_factory = \"default\" in /etc/parallax/parallax.toml on the box")
    chips = sorted(probes.dev.glob("gpiochip*"))
    if not chips:
        return Check("gpio", "fail", f"no {probes.dev}/gpiochip* device", "not a Raspberry Pi, or the kernel lacks the GPIO character device")
    try:
        gpio_gid: int | None = _gid(probes.group_file, "gpio")
    except (KeyError, OSError, ValueError):
        gpio_gid = None
    unreadable = [c.name for c in chips if not _group_rw(c, gpio_gid)]
    if unreadable:
        return Check("gpio", "fail", f"{', '.join(unreadable)} not read-write for group gpio",
                     "Raspberry Pi OS's udev rules give /dev/gpiochip* to group gpio (rpi-udev-rules / raspberrypi-sys-mods)")
    if not probes.has_module("lgpio"):
        return Check("gpio", "fail", "lgpio is not installed: gpiozero has no PWM backend for the LED and haptic",
                     "rerun tools/install.sh (it installs lgpio on aarch64), or /opt/parallax/.venv/bin/pip install lgpio")
    return Check("gpio", "ok", f"{len(chips)} gpiochip device(s) for group gpio; PWM through lgpio")


def _gid(group_file: Path, name: str) -> int:
    for line in group_file.read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name and len(fields) > 2:
            return int(fields[2])
    raise KeyError(name)


def _group_rw(path: Path, gid: int | None) -> bool:
    try:
        st = path.stat()
    except OSError:
        return False
    return gid is not None and st.st_gid == gid and st.st_mode & 0o060 == 0o060


# --- network and certificates --------------------------------------------------------------------

def check_mqtt(probes: Probes) -> Check:
    if probes.mqtt is None:
        return Check("mqtt", "warn", "no fleet broker configured", "set the broker in /etc/parallax/parallax.toml (fleet section) to join the fleet")
    host, port = probes.mqtt
    try:
        probes.connect(host, port, 3.0)
    except OSError as exc:
        return Check("mqtt", "fail", f"cannot reach broker {host}:{port} ({exc.strerror or exc})",
                     "check the network ('ip route', DNS) and the broker address; the box keeps coaching offline")
    return Check("mqtt", "ok", f"broker {host}:{port} reachable")


def check_certificates(probes: Probes) -> Check:
    from cryptography import x509

    files = sorted(p for d in probes.cert_dirs if d.is_dir() for p in d.iterdir() if p.suffix in (".pem", ".crt"))
    if not files:
        return Check("certificates", "warn", "no certificates (the fleet agent is not provisioned)", "provision the box's fleet identity")
    now = probes.now()
    problems: list[tuple[Status, str]] = []
    soonest: tuple[dt.datetime, str] | None = None
    for path in files:
        try:
            certs = x509.load_pem_x509_certificates(path.read_bytes())
        except (OSError, ValueError) as exc:
            problems.append(("fail", f"{path.name}: unreadable ({exc})"))
            continue
        for cert in certs:
            subject = cert.subject.rfc4514_string() or path.name
            if cert.not_valid_after_utc <= now:
                problems.append(("fail", f"{path.name} ({subject}) expired {cert.not_valid_after_utc:%Y-%m-%d}"))
            elif cert.not_valid_before_utc > now:
                problems.append(("fail", f"{path.name} ({subject}) not valid until {cert.not_valid_before_utc:%Y-%m-%d} (is the clock right?)"))
            elif cert.not_valid_after_utc - now < dt.timedelta(days=CERT_WARN_DAYS):
                problems.append(("warn", f"{path.name} ({subject}) expires {cert.not_valid_after_utc:%Y-%m-%d}"))
            if soonest is None or cert.not_valid_after_utc < soonest[0]:
                soonest = (cert.not_valid_after_utc, path.name)
    if problems:
        status: Status = "fail" if any(s == "fail" for s, _ in problems) else "warn"
        return Check("certificates", status, "; ".join(m for _, m in problems),
                     "renew the box's certificate through the fleet (or reprovision it); check the clock first")
    assert soonest is not None
    return Check("certificates", "ok", f"{len(files)} file(s) valid; the first expires {soonest[0]:%Y-%m-%d} ({soonest[1]})")


# --- models, disk, clock, temperature, services -------------------------------------------------

def verify_models(models_dir: Path) -> list[tuple[str, str | None]]:
    """(model, error or None) for every model the box runs: the store's current version of each,
    every file hashed against its manifest (:meth:`firmware.store.ModelStore.verify`)."""
    from firmware.errors import ModelError
    from firmware.provision.build import BUNDLED_MODELS
    from firmware.provision.manifest import DEFAULT_MODELS
    from firmware.store import ModelStore

    store = ModelStore(models_dir)
    results: list[tuple[str, str | None]] = []
    try:
        for name in sorted({*DEFAULT_MODELS, *BUNDLED_MODELS, *store.names()}):
            try:
                manifest = store.verify(name)
                results.append((f"{name} {manifest.version}", None))
            except ModelError as exc:
                results.append((name, str(exc)))
    finally:
        store.close()
    return results


def check_models(probes: Probes) -> Check:
    results = verify_models(probes.models_dir)
    bad = [f"{name}: {err}" for name, err in results if err]
    if bad:
        return Check("models", "fail", "; ".join(bad),
                     "reprovision: 'parallax models rollback NAME' to the previous version, or rerun tools/install.sh")
    return Check("models", "ok", f"{len(results)} current model version(s) match their manifests ({', '.join(n for n, _ in results)})")


def check_disk(probes: Probes) -> Check:
    where = probes.state_dir if probes.state_dir.exists() else Path("/")
    usage = shutil.disk_usage(where)
    free_pct = 100 * usage.free / usage.total
    detail = f"{usage.free / 1e9:.1f} GB free of {usage.total / 1e9:.1f} GB ({free_pct:.0f} %) at {where}"
    fix = "free space: 'sudo journalctl --vacuum-size=100M', remove old model versions"
    if usage.free < 200e6 or free_pct < 5:
        return Check("disk", "fail", detail, fix)
    if free_pct < 15:
        return Check("disk", "warn", detail, fix)
    return Check("disk", "ok", detail)


def adjtimex_synced() -> bool | None:
    """The kernel's own view (adjtimex(2)): False when it reports TIME_ERROR (unsynchronised)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name:
        return None
    buf = ctypes.create_string_buffer(512)  # struct timex, zeroed: modes = 0 reads only
    try:
        state = ctypes.CDLL(name, use_errno=True).adjtimex(buf)
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != 5  # TIME_ERROR


def check_clock(probes: Probes, kernel_synced: Callable[[], bool | None] = adjtimex_synced) -> Check:
    result = probes.run(["timedatectl", "show", "--property=NTPSynchronized", "--value"])
    if result is not None and result.returncode == 0 and result.stdout.strip() in ("yes", "no"):
        synced: bool | None = result.stdout.strip() == "yes"
        source = "timedatectl"
    else:
        synced, source = kernel_synced(), "adjtimex"
    if synced is None:
        return Check("clock", "warn", "cannot tell whether the clock is synchronised", "sudo timedatectl set-ntp true")
    if not synced:
        return Check("clock", "fail", f"clock not synchronised ({source}): certificates and fleet timestamps go wrong",
                     "sudo timedatectl set-ntp true; the box needs network to reach an NTP server (a Pi has no RTC battery by default)")
    return Check("clock", "ok", f"synchronised ({source})")


THROTTLE_BITS = {0: "under-voltage", 1: "ARM frequency capped", 2: "throttled", 3: "soft temperature limit"}


def check_temperature(probes: Probes) -> Check:
    temps = []
    for zone in sorted((probes.sysfs / "class/thermal").glob("thermal_zone*")):
        try:
            temps.append(int((zone / "temp").read_text().strip()) / 1000)
        except (OSError, ValueError):
            continue
    temp = max(temps) if temps else None
    problems: list[tuple[Status, str]] = []
    result = probes.run(["vcgencmd", "get_throttled"])
    throttle_note = "vcgencmd not present"
    if result is not None and result.returncode == 0 and "=" in result.stdout:
        try:
            bits = int(result.stdout.strip().split("=", 1)[1], 16)
        except ValueError:
            bits = 0
        now = [text for bit, text in THROTTLE_BITS.items() if bits & (1 << bit)]
        past = [text for bit, text in THROTTLE_BITS.items() if bits & (1 << (bit + 16)) and text not in now]
        if now:
            problems.append(("fail", f"now: {', '.join(now)}"))
        if past:
            problems.append(("warn", f"since boot: {', '.join(past)}"))
        throttle_note = f"get_throttled=0x{bits:x}"
    if temp is not None and temp >= 85:
        problems.append(("fail", f"{temp:.1f} °C"))
    elif temp is not None and temp >= 80:
        problems.append(("warn", f"{temp:.1f} °C (the Pi throttles from 80 °C)"))
    if temp is None and result is None:
        return Check("temperature", "warn", "no thermal zone and no vcgencmd: temperature and throttling unknown",
                     "on a Pi, /sys/class/thermal/thermal_zone0 and vcgencmd (libraspberrypi-bin) are both there")
    temp_text = f"{temp:.1f} °C" if temp is not None else "no thermal zone"
    if problems:
        status: Status = "fail" if any(s == "fail" for s, _ in problems) else "warn"
        return Check("temperature", status, f"{temp_text}; " + "; ".join(m for _, m in problems),
                     "under-voltage: a 5 V 3 A (Pi 4) / 5 A (Pi 5) supply, not the computer's port; heat: a heatsink or fan, airflow around the case")
    return Check("temperature", "ok", f"{temp_text}, {throttle_note}")


def check_services(probes: Probes) -> Check:
    result = probes.run(["systemctl", "is-active", *probes.units])
    if result is None:
        return Check("services", "warn", "systemctl not available: cannot tell which services run", "")
    states = result.stdout.split()
    if len(states) != len(probes.units):
        return Check("services", "warn", "systemd is not running here (a container or chroot?): cannot tell which services run", "")
    enabled = probes.run(["systemctl", "is-enabled", *probes.units])
    enabled_states = enabled.stdout.split() if enabled is not None else []
    down = []
    for i, (unit, state) in enumerate(zip(probes.units, states, strict=True)):
        wanted = enabled_states[i] == "enabled" if len(enabled_states) == len(probes.units) else True
        if state != "active" and wanted:
            down.append(f"{unit} {state}")
    if down:
        first = down[0].split()[0]
        return Check("services", "fail", "; ".join(down), f"journalctl -u {first} -b says why; sudo systemctl restart {first}")
    running = [u.removeprefix("parallax-").removesuffix(".service") for u, s in zip(probes.units, states, strict=True) if s == "active"]
    return Check("services", "ok", f"running: {', '.join(running)}")


CHECKS: tuple[Callable[[Probes], Check], ...] = (
    check_gadget, check_headset, check_account, check_bluetooth, check_gpio, check_mqtt,
    check_certificates, check_models, check_disk, check_clock, check_temperature, check_services,
)


def run_checks(probes: Probes, checks: Iterable[Callable[[Probes], Check]] = CHECKS) -> list[Check]:
    """Every check, in order; a check that raises is itself reported as a failure."""
    results = []
    for check in checks:
        try:
            results.append(check(probes))
        except Exception as exc:  # a doctor that crashes helps nobody: report it as that check's failure
            log.debug("check %s raised", check.__name__, exc_info=True)
            results.append(Check(check.__name__.removeprefix("check_"), "fail", f"the check itself failed: {type(exc).__name__}: {exc}", ""))
    return results


def healthy(results: Iterable[Check]) -> bool:
    return all(c.status != "fail" for c in results)


def as_json(results: Sequence[Check]) -> dict[str, Any]:
    return {"healthy": healthy(results), "checks": [asdict(c) for c in results]}
