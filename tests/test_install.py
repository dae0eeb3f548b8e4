"""tools/install.sh into a fake Debian root: what it lays down, that a rerun changes nothing,
that the rep's config and data survive upgrade and uninstall, and `systemctl --root` enablement.

The fake root has what useradd and systemctl need (passwd/group/shadow files, a boot config) but
no python3, so apt and the venv are skipped here (--skip-apt --skip-venv); the full install into a
real Debian 12 root, venv and models included, is tools/arm64_check.sh (ARCH=amd64 for a native one).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INSTALL = ROOT / "tools/install.sh"
BOOT_BEFORE = "# the Pi's own settings\n[all]\narm_64bit=1\n"
ENABLED = ["parallax-gadget.service", "parallax-bridge.service", "parallax-coach.service"]

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the installer creates users and chowns: needs root"),
    pytest.mark.skipif(shutil.which("useradd") is None or shutil.which("systemctl") is None,
                       reason="needs useradd (passwd) and systemctl (systemd)"),
]


@pytest.fixture
def fake_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    # Debian has audio; bluetooth comes with bluez; gpio only on Pi OS: the installer adds what lacks
    (root / "etc/group").write_text("root:x:0:\naudio:x:29:\n")
    (root / "etc/shadow").write_text("root:*:19000:0:99999:7:::\n")
    (root / "etc/gshadow").write_text("root:*::\naudio:*::\n")
    for d in ("usr/sbin", "usr/bin", "boot/firmware"):
        (root / d).mkdir(parents=True)
    (root / "usr/sbin/nologin").write_text("#!/bin/sh\nexit 1\n")
    (root / "usr/sbin/nologin").chmod(0o755)
    (root / "boot/firmware/config.txt").write_text(BOOT_BEFORE)
    return root


@pytest.fixture
def built_models(tmp_path: Path) -> Path:
    """A checkout's model store: a version folder and a current pointer per model."""
    models = tmp_path / "models"
    for name in ("whisper-tiny.en", "silero-vad", "intent", "playbook"):
        (models / name / "1").mkdir(parents=True)
        (models / name / "1" / "manifest.toml").write_text(f'name = "{name}"\n')
        (models / name / "current").symlink_to("1")
    (models / "intent/data").mkdir()  # training data beside the store: not a model, not installed
    return models


def install(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(INSTALL), "--root", str(root), "--skip-apt", "--skip-venv", *args],
                          capture_output=True, text=True, timeout=120)


def is_enabled(root: Path, unit: str) -> str:
    return subprocess.run(["systemctl", f"--root={root}", "is-enabled", unit], capture_output=True, text=True).stdout.strip()


def entry(root: Path, db: str, name: str) -> list[str] | None:
    for line in (root / "etc" / db).read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return fields
    return None


def test_install_lays_down_the_box(fake_root: Path, built_models: Path) -> None:
    result = install(fake_root, "--models-from", str(built_models))
    assert result.returncode == 0, result.stderr
    # the user, a system account in its three groups
    user = entry(fake_root, "passwd", "parallax")
    assert user is not None and int(user[2]) < 1000 and user[5] == "/var/lib/parallax" and user[6] == "/usr/sbin/nologin"
    for group in ("audio", "gpio", "bluetooth"):
        members = entry(fake_root, "group", group)
        assert members is not None and "parallax" in members[3].split(","), group
    # firmware source, config, state owned by the user, models in the store
    assert (fake_root / "opt/parallax/src/pyproject.toml").is_file()
    assert (fake_root / "opt/parallax/src/firmware/systemd.py").is_file()
    assert 'models_dir = "/var/lib/parallax/models"' in (fake_root / "etc/parallax/parallax.toml").read_text()
    state = fake_root / "var/lib/parallax"
    assert state.stat().st_uid == int(user[2]) and oct(state.stat().st_mode & 0o777) == "0o750"
    assert (state / "models/whisper-tiny.en/1/manifest.toml").is_file() and os.readlink(state / "models/intent/current") == "1"
    assert not (state / "models/intent/data").exists()
    # board files, byte for byte, and the gadget script executable
    for src, dst in [("board/asound.conf", "etc/asound.conf"), ("board/tmpfiles.d/parallax.conf", "etc/tmpfiles.d/parallax.conf"),
                     ("board/sysctl.d/90-parallax.conf", "etc/sysctl.d/90-parallax.conf"),
                     ("board/udev/90-parallax-headset.rules", "etc/udev/rules.d/90-parallax-headset.rules"),
                     ("systemd/parallax-bridge.service", "etc/systemd/system/parallax-bridge.service")]:
        assert (fake_root / dst).read_bytes() == (ROOT / src).read_bytes(), dst
    assert os.access(fake_root / "usr/lib/parallax/parallax-gadget.sh", os.X_OK)
    # the boot fragment, and the clear reboot message
    boot = (fake_root / "boot/firmware/config.txt").read_text()
    assert boot.startswith(BOOT_BEFORE) and "dtoverlay=dwc2,dr_mode=peripheral" in boot
    assert "REBOOT NEEDED" in result.stdout
    # units enabled the way systemd will see them at boot
    for unit in ENABLED:
        assert is_enabled(fake_root, unit) == "enabled", unit
    # the agent is installed but only enabled once the firmware has `parallax agent`
    assert (fake_root / "etc/systemd/system/parallax-agent.service").is_file()
    assert is_enabled(fake_root, "parallax-agent.service") == "disabled"


def test_rerun_changes_nothing_and_keeps_the_config(fake_root: Path, built_models: Path) -> None:
    assert install(fake_root, "--models-from", str(built_models)).returncode == 0
    config = fake_root / "etc/parallax/parallax.toml"
    config.write_text(config.read_text() + "\n[cues]\npin_factory = \"mock\"\n")  # the installer's own edit
    passwd_before = (fake_root / "etc/passwd").read_text()
    group_before = (fake_root / "etc/group").read_text()
    again = install(fake_root, "--models-from", str(built_models))
    assert again.returncode == 0, again.stderr
    changed = [line for line in again.stdout.splitlines() if line.startswith("    /") and "already" not in line]
    assert changed == [], changed  # no file rewritten
    assert "REBOOT NEEDED" not in again.stdout and "kept" in again.stdout
    assert 'pin_factory = "mock"' in config.read_text()
    assert (fake_root / "etc/passwd").read_text() == passwd_before
    assert (fake_root / "etc/group").read_text() == group_before
    assert (fake_root / "boot/firmware/config.txt").read_text().count("dtoverlay=dwc2") == 1


def test_uninstall_keeps_the_reps_data_and_purge_removes_it(fake_root: Path, built_models: Path) -> None:
    assert install(fake_root, "--models-from", str(built_models)).returncode == 0
    mastery = fake_root / "var/lib/parallax/mastery.json"
    mastery.write_text("{}")
    gone = install(fake_root, "--uninstall")
    assert gone.returncode == 0, gone.stderr
    for unit in ENABLED:
        assert not (fake_root / "etc/systemd/system" / unit).exists()
        assert not list((fake_root / "etc/systemd/system").rglob(unit))  # no dangling wants links
    assert not (fake_root / "opt/parallax").exists() and not (fake_root / "etc/asound.conf").exists()
    assert (fake_root / "boot/firmware/config.txt").read_text() == BOOT_BEFORE  # restored exactly
    assert mastery.is_file() and (fake_root / "etc/parallax/parallax.toml").is_file()
    assert entry(fake_root, "passwd", "parallax") is not None
    purged = install(fake_root, "--uninstall", "--purge")
    assert purged.returncode == 0, purged.stderr
    assert not (fake_root / "var/lib/parallax").exists() and not (fake_root / "etc/parallax").exists()
    assert entry(fake_root, "passwd", "parallax") is None


def test_bad_usage_is_one_line_and_status_2(fake_root: Path) -> None:
    for args in (["--frobnicate"], ["--purge"]):
        result = install(fake_root, *args)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)
    missing = subprocess.run([str(INSTALL), "--root", str(fake_root / "nope")], capture_output=True, text=True)
    assert missing.returncode == 2 and "not a directory" in missing.stderr


def test_upgrade_stages_a_new_version_but_keeps_the_boxs_current(fake_root: Path, built_models: Path) -> None:
    assert install(fake_root, "--models-from", str(built_models)).returncode == 0
    whisper = built_models / "whisper-tiny.en"
    (whisper / "2").mkdir()
    (whisper / "2/manifest.toml").write_text("v2\n")
    (whisper / "current").unlink()
    (whisper / "current").symlink_to("2")
    again = install(fake_root, "--models-from", str(built_models))
    assert again.returncode == 0 and "whisper-tiny.en 2" in again.stdout
    box = fake_root / "var/lib/parallax/models/whisper-tiny.en"
    assert (box / "2/manifest.toml").is_file() and os.readlink(box / "current") == "1"  # the fleet decides


def test_unbuilt_models_stop_the_install_with_the_fix(fake_root: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty-models"
    (empty / "whisper-tiny.en").mkdir(parents=True)
    result = install(fake_root, "--models-from", str(empty))
    assert result.returncode == 1 and "parallax models build" in result.stderr


def test_the_written_config_names_no_path_relative_to_a_checkout(fake_root: Path, built_models: Path) -> None:
    """The defaults' relative paths resolve against the source tree; an installed package has none, so
    the device config must make each absolute (intent.model_dir is relative to models_dir by design)."""
    import dataclasses

    from firmware.config import load_config

    assert install(fake_root, "--models-from", str(built_models)).returncode == 0
    config = load_config(fake_root / "etc/parallax/parallax.toml")
    relative = []

    def walk(obj: object, where: str) -> None:
        for f in dataclasses.fields(obj):  # type: ignore[arg-type]
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, f"{where}{f.name}.")
            elif isinstance(value, Path) and not value.is_absolute():
                relative.append(f"{where}{f.name}")

    walk(config, "")
    assert relative == ["intent.model_dir"]

