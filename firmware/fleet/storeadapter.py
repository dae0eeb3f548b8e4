"""The agent's one door to the model store (``firmware.store.ModelStore``, the shared contract).

Until the store lands on this branch, :class:`InterimStore` stands in with the contract's names and
guarantees (a version folder appears complete or not at all; ``current`` is one symlink replaced by
``rename(2)``; a cross-process call lock), so the agent's code is the code that will run against the
real store. Everything the agent does to models goes through :func:`open_store`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from firmware.errors import ModelError


class Store(Protocol):
    def stage(self, name: str, version: str, src_dir: Path) -> Any: ...
    def activate(self, name: str, version: str) -> Any: ...
    def rollback(self, name: str) -> Any: ...
    def verify(self, name: str, version: str | None = None) -> Any: ...
    def current(self, name: str) -> Any: ...
    def versions(self, name: str) -> Any: ...
    def call_lock(self) -> contextlib.AbstractContextManager[Any]: ...
    def when_idle(self) -> contextlib.AbstractContextManager[Any]: ...


def open_store(root: Path) -> Store:
    try:
        from firmware.store import ModelStore  # type: ignore[import-not-found]
    except ImportError:
        return InterimStore(root)
    return ModelStore(root)  # type: ignore[no-any-return]


def current_version(store: Store, name: str) -> str | None:
    """The current version's string whatever the store returns (a str, or an object with .version)."""
    value = store.current(name)
    if value is None or isinstance(value, str):
        return value
    return str(getattr(value, "version", value))


def version_dir(store: Store, name: str, version: str) -> Path:
    root = getattr(store, "root", None)
    if root is None:
        raise ModelError("the model store does not say where its versions live")
    return Path(root) / name / version


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class InterimStore:
    """``<root>/<name>/<version>/`` with ``manifest.toml``; ``current`` and ``previous`` symlinks."""

    MANIFEST = "manifest.toml"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def versions(self, name: str) -> list[str]:
        base = self.root / name
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith("."))

    def current(self, name: str) -> str | None:
        link = self.root / name / "current"
        return os.readlink(link) if link.is_symlink() else None

    def stage(self, name: str, version: str, src_dir: Path) -> Path:
        base = self.root / name
        base.mkdir(parents=True, exist_ok=True)
        final = base / version
        if final.exists():
            raise ModelError(f"{name} {version} is already in the store")
        tmp = Path(tempfile.mkdtemp(prefix=f".stage-{version}-", dir=base))
        lines = []
        for src in sorted(p for p in Path(src_dir).rglob("*") if p.is_file()):
            rel = src.relative_to(src_dir)
            dst = tmp / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            with dst.open("rb") as f:
                digest = hashlib.file_digest(f, "sha256").hexdigest()
                os.fsync(f.fileno())
            lines.append(f'"{rel.as_posix()}" = "{digest}"')
        (tmp / self.MANIFEST).write_text(f'name = "{name}"\nversion = "{version}"\n\n[files]\n' + "\n".join(lines) + "\n")
        with (tmp / self.MANIFEST).open("rb") as f:
            os.fsync(f.fileno())
        os.rename(tmp, final)
        _fsync_dir(base)
        return final

    def verify(self, name: str, version: str | None = None) -> None:
        import tomllib

        version = version or self.current(name)
        if version is None:
            raise ModelError(f"{name} has no current version")
        folder = self.root / name / version
        try:
            manifest = tomllib.loads((folder / self.MANIFEST).read_text())
        except (OSError, ValueError) as exc:
            raise ModelError(f"{name} {version}: manifest unreadable ({exc})") from None
        for rel, digest in manifest.get("files", {}).items():
            try:
                with (folder / rel).open("rb") as f:
                    if hashlib.file_digest(f, "sha256").hexdigest() != digest:
                        raise ModelError(f"{name} {version}: {rel} does not match its manifest")
            except OSError:
                raise ModelError(f"{name} {version}: {rel} is missing") from None

    def _point(self, name: str, link: str, version: str) -> None:
        base = self.root / name
        tmp = base / f".{link}.tmp"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(version, tmp)
        os.replace(tmp, base / link)
        _fsync_dir(base)

    def activate(self, name: str, version: str) -> None:
        if version not in self.versions(name):
            raise ModelError(f"{name} {version} is not staged")
        self.verify(name, version)
        old = self.current(name)
        if old == version:
            return
        if old is not None:
            self._point(name, "previous", old)
        self._point(name, "current", version)

    def rollback(self, name: str) -> str:
        link = self.root / name / "previous"
        if not link.is_symlink():
            raise ModelError(f"{name} has no previous version to roll back to")
        previous = os.readlink(link)
        old = self.current(name)
        self._point(name, "current", previous)
        if old is not None:
            self._point(name, "previous", old)
        return previous

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        fd = os.open(self.root / ".call.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def call_lock(self) -> contextlib.AbstractContextManager[None]:
        """Held by the coach for a whole call: a switch waits for the call's end."""
        return self._lock()

    def when_idle(self) -> contextlib.AbstractContextManager[None]:
        """Held by the agent across a switch: a call cannot start between the check and the switch."""
        return self._lock()
