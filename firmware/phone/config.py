"""Settings of the Bluetooth LE link to the rep's phone (``[phone]`` in the TOML file)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from firmware.settings import Checked, rule, setting


@dataclass(frozen=True)
class PhoneConfig(Checked):
    # Off: the coach keeps tips in memory only (a box that is never paired).
    enabled: bool = setting(True)
    # BlueZ adapter to use ("hci0"); empty lets BlueZ pick the first powered one.
    adapter: str = setting("")  # and see RULES
    # Reconnect backoff: first wait, growth per failure, cap. A phone back in range is found
    # within about backoff_max_s + connect time (tools/bench_phone.py measures it with these).
    backoff_initial_s: float = setting(0.25, ge=0.01, le=60.0)  # and see RULES
    backoff_factor: float = setting(2.0, ge=1.0, le=10.0)
    backoff_max_s: float = setting(2.0, ge=0.01, le=600.0)
    # How long one scan for the bonded phone lasts before the next backoff.
    scan_s: float = setting(2.0, ge=0.1, le=60.0)
    connect_timeout_s: float = setting(10.0, ge=0.5, le=120.0)
    # The phone must answer HELLO within this.
    hello_timeout_s: float = setting(3.0, ge=0.1, le=60.0)
    # A frame not acknowledged within ack_timeout_s is written again, at most max_writes times.
    ack_timeout_s: float = setting(1.0, ge=0.05, le=30.0)
    max_writes: int = setting(3, ge=1, le=10)
    # Frames in flight (written, not yet acknowledged).
    window: int = setting(8, ge=1, le=64)
    # Outgoing frames waiting for the phone; the oldest tip goes first when it is full.
    queue_max: int = setting(32, ge=1, le=1024)
    # How long pairing mode lasts after the 5 s button press (or SIGUSR1).
    pairing_window_s: float = setting(120.0, ge=5.0, le=3600.0)
    # The button press that enters pairing mode (longer than cues.button_hold_s, the snooze hold).
    pair_hold_s: float = setting(5.0, ge=1.0, le=30.0)
    # Unauthenticated frames tolerated in one session before the box hangs up.
    max_bad_frames: int = setting(10, ge=1, le=1000)

    RULES = (
        rule("backoff_initial_s <= backoff_max_s", "backoff_initial_s", "backoff_max_s", holds=lambda a, b: a <= b),
        rule("adapter empty or like 'hci0'", "adapter", holds=lambda a: a == "" or re.fullmatch(r"hci\d+", a) is not None),
    )
