"""The agent's one door to the model store (:class:`firmware.store.ModelStore`).

Everything the agent does to models goes through here, so the store's contract is used in one
place: ``stage`` (a complete version folder renamed into place), ``activate``/``rollback`` (one
symlink replaced by ``rename(2)``), ``when_idle`` (the exclusive side of the call lock).
"""

from __future__ import annotations

from pathlib import Path

from firmware.store import ModelStore

Store = ModelStore


def open_store(root: Path) -> ModelStore:
    return ModelStore(root)


def current_version(store: ModelStore, name: str) -> str | None:
    return store.current(name)
