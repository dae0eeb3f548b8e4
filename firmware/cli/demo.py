"""``parallax demo``: the main job. A short scripted call, rendered once, replayed end to end."""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

# The script lives beside its renderer in the dev-only room; naming the path imports nothing.
SCRIPT = Path(__file__).resolve().parent.parent / "testing" / "demo_call.toml"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="replay the built-in example call through the whole pipeline")
    p.add_argument("--speed", default="max", help="'max' (default) or a factor such as 1 for real time")
    p.add_argument("--json", dest="json_path", help="also write events as JSON lines to PATH ('-' for stdout)")
    p.set_defaults(handler=run)


def demo_call(cache_dir: Path) -> Path:
    """Render the demo call once per script version; return the WAV path."""
    from firmware.testing.render import render_call

    digest = hashlib.sha256(SCRIPT.read_bytes()).hexdigest()[:12]
    wav = cache_dir / f"demo-{digest}.wav"
    if not wav.is_file():
        print("rendering the demo call with espeak-ng ...", file=sys.stderr)
        render_call(SCRIPT, wav)
    return wav


def run(args: argparse.Namespace) -> int:
    from firmware.cli import replay
    from firmware.config import load_config

    config = load_config(args.config)
    wav = demo_call(config.paths.resolve(config.paths.models_dir) / ".cache" / "demo")
    print(f"Replaying the demo call {wav.name}: rep on channel 0, buyer on channel 1.\n", file=sys.stderr)
    replay_args = argparse.Namespace(**vars(args), call=wav, channels="0,1")
    return replay.run(replay_args)
