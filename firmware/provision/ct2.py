"""Reader for CTranslate2 ``model.bin`` files (the layout faster-whisper models ship in).

Layout (all little-endian): uint32 format version; string spec name; uint32 spec revision;
uint32 variable count; per variable: string name, uint8 rank, uint32 dims[rank], uint8 dtype,
uint32 byte count, raw data; then uint32 alias count and (alias, target) string pairs.
A string is a uint16 length (including a trailing NUL) followed by its bytes.

Only numpy is needed; every structural problem becomes a :class:`ProvisioningError`.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from firmware.errors import ProvisioningError

SUPPORTED_FORMAT_VERSIONS = frozenset({5, 6})
# dtype codes as CTranslate2 numbers them; bfloat16 has no numpy type and is widened by hand.
_DTYPES: dict[int, np.dtype] = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
    5: np.dtype("<u2"),
}
_BFLOAT16 = 5
_LAYER_RE = re.compile(r"layer_(\d+)/")


@dataclass(frozen=True)
class Ct2Model:
    """A parsed model: spec name, revision, variables (aliases resolved) as float32/int arrays."""

    spec: str
    revision: int
    format_version: int
    variables: Mapping[str, np.ndarray]
    aliases: Mapping[str, str]

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.variables[name]
        except KeyError:
            raise ProvisioningError(f"CTranslate2 model has no variable {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self.variables

    def count_layers(self, prefix: str) -> int:
        """Number of ``<prefix>/layer_<n>/`` blocks (``layer_norm`` is not a layer)."""
        found = set()
        for name in self.variables:
            if name.startswith(prefix + "/"):
                match = _LAYER_RE.match(name[len(prefix) + 1 :])
                if match:
                    found.add(int(match.group(1)))
        if found != set(range(len(found))):
            raise ProvisioningError(f"CTranslate2 model: {prefix} layers are not numbered 0..n-1: {sorted(found)}")
        return len(found)


class _Cursor:
    def __init__(self, data: bytes | memoryview, origin: str) -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.origin = origin

    def take(self, n: int, what: str) -> memoryview:
        end = self.pos + n
        if n < 0 or end > len(self.data):
            raise ProvisioningError(
                f"{self.origin} is truncated or corrupt: {what} needs {n} bytes at offset {self.pos}, "
                f"file has {len(self.data)}"
            )
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u16(self, what: str) -> int:
        return int(struct.unpack("<H", self.take(2, what))[0])

    def u32(self, what: str) -> int:
        return int(struct.unpack("<I", self.take(4, what))[0])

    def string(self, what: str) -> str:
        raw = bytes(self.take(self.u16(what), what))
        try:
            return raw.rstrip(b"\0").decode("utf-8")
        except UnicodeDecodeError:
            raise ProvisioningError(f"{self.origin} is corrupt: {what} is not UTF-8") from None


def _iter_variables(cur: _Cursor, count: int) -> Iterator[tuple[str, np.ndarray]]:
    for index in range(count):
        name = cur.string(f"name of variable {index}")
        rank = cur.u8(f"rank of {name}")
        if rank > 8:
            raise ProvisioningError(f"{cur.origin} is corrupt: variable {name!r} has rank {rank}")
        shape = tuple(cur.u32(f"shape of {name}") for _ in range(rank))
        code = cur.u8(f"dtype of {name}")
        if code not in _DTYPES:
            raise ProvisioningError(f"{cur.origin} is corrupt: variable {name!r} has unknown dtype code {code}")
        dtype = _DTYPES[code]
        nbytes = cur.u32(f"size of {name}")
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if nbytes != expected:
            raise ProvisioningError(
                f"{cur.origin} is corrupt: variable {name!r} shape {list(shape)} needs {expected} bytes, header says {nbytes}"
            )
        raw = np.frombuffer(cur.take(nbytes, f"data of {name}"), dtype=dtype).reshape(shape)
        yield name, _widen(raw, code)


def _widen(raw: np.ndarray, code: int) -> np.ndarray:
    # ONNX export wants float32; integer tensors (none in Whisper) stay as they are.
    if code == _BFLOAT16:
        return (raw.astype(np.uint32) << 16).view(np.float32)
    if raw.dtype.kind == "f":
        return raw.astype(np.float32)
    return raw.copy()


def parse_ct2(data: bytes | memoryview, origin: str = "model.bin") -> Ct2Model:
    """Parse a whole ``model.bin`` held in memory; ``origin`` names it in error messages."""
    cur = _Cursor(data, origin)
    version = cur.u32("format version")
    if version not in SUPPORTED_FORMAT_VERSIONS:
        raise ProvisioningError(
            f"{origin} is not a supported CTranslate2 model (format version {version}, "
            f"expected one of {sorted(SUPPORTED_FORMAT_VERSIONS)})"
        )
    spec = cur.string("spec name")
    revision = cur.u32("spec revision")
    count = cur.u32("variable count")
    variables = dict(_iter_variables(cur, count))
    aliases: dict[str, str] = {}
    for index in range(cur.u32("alias count")):
        alias = cur.string(f"alias {index}")
        target = cur.string(f"target of alias {alias}")
        if target not in variables:
            raise ProvisioningError(f"{origin} is corrupt: alias {alias!r} points at missing variable {target!r}")
        aliases[alias] = target
        variables[alias] = variables[target]
    if cur.pos != len(cur.data):
        raise ProvisioningError(f"{origin} is corrupt: {len(cur.data) - cur.pos} unexpected trailing bytes")
    return Ct2Model(spec=spec, revision=revision, format_version=version, variables=variables, aliases=aliases)
