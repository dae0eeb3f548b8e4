"""Writing a file so that readers see the old file or the whole new one, never a part.

The content goes to a temporary file in the destination's own folder (so the final rename never
crosses a file system), is flushed and fsynced, and then renamed over the destination; the
folder is fsynced so the rename survives a power cut. On any failure, or an exception while the
caller is still writing, the temporary file is removed and the destination is left as it was.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Literal, overload

from firmware.errors import StorageError


def is_special(path: Path) -> bool:
    """A character device, FIFO or socket (``/dev/null``, ``/dev/stderr``, a pipe): written in
    place, since such a file cannot be replaced by a rename and holds no content to lose."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


@overload
def atomic_write(path: Path, mode: Literal["w"] = "w", *, encoding: str = "utf-8",
                 perms: int | None = None) -> Iterator[IO[str]]: ...
@overload
def atomic_write(path: Path, mode: Literal["wb"], *, encoding: str = "utf-8",
                 perms: int | None = None) -> Iterator[IO[bytes]]: ...


@contextmanager  # type: ignore[misc]
def atomic_write(path: Path, mode: str = "w", *, encoding: str = "utf-8",
                 perms: int | None = None) -> Iterator[IO[str] | IO[bytes]]:
    """Yield a file to write; on a clean exit it replaces ``path`` whole, else nothing changes.

    A symlinked destination is followed (the link's target is replaced, the link stays). An
    ``OSError`` while writing becomes :class:`StorageError` naming ``path``.

    ``perms`` (e.g. ``0o600`` for secrets and private state) is the new file's mode whether or
    not ``path`` existed, and the content is never readable under a wider mode on the way (the
    temporary file is 0600 until the rename). Without it an existing file keeps its mode and a
    new one gets the umask's default. A special file (``/dev/stderr``) is written in place and
    keeps its own mode.
    """
    target = Path(os.path.realpath(path))
    if is_special(target):
        special = open(target, mode, **({} if "b" in mode else {"encoding": encoding}))
        try:
            yield special
            special.flush()
        except OSError as exc:
            raise _storage_error(path, exc) from None
        finally:
            try:
                special.close()
            except OSError:
                pass  # the write's own error (or the caller's) is the one worth reporting
        return
    folder = target.parent
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=folder)
    except OSError as exc:
        raise _storage_error(path, exc) from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": encoding})) as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        if perms is None:
            _copy_mode(target, tmp)
        else:
            os.chmod(tmp, stat.S_IMODE(perms))
        os.replace(tmp, target)
        _fsync_dir(folder)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _storage_error(path, exc, " (nothing was written)") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str, *, perms: int | None = None) -> None:
    with atomic_write(path, perms=perms) as out:
        out.write(text)


def storage_reason(exc: StorageError) -> str:
    """The operating system's reason behind a :class:`StorageError` from this module ("No space
    left on device"), for callers that re-raise it as their own error with their own wording."""
    return str(getattr(exc, "reason", exc))


def _storage_error(path: Path, exc: OSError, suffix: str = "") -> StorageError:
    reason = str(exc.strerror or exc)
    err = StorageError(f"cannot write {path}: {reason}{suffix}")
    err.reason = reason  # type: ignore[attr-defined]
    return err


def _copy_mode(target: Path, tmp: Path) -> None:
    """mkstemp makes the file 0600: keep an existing file's mode, else the umask's default."""
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    os.chmod(tmp, mode)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the rename itself has happened
    finally:
        os.close(fd)
