"""``parallax coach``: check a playbook, reset a rep's mastery, or coach a call from its ground truth.

``simulate`` drives the coach from a call's ground-truth JSON (no models needed) and shows the
timeline with the box's LED and haptic cues as they happen.
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import ExitStack, closing
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("coach", help="coach tools: check a playbook, reset mastery, simulate a call")
    actions = p.add_subparsers(dest="coach_action", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="validate a playbook (default: the configured one)")
    check.add_argument("playbook", nargs="?", type=Path)
    check.set_defaults(handler=run_check)
    reset = actions.add_parser("reset", help="forget the reps' mastery (all reps, or one with --rep)")
    reset.add_argument("--rep", help="only this rep id")
    reset.set_defaults(handler=run_reset)
    skill = actions.add_parser("skill", help="set where a rep starts: new, developing or experienced")
    skill.add_argument("rep", help="rep id")
    skill.add_argument("level", choices=("new", "developing", "experienced"))
    skill.set_defaults(handler=run_skill)
    sim = actions.add_parser("simulate", help="coach a call from its ground-truth JSON, showing the cues")
    sim.add_argument("call", type=Path, help="call JSON (dev-corpus layout: utterances with speaker/start/end/text/label)")
    sim.add_argument("--speed", default="max", help="'max' (default) or a factor such as 1 (real time)")
    sim.add_argument("--delay", type=float, default=0.6, help="seconds from an utterance's end to its transcript")
    sim.add_argument("--json", dest="json_path", help="write events as JSON lines to PATH ('-' for stdout)")
    sim.add_argument("--report", type=Path, help="write the HTML timeline to PATH")
    sim.set_defaults(handler=run_simulate)


def run_check(args: argparse.Namespace) -> int:
    from firmware.coach.build import playbook_path
    from firmware.coach.playbook import load_playbook
    from firmware.config import load_config

    config = load_config(args.config)
    path = args.playbook or playbook_path(config)
    book = load_playbook(path)
    print(
        f"playbook {book.name!r} ({path}): {len(book.moments)} moments, {len(book.battlecards)} battlecards, "
        f"{len(book.personas)} personas - valid"
    )
    return 0


def run_reset(args: argparse.Namespace) -> int:
    from firmware.coach.mastery import MasteryStore
    from firmware.config import load_config

    config = load_config(args.config)
    store = MasteryStore.in_dir(config.paths.resolve(config.paths.state_dir), config.coach.mastery)
    store.reset(args.rep)
    print(f"mastery reset for {'rep ' + repr(args.rep) if args.rep else 'all reps'} ({store.path})")
    return 0


def run_skill(args: argparse.Namespace) -> int:
    from firmware.coach.mastery import MasteryStore
    from firmware.config import load_config

    config = load_config(args.config)
    store = MasteryStore.in_dir(config.paths.resolve(config.paths.state_dir), config.coach.mastery)
    store.set_skill(args.rep, args.level)
    store.save()
    print(f"rep {args.rep!r} is now coached as {args.level}")
    return 0


def run_simulate(args: argparse.Namespace) -> int:
    import dataclasses
    import tempfile

    from firmware.audio.frames import FrameActivity
    from firmware.bus import EventBus
    from firmware.cli.replay import parse_speed
    from firmware.coach.build import CoachBox
    from firmware.coach.report import write_report
    from firmware.config import load_config
    from firmware.cues.pins import make_pin_factory
    from firmware.events import Event, Summary
    from firmware.replay import JsonLinesWriter, TimelinePrinter
    from firmware.testing.truth import load_truth, stream

    config = load_config(args.config)
    speed = parse_speed(args.speed)
    call = load_truth(args.call)
    bus = EventBus()
    events: list[Event] = []
    bus.subscribe(events.append)
    with ExitStack() as stack:
        out = sys.stdout
        if args.json_path == "-":
            bus.subscribe(JsonLinesWriter(sys.stdout))
            out = sys.stderr
        elif args.json_path:
            bus.subscribe(JsonLinesWriter(stack.enter_context(open(args.json_path, "w", encoding="utf-8"))))
        bus.subscribe(TimelinePrinter(out))
        state_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="parallax-simulate-")))
        config = dataclasses.replace(config, paths=dataclasses.replace(config.paths, state_dir=state_dir))
        box = stack.enter_context(
            closing(CoachBox(config, pin_factory=make_pin_factory("mock"), cue_view=out, publish=bus.publish))
        )
        coach = box.start_call(bus.publish)
        started = time.monotonic()
        for item in stream(call, args.delay):
            if isinstance(item, FrameActivity):
                if speed is not None:
                    delay = started + item.t / speed - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                coach.on_activity(item)
            else:
                bus.publish(item)
                coach.on_event(item)
        box.end_call(coach.now)  # the recap is an event: the timeline prints it
        bus.publish(Summary(t=coach.now, duration_s=coach.now, cpu_s=time.process_time(), extra=coach.summary_fields()))
    if args.report:
        write_report(events, args.report, title=f"Simulated coaching of {args.call.name}")
    return 0
