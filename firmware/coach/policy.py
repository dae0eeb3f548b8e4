"""When a tip may reach the rep: at a natural pause, rarely, the most useful first, never stale.

Pure bookkeeping on call time (seconds); the coach feeds it the floor state each frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from firmware.coach.config import DeliveryConfig


@dataclass
class Candidate:
    kind: str
    key: str  # merging key: the moment kind plus what makes it distinct (the competitor named)
    text: str
    priority: int
    moment_t: float
    cooldown_s: float
    led_colour: str
    led_pattern: str
    haptic: str
    merged: int = 0
    # Rep talk (s) at the moment, and how much more of it makes the tip stale (None: no limit).
    rep_talk_at_moment_s: float = 0.0
    stale_after_rep_talk_s: float | None = None


@dataclass
class PolicyCounters:
    offered: int = 0
    merged: int = 0
    delivered: int = 0
    expired: int = 0
    overtaken: int = 0  # the rep had already answered at length
    cooled_down: int = 0
    over_cap: int = 0
    silenced: int = 0  # snoozed or muted when offered


@dataclass
class DeliveryPolicy:
    config: DeliveryConfig
    counters: PolicyCounters = field(default_factory=PolicyCounters)
    muted: bool = False
    snoozed_until: float = float("-inf")
    _pending: dict[str, Candidate] = field(default_factory=dict)
    _last_tip_t: float = float("-inf")
    _last_by_kind: dict[str, float] = field(default_factory=dict)

    def silenced(self, now: float) -> bool:
        return self.muted or now < self.snoozed_until

    def offer(self, candidate: Candidate, now: float) -> bool:
        """Queue a tip; False when it can never go out (cooldown, cap, snooze or mute)."""
        self.counters.offered += 1
        if self.silenced(now):
            self.counters.silenced += 1
            return False
        if self.counters.delivered >= self.config.max_tips_per_call:
            self.counters.over_cap += 1
            return False
        if now - self._last_by_kind.get(candidate.kind, float("-inf")) < candidate.cooldown_s:
            self.counters.cooled_down += 1
            return False
        existing = self._pending.get(candidate.key)
        if existing is not None:
            # The same moment again before its tip went out: one tip, refreshed, not two.
            candidate.merged = existing.merged + 1
            candidate.priority = max(candidate.priority, existing.priority)
            self.counters.merged += 1
        self._pending[candidate.key] = candidate
        return True

    def due(
        self, now: float, *, rep_speaking: bool, rep_silent_s: float, buyer_speaking: bool, rep_talk_s: float = 0.0
    ) -> Candidate | None:
        """The tip to deliver now, if any (removed from the queue)."""
        self._expire(now, rep_talk_s)
        if not self._pending or self.silenced(now):
            return None
        if rep_speaking or not (rep_silent_s >= self.config.pause_s or buyer_speaking):
            return None
        if self.counters.delivered >= self.config.max_tips_per_call:
            self.counters.over_cap += len(self._pending)
            self._pending.clear()
            return None
        if now - self._last_tip_t < self.config.min_gap_s:
            return None
        ready = [
            c for c in self._pending.values()
            if now - c.moment_t >= self.config.settle_s
            and now - self._last_by_kind.get(c.kind, float("-inf")) >= c.cooldown_s
        ]
        if not ready:
            return None
        best = max(ready, key=lambda c: (c.priority, c.moment_t))
        del self._pending[best.key]
        self._last_tip_t = now
        self._last_by_kind[best.kind] = now
        self.counters.delivered += 1
        return best

    def pending_kinds(self) -> set[str]:
        return {c.kind for c in self._pending.values()}

    def snooze(self, now: float, seconds: float | None = None) -> None:
        """Hold tips back for ``seconds`` (None: the configured snooze) from ``now``."""
        self.snoozed_until = now + (self.config.snooze_s if seconds is None else seconds)
        self._drop_all()

    def mute(self) -> None:
        self.muted = True
        self._drop_all()

    def _drop_all(self) -> None:
        self.counters.silenced += len(self._pending)
        self._pending.clear()

    def _expire(self, now: float, rep_talk_s: float) -> None:
        for key, c in list(self._pending.items()):
            if now - c.moment_t > self.config.tip_ttl_s:
                del self._pending[key]
                self.counters.expired += 1
            elif c.stale_after_rep_talk_s is not None and rep_talk_s - c.rep_talk_at_moment_s > c.stale_after_rep_talk_s:
                del self._pending[key]
                self.counters.overtaken += 1
