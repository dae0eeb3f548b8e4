"""The rep's controls: the box's button (gpiozero MockFactory) and the phone's, through one
public method, each published with its result, during a call and between calls."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from coach_support import Run, make_config, synthetic_call

from firmware.audio.frames import FrameActivity
from firmware.cues.config import CuesConfig
from firmware.events import Control, ControlResult, Event, Moment, RecapEvent, Status, Tip
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


def play_to_first_tip(run: Run, items) -> Tip:  # type: ignore[no-untyped-def]
    while not tips(run.events):
        play_until(run, items, run.coach.now + 0.02)
    return tips(run.events)[0]


def press(run: Run, hold_s: float = 0.02) -> None:
    pin = run.kit.pin_factory.pin(run.kit.pins.button)
    pin.drive_low()
    time.sleep(hold_s)
    pin.drive_high()
    time.sleep(0.02)


def make_run(tmp_path: Path, **delivery: Any) -> Run:
    config = make_config(tmp_path / "state", min_gap_s=0.0, **delivery)
    return Run(dataclasses.replace(config, cues=CuesConfig(button_hold_s=0.3, double_press_s=0.3)))


def of(kind: type, events: list[Event]) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def phone_control(run: Run, action: str, **fields: Any) -> ControlResult:
    return run.kit.control(Control(t=0.0, action=action, source="phone", **fields))  # type: ignore[arg-type]


@pytest.fixture
def run(tmp_path: Path):  # type: ignore[no-untyped-def]
    r = make_run(tmp_path)
    yield r
    r.close()


# -- the button ---------------------------------------------------------------------------------

def test_short_press_dismisses_the_current_tip_only(run: Run) -> None:
    items = stream(synthetic_call())
    tip = play_to_first_tip(run, items)
    phone = run.kit.phone
    assert phone.current == tip  # type: ignore[attr-defined]
    press(run)
    assert phone.current is None  # type: ignore[attr-defined]
    assert run.kit.cues.led.value == (0, 0, 0)
    assert not run.coach.muted and not run.coach.snoozed
    # The press is an event, and so is what became of it: the tip it dismissed, by id.
    assert of(Control, run.events) == [Control(t=run.coach.now, action="dismiss", source="button")]
    result = of(ControlResult, run.events)
    assert [(r.action, r.source, r.outcome, r.tip_id, r.call_id) for r in result] == [
        ("dismiss", "button", "applied", tip.tip_id, 1)]
    assert phone.results == result  # type: ignore[attr-defined]
    time.sleep(0.35)  # past the double-press window: this one is a dismiss, not a mute
    press(run)  # nothing is showing now: the second press is answered, not lost
    assert of(ControlResult, run.events)[-1].outcome == "refused"
    assert of(ControlResult, run.events)[-1].reason == "no tip is showing"
    play_rest(run, items)
    assert len(tips(run.events)) > 1  # coaching carries on


def test_hold_snoozes_coaching_for_the_snooze_time(tmp_path: Path) -> None:
    run = make_run(tmp_path, snooze_s=60.0)
    try:
        items = stream(synthetic_call())
        play_until(run, items, 10.0)
        press(run, hold_s=0.5)
        assert run.coach.snoozed
        snoozed_at = run.coach.now
        assert run.kit.cues.state == "snoozed"
        assert of(Status, run.events)[-1] == Status(t=snoozed_at, call_active=True, call_id=1,
                                                    snoozed_until_s=snoozed_at + 60.0)
        play_until(run, items, snoozed_at + 61.0)
        assert run.kit.cues.state == "idle"  # the dim snooze light goes out when coaching comes back
        back = of(Status, run.events)[-1]
        assert back.snoozed_until_s is None and snoozed_at + 60.0 <= back.t < snoozed_at + 60.1
        play_rest(run, items)
        delivered = tips(run.events)
        assert delivered, "coaching resumes after the snooze"
        assert all(not snoozed_at <= t.t < snoozed_at + 60.0 for t in delivered)
        assert any(t.t >= snoozed_at + 60.0 for t in delivered)
    finally:
        run.close()


def test_double_press_mutes_for_the_call_and_nothing_is_logged(run: Run, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
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
    # Moments are still measured (the recap needs them); the controls are events of their own.
    assert {e.type for e in run.events} == {"status", "moment", "control", "control_result", "recap"}
    assert [(c.action, c.source) for c in of(Control, run.events)] == [("dismiss", "button"), ("mute", "button")]
    assert [r.outcome for r in of(ControlResult, run.events)] == ["refused", "applied"]
    assert [s.muted for s in of(Status, run.events)] == [False, True, True]  # start, mute, end
    assert [r for r in caplog.records if r.name.startswith("firmware")] == []
    assert run.kit.cues.state == "idle"  # muted for that call only


# -- the phone's controls, naming tips ----------------------------------------------------------

def test_dismiss_names_the_tip_it_acts_on(run: Run) -> None:
    items = stream(synthetic_call())
    first = play_to_first_tip(run, items)
    assert re.fullmatch(r"[0-9a-f]{8}-\d+", first.tip_id)
    unknown = phone_control(run, "dismiss", tip_id="ffffffff-99")
    assert (unknown.outcome, unknown.reason) == ("refused", "unknown tip ffffffff-99 (not from this call)")
    assert run.kit.phone.current == first  # type: ignore[attr-defined]
    done = phone_control(run, "dismiss", tip_id=first.tip_id)
    assert (done.outcome, done.tip_id) == ("applied", first.tip_id)
    again = phone_control(run, "dismiss", tip_id=first.tip_id)
    assert (again.outcome, again.reason) == ("refused", f"tip {first.tip_id} is no longer showing")
    while len(tips(run.events)) < 2:
        play_until(run, items, run.coach.now + 0.02)
    second = tips(run.events)[1]
    assert second.tip_id != first.tip_id
    stale = phone_control(run, "dismiss", tip_id=first.tip_id)  # a phone that had not caught up
    assert stale.outcome == "refused" and run.kit.phone.current == second  # type: ignore[attr-defined]
    play_until(run, items, second.t + second.ttl_s + 0.5)
    if tips(run.events)[-1] == second:  # no newer tip: the old one went stale, nothing to dismiss
        assert phone_control(run, "dismiss", tip_id=second.tip_id).reason == f"tip {second.tip_id} is no longer showing"


def test_every_control_is_published_with_exactly_one_result(run: Run) -> None:
    items = stream(synthetic_call())
    tip = play_to_first_tip(run, items)
    sent = [
        ("snooze", {"minutes": 2.0}), ("snooze", {"minutes": 0.0}), ("snooze", {"minutes": -1.0}),
        ("snooze", {"minutes": 1e9}), ("snooze", {"minutes": float("nan")}),
        ("mute", {}), ("mute", {}), ("unmute", {}), ("unmute", {}),
        ("skill", {"value": "expert"}), ("skill", {"value": "experienced"}),
        ("persona", {"value": "astronaut"}), ("persona", {"value": "finance"}), ("persona", {}),
        ("helpful", {"tip_id": tip.tip_id}), ("helpful", {"tip_id": tip.tip_id}), ("not_helpful", {"tip_id": "x-1"}),
        ("dismiss", {"call_id": 7}),
    ]
    results = [phone_control(run, action, **fields) for action, fields in sent]
    got = [(r.outcome, r.reason) for r in results]
    assert got == [
        ("applied", None),
        ("refused", "snooze minutes must be within (0, 240]"),
        ("refused", "snooze minutes must be within (0, 240]"),
        ("refused", "snooze minutes must be within (0, 240]"),
        ("refused", "snooze minutes must be within (0, 240]"),
        ("applied", None), ("applied", "already muted"), ("applied", None), ("applied", "was not muted"),
        ("refused", "unknown skill level 'expert' (choose from new, developing, experienced)"), ("applied", None),
        ("refused", "unknown persona 'astronaut' (playbook has: finance, technical)"), ("applied", None),
        ("refused", "unknown persona None (playbook has: finance, technical)"),
        ("applied", None), ("refused", f"tip {tip.tip_id} is already rated"),
        ("refused", "unknown tip x-1 (not from this call)"),
        ("refused", "call 7 is not running (call 1 is)"),
    ]
    controls, answers = of(Control, run.events), of(ControlResult, run.events)
    assert [c.action for c in controls] == [a for a, _ in sent] and answers == results
    assert all(c.t == r.t == run.coach.now for c, r in zip(controls, answers))  # stamped with call time
    assert run.kit.phone.results == results  # type: ignore[attr-defined]
    assert run.coach.skill == "experienced" and run.coach._tips.persona == "finance"
    # Snooze, mute and unmute each changed what the rep sees: one status each.
    statuses = of(Status, run.events)[1:]
    assert [(s.muted, s.snoozed_until_s is not None) for s in statuses] == [(False, True), (True, False), (False, True)]
    assert statuses[0].snoozed_until_s == pytest.approx(run.coach.now + 120.0)
    assert run.kit.phone.statuses == of(Status, run.events)  # type: ignore[attr-defined]
    play_rest(run, items)


def test_ratings_are_counters_in_the_mastery_file(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    try:
        items = stream(synthetic_call())
        tip = play_to_first_tip(run, items)
        assert phone_control(run, "not_helpful").tip_id == tip.tip_id  # no id: the tip showing
        play_rest(run, items)
    finally:
        run.close()
    state = json.loads((tmp_path / "state" / "mastery.json").read_text())
    entry = state["reps"]["default"]["moments"][tip.moment]
    assert entry["not_helpful"] == 1 and "helpful" not in entry
    assert all(isinstance(v, int) for v in entry.values())
    assert tip.text not in json.dumps(state) and tip.tip_id not in json.dumps(state)


# -- between calls --------------------------------------------------------------------------------

def test_between_calls_controls_wait_for_the_next_call_or_are_refused(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    try:
        run.replay(synthetic_call())
        recap = of(RecapEvent, run.events)
        assert len(recap) == 1 and recap[0].call_id == 1 and run.kit.phone.recaps == recap  # type: ignore[attr-defined]
        assert of(Status, run.events)[-1] == Status(t=run.coach.now, call_active=False, call_id=1)
        before = len(run.events)
        answers = [
            phone_control(run, "dismiss"), phone_control(run, "snooze", minutes=5.0), phone_control(run, "mute"),
            phone_control(run, "unmute"), phone_control(run, "helpful", tip_id=tips(run.events)[0].tip_id),
            phone_control(run, "skill", value="developing"), phone_control(run, "persona", value="technical"),
            phone_control(run, "persona", value="astronaut"), phone_control(run, "skill", value="developing", call_id=1),
        ]
        assert [(a.outcome, a.reason) for a in answers] == [
            ("refused", "no call is running: nothing to dismiss"),
            ("refused", "no call is running: nothing to snooze"),
            ("refused", "no call is running: nothing to mute"),
            ("refused", "no call is running: nothing to unmute"),
            ("refused", "no call is running: nothing to rate"),
            ("next_call", None), ("next_call", None),
            ("refused", "unknown persona 'astronaut' (playbook has: finance, technical)"),
            ("refused", "call 1 is not running (no call is)"),
        ]
        between = run.events[before:]  # none silently dropped: each control, then its result
        assert [e.type for e in between] == ["control", "control_result"] * len(answers)
        assert of(ControlResult, between) == answers == run.kit.phone.results[-len(answers):]  # type: ignore[attr-defined]
        coach = run.kit.start_call(run.events.append)
        assert coach.call_id == 2 and coach.skill == "developing" and coach._tips.persona == "technical"
        assert of(Status, run.events)[-1] == Status(t=0.0, call_active=True, call_id=2)
        coach.end_call(1.0)
        third = run.kit.start_call(run.events.append, call_id=41)  # the bridge's id when it has one
        assert third.call_id == 41 and third._tips.persona is None  # a persona is for one call
    finally:
        run.close()


def test_controls_from_many_threads_during_a_call(run: Run) -> None:
    """The button, the phone and the command line at once: one result per control, no errors."""
    items = list(stream(synthetic_call()))
    results: list[ControlResult] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def hammer(source: str, actions: tuple[str, ...]) -> None:
        try:
            for i in range(60):
                r = run.kit.control(Control(t=0.0, action=actions[i % len(actions)], source=source))  # type: ignore[arg-type]
                with lock:
                    results.append(r)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=hammer, args=("button", ("dismiss", "snooze", "mute"))),
        threading.Thread(target=hammer, args=("phone", ("unmute", "helpful", "dismiss"))),
        threading.Thread(target=hammer, args=("cli", ("skill",))),
    ]
    for t in threads:
        t.start()
    play_until(run, iter(items), float("inf"))
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads) and errors == []
    run.coach.end_call(run.coach.now)
    assert len(results) == 180 == len(of(ControlResult, run.events)) == len(of(Control, run.events))
    assert all(r.outcome in ("applied", "refused") for r in results)


def test_tip_ids_differ_across_boxes_and_calls(tmp_path: Path) -> None:
    a, b = make_run(tmp_path / "a"), make_run(tmp_path / "b")  # two boots of the box
    try:
        assert a.kit.tip_ids.nonce != b.kit.tip_ids.nonce
        ids = {a.kit.tip_ids.next() for _ in range(3)} | {b.kit.tip_ids.next() for _ in range(3)}
        assert len(ids) == 6
    finally:
        a.close()
        b.close()


def test_moments_alone_reach_neither_phone_nor_log(run: Run) -> None:
    run.replay(synthetic_call())
    assert of(Moment, run.kit.phone.events) == []  # type: ignore[attr-defined]
    assert {e.type for e in run.kit.phone.events} <= {"tip", "status", "recap", "control_result"}  # type: ignore[attr-defined]


def test_a_control_racing_the_calls_end_is_answered_once(run: Run) -> None:
    """Controls keep coming while the call ends: each is answered by the call or as between calls."""
    play_until(run, stream(synthetic_call()), 30.0)
    results: list[ControlResult] = []
    go = threading.Event()

    def phone() -> None:
        go.wait()
        for _ in range(200):
            results.append(run.kit.control(Control(t=0.0, action="skill", source="phone", value="developing")))

    thread = threading.Thread(target=phone)
    thread.start()
    go.set()
    run.kit.end_call(run.coach.now)
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert len(results) == 200 == len(of(ControlResult, run.events))
    outcomes = [r.outcome for r in results]
    assert set(outcomes) <= {"applied", "next_call"}
    # Once one went to the next call, none went to the ended call again.
    assert outcomes == sorted(outcomes, key=lambda o: o == "next_call")
    assert all(r.call_id == 1 for r in results if r.outcome == "applied")


class _PairingSpy:
    """Stands in for the PhoneLink that ``firmware.phone.link.attach`` wires: counts pairing requests."""

    def __init__(self) -> None:
        self.pairings = 0
        self._control: Any = None
        self._on_pairing: Any = None

    def enter_pairing(self) -> None:
        self.pairings += 1


def test_a_long_press_during_a_call_pairs_and_does_not_snooze(tmp_path: Path) -> None:
    """Issue 14's 5 s press (here 0.8 s) is pairing only; a hold released before it snoozes, at the release."""
    from firmware.phone.link import attach

    run = make_run(tmp_path, snooze_s=60.0)
    spy = _PairingSpy()
    attach(spy, run.kit, 0.8)  # type: ignore[arg-type]
    try:
        items = stream(synthetic_call())
        play_until(run, items, 10.0)
        pin = run.kit.pin_factory.pin(run.kit.pins.button)
        pin.drive_low()
        wait = time.monotonic() + 5.0
        while spy.pairings == 0 and time.monotonic() < wait:
            time.sleep(0.01)
        pin.drive_high()
        time.sleep(0.1)
        assert spy.pairings == 1
        assert not run.coach.snoozed and not any(c.action == "snooze" for c in of(Control, run.events))
        press(run, hold_s=0.5)  # past the 0.3 s snooze hold, short of the long press
        assert run.coach.snoozed and spy.pairings == 1
        assert [c.action for c in of(Control, run.events)] == ["snooze"]
    finally:
        run.close()
