"""The fleet agent's settings: ``[fleet]`` in the box's TOML configuration."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_KEY_RE = re.compile(r"^ed25519:[0-9a-f]{64}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


@dataclass(frozen=True)
class FleetConfig:
    broker_host: str = "localhost"
    broker_port: int = 8883
    # Empty: the box's id is its client certificate's CN (the name the broker knows it by).
    box_id: str = ""
    group: str = ""
    ca_file: Path = Path("/etc/parallax/fleet/ca.crt")
    cert_file: Path = Path("/etc/parallax/fleet/box.crt")
    key_file: Path = Path("/etc/parallax/fleet/box.key")
    # The admin public keys this box trusts, "ed25519:<64 hex>" (docs/fleet-protocol.md: rotation).
    admin_keys: tuple[str, ...] = ()
    # HTTPS artifact downloads: None trusts the system's CA store, a path pins a CA file.
    https_ca_file: Path | None = None
    telemetry_s: float = 60.0
    keepalive_s: int = 20
    # Reconnect backoff doubles from min to max; max bounds what a broker restart costs (<= 10 s).
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 4.0
    chunk_window: int = 8
    # A requested chunk that has not come after this long is asked for again.
    chunk_timeout_s: float = 10.0
    # A transfer that makes no progress for this long is given up (rejected: transfer).
    transfer_stall_s: float = 600.0
    selftest_timeout_s: float = 120.0
    # After a switch: watch the coach over this many calls, or this long, whichever comes first.
    watch_calls: int = 3
    watch_s: float = 3600.0
    max_coach_restarts: int = 1
    max_offer_life_s: float = 30 * 86400.0
    # Random wait before an HTTPS fetch so a whole fleet does not hit the origin in one second.
    fetch_jitter_s: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.broker_port < 65536:
            raise ValueError("broker_port must be within 1..65535")
        for name in ("box_id", "group"):
            value = getattr(self, name)
            if value and not _NAME_RE.match(value):
                raise ValueError(f"{name} must be one topic level of letters, digits, _ . - (got {value!r})")
        for key in self.admin_keys:
            if not _KEY_RE.match(key):
                raise ValueError(f"admin_keys entries must be 'ed25519:<64 hex digits>' (got {key!r})")
        positive = ("telemetry_s", "reconnect_min_s", "reconnect_max_s", "chunk_timeout_s", "transfer_stall_s", "selftest_timeout_s", "watch_s", "max_offer_life_s")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")
        if self.reconnect_max_s < self.reconnect_min_s or self.reconnect_max_s > 8.0:
            raise ValueError("reconnect_max_s must be within reconnect_min_s..8 (a broker restart must cost <= 10 s)")
        if not 5 <= self.keepalive_s <= 600:
            raise ValueError("keepalive_s must be within 5..600")
        if not 1 <= self.chunk_window <= 64:
            raise ValueError("chunk_window must be within 1..64")
        if self.watch_calls < 0 or self.max_coach_restarts < 0 or self.fetch_jitter_s < 0:
            raise ValueError("watch_calls, max_coach_restarts and fetch_jitter_s must be >= 0")
