"""The model store: every model the box runs (Whisper, Silero VAD, intent, playbook), versioned.

One folder per model version, one manifest format for every model, a ``current`` pointer per
model switched atomically, the previous version kept for rollback::

    <root>/<name>/<version>/manifest.toml    what the version is; size and SHA-256 of each file
    <root>/<name>/<version>/<files ...>
    <root>/<name>/current  -> <version>      relative symlink, replaced by rename (atomic)
    <root>/<name>/previous -> <version>      what ``rollback`` returns to
    <root>/.call.lock                        the cross-process call lock (see below)

``root`` is ``paths.models_dir``: ``models/`` in a checkout, ``/var/lib/parallax/models`` on the
device (set in the device's ``/etc/parallax/parallax.toml``, see board/README.md). Version folders
are written once: ``stage`` builds them beside their final place (a dot-folder in the same model
folder) and renames them in, so a reader never sees half a version.

**Call lock.** A switch must never race a call start: the coach reads ``current`` and loads what
changed at the start of a call, the fleet agent switches ``current`` between calls. The lock is
``flock(2)`` on ``<root>/.call.lock``:

- the coach holds it *shared* for a whole call (:meth:`ModelStore.acquire_call`,
  :meth:`ModelStore.call_lock`). A call start never waits more than ``wait_s`` (a few ms): if the
  agent holds the lock longer, the call starts anyway on the models already loaded (they are in
  memory; ``current`` is not read), the lease says so (``busy``), and the call takes the lock as
  soon as it is free (:meth:`CallLease.try_hold`, once per frame), so from then on the agent
  waits for the call's end again;
- the agent takes it *exclusively* (:meth:`ModelStore.when_idle`) only around the switch itself
  (``activate``/``rollback``: a few renames), never around staging (copying and hashing, slow).
  It polls with ``LOCK_NB`` instead of queueing, so it can time out and never holds a call up.

Everything here is plain file I/O (no onnx, sherpa-onnx or tflite import): the CLI, the coach and
the fleet agent share it. Methods may block on disk I/O; none is for the audio thread.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
import re
import shutil
import threading
import time
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from firmware.errors import ModelError, StoreBusyError

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.toml"
MANIFEST_FORMAT = 1
CURRENT = "current"
PREVIOUS = "previous"
LOCK_NAME = ".call.lock"
# Families the runtime knows how to load; a manifest of another family is refused by name.
FAMILIES = ("whisper", "silero-vad", "intent", "playbook")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_RESERVED = {CURRENT, PREVIOUS}
_HASH_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check_name(kind: str, value: str) -> str:
    """Model names and versions are plain folder names (no '/', no leading dot, not a pointer)."""
    if not isinstance(value, str) or not _NAME_RE.match(value) or value in _RESERVED:
        raise ModelError(f"invalid model {kind} {value!r} (lower-case letters, digits, '.', '_', '-')")
    return value


def repair_hint(name: str) -> str:
    """What to do about a broken model: rebuild or reinstall it, or return to the version that worked."""
    return f"rebuild or reinstall it (`parallax models build --model {name} --force`) or roll back (`parallax models rollback {name}`)"


@dataclass(frozen=True)
class ModelFile:
    role: str
    path: str  # a plain file name inside the version folder
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """One model version, as its ``manifest.toml`` says (the one format for every model).

    ``options`` holds what the model's loader needs (Whisper's language, the intent model's labels
    and calibration); ``provenance`` how it was made (recipe hash, inputs, tools, training figures).
    """

    name: str
    version: str
    family: str
    licence: str
    description: str
    directory: Path
    files: Mapping[str, ModelFile]
    options: Mapping[str, Any] = field(repr=False)
    provenance: Mapping[str, Any] = field(repr=False)

    def file(self, role: str) -> Path:
        try:
            return self.directory / self.files[role].path
        except KeyError:
            known = ", ".join(sorted(self.files))
            raise ModelError(f"model {self.name} {self.version} has no {role!r} file (it has: {known})") from None

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"

    def check_present(self) -> None:
        """Cheap (no hashing): every file is there with its recorded size."""
        for entry in self.files.values():
            path = self.directory / entry.path
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                raise ModelError(f"model {self.label}: {entry.path} is missing: {repair_hint(self.name)}") from None
            if size != entry.size:
                raise ModelError(
                    f"model {self.label}: {entry.path} is {size} bytes, its manifest says {entry.size} "
                    f"(truncated or replaced): {repair_hint(self.name)}"
                )

    def verify(self) -> None:
        """Size and SHA-256 of every file against the manifest; ModelError naming the first bad file."""
        self.check_present()
        for entry in self.files.values():
            if sha256_file(self.directory / entry.path) != entry.sha256:
                raise ModelError(
                    f"model {self.label}: {entry.path} is corrupt (SHA-256 differs from its manifest): {repair_hint(self.name)}"
                )


def _require(table: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = table.get(key)
    if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool) or (isinstance(value, str) and not value):
        raise ModelError(f"{where}: '{key}' must be a non-empty {kind.__name__}")
    return value


def read_manifest(directory: Path) -> Manifest:
    """Parse and validate ``directory/manifest.toml`` (files are not hashed here)."""
    path = Path(directory) / MANIFEST_NAME
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise ModelError(f"no model manifest at {path}") from None
    except OSError as exc:
        raise ModelError(f"cannot read model manifest {path}: {exc.strerror}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ModelError(f"model manifest {path} is not valid TOML: {exc}") from None
    where = str(path)
    if data.get("format") != MANIFEST_FORMAT:
        raise ModelError(f"{where}: 'format' must be {MANIFEST_FORMAT} (a manifest from another firmware?)")
    name = check_name("name", _require(data, "name", str, where))
    version = check_name("version", _require(data, "version", str, where))
    family = _require(data, "family", str, where)
    if family not in FAMILIES:
        raise ModelError(f"{where}: family {family!r} is not one of {', '.join(FAMILIES)}")
    files: dict[str, ModelFile] = {}
    for role, entry in _require(data, "files", dict, where).items():
        at = f"{where}: files.{role}"
        if not isinstance(entry, dict):
            raise ModelError(f"{at} must be a table with path, size and sha256")
        filename = _require(entry, "path", str, at)
        if "/" in filename or filename.startswith(".") or filename == MANIFEST_NAME:
            raise ModelError(f"{at}.path must be a plain file name")
        size = _require(entry, "size", int, at)
        digest = _require(entry, "sha256", str, at)
        if size < 0 or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ModelError(f"{at}: size must be >= 0 and sha256 64 lower-case hex digits")
        files[role] = ModelFile(role, filename, size, digest)
    if not files:
        raise ModelError(f"{where}: a model needs at least one file")
    options = data.get("options", {})
    provenance = data.get("provenance", {})
    if not isinstance(options, dict) or not isinstance(provenance, dict):
        raise ModelError(f"{where}: [options] and [provenance] must be tables")
    return Manifest(
        name=name,
        version=version,
        family=family,
        licence=_require(data, "licence", str, where),
        description=str(data.get("description", "")),
        directory=Path(directory),
        files=MappingProxyType(files),
        options=MappingProxyType(options),
        provenance=MappingProxyType(provenance),
    )


def write_manifest(
    directory: Path,
    *,
    name: str,
    version: str,
    family: str,
    licence: str,
    files: Mapping[str, str],
    description: str = "",
    options: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> Manifest:
    """Hash ``files`` (role -> file name in ``directory``) and write the manifest atomically."""
    import tomli_w

    if family not in FAMILIES:
        raise ModelError(f"family {family!r} is not one of {', '.join(FAMILIES)}")
    directory = Path(directory)
    entries = {}
    for role, filename in files.items():
        path = directory / filename
        entries[role] = {"path": filename, "size": path.stat().st_size, "sha256": sha256_file(path)}
    document: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "name": check_name("name", name),
        "version": check_name("version", version),
        "family": family,
        "licence": licence,
        "description": description,
        "files": entries,
        "options": dict(options or {}),
        "provenance": dict(provenance or {}),
    }
    _atomic_write(directory / MANIFEST_NAME, tomli_w.dumps(document).encode("utf-8"))
    return read_manifest(directory)


def _content(manifest: Manifest) -> dict[str, tuple[str, str]]:
    return {role: (f.path, f.sha256) for role, f in manifest.files.items()}


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class CallLease:
    """The coach's hold on the call lock for one call.

    ``held``: the shared lock is held until :meth:`release`. ``busy``: it was not, because the
    agent held it exclusively for longer than the call start may wait (the call must then not read
    ``current``). Neither: the store has no lock file and cannot get one (a read-only store, which
    no agent can switch either), so reading ``current`` is safe.
    """

    def __init__(self, fd: int | None, held: bool, waited_s: float) -> None:
        self._fd = fd
        self.held = held
        self.busy = fd is not None and not held
        self.waited_s = waited_s

    def try_hold(self) -> bool:
        """Take the shared lock now if it is free (never waits): a call that started while the agent
        switched holds it from its next frame on, so the agent's next ``when_idle`` waits for it."""
        if not self.held and self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                self.held = True
            except BlockingIOError:
                pass
        return self.held

    def release(self) -> None:
        if self.held and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self.held = False

    def __enter__(self) -> CallLease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class ModelStore:
    """The versioned models under ``root``. Thread-safe for readers; one writer at a time per box.

    Writers (``stage``, ``activate``, ``rollback``) run in the fleet agent or the CLI; the coach
    only reads (``current``, ``manifest``, ``load``) and takes the call lock.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._lock_fd: int | None = None
        self._fd_guard = threading.Lock()
        self._idle_depth = 0
        self._pending_sync: set[Path] = set()

    # --- reading -------------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Every model with a version or a pointer in the store, sorted."""
        if not self.root.is_dir():
            return []
        found = []
        for entry in self.root.iterdir():
            if entry.name.startswith(".") or not _NAME_RE.match(entry.name) or entry.name in _RESERVED or not entry.is_dir():
                continue
            if (entry / CURRENT).is_symlink() or self.versions(entry.name):
                found.append(entry.name)
        return sorted(found)

    def versions(self, name: str) -> list[str]:
        """The staged versions of ``name`` (folders holding a manifest), sorted."""
        folder = self.root / check_name("name", name)
        if not folder.is_dir():
            return []
        return sorted(
            p.name for p in folder.iterdir()
            if p.name not in _RESERVED and not p.name.startswith(".") and not p.is_symlink()
            and (p / MANIFEST_NAME).is_file()
        )  # fmt: skip

    def _pointer(self, name: str, pointer: str) -> str | None:
        try:
            target = os.readlink(self.root / check_name("name", name) / pointer)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.EINVAL:  # a plain file or folder where the symlink should be
                raise ModelError(f"model {name}: {self.root / name / pointer} is not a symlink: remove it and activate a version") from None
            raise
        return Path(target).name

    def current(self, name: str) -> str | None:
        """The version ``current`` points at (None when there is no pointer). One readlink: cheap."""
        return self._pointer(name, CURRENT)

    def previous(self, name: str) -> str | None:
        return self._pointer(name, PREVIOUS)

    def manifest(self, name: str, version: str | None = None) -> Manifest:
        """The manifest of ``version`` (default: current), checked to be that model and version."""
        if version is None:
            version = self.current(name)
            if version is None:
                hint = f"activate one of {', '.join(self.versions(name))}" if self.versions(name) else "build or stage it"
                known = ", ".join(self.names()) or "none"
                raise ModelError(f"model {name}: no current version in {self.root} ({hint}; models here: {known})")
        directory = self.root / check_name("name", name) / check_name("version", version)
        if not directory.is_dir():
            raise ModelError(f"model {name}: version {version} is not in the store ({self.root / name}); {repair_hint(name)}")
        manifest = read_manifest(directory)
        if (manifest.name, manifest.version) != (name, version):
            raise ModelError(f"{directory}: its manifest says {manifest.label}, not {name} {version}")
        return manifest

    def verify(self, name: str, version: str | None = None) -> Manifest:
        """Hash every file of ``version`` (default: current); ModelError saying what is wrong and what to do."""
        manifest = self.manifest(name, version)
        manifest.verify()
        return manifest

    # Loading is verifying: a version is never used without its files matching their hashes.
    load = verify

    # --- writing -------------------------------------------------------------------------------

    def stage(self, name: str, version: str, src_dir: Path, *, replace: bool = False, move: bool = False) -> Manifest:
        """Put the version in ``src_dir`` (its files + manifest.toml) into the store, verified.

        The copy is hashed in a dot-folder beside its final place, then renamed in: a failure leaves
        nothing behind. Staging the same content again is a no-op; different content under an
        existing version is refused unless ``replace`` (a rebuild on a dev machine). ``move``
        renames ``src_dir`` itself (it must be on the same file system) instead of copying it.
        Does not change ``current``.
        """
        check_name("name", name)
        check_name("version", version)
        src = Path(src_dir)
        incoming = read_manifest(src)
        if (incoming.name, incoming.version) != (name, version):
            raise ModelError(f"{src}: its manifest says {incoming.label}, not {name} {version}")
        incoming.verify()
        folder = self.root / check_name("name", name)
        final = folder / check_name("version", version)
        if final.is_dir() and not replace:
            try:
                existing = read_manifest(final)
            except ModelError:
                existing = None  # a damaged manifest: the same version staged again repairs it
            if existing is not None and _content(existing) != _content(incoming):
                raise ModelError(f"model {name}: version {version} is already in the store with other content; stage it under a new version")
            if existing is not None:
                try:
                    existing.verify()
                    return existing
                except ModelError as exc:  # same content, damaged copy: staging it again repairs it
                    log.warning("model %s %s: repairing the stored copy (%s)", name, version, exc)
        folder.mkdir(parents=True, exist_ok=True)
        staging = folder / f".stage-{version}-{os.getpid()}-{threading.get_ident()}"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            if move:
                src.rename(staging)
            else:
                shutil.copytree(src, staging, ignore=shutil.ignore_patterns(".*"))
            staged = read_manifest(staging)
            staged.verify()  # the copy, not just the source
            if final.is_dir():  # replace: swap the old folder out, the new one in, then drop the old one
                retired = folder / f".retired-{version}-{os.getpid()}"
                final.rename(retired)
                staging.rename(final)
                shutil.rmtree(retired, ignore_errors=True)
            else:
                staging.rename(final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _fsync_dir(folder)
        log.info("model %s %s staged", name, version)
        return read_manifest(final)

    def _set_pointer(self, name: str, pointer: str, version: str) -> None:
        folder = self.root / name
        tmp = folder / f".{pointer}.{os.getpid()}.{threading.get_ident()}"
        tmp.unlink(missing_ok=True)
        os.symlink(version, tmp)  # relative: the store can move (or be mounted elsewhere) as a whole
        os.replace(tmp, folder / pointer)  # rename(2): readers see the old or the new target, never none

    def activate(self, name: str, version: str) -> str | None:
        """Point ``current`` at ``version`` (staged and whole); the old current becomes ``previous``.

        Cheap (no hashing, a few renames), so it belongs inside :meth:`when_idle`; files are hashed
        when staged and again when the coach loads them. Returns the version that was current.
        """
        manifest = self.manifest(name, version)
        manifest.check_present()
        old = self.current(name)
        if old == version:
            return old
        if old is not None:
            self._set_pointer(name, PREVIOUS, old)
        self._set_pointer(name, CURRENT, version)
        if self._idle_depth:
            # Inside when_idle: the rename is already what every process sees; the flush to disk
            # (tens of ms on an SD card) waits until the lock is released, so calls never wait for it.
            self._pending_sync.add(self.root / name)
        else:
            _fsync_dir(self.root / name)
        log.info("model %s: current %s -> %s", name, old, version)
        return old

    def rollback(self, name: str) -> str:
        """Make ``previous`` current again (and the rolled-back version previous); returns it."""
        target = self.previous(name)
        if target is None:
            raise ModelError(f"model {name}: no previous version to roll back to (versions: {', '.join(self.versions(name)) or 'none'})")
        self.activate(name, target)
        return target

    # --- the call lock -------------------------------------------------------------------------

    def _lock_file(self) -> int | None:
        with self._fd_guard:
            if self._lock_fd is None:
                try:
                    self.root.mkdir(parents=True, exist_ok=True)
                    # Read-only is enough for flock(2), so a coach that may not write the store
                    # (models installed by root, coach running as its own user) still locks.
                    self._lock_fd = os.open(self.root / LOCK_NAME, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
                except OSError as exc:
                    log.warning("model store %s: no call lock (%s); calls run on the models already loaded", self.root, exc.strerror)
                    return None
            return self._lock_fd

    def acquire_call(self, wait_s: float = 0.005) -> CallLease:
        """The coach's shared hold for one call; waits at most ``wait_s``, never longer.

        ``held`` False means the agent was mid-switch (or the store is read-only): the call must
        then not read ``current`` and runs on what is loaded. Release at the end of the call.
        """
        fd = self._lock_file()
        started = time.monotonic()
        if fd is None:
            return CallLease(None, False, 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                return CallLease(fd, True, time.monotonic() - started)
            except BlockingIOError:
                waited = time.monotonic() - started
                if waited >= wait_s:
                    return CallLease(fd, False, waited)
                time.sleep(min(0.0005, wait_s - waited))

    @contextmanager
    def call_lock(self, wait_s: float = 0.005) -> Iterator[CallLease]:
        """``with store.call_lock() as lease:`` the call; see :meth:`acquire_call`."""
        lease = self.acquire_call(wait_s)
        try:
            yield lease
        finally:
            lease.release()

    @contextmanager
    def when_idle(self, timeout_s: float | None = None, poll_s: float = 0.05) -> Iterator[None]:
        """The agent's exclusive hold: no call is running (or starting) while inside.

        Keep the body to ``activate``/``rollback`` (milliseconds): a call start waits for it only a
        few ms before it goes ahead without the lock. Polls instead of queueing, so a call start is
        never stuck behind a waiting agent; raises :class:`StoreBusyError` after ``timeout_s``.
        Uses its own open file (flock is per open file), so it excludes the coach also when both
        live in one process (tests).
        """
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / LOCK_NAME, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            deadline = None if timeout_s is None else time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if deadline is not None and time.monotonic() >= deadline:
                        raise StoreBusyError(f"model store {self.root}: a call is running; try again after it ends") from None
                    time.sleep(poll_s)
            self._idle_depth += 1
            try:
                yield
            finally:
                self._idle_depth -= 1
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
            pending, self._pending_sync = self._pending_sync, set()
            for folder in pending:
                _fsync_dir(folder)

    def close(self) -> None:
        with self._fd_guard:
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None


__all__ = [
    "CallLease",
    "FAMILIES",
    "MANIFEST_NAME",
    "Manifest",
    "ModelFile",
    "ModelStore",
    "read_manifest",
    "sha256_file",
    "write_manifest",
]
