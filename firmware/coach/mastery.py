"""Per-rep, per-moment mastery kept on the box only.

The file holds counters and nothing else (no transcript text, no tip text, no times): for each
rep and moment kind how often the moment came up, how often it was handled well without a tip,
a net score that makes tips fade as the rep improves, and how often the rep rated its tips
helpful or not. It is written atomically (``firmware.atomic``: temp file in the same directory, then rename)
with mode 0600 and survives restarts.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any, Literal

from firmware.coach.config import SKILL_LEVELS, MasteryConfig, SkillLevel
from firmware.atomic import storage_reason, write_text_atomic
from firmware.errors import CoachStateError, StorageError

log = logging.getLogger(__name__)

STATE_VERSION = 1
STATE_FILE = "mastery.json"
Stage = Literal["active", "fading", "off"]


class MasteryStore:
    def __init__(self, path: Path, config: MasteryConfig | None = None) -> None:
        self.path = Path(path)
        self._cfg = config or MasteryConfig()
        self._lock = threading.Lock()
        self._reps: dict[str, dict[str, Any]] = self._load()

    @classmethod
    def in_dir(cls, state_dir: Path, config: MasteryConfig | None = None) -> MasteryStore:
        return cls(Path(state_dir) / STATE_FILE, config)

    # -- reading ---------------------------------------------------------------------------
    def skill(self, rep_id: str, default: SkillLevel) -> SkillLevel:
        with self._lock:
            skill = self._reps.get(rep_id, {}).get("skill", default)
        return skill if skill in SKILL_LEVELS else default

    def score(self, rep_id: str, kind: str, skill: SkillLevel) -> int:
        start = {
            "new": self._cfg.start_new,
            "developing": self._cfg.start_developing,
            "experienced": self._cfg.start_experienced,
        }[skill]
        with self._lock:
            net = self._reps.get(rep_id, {}).get("moments", {}).get(kind, {}).get("net", 0)
        return max(0, start + net)

    def stage(self, rep_id: str, kind: str, skill: SkillLevel) -> Stage:
        score = self.score(rep_id, kind, skill)
        if score >= self._cfg.off_at:
            return "off"
        return "fading" if score >= self._cfg.fade_at else "active"

    def counters(self, rep_id: str, kind: str) -> dict[str, int]:
        with self._lock:
            return dict(self._reps.get(rep_id, {}).get("moments", {}).get(kind, {}))

    def pace_baseline(self, rep_id: str) -> tuple[int, float]:
        with self._lock:
            pace = self._reps.get(rep_id, {}).get("pace", {})
        return int(pace.get("words", 0)), float(pace.get("speech_s", 0.0))

    # -- writing ---------------------------------------------------------------------------
    def set_skill(self, rep_id: str, skill: SkillLevel) -> None:
        if skill not in SKILL_LEVELS:
            raise CoachStateError(f"unknown skill level {skill!r} (choose from {', '.join(SKILL_LEVELS)})")
        with self._lock:
            self._rep(rep_id)["skill"] = skill

    def record(self, rep_id: str, kind: str, *, handled_well: bool, tipped: bool) -> None:
        """One moment's outcome. Only unprompted good handling raises the score."""
        with self._lock:
            entry = self._rep(rep_id).setdefault("moments", {}).setdefault(kind, {"seen": 0, "handled": 0, "net": 0})
            entry["seen"] += 1
            if handled_well and not tipped:
                entry["handled"] += 1
                entry["net"] += 1
            elif not handled_well:
                entry["net"] = max(entry["net"] - 1, -self._cfg.off_at)

    def rate_tip(self, rep_id: str, kind: str, *, helpful: bool) -> None:
        """The rep's rating of a tip for ``kind``: a counter per answer, nothing else (no tip, no time)."""
        key = "helpful" if helpful else "not_helpful"
        with self._lock:
            entry = self._rep(rep_id).setdefault("moments", {}).setdefault(kind, {"seen": 0, "handled": 0, "net": 0})
            entry[key] = entry.get(key, 0) + 1

    def add_pace(self, rep_id: str, words: int, speech_s: float) -> None:
        with self._lock:
            pace = self._rep(rep_id).setdefault("pace", {"words": 0, "speech_s": 0.0})
            pace["words"] += int(words)
            pace["speech_s"] = round(pace["speech_s"] + float(speech_s), 3)

    def reps(self) -> list[str]:
        """The rep ids the file holds counters or a skill level for."""
        with self._lock:
            return sorted(self._reps)

    def reset(self, rep_id: str | None = None) -> list[str]:
        """Forget one rep (or all); return the reps forgotten. Writes only when one was."""
        with self._lock:
            if rep_id is None:
                gone = sorted(self._reps)
                self._reps.clear()
            else:
                gone = [rep_id] if self._reps.pop(rep_id, None) is not None else []
        if gone:
            self.save()
        return gone

    @classmethod
    def clear(cls, path: Path, config: MasteryConfig | None = None) -> MasteryStore:
        """An empty store written over ``path`` without reading it: the way out of a corrupt file."""
        store = cls.__new__(cls)
        store.path, store._cfg, store._lock, store._reps = Path(path), config or MasteryConfig(), threading.Lock(), {}
        store.save()
        return store

    def save(self) -> None:
        with self._lock:
            payload = json.dumps({"version": STATE_VERSION, "reps": self._reps}, sort_keys=True)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.path, payload, perms=0o600)
        except OSError as exc:
            raise CoachStateError(f"cannot write mastery state {self.path}: {exc.strerror or exc}") from None
        except StorageError as exc:
            raise CoachStateError(f"cannot write mastery state {self.path}: {storage_reason(exc)}") from None

    # -- internals -------------------------------------------------------------------------
    def _rep(self, rep_id: str) -> dict[str, Any]:
        return self._reps.setdefault(rep_id, {})

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise CoachStateError(f"cannot read mastery state {self.path}: {exc.strerror or exc}") from None
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise CoachStateError(
                f"mastery state {self.path} is corrupt; reset it with `parallax coach reset`"
            ) from None
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION or not isinstance(data.get("reps"), dict):
            raise CoachStateError(f"mastery state {self.path} has an unknown layout; reset it with `parallax coach reset`")
        reps = data["reps"]
        if not all(isinstance(k, str) and _valid_rep(v) for k, v in reps.items()):
            raise CoachStateError(f"mastery state {self.path} has bad entries; reset it with `parallax coach reset`")
        return reps


def _valid_rep(rep: Any) -> bool:
    if not isinstance(rep, dict):
        return False
    moments = rep.get("moments", {})
    if not isinstance(moments, dict):
        return False
    for entry in moments.values():
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), int) for k in ("seen", "handled", "net")):
            return False
        if not all(isinstance(entry.get(k, 0), int) for k in ("helpful", "not_helpful")):
            return False
    pace = rep.get("pace", {"words": 0, "speech_s": 0.0})
    return isinstance(pace, dict) and isinstance(pace.get("words"), int) and isinstance(pace.get("speech_s"), (int, float))
