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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from firmware.config import Config


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


# The box's state folder: the coach unit's StateDirectory= creates it on the device.
DEVICE_STATE_DIR = Path("/var/lib/parallax")


def mastery_path(config: Config) -> tuple[Path, str]:
    """Where `coach reset` and `coach skill` find the mastery file, and a note when it is not the
    configured place.

    On a machine without the box's state folder (a PC: no coach unit ever created it) the default
    ``/var/lib/parallax`` would need root for a file nothing there reads, so the state lives under
    ``$XDG_STATE_HOME/parallax`` (``~/.local/state/parallax``) instead. Where the folder exists
    (the box) it is used, and a permission problem says what to do rather than writing elsewhere.
    """
    import os

    from firmware.coach.mastery import STATE_FILE
    from firmware.errors import CoachStateError

    state_dir = config.paths.resolve(config.paths.state_dir)
    note = ""
    if state_dir == DEVICE_STATE_DIR and not state_dir.exists():
        base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
        state_dir = base / "parallax"
        note = f" (no {DEVICE_STATE_DIR} on this machine, so the per-user state folder; [paths] state_dir sets another)"
    elif state_dir.is_dir() and not os.access(state_dir, os.W_OK | os.X_OK):
        raise CoachStateError(
            f"cannot write the mastery state in {state_dir} (permission denied); on the box run it as the "
            f"coach's user: `sudo -u parallax parallax coach ...`, elsewhere set [paths] state_dir in a --config file"
        )
    return state_dir / STATE_FILE, note


def run_reset(args: argparse.Namespace) -> int:
    from firmware.coach.mastery import MasteryStore
    from firmware.config import load_config
    from firmware.errors import CoachStateError

    config = load_config(args.config)
    path, note = mastery_path(config)
    if not path.is_file():
        print(f"nothing to reset: no mastery recorded yet ({path} does not exist){note}")
        return 0
    try:
        store = MasteryStore(path, config.coach.mastery)
    except CoachStateError:
        if args.rep:
            raise
        MasteryStore.clear(path, config.coach.mastery)  # a corrupt file is what a full reset is for
        print(f"mastery reset for all reps: the unreadable {path} was replaced by an empty one{note}")
        return 0
    gone = store.reset(args.rep)
    if args.rep and not gone:
        known = store.reps()
        print(
            f"nothing to reset: no mastery recorded for rep {args.rep!r} in {path}{note} "
            f"({len(known)} rep(s) known{': ' + ', '.join(map(repr, known[:10])) if known else ''})"
        )
    elif not gone:
        print(f"nothing to reset: {path} holds no reps{note}")
    else:
        who = f"rep {args.rep!r}" if args.rep else f"all reps ({len(gone)})"
        print(f"mastery reset for {who} ({path}){note}")
    return 0


def run_skill(args: argparse.Namespace) -> int:
    from firmware.coach.mastery import MasteryStore
    from firmware.config import load_config
    from firmware.errors import InputError

    if not args.rep.strip():
        raise InputError("the rep id is empty")
    config = load_config(args.config)
    path, note = mastery_path(config)
    store = MasteryStore(path, config.coach.mastery)
    store.set_skill(args.rep, args.level)
    store.save()
    print(f"rep {args.rep!r} is now coached as {args.level} ({path}){note}")
    return 0


def run_simulate(args: argparse.Namespace) -> int:
    import dataclasses
    import math
    import tempfile

    from firmware.audio.frames import FrameActivity
    from firmware.bus import EventBus
    from firmware.cli.output import attach_outputs, check_outputs
    from firmware.cli.replay import parse_speed
    from firmware.coach.build import CoachBox
    from firmware.coach.report import render_report
    from firmware.config import load_config
    from firmware.cues.pins import make_pin_factory
    from firmware.errors import InputError
    from firmware.events import Event, Summary
    from firmware.testing.truth import load_truth, stream

    # Everything that can be refused is refused before the coach starts or an output opens.
    config = load_config(args.config)
    speed = parse_speed(args.speed)
    if not (math.isfinite(args.delay) and 0 <= args.delay <= 60):
        raise InputError(f"--delay must be 0..60 seconds, got {args.delay}")
    outputs = check_outputs({"--json": args.json_path, "--report": args.report}, (args.call, args.config))
    call = load_truth(args.call)
    json_out, report = outputs.get("--json"), outputs.get("--report")
    bus = EventBus()
    events: list[Event] = []
    bus.subscribe(events.append)
    with ExitStack() as stack:
        out = attach_outputs(bus, json_out, stack, stdout_taken=report is not None and report.to_stdout)
        # Not one of the rep's calls: mastery goes to a throwaway folder, removed on any exit.
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
        # Inside the block: a failing report discards the JSON too, so no run leaves half its outputs.
        if report:
            report.write_text(render_report(events, title=f"Simulated coaching of {args.call.name}"))
    return 0
