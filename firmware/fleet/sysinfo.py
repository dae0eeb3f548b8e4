"""The box's own health, read from /proc and /sys (and the Pi firmware's throttling flags)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any


class CpuMeter:
    """CPU use between two readings of /proc/stat, in percent of all cores."""

    def __init__(self) -> None:
        self._last = self._read()

    @staticmethod
    def _read() -> tuple[int, int] | None:
        try:
            fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        except OSError:
            return None
        values = [int(v) for v in fields]
        idle = values[3] + (values[4] if len(values) > 4 else 0)
        return sum(values), idle

    def percent(self) -> float | None:
        now, last = self._read(), self._last
        self._last = now
        if now is None or last is None or now[0] <= last[0]:
            return None
        total, idle = now[0] - last[0], now[1] - last[1]
        return round(100.0 * (total - idle) / total, 1)


def _uptime_s() -> float | None:
    try:
        return float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _memory_mb() -> tuple[float | None, float | None]:
    info: dict[str, int] = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            info[key] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        return None, None
    total, avail = info.get("MemTotal"), info.get("MemAvailable")
    if total is None or avail is None:
        return None, None
    return round((total - avail) / 1024.0, 1), round(total / 1024.0, 1)


def _temp_c() -> float | None:
    try:
        return round(int(Path("/sys/class/thermal/thermal_zone0/temp").read_text()) / 1000.0, 1)
    except (OSError, ValueError):
        return None


def _throttled() -> int | None:
    # The Pi firmware's get_throttled bits; only where vcgencmd exists (a Pi), else unknown.
    tool = shutil.which("vcgencmd")
    if tool is None:
        return None
    try:
        out = subprocess.run([tool, "get_throttled"], capture_output=True, text=True, timeout=2).stdout
        return int(out.strip().split("=", 1)[1], 16)
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def system_health(cpu: CpuMeter, disk_path: Path) -> dict[str, Any]:
    used, total = _memory_mb()
    try:
        disk_free = round(shutil.disk_usage(disk_path).free / 1e6, 1)
    except OSError:
        disk_free = None
    try:
        load = round(os.getloadavg()[0], 2)
    except OSError:
        load = None
    return {
        "uptime_s": _uptime_s(),
        "cpu_percent": cpu.percent(),
        "load_1m": load,
        "temp_c": _temp_c(),
        "throttled": _throttled(),
        "mem_used_mb": used,
        "mem_total_mb": total,
        "disk_free_mb": disk_free,
    }


