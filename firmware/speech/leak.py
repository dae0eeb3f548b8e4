"""Keep the buyer's voice, leaking from the earpiece into the rep's mic, out of the rep's speech.

How loud the leak is depends on the headset and on the volume the rep sets, so the box measures
it on every call instead of assuming it. :class:`LeakEstimator` watches both parties' frame
energies: while the buyer talks and the rep does not, the rep's mic carries the buyer's voice at
the leak level, a few milliseconds late. The estimate is the median, over every strong buyer frame of the call, of
the rep mic's energy above its own noise floor divided by the buyer's energy at the delay that
correlates best (0-60 ms). The median ignores the frames where the rep talks over the buyer (a
minority in any call); subtracting the mic's floor keeps room noise from reading as leak.

:class:`LeakGate` mutes a rep frame that is not clearly louder than the leak expected from the
buyer's recent level, before the VAD. When the rep really talks over the buyer, the rep's own
voice is well above the leak and passes. The rep-onset guard in the coach reads the same estimate.

:class:`LeakStore` keeps the estimate per headset across calls (counters only, no audio), so a
call starts from what that headset leaked before; ``start_db`` (-25 dB, what our call renderer
uses) is only the first call's starting value.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from firmware.audio.frames import FRAME_MS, PcmF32
from firmware.atomic import storage_reason, write_text_atomic
from firmware.errors import SpeechStateError, StorageError
from firmware.speech.config import LeakGateConfig, check_headset_id

log = logging.getLogger(__name__)

_SILENCE = 1e-10
_TINY = 1e-14
# Frames kept for the estimate (60 s): enough strong buyer speech in any call, bounded memory.
_HISTORY_FRAMES = 3000
# The estimate is redone twice a second, not per frame: the hot path only stores two floats.
_UPDATE_EVERY_FRAMES = 25
# Buyer frames within this much of the buyer's loud end (95th percentile) carry a leak far enough
# above the mic's noise floor to be measured.
_STRONG_WITHIN_DB = 15.0
_FLOOR_PERCENTILE = 10.0
# A mic this far above the leak the current estimate predicts is the rep talking, not leak; wide
# enough that a headset leaking far louder than the estimate still pulls it up (-25 -> up to -5 dB).
_REP_ABOVE_DB = 20.0
_MAX_LAG_FRAMES = 3  # earpiece-to-mic delay searched: 0-60 ms of device buffering
_MIN_DB, _MAX_DB = -70.0, 0.0
_BIN_DB = 0.25  # histogram resolution of the per-frame ratios
_BINS = int((_MAX_DB + 10.0 - _MIN_DB) / _BIN_DB)  # up to +10 dB: the rep's frames land above 0

STATE_FILE = "leak.json"
STATE_VERSION = 1


def frame_power(frame: PcmF32) -> float:
    return float(np.dot(frame, frame)) / max(len(frame), 1)


@dataclass(frozen=True)
class LeakPrior:
    """Where a call's estimate starts: a level and how many strong buyer frames stand behind it."""

    leak_db: float
    frames: int


class LeakEstimator:
    """The buyer-to-rep-mic coupling in dB, measured on the call so far and blended with a prior.

    ``observe`` is called once per frame on the audio thread: it stores two floats, and twice a
    second judges the frames that arrived since (a few numpy passes over at most 3000 values).
    Each strong buyer frame is judged once and adds its mic-over-buyer ratio to a histogram that
    spans the whole call (one per candidate delay), so the estimate is the median over every
    strong buyer frame of the call: a minute of the rep talking over the buyer's "mm-hm"s cannot
    outvote the rest.
    """

    def __init__(self, config: LeakGateConfig, prior: LeakPrior | None = None) -> None:
        self._cfg = config
        self.prior = prior or LeakPrior(config.start_db, config.start_weight_frames)
        self._rep = np.zeros(_HISTORY_FRAMES)
        self._buyer = np.zeros(_HISTORY_FRAMES)
        self._n = 0  # frames observed
        self._judged = _MAX_LAG_FRAMES  # frames before this one are in the histograms
        lags = _MAX_LAG_FRAMES + 1
        self._hist = np.zeros((lags, _BINS), np.int64)
        # Per delay: n, sum x, sum y, sum xx, sum yy, sum xy of (buyer dB, mic dB) over strong frames.
        self._moments = np.zeros((lags, 6))
        self.call_db: float | None = None  # this call's own measurement, once it has enough frames
        self.call_frames = 0  # strong buyer frames behind call_db
        self.lag_frames = 0
        self.leak_db = self.prior.leak_db

    def observe(self, rep_power: float, buyer_power: float) -> None:
        i = self._n % _HISTORY_FRAMES
        self._rep[i] = rep_power
        self._buyer[i] = buyer_power
        self._n += 1
        if self._n % _UPDATE_EVERY_FRAMES == 0:
            self.update()

    def update(self) -> None:
        """Judge the frames observed since the last update (also called at the end of a call)."""
        n = min(self._n, _HISTORY_FRAMES)
        if n < _UPDATE_EVERY_FRAMES or self._judged >= self._n:
            return
        first = self._n - n  # absolute index of the oldest stored frame
        order = (np.arange(first, self._n)) % _HISTORY_FRAMES
        rep, buyer = self._rep[order], self._buyer[order]
        buyer_db = 10.0 * np.log10(buyer + _TINY)
        loud = float(np.percentile(buyer_db, 95))
        buyer_floor = float(np.percentile(buyer_db, _FLOOR_PERCENTILE))
        new_from = max(self._judged, first + _MAX_LAG_FRAMES) - first  # index into rep/buyer
        self._judged = self._n
        if loud - buyer_floor < _STRONG_WITHIN_DB:
            return  # the buyer has hardly spoken in the last minute: nothing to measure
        # The mic's own floor: its quiet end while the buyer is quiet (nothing to leak; the rep talks
        # in some of those frames, so the frames near a low percentile, not the median).
        quiet = buyer_db < buyer_floor + 6.0
        pool = rep[quiet] if np.count_nonzero(quiet) >= 25 else rep
        low = float(np.percentile(pool, _FLOOR_PERCENTILE))
        rep_floor = float(np.median(pool[pool <= 2.0 * low]))
        rep_cap = 10 ** ((self.leak_db + _REP_ABOVE_DB) / 10)
        y_pow = rep[new_from:]
        y_db = 10.0 * np.log10(y_pow + _TINY)
        for lag in range(_MAX_LAG_FRAMES + 1):
            x_pow = buyer[new_from - lag : n - lag]
            x_db = buyer_db[new_from - lag : n - lag]
            # Strong buyer frames where the mic is not clearly the rep's own voice.
            strong = (x_db >= loud - _STRONG_WITHIN_DB) & (y_pow <= x_pow * rep_cap)
            if not strong.any():
                continue
            # Excess over the floor; below the floor's resolution (a tenth of it) a frame says only
            # "no louder than this": a leak under the noise reads as that bound, never as a level.
            excess = np.maximum(y_pow[strong] - rep_floor, 0.1 * rep_floor) + _TINY
            ratio_db = 10.0 * np.log10(excess / x_pow[strong])
            bins = np.clip(((ratio_db - _MIN_DB) / _BIN_DB).astype(np.int64), 0, _BINS - 1)
            self._hist[lag] += np.bincount(bins, minlength=_BINS)
            x, y = x_db[strong], y_db[strong]
            self._moments[lag] += (len(x), x.sum(), y.sum(), (x * x).sum(), (y * y).sum(), (x * y).sum())
        self._refit()

    def _refit(self) -> None:
        best: tuple[float, int] | None = None
        for lag in range(_MAX_LAG_FRAMES + 1):
            k, sx, sy, sxx, syy, sxy = self._moments[lag]
            if k < self._cfg.min_frames:
                continue
            vx, vy = sxx / k - (sx / k) ** 2, syy / k - (sy / k) ** 2
            corr = (sxy / k - sx * sy / k**2) / math.sqrt(vx * vy) if vx > 0 and vy > 0 else 0.0
            if best is None or corr > best[0] + 0.02:  # the shortest delay unless a longer is clearly better
                best = (corr, lag)
        if best is None:
            return
        lag = best[1]
        hist = self._hist[lag]
        count = int(hist.sum())
        median_bin = int(np.searchsorted(np.cumsum(hist), (count + 1) / 2))
        self.call_db = min(max(_MIN_DB + (median_bin + 0.5) * _BIN_DB, _MIN_DB), _MAX_DB)
        self.call_frames, self.lag_frames = count, lag
        # Blend in dB, each side weighted by the strong buyer frames behind it; the prior is capped
        # so a call where the rep turned the volume up moves the estimate within seconds.
        w_prior = min(self.prior.frames, self._cfg.max_prior_frames)
        self.leak_db = (self.prior.leak_db * w_prior + self.call_db * count) / (w_prior + count)

    def result(self) -> LeakPrior:
        """What the next call on this headset starts from."""
        self.update()
        if self.call_db is None:
            return self.prior
        return LeakPrior(round(self.leak_db, 2), min(self.prior.frames + self.call_frames, self._cfg.max_prior_frames))


class LeakGate:
    def __init__(self, config: LeakGateConfig, prior: LeakPrior | None = None) -> None:
        self._cfg = config
        self._enabled = config.enabled
        self.estimator = LeakEstimator(config, prior)
        self._leak_db = float("nan")
        self._ratio = 0.0
        self._follow()
        self._recent_buyer: deque[float] = deque(maxlen=max(1, config.window_ms // FRAME_MS))
        self.frames_muted = 0

    @property
    def leak_db(self) -> float:
        """The current estimate of the buyer's level in the rep's mic, dB relative to the buyer."""
        return self.estimator.leak_db

    def _follow(self) -> None:
        if self.estimator.leak_db != self._leak_db:
            self._leak_db = self.estimator.leak_db
            # Rep power must exceed the expected leak power by the margin to count as the rep.
            self._ratio = 10 ** ((self._leak_db + self._cfg.margin_db) / 10)

    def apply(self, rep: PcmF32, buyer: PcmF32) -> PcmF32:
        buyer_power, rep_power = frame_power(buyer), frame_power(rep)
        self._recent_buyer.append(buyer_power)
        if self._cfg.estimate:
            self.estimator.observe(rep_power, buyer_power)
            self._follow()
        if not self._enabled:
            return rep
        expected_leak = max(self._recent_buyer) * self._ratio
        if expected_leak > _SILENCE and rep_power < expected_leak:
            self.frames_muted += 1
            return np.zeros_like(rep)
        return rep


class LeakStore:
    """Per-headset leak estimates in ``<state_dir>/leak.json``: numbers only, written atomically.

    ``{"version": 1, "headsets": {"<headset id>": {"leak_db": -23.4, "frames": 1500, "calls": 3}}}``.
    Thread-safe; ``load``/``save`` are called at call boundaries, never on the audio path.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._headsets: dict[str, dict[str, Any]] = self._read()

    @classmethod
    def in_dir(cls, state_dir: Path) -> LeakStore:
        return cls(Path(state_dir) / STATE_FILE)

    def prior(self, headset_id: str, config: LeakGateConfig) -> LeakPrior:
        with self._lock:
            entry = self._headsets.get(headset_id)
        if entry is None:
            return LeakPrior(config.start_db, config.start_weight_frames)
        return LeakPrior(float(entry["leak_db"]), int(entry["frames"]))

    def calls(self, headset_id: str) -> int:
        with self._lock:
            return int(self._headsets.get(headset_id, {}).get("calls", 0))

    def record(self, headset_id: str, learned: LeakPrior) -> None:
        check_headset_id(headset_id)
        with self._lock:
            calls = int(self._headsets.get(headset_id, {}).get("calls", 0)) + 1
            self._headsets[headset_id] = {"leak_db": learned.leak_db, "frames": learned.frames, "calls": calls}
            payload = json.dumps({"version": STATE_VERSION, "headsets": self._headsets}, sort_keys=True)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.path, payload, perms=0o600)
        except OSError as exc:
            raise SpeechStateError(f"cannot write leak state {self.path}: {exc.strerror or exc}") from None
        except StorageError as exc:
            raise SpeechStateError(f"cannot write leak state {self.path}: {storage_reason(exc)}") from None

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise SpeechStateError(f"cannot read leak state {self.path}: {exc.strerror or exc}") from None
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError):
            data = None
        headsets = data.get("headsets") if isinstance(data, dict) and data.get("version") == STATE_VERSION else None
        if not isinstance(headsets, dict) or not all(_valid_entry(k, v) for k, v in headsets.items()):
            # Only a starting value is lost: learn again from the defaults rather than refuse calls.
            log.warning("leak state %s is unreadable; starting from the configured leak level", self.path)
            return {}
        return headsets


def _valid_entry(key: Any, entry: Any) -> bool:
    return (
        isinstance(key, str) and _is_headset_id(key) and isinstance(entry, dict)
        and isinstance(entry.get("leak_db"), (int, float)) and _MIN_DB <= entry["leak_db"] <= _MAX_DB
        and isinstance(entry.get("frames"), int) and entry["frames"] >= 0
        and isinstance(entry.get("calls"), int) and entry["calls"] >= 0
    )


def _is_headset_id(key: str) -> bool:
    try:
        check_headset_id(key)
    except ValueError:
        return False
    return True
