"""``parallax replay CALL.wav``: a recorded call through the very objects the device uses."""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from contextlib import ExitStack, closing
from pathlib import Path

from firmware.errors import InputError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("replay", help="replay a two-channel call recording through the pipeline")
    p.add_argument("call", type=Path, help="WAV file: channel 0 rep, channel 1 buyer (any sample rate)")
    p.add_argument("--channels", default="0,1", help="REP,BUYER channel numbers in the file (default 0,1)")
    p.add_argument("--speed", default="max", help="'max' (default, as fast as possible) or a factor such as 1 (real time)")
    p.add_argument("--json", dest="json_path", help="write events as JSON lines to PATH ('-' for stdout)")
    p.add_argument("--report", type=Path, help="write a one-file HTML timeline (speech, moments, tips, cues) to PATH")
    p.set_defaults(handler=run)


def parse_speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        speed = float(text)
    except ValueError:
        speed = -1.0
    if not 0 < speed <= 1000:
        raise InputError(f"--speed must be 'max' or a positive factor such as 1, got {text!r}")
    return speed


def run(args: argparse.Namespace) -> int:
    from firmware.audio.wavfile import check_channels, parse_channel_map, probe_wav
    from firmware.bus import EventBus
    from firmware.config import load_config
    from firmware.cli.output import attach_outputs, check_outputs
    from firmware.replay import replay_call
    from firmware.runtime import CallSession, load_engines
    from firmware.coach.build import CoachBox
    from firmware.coach.session import CoachedSession
    from firmware.coach.report import render_report
    from firmware.cues.pins import make_pin_factory
    from firmware.events import Event

    # Everything that can be refused is refused before models load or an output is opened.
    config = load_config(args.config)
    speed = parse_speed(args.speed)
    channels = parse_channel_map(args.channels)
    report_option = getattr(args, "report", None)  # parallax demo reuses this handler without it
    outputs = check_outputs({"--json": args.json_path, "--report": report_option}, (args.call, args.config))
    check_channels(probe_wav(args.call), channels)
    json_out, report = outputs.get("--json"), outputs.get("--report")
    bus = EventBus()
    with ExitStack() as stack:
        timeline_stream = attach_outputs(bus, json_out, stack, stdout_taken=report is not None and report.to_stdout)
        events: list[Event] = []
        if report:
            bus.subscribe(events.append)
        # A replay never drives real GPIO (the LED and motor run on gpiozero's mock pins) and is
        # not one of the rep's calls: its mastery counters go to a throwaway state directory
        # (removed on any exit, SIGTERM included: see firmware.cli.main).
        state_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="parallax-replay-")))
        coach_config = dataclasses.replace(config, paths=dataclasses.replace(config.paths, state_dir=state_dir))
        coach_box = stack.enter_context(
            closing(CoachBox(coach_config, pin_factory=make_pin_factory("mock"), cue_view=timeline_stream, publish=bus.publish))
        )
        engines = load_engines(config)
        session = stack.enter_context(CallSession(config, engines, bus, lockstep=speed is None))
        coached = stack.enter_context(CoachedSession(session, coach_box, bus))
        replay_call(args.call, coached, speed=speed, channels=channels)
        # Inside the block: a failing report discards the JSON too, so no run leaves half its outputs.
        if report:
            report.write_text(render_report(events, title=f"Replay of {args.call.name}"))
    return 0
