"""The fleet agent's settings: ``[fleet]`` in the box's TOML configuration."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from firmware.settings import Checked, SettingError, check, rule, setting

_KEY_RE = re.compile(r"^ed25519:[0-9a-f]{64}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


@dataclass(frozen=True)
class FleetConfig(Checked):
    broker_host: str = setting("localhost", nonempty=True)
    broker_port: int = setting(8883, ge=1, le=65535)
    # Empty: the box's id is its client certificate's CN (the name the broker knows it by).
    box_id: str = setting("")
    group: str = setting("")
    ca_file: Path = setting(Path("/etc/parallax/fleet/ca.crt"), nonempty=True)
    cert_file: Path = setting(Path("/etc/parallax/fleet/box.crt"), nonempty=True)
    key_file: Path = setting(Path("/etc/parallax/fleet/box.key"), nonempty=True)
    # The admin public keys this box trusts, "ed25519:<64 hex>" (docs/fleet-protocol.md: rotation).
    admin_keys: tuple[str, ...] = setting((), unique=True)
    # HTTPS artifact downloads: unset trusts the system's CA store, a path pins a CA file.
    https_ca_file: Path | None = setting(None, optional=True, nonempty=True)
    telemetry_s: float = setting(60.0, ge=0.5, le=3600.0)
    keepalive_s: int = setting(20, ge=5, le=600)
    # Reconnect backoff doubles from min to max; max bounds what a broker restart costs (<= 10 s).
    reconnect_min_s: float = setting(0.5, gt=0.0, le=8.0)
    reconnect_max_s: float = setting(4.0, gt=0.0, le=8.0)
    chunk_window: int = setting(8, ge=1, le=64)
    # A requested chunk that has not come after this long is asked for again.
    chunk_timeout_s: float = setting(10.0, ge=0.5, le=600.0)
    # A transfer that makes no progress for this long is given up (rejected: transfer).
    transfer_stall_s: float = setting(600.0, ge=5.0, le=86400.0)
    selftest_timeout_s: float = setting(120.0, ge=5.0, le=3600.0)
    # After a switch: watch the coach over this many calls, or this long, whichever comes first.
    watch_calls: int = setting(3, ge=0, le=100)
    watch_s: float = setting(3600.0, gt=0.0, le=7 * 86400.0)
    max_coach_restarts: int = setting(1, ge=0, le=20)
    max_offer_life_s: float = setting(30 * 86400.0, ge=60.0, le=365 * 86400.0)
    # Random wait before an HTTPS fetch so a whole fleet does not hit the origin in one second.
    fetch_jitter_s: float = setting(0.0, ge=0.0, le=3600.0)

    RULES = (rule("reconnect_min_s <= reconnect_max_s", "reconnect_min_s", "reconnect_max_s", holds=lambda lo, hi: lo <= hi),)

    def __post_init__(self) -> None:
        check(self)
        for name in ("box_id", "group"):
            value = getattr(self, name)
            if value and not _NAME_RE.match(value):
                raise SettingError("fleet", (name,), (value,), "one topic level: letters, digits, _ . - (or empty)", False)
        for key in self.admin_keys:
            if not isinstance(key, str) or not _KEY_RE.match(key):
                raise SettingError("fleet", ("admin_keys",), (self.admin_keys,), "'ed25519:<64 hex digits>' per key", False)
