"""How the phone link is wired into the box: [phone] settings, the button's long press, the LED."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from firmware.cli.run import _phone_link
from firmware.config import Config, PathsConfig, from_mapping
from firmware.errors import ConfigError
from firmware.phone.config import PhoneConfig
from firmware.phone.link import PhoneLink, attach
from firmware.phone.secret import PairingStore


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"backoff_max_s": 0.0}, "backoff_max_s"),
        ({"backoff_initial_s": 5.0, "backoff_max_s": 2.0}, "backoff_initial_s <= backoff_max_s"),
        ({"window": 0}, "window"),
        ({"queue_max": 5000}, "queue_max"),
        ({"adapter": "wlan0"}, "hci0"),
        ({"ack_timeout_s": "1"}, "expected a number"),
        ({"pair_hold_s": 60.0}, "pair_hold_s"),
        ({"retries": 3}, "unknown key"),
    ],
)
def test_phone_settings_are_range_checked(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_mapping(Config, {"phone": table}, where="test.toml")


def test_the_defaults_load_and_the_link_can_be_turned_off(tmp_path: Path) -> None:
    config = from_mapping(Config, {"phone": {"scan_s": 1.5}, "paths": {"state_dir": str(tmp_path)}}, where="t")
    assert config.phone.scan_s == 1.5 and config.phone.backoff_max_s == PhoneConfig().backoff_max_s
    link = _phone_link(config)
    assert isinstance(link, PhoneLink)
    off = Config(paths=PathsConfig(state_dir=tmp_path), phone=PhoneConfig(enabled=False))
    assert _phone_link(off) is None


class FakeCues:
    def __init__(self) -> None:
        self.state = "muted"
        self.shown: list[str] = []

    def status(self, state: str) -> None:
        self.state = state
        self.shown.append(state)


class FakeButton:
    def __init__(self) -> None:
        self.long: tuple[Any, float] | None = None

    def on_long_press(self, callback: Any, hold_s: float) -> None:
        self.long = (callback, hold_s)


class FakeBox:
    def __init__(self) -> None:
        self.cues, self.button, self.controls = FakeCues(), FakeButton(), []

    def control(self, control: Any) -> None:
        self.controls.append(control)


def test_attach_wires_controls_the_long_press_and_the_pairing_led(tmp_path: Path) -> None:
    box = FakeBox()
    link = PhoneLink(PhoneConfig(), PairingStore(tmp_path))
    attach(link, box, 5.0)
    assert box.button.long == (link.enter_pairing, 5.0)
    link._apply_control(b'{"type":"control","v":1,"t":0,"action":"snooze","source":"phone","minutes":5}')
    assert [(c.action, c.source, c.minutes) for c in box.controls] == [("snooze", "phone", 5.0)]
    assert link._on_pairing is not None
    link._on_pairing(True)
    link._on_pairing(False)
    assert box.cues.shown == ["pairing", "muted"]  # the LED blinks blue, then shows the box's state again
