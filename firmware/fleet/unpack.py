"""Turning a verified artifact file into a version folder the model store can stage.

A model artifact is an uncompressed POSIX tar of one store version folder (``manifest.toml``, the
files it lists, and ``golden.json`` for the self-test). Only regular files with plain relative paths
are accepted (no links, devices, absolute paths or ``..``) and the unpacked size is bounded, so a
signed-but-wrong tar cannot write outside its folder. A playbook artifact is the TOML file itself;
the box writes its store manifest (family ``playbook``, file role ``playbook``).
"""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path, PurePosixPath

from firmware.errors import ModelError
from firmware.fleet.manifest import Artifact
from firmware.fleet.signing import Rejected

PLAYBOOK_FILE = "playbook.toml"
GOLDEN_FILE = "golden.json"
MAX_UNPACKED = 8 << 30


def unpack(artifact: Artifact, src: Path, dest: Path) -> Path:
    """Unpack ``src`` into the fresh folder ``dest`` (removed first if a crash left it)."""
    from firmware.store import read_manifest, write_manifest

    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    if artifact.kind == "playbook":
        shutil.copyfile(src, dest / PLAYBOOK_FILE)
        try:
            write_manifest(dest, name="playbook", version=artifact.version, family="playbook", licence="Proprietary (Parallax)",
                           files={"playbook": PLAYBOOK_FILE}, description="coaching playbook delivered by the fleet")
        except ModelError as exc:
            raise Rejected(f"store: {exc}") from None
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
    try:
        manifest = read_manifest(dest)
    except ModelError as exc:
        raise Rejected(f"corrupt: {exc}") from None
    if (manifest.name, manifest.version) != (artifact.name, artifact.version):
        raise Rejected(f"corrupt: the model's manifest says {manifest.name} {manifest.version}, the offer {artifact.name} {artifact.version}")
    if not (dest / GOLDEN_FILE).is_file():
        raise Rejected("self-test failed: the model ships no golden.json")
    return dest
