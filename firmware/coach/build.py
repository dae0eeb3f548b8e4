"""The coaching side of the box, wired from the configuration in one place.

:class:`CoachBox` lives as long as the process: playbook, mastery store, LED and haptic motor,
button and phone sink. Each call gets a fresh :class:`~firmware.coach.coach.Coach` from
:meth:`CoachBox.start_call`. The rep's controls (button, phone, command line) all go through
:meth:`CoachBox.control`, which acts on whichever call is running and answers every control,
between calls too.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

from firmware.coach.coach import Coach, persona_problem
from firmware.coach.config import SKILL_LEVELS
from firmware.coach.mastery import MasteryStore
from firmware.coach.playbook import Playbook, load_playbook
from firmware.coach.reading import IntentScorer
from firmware.coach.sinks import InMemoryPhoneSink, PhoneSink
from firmware.coach.tips import TipIds
from firmware.config import Config
from firmware.cues.box import GpioCues
from firmware.cues.button import CoachButton
from firmware.cues.pins import PinMap, load_pin_map, make_pin_factory
from firmware.cues.render import TerminalCues
from firmware.cues.spec import CueSink
from firmware.errors import ConfigError, ModelError
from firmware.events import Control, ControlAction, ControlOutcome, ControlResult, Event, RecapEvent, Status
from firmware.outward import outward

log = logging.getLogger(__name__)

# Controls that act on a running call; between calls they are refused (skill and persona wait).
_CALL_ONLY = frozenset({"dismiss", "snooze", "mute", "unmute", "helpful", "not_helpful"})


class CoachBox:
    def __init__(
        self,
        config: Config,
        *,
        phone: PhoneSink | None = None,
        pin_factory: Any = None,
        rep_id: str = "default",
        cue_view: IO[str] | None = None,
        publish: Callable[[Event], None] | None = None,
    ) -> None:
        """``pin_factory`` None uses ``cues.pin_factory`` from the configuration; ``cue_view``
        also prints every cue there (demo, replay on a laptop). ``publish`` takes the box's
        events between calls (controls, their results, status); None = the last call's."""
        self.config = config
        self.rep_id = rep_id
        self.tip_ids = TipIds()  # one per process: tip ids stay unique across calls and restarts
        self._publish_between = publish
        self._last_publish: Callable[[Event], None] | None = None
        self._last_call_id = 0
        self._next_persona: str | None = None
        self.pin_factory = pin_factory if pin_factory is not None else make_pin_factory(config.cues.pin_factory)
        self.playbook: Playbook = load_playbook(playbook_path(config))
        self.pins: PinMap = load_pin_map(config.paths.resolve(config.cues.pin_map))
        self.mastery = MasteryStore.in_dir(config.paths.resolve(config.paths.state_dir), config.coach.mastery)
        self.phone: PhoneSink = phone if phone is not None else InMemoryPhoneSink()
        self._to_phone = _PhoneGate(self.phone)  # where the phone attaches: the outward allowlist applies
        # Re-entrant: a bus handler may ask the box (status, a control) from inside a publish.
        self._lock = threading.RLock()
        self.coach: Coach | None = None
        self._known_words: frozenset[str] | None = None
        self._known_words_loaded = False
        self.cues = _gpio(lambda: GpioCues(self.pins, config.cues, pin_factory=self.pin_factory))
        self._cue_sink: CueSink = self.cues if cue_view is None else TerminalCues(self.cues, cue_view)
        try:
            self.button = _gpio(lambda: CoachButton(
                self.pins.button,
                on_dismiss=lambda: self._button("dismiss"),
                on_snooze=lambda: self._button("snooze"),
                on_mute=lambda: self._button("mute"),
                hold_s=config.cues.button_hold_s,
                double_press_s=config.cues.double_press_s,
                pin_factory=self.pin_factory,
            ))
        except BaseException:
            self.cues.close()
            raise

    def start_call(
        self,
        publish: Callable[[Event], None],
        intent: IntentScorer | None = None,
        call_id: int | None = None,
        playbook: Playbook | None = None,
    ) -> Coach:
        """``intent``: the classifier that labels the call's transcripts, if the coach may re-read
        them. ``call_id``: the bridge's id for the call (None: the box counts calls itself).
        ``playbook``: the one this call runs on (the store's current, checked at the call's start),
        which stays the box's playbook until another call brings a newer one."""
        with self._lock:
            if self.coach is not None and not self.coach.ended:
                raise RuntimeError("a call is already being coached")
            if playbook is not None:
                self.playbook = playbook
            self._last_call_id = call_id if call_id is not None else self._last_call_id + 1
            coach = Coach(
                self.config.coach, self.playbook, self._cue_sink, self._to_phone, self.mastery, publish,
                rep_id=self.rep_id, intent=intent, call_id=self._last_call_id, tip_ids=self.tip_ids,
                known_words=self.known_words(),
            )  # fmt: skip
            if self._next_persona is not None:
                coach.set_persona(self._next_persona)  # checked when the control came in
                self._next_persona = None
            self.coach = coach
            self._last_publish = publish
            coach.announce_status()
            return coach

    def known_words(self) -> frozenset[str] | None:
        """The recogniser's whole words (firmware/speech/vocabulary.py), the coach's evidence of a
        competitor's name when ``coach.reading.competitor_needs_name`` is on; read once per box (a new
        version of the recogniser keeps its tokenizer). None when the rule is off,
        or without the recogniser's model: then a name is told by its capitals alone."""
        if not self._known_words_loaded and self.config.coach.reading.competitor_needs_name:
            from firmware.speech.vocabulary import load_whole_words

            self._known_words_loaded = True
            try:
                self._known_words = load_whole_words(
                    self.config.paths.resolve(self.config.paths.models_dir), self.config.speech.recognizer.model
                )
            except ModelError as exc:
                log.warning("competitor names are told by their capitals alone: %s", exc)
        return self._known_words

    def end_call(self, t: float) -> RecapEvent:
        with self._lock:
            coach = self.coach
        if coach is None:
            raise RuntimeError("no call is being coached")
        return coach.end_call(t)  # outside the box's lock: it writes the mastery file

    def control(self, control: Control) -> ControlResult:
        """The one way in for the rep's controls, from any thread; never blocks on I/O.

        During a call the running coach applies it (see :meth:`Coach.handle_control`). Between
        calls, skill and persona are kept for the next call (outcome "next_call") and everything
        else is refused with a reason. Either way the control and its result are published on the
        bus, and the result goes to the phone.
        """
        with self._lock:  # held throughout, so no call starts half-way through a control
            coach = self.coach
            if coach is not None:
                result = coach.handle_control(control)  # atomic with the call's end: None once ended
                if result is not None:
                    return result
            control = dataclasses.replace(control, t=0.0)  # no call: no call time
            publish = self._publish_between or self._last_publish
            if publish is not None:
                publish(control)
            outcome, reason = self._between_calls(control)
            result = ControlResult(
                t=0.0, action=control.action, source=control.source, outcome=outcome, reason=reason,
                tip_id=control.tip_id, call_id=control.call_id,
            )  # fmt: skip
            if publish is not None:
                publish(result)
            self._to_phone.send(result)
            return result

    def status(self) -> Status:
        """What the phone shows as the coach's state (a paired phone asks for it on connect)."""
        with self._lock:
            coach = self.coach
            if coach is not None and not coach.ended:
                return coach.status()
            return Status(t=0.0, call_active=False)

    def close(self) -> None:
        self.button.close()
        self.cues.close()

    def _between_calls(self, control: Control) -> tuple[ControlOutcome, str | None]:
        if control.call_id is not None:
            return "refused", f"call {control.call_id} is not running (no call is)"
        if control.action in _CALL_ONLY:
            return "refused", f"no call is running: nothing to {_VERB[control.action]}"
        if control.action == "skill":
            if control.value not in SKILL_LEVELS:
                return "refused", f"unknown skill level {control.value!r} (choose from {', '.join(SKILL_LEVELS)})"
            self.mastery.set_skill(self.rep_id, control.value)  # type: ignore[arg-type]  (checked above)
            return "next_call", None
        reason = persona_problem(self.playbook, control.value)
        if reason is not None:
            return "refused", reason
        self._next_persona = control.value
        return "next_call", None

    def _button(self, action: ControlAction) -> None:
        # gpiozero's callback thread: the result is on the bus and the phone; nothing to return to.
        self.control(Control(t=0.0, action=action, source="button"))


_VERB: dict[str, str] = {
    "dismiss": "dismiss", "snooze": "snooze", "mute": "mute", "unmute": "unmute",
    "helpful": "rate", "not_helpful": "rate",
}  # fmt: skip


class _PhoneGate:
    """The phone seam as the coach sees it: only what :func:`outward` lets the phone carry passes.

    The coach sends the phone only allowed types today; the gate keeps it so when someone adds
    a send. Refused events are counted (``blocked``), never sent.
    """

    def __init__(self, sink: PhoneSink) -> None:
        self.sink = sink
        self.blocked = 0

    def send(self, event: Event) -> None:
        if outward("phone", event) is None:
            self.blocked += 1
            log.warning("a %s event was not sent to the phone: not on its allowlist", event.type)
            return
        self.sink.send(event)


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
