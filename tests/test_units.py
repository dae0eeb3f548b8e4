"""The systemd units in systemd/: valid for systemd itself, and saying what the box needs.

``systemd-analyze verify`` runs on them in a temporary root laid out with the paths they name
(the venv's ``parallax``, the gadget script, the state folders) and this machine's own system
units (the targets they order against); it must print nothing. The rest reads the unit files:
supervision, restart, ordering, real-time limits and hardening, unit by unit.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNITS = sorted((ROOT / "systemd").glob("*.service"))
LONG_RUNNING = ["parallax-bridge.service", "parallax-coach.service", "parallax-agent.service"]
SYSTEM_UNITS = Path("/usr/lib/systemd/system")


def read_unit(name: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> every value it is given (systemd keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in (ROOT / "systemd" / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def lay_out_root(root: Path) -> Path:
    """What the installer lays down that the units name, plus the host's system units."""
    venv_bin = root / "opt/parallax/.venv/bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "parallax").write_text("#!/bin/sh\nexit 0\n")
    (venv_bin / "parallax").chmod(0o755)
    gadget = root / "usr/lib/parallax/parallax-gadget.sh"
    gadget.parent.mkdir(parents=True)
    shutil.copy2(ROOT / "board/gadget/parallax-gadget.sh", gadget)
    gadget.chmod(0o755)
    for folder in ("var/lib/parallax", "run/parallax", "etc/parallax"):
        (root / folder).mkdir(parents=True)
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    target = root / "etc/systemd/system"
    target.mkdir(parents=True)
    for unit in UNITS:
        shutil.copy2(unit, target / unit.name)
    return target


def verify(root: Path, target: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", "--man=no", "--generators=no", *sorted(str(p) for p in target.iterdir())],
        capture_output=True, text=True, timeout=60,
    )


needs_systemd = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None or not SYSTEM_UNITS.is_dir(),
    reason="systemd-analyze is not installed (tools/bootstrap installs the systemd package)",
)


def test_every_long_running_process_has_a_unit() -> None:
    assert {u.name for u in UNITS} == {"parallax-gadget.service", *LONG_RUNNING}


@needs_systemd
def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path) -> None:
    target = lay_out_root(tmp_path)
    result = verify(tmp_path, target)
    assert result.returncode == 0 and result.stderr == "" and result.stdout == "", result.stderr + result.stdout


@needs_systemd
def test_verify_would_catch_a_broken_unit(tmp_path: Path) -> None:
    """The check above is not vacuous: a typo'd key, a bad time and a missing binary each show."""
    target = lay_out_root(tmp_path)
    bridge = target / "parallax-bridge.service"
    bridge.write_text(bridge.read_text().replace("WatchdogSec=2s", "WatchdogSec=2x\nWatchdogSecs=2s"))
    (tmp_path / "usr/lib/parallax/parallax-gadget.sh").unlink()
    err = verify(tmp_path, target).stderr
    assert "2x" in err and "WatchdogSecs" in err and "parallax-gadget.sh" in err


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_units_are_watched_and_restarted(name: str) -> None:
    service = read_unit(name)["Service"]
    assert service["Type"] == ["notify"] and service["NotifyAccess"] == ["main"]
    assert service["WatchdogSec"] and service["Restart"] == ["always"]
    assert service["ExecStart"][0].startswith("/opt/parallax/.venv/bin/parallax ")
    assert service["User"] == ["parallax"]


@pytest.mark.parametrize("name", [u.name for u in UNITS])
def test_every_unit_is_hardened(name: str) -> None:
    service = read_unit(name)["Service"]
    for key, value in [("ProtectSystem", "strict"), ("PrivateTmp", "yes"), ("NoNewPrivileges", "yes"),
                       ("ProtectHome", "yes"), ("DevicePolicy", "closed")]:
        assert service.get(key) == [value], f"{name}: {key}"
    families = service["RestrictAddressFamilies"][0].split()
    assert "AF_INET" not in families or name == "parallax-agent.service", "only the fleet agent talks to a network"
    # only the bridge may run real-time threads
    assert service["RestrictRealtime"] == ["false" if name == "parallax-bridge.service" else "true"]
    if "LimitRTPRIO" in service:
        assert name == "parallax-bridge.service"


def test_each_unit_reaches_only_its_devices() -> None:
    allowed = {u.name: read_unit(u.name)["Service"].get("DeviceAllow", []) for u in UNITS}
    assert allowed == {
        "parallax-gadget.service": [],
        "parallax-bridge.service": ["char-alsa rw"],
        "parallax-coach.service": ["char-gpiochip rw"],
        "parallax-agent.service": [],
    }


def test_writable_state_is_where_each_needs_it() -> None:
    # the bridge writes its call state, and its counters file for the fleet agent, nothing else
    assert read_unit("parallax-bridge.service")["Service"]["ReadWritePaths"] == ["/run/parallax /var/lib/parallax/counters"]
    assert read_unit("parallax-coach.service")["Service"]["ReadWritePaths"] == ["/run/parallax /var/lib/parallax"]
    assert read_unit("parallax-agent.service")["Service"]["ReadWritePaths"] == ["/var/lib/parallax"]


def test_ordering_gadget_before_bridge_and_bridge_independent_of_coach() -> None:
    gadget, bridge, coach = (read_unit(f"parallax-{n}.service")["Unit"] for n in ("gadget", "bridge", "coach"))
    assert "parallax-bridge.service" in gadget["Before"][0].split()
    assert "parallax-gadget.service" in bridge["After"][0].split()
    assert "parallax-gadget.service" in bridge["Wants"][0].split()
    assert not any("coach" in v for values in bridge.values() for v in values), "the call never waits on the coach"
    assert "Requires" not in coach, "a coach restart must not take the bridge down"


def test_coach_has_the_groups_the_pi_needs() -> None:
    service = read_unit("parallax-coach.service")["Service"]
    assert set(service["SupplementaryGroups"][0].split()) == {"gpio", "bluetooth"}
    assert service["Group"] == ["audio"]  # the tap socket and /run/parallax are audio's


def test_units_parse_as_ini() -> None:
    """No stray text outside key=value lines (what systemd would ignore with a warning)."""
    for unit in UNITS:
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read_string(unit.read_text())
        assert parser.sections()[0] == "Unit" and "Install" in parser.sections()

