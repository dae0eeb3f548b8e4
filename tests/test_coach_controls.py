"""Dismiss, snooze and mute from the box's button (gpiozero MockFactory) during a call."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from coach_support import Run, make_config, synthetic_call

from firmware.audio.frames import FrameActivity
from firmware.cues.config import CuesConfig
from firmware.events import Moment, Tip
from firmware.testing.evaluate import tips
from firmware.testing.truth import stream


def play_until(run: Run, items, until_t: float) -> None:  # type: ignore[no-untyped-def]
    for item in items:
        if isinstance(item, FrameActivity):
            run.coach.on_activity(item)
            if item.t >= until_t:
                return
        else:
            run.coach.on_event(item)


def play_rest(run: Run, items) -> None:  # type: ignore[no-untyped-def]
    play_until(run, items, float("inf"))
    run.coach.end_call(run.coach.now)


def press(run: Run, hold_s: float = 0.02) -> None:
    pin = run.kit.pin_factory.pin(run.kit.pins.button)
    pin.drive_low()
    time.sleep(hold_s)
    pin.drive_high()
    time.sleep(0.02)


def make_run(tmp_path: Path, **delivery: Any) -> Run:
    config = make_config(tmp_path / "state", min_gap_s=0.0, **delivery)
    return Run(dataclasses.replace(config, cues=CuesConfig(button_hold_s=0.3, double_press_s=0.3)))


def test_short_press_dismisses_the_current_tip_only(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    try:
        items = stream(synthetic_call())
        while not tips(run.events):
            play_until(run, items, run.coach.now + 0.02)
        phone = run.kit.phone
        assert phone.current is not None  # type: ignore[attr-defined]
        press(run)
        assert phone.current is None  # type: ignore[attr-defined]
        assert run.kit.cues.led.value == (0, 0, 0)
        assert not run.coach.muted and not run.coach.snoozed
        play_rest(run, items)
        assert len(tips(run.events)) > 1  # coaching carries on
    finally:
        run.close()


def test_hold_snoozes_coaching_for_the_snooze_time(tmp_path: Path) -> None:
    run = make_run(tmp_path, snooze_s=60.0)
    try:
        items = stream(synthetic_call())
        play_until(run, items, 10.0)
        press(run, hold_s=0.5)
        assert run.coach.snoozed
        snoozed_at = run.coach.now
        assert run.kit.cues.state == "snoozed"
        play_until(run, items, snoozed_at + 61.0)
        assert run.kit.cues.state == "idle"  # the dim snooze light goes out when coaching comes back
        play_rest(run, items)
        delivered = tips(run.events)
        assert delivered, "coaching resumes after the snooze"
        assert all(not snoozed_at <= t.t < snoozed_at + 60.0 for t in delivered)
        assert any(t.t >= snoozed_at + 60.0 for t in delivered)
    finally:
        run.close()


def test_double_press_mutes_for_the_call_and_nothing_is_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    run = make_run(tmp_path)
    try:
        items = stream(synthetic_call())
        play_until(run, items, 5.0)
        press(run)
        press(run)
        assert run.coach.muted
        red, green, blue = run.kit.cues.led.value
        assert 0 < red < 0.5 and green == blue == 0  # the dim "muted" light
        play_rest(run, items)
        assert tips(run.events) == []
        assert run.kit.phone.tips == []  # type: ignore[attr-defined]
        # Moments are still measured (the recap needs them), but controls leave no trace.
        assert all(isinstance(e, (Moment, Tip)) for e in run.events)
        assert [r for r in caplog.records if r.name.startswith("firmware")] == []
        assert run.kit.cues.state == "idle"  # muted for that call only
    finally:
        run.close()
