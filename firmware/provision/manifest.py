"""Model manifests: what the runtime imports to find and trust a built model.

``models/<name>/manifest.toml`` (committed) says what a model is and where its files are;
``models/<name>/build.json`` (written by ``parallax models build``) records the SHA-256 and size
of every output. This module only reads: no onnx, onnxruntime or sherpa-onnx import here.

    manifest = load_manifest(models_dir, "whisper-tiny.en")
    manifest.verify()                      # optional, hashes the outputs once
    encoder = manifest.file("encoder")     # Path
    language = manifest.options["language"]
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from firmware.errors import ModelError

MANIFEST_NAME = "manifest.toml"
BUILD_RECORD_NAME = "build.json"
FAMILIES = ("whisper", "silero-vad")
DEFAULT_MODELS = ("whisper-tiny.en", "silero-vad")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_HASH_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def build_hint(name: str) -> str:
    return "run `parallax models build`" if name in DEFAULT_MODELS else f"run `parallax models build --model {name}`"


@dataclass(frozen=True)
class ModelManifest:
    """One model as its manifest describes it; ``options`` is the family's section."""

    name: str
    family: str
    version: str
    licence: str
    directory: Path
    files: Mapping[str, str]
    options: Mapping[str, Any]
    source: Mapping[str, Any] = field(repr=False)
    manifest_sha256: str = field(repr=False)

    def file(self, role: str) -> Path:
        try:
            return self.directory / self.files[role]
        except KeyError:
            known = ", ".join(sorted(self.files))
            raise ModelError(f"model {self.name} has no {role!r} file (it has: {known})") from None

    @property
    def build_record_path(self) -> Path:
        return self.directory / BUILD_RECORD_NAME

    def build_record(self) -> Mapping[str, Any]:
        """The parsed build.json; ModelError if it is missing or unreadable."""
        try:
            record = json.loads(self.build_record_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelError(f"model {self.name} is not built: {build_hint(self.name)}") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError(f"model {self.name}: {self.build_record_path} is unreadable ({exc}): {build_hint(self.name)}") from None
        if not isinstance(record, dict) or not isinstance(record.get("outputs"), dict):
            raise ModelError(f"model {self.name}: {self.build_record_path} is malformed: {build_hint(self.name)}")
        return record

    def check_built(self) -> Mapping[str, Any]:
        """Cheap check (no hashing): build record matches this manifest and every file exists."""
        record = self.build_record()
        if record.get("manifest_sha256") != self.manifest_sha256:
            raise ModelError(f"model {self.name} was built from a different manifest: {build_hint(self.name)}")
        for role in self.files:
            path = self.file(role)
            if not path.is_file():
                raise ModelError(f"model {self.name} is not built ({path.name} missing): {build_hint(self.name)}")
            if path.name not in record["outputs"]:
                raise ModelError(f"model {self.name}: {path.name} is not in its build record: {build_hint(self.name)}")
        return record

    def verify(self) -> None:
        """Hash every output and compare size and SHA-256 with build.json."""
        record = self.check_built()
        for filename, expected in sorted(record["outputs"].items()):
            path = self.directory / filename
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                raise ModelError(f"model {self.name}: {path} is missing: {build_hint(self.name)}") from None
            if size != expected.get("size") or sha256_file(path) != expected.get("sha256"):
                raise ModelError(f"model {self.name}: {path} is corrupt (size/SHA-256 differ from build.json): rebuild with --force")


def _require(table: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = table.get(key)
    if not isinstance(value, kind) or (isinstance(value, str) and not value):
        raise ModelError(f"{where}: '{key}' must be a non-empty {kind.__name__}")
    return value


def read_manifest(path: Path) -> ModelManifest:
    """Parse and validate one manifest file (does not look at build outputs)."""
    try:
        raw_bytes = path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"no model manifest at {path}") from None
    except OSError as exc:
        raise ModelError(f"cannot read model manifest {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw_bytes.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ModelError(f"model manifest {path} is not valid TOML: {exc}") from None
    where = str(path)
    name = _require(data, "name", str, where)
    if not _NAME_RE.match(name) or name != path.parent.name:
        raise ModelError(f"{where}: name {name!r} must match its folder {path.parent.name!r}")
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
    return ModelManifest(
        name=name,
        family=family,
        version=str(_require(data, "version", str, where)),
        licence=_require(data, "licence", str, where),
        directory=path.parent,
        files=MappingProxyType(dict(files)),
        options=MappingProxyType(dict(options)),
        source=MappingProxyType(_require(data, "source", dict, where)),
        manifest_sha256=hashlib.sha256(raw_bytes).hexdigest(),
    )


def available_models(models_dir: Path) -> list[str]:
    """Names of every model folder that has a manifest, sorted."""
    if not models_dir.is_dir():
        return []
    return sorted(p.parent.name for p in models_dir.glob(f"*/{MANIFEST_NAME}"))


def load_manifest(models_dir: Path, name: str) -> ModelManifest:
    """The manifest of a built model; ModelError (one line) if missing, malformed or not built."""
    if not _NAME_RE.match(name):
        raise ModelError(f"invalid model name {name!r}")
    path = Path(models_dir) / name / MANIFEST_NAME
    if not path.is_file():
        known = ", ".join(available_models(Path(models_dir))) or "none"
        raise ModelError(f"unknown model {name!r}: no {path} (available: {known})")
    manifest = read_manifest(path)
    manifest.check_built()
    return manifest
