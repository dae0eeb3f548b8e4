"""Box cues on gpiozero's MockFactory: LED colours and patterns, haptic ticks, the button, the pin map."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware.cues.box import GpioCues
from firmware.cues.button import CoachButton
from firmware.cues.config import CuesConfig
from firmware.cues.pins import PinMap, load_pin_map, make_pin_factory
from firmware.cues.spec import COLOURS, CueSpec
from firmware.errors import ConfigError

PIN_MAP = Path(__file__).resolve().parent.parent / "board" / "pins.toml"


@pytest.fixture
def pins() -> PinMap:
    return load_pin_map(PIN_MAP)


@pytest.fixture
def factory():  # type: ignore[no-untyped-def]
    f = make_pin_factory("mock")
    yield f
    f.reset()


@pytest.fixture
def cues(pins: PinMap, factory) -> Iterator[GpioCues]:  # type: ignore[no-untyped-def]
    c = GpioCues(pins, CuesConfig(led_brightness=1.0, tip_led_s=0.5), pin_factory=factory)
    yield c
    c.close()


def wait_until(check, timeout: float = 2.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def levels(factory, pin: int) -> list[float]:  # type: ignore[no-untyped-def]
    return [float(s.state) for s in factory.pin(pin).states]


@pytest.mark.parametrize(("haptic", "ticks"), [("single", 1), ("double", 2)])
def test_haptic_ticks(cues: GpioCues, pins: PinMap, factory, haptic: str, ticks: int) -> None:  # type: ignore[no-untyped-def]
    cues.tip(CueSpec(led_colour=None, led_pattern="solid", haptic=haptic))
    wait_until(lambda: len(levels(factory, pins.haptic)) >= 1 + 2 * ticks)
    time.sleep(0.3)
    factory.pin(pins.haptic).assert_states([0, 1, 0] * 1 if ticks == 1 else [0, 1, 0, 1, 0])
    # The LED was not asked for, so it stayed dark.
    assert all(v == 0 for p in (pins.led_red, pins.led_green, pins.led_blue) for v in levels(factory, p))


def test_tick_timing(cues: GpioCues, pins: PinMap, factory) -> None:  # type: ignore[no-untyped-def]
    cues.tip(CueSpec(led_colour=None, led_pattern="solid", haptic="single"))
    wait_until(lambda: len(levels(factory, pins.haptic)) >= 3)
    factory.pin(pins.haptic).assert_states_and_times([(0.0, 0), (0.0, 1), (0.08, 0)])


@pytest.mark.parametrize("colour", ["amber", "green", "purple"])
def test_led_shows_the_moment_colour_then_goes_dark(cues: GpioCues, pins: PinMap, factory, colour: str) -> None:  # type: ignore[no-untyped-def]
    cues.tip(CueSpec(led_colour=colour, led_pattern="solid", haptic="none"))
    wait_until(lambda: cues.led.value != (0, 0, 0))
    assert cues.led.value == pytest.approx(COLOURS[colour])
    wait_until(lambda: cues.led.value == (0, 0, 0))
    assert levels(factory, pins.haptic) == [0]


def test_led_patterns_blink_and_pulse(cues: GpioCues) -> None:
    cues.tip(CueSpec(led_colour="blue", led_pattern="blink", haptic="none"))
    seen = set()
    deadline = time.monotonic() + 0.7
    while time.monotonic() < deadline:
        seen.add(tuple(round(v, 2) for v in cues.led.value))
        time.sleep(0.01)
    assert {(0, 0, 0), (0, 0, 1)} <= seen
    cues.tip(CueSpec(led_colour="green", led_pattern="pulse", haptic="none"))
    greens = set()
    deadline = time.monotonic() + 0.9
    while time.monotonic() < deadline:
        greens.add(round(cues.led.value[1], 1))
        time.sleep(0.01)
    assert len(greens) >= 4  # a fade passes through in-between levels, a blink would not


def test_status_patterns(cues: GpioCues) -> None:
    cues.status("muted")
    assert cues.led.value[0] > 0 and cues.led.value[1:] == (0, 0)
    assert cues.led.value[0] < 0.5  # dim: a reminder, not a signal
    cues.status("pairing")
    wait_until(lambda: cues.led.value == (0, 0, 1))
    cues.status("idle")
    wait_until(lambda: cues.led.value == (0, 0, 0))
    cues.status("error")
    wait_until(lambda: cues.led.value == (1, 0, 0))
    cues.clear()  # clearing a tip keeps the box state showing
    wait_until(lambda: cues.led.value in ((1, 0, 0), (0, 0, 0)))
    assert cues.state == "error"


def press(factory, pin: int, hold_s: float = 0.02) -> None:  # type: ignore[no-untyped-def]
    factory.pin(pin).drive_low()
    time.sleep(hold_s)
    factory.pin(pin).drive_high()
    time.sleep(0.02)


def test_button_gestures(pins: PinMap, factory) -> None:  # type: ignore[no-untyped-def]
    actions: list[str] = []
    button = CoachButton(
        pins.button,
        on_dismiss=lambda: actions.append("dismiss"),
        on_snooze=lambda: actions.append("snooze"),
        on_mute=lambda: actions.append("mute"),
        hold_s=0.3,
        double_press_s=0.3,
        pin_factory=factory,
    )
    try:
        press(factory, pins.button)
        assert actions == ["dismiss"]
        time.sleep(0.4)
        press(factory, pins.button)
        press(factory, pins.button)
        assert actions == ["dismiss", "dismiss", "mute"]
        time.sleep(0.4)
        press(factory, pins.button, hold_s=0.5)
        assert actions == ["dismiss", "dismiss", "mute", "snooze"]  # a hold is not also a dismiss
    finally:
        button.close()


def test_long_press_is_pairing_only_and_a_shorter_hold_snoozes_on_release(pins: PinMap, factory) -> None:  # type: ignore[no-untyped-def]
    actions: list[str] = []
    button = CoachButton(
        pins.button,
        on_dismiss=lambda: actions.append("dismiss"),
        on_snooze=lambda: actions.append("snooze"),
        on_mute=lambda: actions.append("mute"),
        hold_s=0.1,
        pin_factory=factory,
    )
    try:
        with pytest.raises(ValueError):
            button.on_long_press(lambda: actions.append("pair"), 0.05)
        button.on_long_press(lambda: actions.append("pair"), 0.4)
        # A snooze hold, released before the long press: it snoozes at the release, not before.
        factory.pin(pins.button).drive_low()
        time.sleep(0.25)  # past the 0.1 s hold, short of the 0.4 s long press
        assert actions == []  # undecided while the finger is down
        factory.pin(pins.button).drive_high()
        wait_until(lambda: actions == ["snooze"])
        time.sleep(0.4)
        assert actions == ["snooze"]  # and the long press timer does not fire after the release
        # Held on to the long press: pairing only, never also a snooze (nor on release).
        factory.pin(pins.button).drive_low()
        wait_until(lambda: actions == ["snooze", "pair"])
        factory.pin(pins.button).drive_high()
        time.sleep(0.1)
        assert actions == ["snooze", "pair"]
        press(factory, pins.button)  # a short press after all that is still a dismiss
        assert actions == ["snooze", "pair", "dismiss"]
    finally:
        button.close()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[led]\nred=17\ngreen=27\nblue=22\n[haptic]\npin=17\n[button]\npin=23\n", "assigned twice"),
        ("[led]\nred=17\ngreen=27\nblue=22\n[haptic]\npin=40\n[button]\npin=23\n", "0-27"),
        ("[led]\nred=17\ngreen=27\n[haptic]\npin=18\n[button]\npin=23\n", "blue is missing"),
        ("[led]\nred=17\ngreen=27\nblue=22\n[haptic]\npin=18\n", r"missing \[button\]"),
        ("[led\n", "not valid TOML"),
    ],
)
def test_pin_map_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "pins.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_pin_map(path)


def test_pin_factory_choice() -> None:
    assert make_pin_factory("default") is None
    with pytest.raises(ConfigError, match="unknown pin factory"):
        make_pin_factory("wiringpi")
