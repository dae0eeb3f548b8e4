"""A bridge on real libasound without a sound card: ``file``/``null`` PCMs, clocked in software.

Used by the tests and ``tools/bench_bridge.py``. :func:`write_alsa_config` writes an ALSA
configuration whose four PCMs carry the bridge's configured names: the captures read raw
float32 files (``infile``), the playbacks write raw float32 files through ``null``. ``ALSA_CONFIG_PATH``
must point at ``/usr/share/alsa/alsa.conf`` plus that file before libasound first loads its
configuration (:func:`alsa_config_path` gives the value). Because those plugins move data as
fast as they are asked, :func:`clocked_devices` wraps each real
:class:`~firmware.audio.pcm.AlsaPcm` in a :class:`~firmware.testing.paced.ClockedPcm` that
gives it a USB device's clock (headset and host clocks can be offset by ``ppm``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from firmware.audio.bridge import Devices, capture_periods
from firmware.audio.config import BridgeConfig
from firmware.audio.pcm import AlsaPcm
from firmware.testing.paced import ClockedPcm, ClockLike

SYSTEM_ALSA_CONF = Path("/usr/share/alsa/alsa.conf")


@dataclass(frozen=True)
class TestbedFiles:
    conf: Path
    headset_in: Path
    host_in: Path
    headset_out: Path
    host_out: Path


def testbed_files(directory: Path) -> TestbedFiles:
    return TestbedFiles(
        conf=directory / "asound.conf",
        headset_in=directory / "headset_in.raw",
        host_in=directory / "host_in.raw",
        headset_out=directory / "headset_out.raw",
        host_out=directory / "host_out.raw",
    )


def write_alsa_config(directory: Path, config: BridgeConfig, *, record_playback: bool = True) -> TestbedFiles:
    """The testbed's ALSA configuration. With ``record_playback`` off the playbacks write to
    /dev/null: a benchmark wants a device's cost, and a tmpfs file growing by 384 bytes per
    write costs the page cache far more than a USB device's mmap'd ring ever does."""
    files = testbed_files(directory)
    directory.mkdir(parents=True, exist_ok=True)

    # The file plugin moves the bridge's float32 samples as they are: the files hold raw
    # float32 (no plug here: libasound's file plugin skips capture data under a converting
    # plug; the box's plug conversion to S16 is tested on its own).
    def capture(name: str, infile: Path) -> str:
        return f'pcm.{name} {{\n  type file\n  slave.pcm "null"\n  file "/dev/null"\n  infile "{infile}"\n  format "raw"\n}}\n'

    def playback(name: str, outfile: Path) -> str:
        target = outfile if record_playback else Path("/dev/null")
        return f'pcm.{name} {{\n  type file\n  slave.pcm "null"\n  file "{target}"\n  format "raw"\n}}\n'

    files.conf.write_text(
        capture(config.headset_capture, files.headset_in)
        + capture(config.host_capture, files.host_in)
        + playback(config.headset_playback, files.headset_out)
        + playback(config.host_playback, files.host_out),
        encoding="utf-8",
    )
    return files


def alsa_config_path(files: TestbedFiles) -> str:
    return f"{SYSTEM_ALSA_CONF}:{files.conf}"


def clocked_devices(config: BridgeConfig, clock: ClockLike, *, host_ppm: float = 0.0, headset_ppm: float = 0.0) -> Devices:
    """The bridge's four PCMs on real pyalsaaudio/libasound, each paced by ``clock``."""
    real = Devices.alsa(config)

    def wrap(inner: AlsaPcm, ppm: float) -> ClockedPcm:
        capture = inner.direction == "capture"
        return ClockedPcm(
            inner.name,
            inner.direction,
            clock,
            rate_hz=config.rate_hz,
            period_frames=config.period_frames,
            periods=capture_periods(config) if capture else config.periods,
            channels=config.channels,
            ppm=ppm,
            inner=inner,
        )

    assert isinstance(real.headset_capture, AlsaPcm) and isinstance(real.headset_playback, AlsaPcm)
    assert isinstance(real.host_capture, AlsaPcm) and isinstance(real.host_playback, AlsaPcm)
    return Devices(
        wrap(real.headset_capture, headset_ppm),
        wrap(real.headset_playback, headset_ppm),
        wrap(real.host_capture, host_ppm),
        wrap(real.host_playback, host_ppm),
    )
