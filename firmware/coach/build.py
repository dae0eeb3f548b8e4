"""The coaching side of the box, wired from the configuration in one place.

:class:`CoachBox` lives as long as the process: playbook, mastery store, LED and haptic motor,
button and phone sink. Each call gets a fresh :class:`~firmware.coach.coach.Coach` from
:meth:`CoachBox.start_call`; the button acts on whichever call is running.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

from firmware.coach.coach import Coach
from firmware.coach.mastery import MasteryStore
from firmware.coach.playbook import Playbook, load_playbook
from firmware.coach.reading import IntentScorer
from firmware.coach.recap import Recap
from firmware.coach.sinks import InMemoryPhoneSink, PhoneSink
from firmware.config import Config
from firmware.cues.box import GpioCues
from firmware.cues.button import CoachButton
from firmware.cues.pins import PinMap, load_pin_map, make_pin_factory
from firmware.cues.render import TerminalCues
from firmware.cues.spec import CueSink
from firmware.errors import ConfigError
from firmware.events import Event


class CoachBox:
    def __init__(
        self,
        config: Config,
        *,
        phone: PhoneSink | None = None,
        pin_factory: Any = None,
        rep_id: str = "default",
        cue_view: IO[str] | None = None,
    ) -> None:
        """``pin_factory`` None uses ``cues.pin_factory`` from the configuration; ``cue_view``
        also prints every cue there (demo, replay on a laptop)."""
        self.config = config
        self.rep_id = rep_id
        self.pin_factory = pin_factory if pin_factory is not None else make_pin_factory(config.cues.pin_factory)
        self.playbook: Playbook = load_playbook(playbook_path(config))
        self.pins: PinMap = load_pin_map(config.paths.resolve(config.cues.pin_map))
        self.mastery = MasteryStore.in_dir(config.paths.resolve(config.paths.state_dir), config.coach.mastery)
        self.phone: PhoneSink = phone if phone is not None else InMemoryPhoneSink()
        self._lock = threading.Lock()
        self.coach: Coach | None = None
        self.cues = _gpio(lambda: GpioCues(self.pins, config.cues, pin_factory=self.pin_factory))
        self._cue_sink: CueSink = self.cues if cue_view is None else TerminalCues(self.cues, cue_view)
        try:
            self.button = _gpio(lambda: CoachButton(
                self.pins.button,
                on_dismiss=lambda: self._forward("dismiss"),
                on_snooze=lambda: self._forward("snooze"),
                on_mute=lambda: self._forward("mute"),
                hold_s=config.cues.button_hold_s,
                double_press_s=config.cues.double_press_s,
                pin_factory=self.pin_factory,
            ))
        except BaseException:
            self.cues.close()
            raise

    def start_call(
        self, publish: Callable[[Event], None], intent: IntentScorer | None = None, playbook: Playbook | None = None
    ) -> Coach:
        """``intent``: the classifier that labels the call's transcripts, if the coach may re-read them;
        ``playbook``: the one this call runs on (the store's current, checked at the call's start),
        which stays the box's playbook until another call brings a newer one."""
        with self._lock:
            if self.coach is not None and not self.coach.ended:
                raise RuntimeError("a call is already being coached")
            if playbook is not None:
                self.playbook = playbook
            self.coach = Coach(
                self.config.coach, self.playbook, self._cue_sink, self.phone, self.mastery, publish,
                rep_id=self.rep_id, intent=intent,
            )  # fmt: skip
            return self.coach

    def end_call(self, t: float) -> Recap:
        with self._lock:
            if self.coach is None:
                raise RuntimeError("no call is being coached")
            return self.coach.end_call(t)

    def close(self) -> None:
        self.button.close()
        self.cues.close()

    def _forward(self, action: str) -> None:
        with self._lock:
            coach = self.coach
        if coach is not None and not coach.ended:
            getattr(coach, action)()


def playbook_path(config: Config) -> Path:
    """``coach.playbook`` when set; else the current playbook in the model store, its hash checked."""
    if config.coach.playbook is not None:
        return config.paths.resolve(config.coach.playbook)
    from firmware.store import ModelStore

    return ModelStore(config.paths.resolve(config.paths.models_dir)).load("playbook").file("playbook")


def build_coach(
    config: Config,
    publish: Callable[[Event], None],
    *,
    phone: PhoneSink | None = None,
    pin_factory: Any = None,
    rep_id: str = "default",
) -> CoachBox:
    """A box with one call started: ``box.coach`` is ready for frames and events."""
    box = CoachBox(config, phone=phone, pin_factory=pin_factory, rep_id=rep_id)
    box.start_call(publish)
    return box


T = TypeVar("T")


def _gpio(make: Callable[[], T]) -> T:
    """Open GPIO devices, turning gpiozero's errors (no GPIO here, pin busy) into one clear line."""
    from gpiozero import GPIOZeroError

    try:
        return make()
    except GPIOZeroError as exc:
        raise ConfigError(
            f"cannot open the box's LED, motor or button: {exc} "
            '(on a machine without GPIO set [cues] pin_factory = "mock")'
        ) from None
