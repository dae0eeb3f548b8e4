"""The delivery policy on its own: pauses, priority, merging, expiry, gaps, caps, snooze, mute."""

from __future__ import annotations

import dataclasses
from typing import Any

from firmware.coach.config import DeliveryConfig
from firmware.coach.policy import Candidate, DeliveryPolicy

QUIET: dict[str, Any] = {"rep_speaking": False, "rep_silent_s": 5.0, "buyer_speaking": False}


def cand(kind: str, t: float, priority: int = 3, key: str | None = None, cooldown_s: float = 0.0) -> Candidate:
    return Candidate(
        kind=kind, key=key or kind, text=f"tip for {kind}", priority=priority, moment_t=t, cooldown_s=cooldown_s,
        led_colour="amber", led_pattern="solid", haptic="single",
    )  # fmt: skip


def policy(**changes: object) -> DeliveryPolicy:
    return DeliveryPolicy(dataclasses.replace(DeliveryConfig(), **changes))  # type: ignore[arg-type]


def test_only_at_a_natural_pause() -> None:
    p = policy()
    p.offer(cand("pain_point", 10.0), 10.0)
    assert p.due(10.1, rep_speaking=True, rep_silent_s=0.0, buyer_speaking=False) is None
    assert p.due(10.2, rep_speaking=False, rep_silent_s=0.2, buyer_speaking=False) is None
    # The buyer holding the floor is a pause for the rep even if the rep only just stopped.
    assert p.due(10.3, rep_speaking=False, rep_silent_s=0.1, buyer_speaking=True) is not None


def test_a_ready_tip_settles_before_it_goes() -> None:
    """A rep may start talking the very frame a tip is ready; the onset guard hears it a frame or
    two later, so a tip waits settle_s, the rep still silent, before it goes."""
    p = policy(settle_s=0.04)
    p.offer(cand("pain_point", 10.0), 10.0)
    assert p.due(10.0, **QUIET) is None
    assert p.due(10.02, **QUIET) is None
    assert p.due(10.04, rep_speaking=True, rep_silent_s=0.0, buyer_speaking=False) is None  # the guard heard the rep
    tip = p.due(12.0, **QUIET)  # the rep's next pause: the tip is still fresh and goes
    assert tip is not None and tip.kind == "pain_point"


def test_higher_priority_first_and_duplicates_merged() -> None:
    p = policy(min_gap_s=0.0)
    p.offer(cand("pain_point", 10.0, priority=2), 10.0)
    p.offer(cand("objection_price", 10.5, priority=5), 10.5)
    p.offer(cand("objection_price", 11.0, priority=4), 11.0)  # the same moment again: merged
    first = p.due(11.1, **QUIET)
    assert first is not None and first.kind == "objection_price" and first.priority == 5 and first.merged == 1
    assert first.moment_t == 11.0  # refreshed to the newest occurrence
    second = p.due(11.2, **QUIET)
    assert second is not None and second.kind == "pain_point"
    assert p.due(11.3, **QUIET) is None
    assert p.counters.merged == 1 and p.counters.delivered == 2


def test_stale_tips_expire() -> None:
    p = policy()
    p.offer(cand("pain_point", 10.0), 10.0)
    assert p.due(20.5, **QUIET) is None
    assert p.counters.expired == 1


def test_a_reply_tip_goes_stale_once_the_rep_has_answered() -> None:
    p = policy()
    c = dataclasses.replace(cand("objection_need", 10.0), rep_talk_at_moment_s=30.0, stale_after_rep_talk_s=3.0)
    p.offer(c, 10.0)
    assert p.due(14.0, **QUIET, rep_talk_s=33.5) is None
    assert p.counters.overtaken == 1


def test_global_gap_per_kind_cooldown_and_cap() -> None:
    p = policy(min_gap_s=30.0, max_tips_per_call=2)
    p.offer(cand("pain_point", 0.0, cooldown_s=100.0), 0.0)
    assert p.due(0.1, **QUIET) is not None
    p.offer(cand("buying_signal", 5.0), 5.0)
    assert p.due(5.1, **QUIET) is None  # within 30 s of the last tip
    assert p.offer(cand("pain_point", 40.0, cooldown_s=100.0), 40.0) is False  # cooling down
    p.offer(cand("next_step", 40.0), 40.0)
    assert p.due(40.1, **QUIET) is not None
    assert p.offer(cand("objection_price", 80.0), 80.0) is False  # the per-call cap is reached
    assert p.counters.delivered == 2 and p.counters.cooled_down == 1 and p.counters.over_cap == 1


def test_snooze_and_mute() -> None:
    p = policy(snooze_s=300.0)
    p.offer(cand("pain_point", 10.0), 10.0)
    p.snooze(10.1)
    assert p.due(10.2, **QUIET) is None  # the pending tip is dropped, not held for later
    assert p.offer(cand("next_step", 200.0), 200.0) is False
    assert p.offer(cand("next_step", 311.0), 311.0) is True
    assert p.due(311.1, **QUIET) is not None
    p.mute()
    assert p.offer(cand("objection_price", 400.0), 400.0) is False and p.silenced(10_000.0)
