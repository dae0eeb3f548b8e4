"""Turning a verified artifact file into a folder the model store can stage.

A model artifact is an uncompressed POSIX tar of the model's folder; only regular files with
plain relative paths are accepted (no links, devices, absolute paths or ``..``), and the total
unpacked size is bounded, so a signed-but-wrong tar cannot write outside its folder. A playbook
artifact is the TOML file itself, staged as ``playbook.toml``.
"""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path, PurePosixPath

from firmware.fleet.manifest import Artifact
from firmware.fleet.signing import Rejected

PLAYBOOK_FILE = "playbook.toml"
GOLDEN_FILE = "golden.json"
MAX_UNPACKED = 8 << 30


def unpack(artifact: Artifact, src: Path, dest: Path) -> Path:
    """Unpack ``src`` into the fresh folder ``dest`` (removed first if a crash left it)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    if artifact.kind == "playbook":
        shutil.copyfile(src, dest / PLAYBOOK_FILE)
        return dest
    try:
        with tarfile.open(src, "r:") as tar:
            members = tar.getmembers()
            total = 0
            for m in members:
                p = PurePosixPath(m.name)
                if not (m.isfile() or m.isdir()) or p.is_absolute() or ".." in p.parts or not m.name:
                    raise Rejected(f"corrupt: the model tar holds {m.name[:60]!r}, not a plain file")
                total += m.size
            if total > MAX_UNPACKED:
                raise Rejected("corrupt: the model tar unpacks to more than 8 GiB")
            tar.extractall(dest, members=members, filter="data")
    except tarfile.TarError as exc:
        raise Rejected(f"corrupt: not a tar archive ({exc})") from None
    if not (dest / GOLDEN_FILE).is_file():
        raise Rejected("self-test failed: the model ships no golden.json")
    return dest
