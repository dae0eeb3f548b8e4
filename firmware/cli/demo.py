"""``parallax demo``: the main job. A short scripted call, rendered once, replayed end to end."""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
from pathlib import Path

# The script lives beside its renderer in the dev-only room; naming the path imports nothing.
SCRIPT = Path(__file__).resolve().parent.parent / "testing" / "demo_call.toml"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="replay the built-in example call through the whole pipeline")
    p.add_argument("--speed", default="max", help="'max' (default) or a factor such as 1 for real time")
    p.add_argument("--json", dest="json_path", help="also write events as JSON lines to PATH ('-' for stdout)")
    p.add_argument("--report", type=Path, help="also write the HTML timeline, with what reached the phone, to PATH")
    p.add_argument("--no-phone", dest="show_phone", action="store_false", help="do not draw the phone's screen")
    p.set_defaults(handler=run)


def demo_call(cache_dir: Path) -> Path:
    """Render the demo call once per script version; return the WAV path."""
    from firmware.testing.render import render_call

    digest = hashlib.sha256(SCRIPT.read_bytes()).hexdigest()[:12]
    wav = cache_dir / f"demo-{digest}.wav"
    if not wav.is_file():
        print("rendering the demo call with espeak-ng ...", file=sys.stderr)
        cache_dir.mkdir(parents=True, exist_ok=True)
        # Rendered beside its final name and renamed when whole: an interrupted render must not
        # leave a short WAV that every later demo would take for the finished one.
        with tempfile.TemporaryDirectory(prefix=".render-", dir=cache_dir) as tmp:
            part = Path(tmp) / wav.name
            render_call(SCRIPT, part)
            if part.with_suffix(".json").is_file():  # its ground truth, renamed first: the WAV marks done
                os.replace(part.with_suffix(".json"), wav.with_suffix(".json"))
            os.replace(part, wav)
    return wav


def run(args: argparse.Namespace) -> int:
    from firmware.cli import replay
    from firmware.cli.output import check_outputs
    from firmware.config import load_config

    config = load_config(args.config)
    check_outputs({"--json": args.json_path}, (args.config,))  # before the render, not after it
    wav = demo_call(config.paths.resolve(config.paths.models_dir) / ".cache" / "demo")
    print(f"Replaying the demo call {wav.name}: rep on channel 0, buyer on channel 1.\n", file=sys.stderr)
    # The phone's screen is drawn from the frames the link would write (20-byte chunks, encrypted),
    # read back as the app reads them.
    from firmware.testing.phonescreen import PhoneMirror

    phone = PhoneMirror(sys.stdout if args.show_phone and args.json_path != "-" else None)
    replay_args = argparse.Namespace(**vars(args), call=wav, channels="0,1", phone=phone)
    status = replay.run(replay_args)
    if phone.delivered:
        print(f"\nThe phone got {len(phone.delivered)} events in {phone.chunks} chunks "
              f"({phone.bytes} bytes, 20-byte writes).", file=sys.stderr)  # fmt: skip
    return status
