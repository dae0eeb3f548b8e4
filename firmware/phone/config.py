"""Settings of the Bluetooth LE link to the rep's phone (``[phone]`` in the TOML file)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PhoneConfig:
    # Off: the coach keeps tips in memory only (a box that is never paired).
    enabled: bool = True
    # BlueZ adapter to use ("hci0"); empty lets BlueZ pick the first powered one.
    adapter: str = ""
    # Reconnect backoff: first wait, growth per failure, cap. A phone back in range is found
    # within cap + scan_s (the benchmark's reconnect figure is measured with these).
    backoff_initial_s: float = 0.25
    backoff_factor: float = 2.0
    backoff_max_s: float = 2.0
    # How long one scan for the bonded phone lasts before the next backoff.
    scan_s: float = 2.0
    connect_timeout_s: float = 10.0
    # The phone must answer HELLO within this.
    hello_timeout_s: float = 3.0
    # A frame not acknowledged within ack_timeout_s is written again, at most max_writes times.
    ack_timeout_s: float = 1.0
    max_writes: int = 3
    # Frames in flight (written, not yet acknowledged).
    window: int = 8
    # Outgoing frames waiting for the phone; the oldest tip goes first when it is full.
    queue_max: int = 32
    # How long pairing mode lasts after the 5 s button press (or `parallax pair`).
    pairing_window_s: float = 120.0
    # The button press that enters pairing mode.
    pair_hold_s: float = 5.0
    # Unauthenticated frames tolerated in one session before the box hangs up.
    max_bad_frames: int = 10

    def __post_init__(self) -> None:
        ranges = {
            "backoff_initial_s": (0.01, 60.0), "backoff_factor": (1.0, 10.0), "backoff_max_s": (0.01, 600.0),
            "scan_s": (0.1, 60.0), "connect_timeout_s": (0.5, 120.0), "hello_timeout_s": (0.1, 60.0),
            "ack_timeout_s": (0.05, 30.0), "pairing_window_s": (5.0, 3600.0), "pair_hold_s": (1.0, 30.0),
        }  # fmt: skip
        for name, (lo, hi) in ranges.items():
            value = getattr(self, name)
            if not lo <= value <= hi:
                raise ValueError(f"{name} must be within [{lo}, {hi}], got {value}")
        if self.backoff_initial_s > self.backoff_max_s:
            raise ValueError("backoff_initial_s must not exceed backoff_max_s")
        for name, lo, hi in (("max_writes", 1, 10), ("window", 1, 64), ("queue_max", 1, 1024), ("max_bad_frames", 1, 1000)):
            if not lo <= getattr(self, name) <= hi:
                raise ValueError(f"{name} must be within [{lo}, {hi}]")
        if self.adapter and not (self.adapter.startswith("hci") and self.adapter[3:].isdigit()):
            raise ValueError("adapter must look like 'hci0'")
