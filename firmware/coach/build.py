"""Building a coach and its box cues from the configuration: the one place they are wired."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from firmware.coach.coach import Coach
from firmware.coach.mastery import MasteryStore
from firmware.coach.playbook import load_playbook
from firmware.coach.sinks import InMemoryPhoneSink, PhoneSink
from firmware.config import Config
from firmware.cues.box import GpioCues
from firmware.cues.button import CoachButton
from firmware.cues.pins import PinMap, load_pin_map, make_pin_factory
from firmware.events import Event


@dataclass
class CoachKit:
    """A coach with the devices it owns; ``close`` releases the GPIO pins."""

    coach: Coach
    cues: GpioCues
    button: CoachButton
    phone: PhoneSink
    pin_factory: Any
    pins: PinMap

    def close(self) -> None:
        self.button.close()
        self.cues.close()


def build_coach(
    config: Config,
    publish: Callable[[Event], None],
    *,
    phone: PhoneSink | None = None,
    pin_factory: Any = None,
    rep_id: str = "default",
) -> CoachKit:
    """``pin_factory`` None uses ``cues.pin_factory`` from the configuration."""
    factory = pin_factory if pin_factory is not None else make_pin_factory(config.cues.pin_factory)
    playbook = load_playbook(config.paths.resolve(config.coach.playbook))
    pins = load_pin_map(config.paths.resolve(config.cues.pin_map))
    mastery = MasteryStore.in_dir(config.paths.resolve(config.paths.state_dir), config.coach.mastery)
    phone = phone if phone is not None else InMemoryPhoneSink()
    cues = GpioCues(pins, config.cues, pin_factory=factory)
    coach = Coach(config.coach, playbook, cues, phone, mastery, publish, rep_id=rep_id)
    button = CoachButton(
        pins.button,
        on_dismiss=coach.dismiss,
        on_snooze=coach.snooze,
        on_mute=coach.mute,
        hold_s=config.cues.button_hold_s,
        double_press_s=config.cues.double_press_s,
        pin_factory=factory,
    )
    return CoachKit(coach=coach, cues=cues, button=button, phone=phone, pin_factory=factory, pins=pins)
