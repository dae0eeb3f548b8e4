"""The coach on the dev-corpus calls, driven by their ground truth (exact utterances and labels)."""

from __future__ import annotations

from pathlib import Path

import pytest
from coach_support import Run, make_config

from firmware.testing.evaluate import (
    dynamic_moments,
    expected_dynamics,
    expected_moments,
    intent_moments,
    match,
    tips,
    tips_while_rep_speaks,
)
from firmware.testing.truth import load_truth

pytestmark = pytest.mark.corpus


def dev_calls(corpus_dir: Path) -> list[Path]:
    calls = sorted((corpus_dir / "calls").glob("*.json"))
    assert calls, f"no call JSON in {corpus_dir / 'calls'}"
    return calls


def test_every_expected_moment_and_dynamic_no_false_dynamic(corpus_dir: Path, tmp_path: Path) -> None:
    for path in dev_calls(corpus_dir):
        call = load_truth(path)
        run = Run(make_config(tmp_path / call.call_id))
        try:
            run.replay(call)
            moments = match(intent_moments(run.events), expected_moments(call))
            assert (moments.missed, moments.false_positives) == ([], []), call.call_id
            dynamics = match(dynamic_moments(run.events), expected_dynamics(call))
            assert (dynamics.missed, dynamics.false_positives) == ([], []), call.call_id
        finally:
            run.close()


@pytest.mark.parametrize("delay_s", [0.3, 0.6, 1.2])
def test_no_tip_while_the_rep_speaks_and_limits_hold(corpus_dir: Path, tmp_path: Path, delay_s: float) -> None:
    for path in dev_calls(corpus_dir):
        call = load_truth(path)
        run = Run(make_config(tmp_path / f"{call.call_id}-{delay_s}"))
        try:
            run.replay(call, delay_s=delay_s)
            delivered = tips(run.events)
            assert delivered, call.call_id
            assert tips_while_rep_speaks(run.events, call) == [], call.call_id
            cfg = run.coach._cfg.delivery
            assert len(delivered) <= cfg.max_tips_per_call
            assert all(b.t - a.t >= cfg.min_gap_s for a, b in zip(delivered, delivered[1:]))
            moment_times: dict[str, list[float]] = {}
            for e in run.events:
                if e.type == "moment":
                    moment_times.setdefault(e.kind, []).append(e.t)  # type: ignore[attr-defined]
            for tip in delivered:
                # Every tip follows its moment within the tip's time to live.
                raised = [t for t in moment_times[tip.moment] if t <= tip.t]
                assert raised and tip.t - max(raised) <= cfg.tip_ttl_s
        finally:
            run.close()


def test_tips_fade_over_a_sequence_of_replayed_dev_calls(corpus_dir: Path, tmp_path: Path) -> None:
    """Moments the rep keeps handling well without a tip fade out of coaching; the others stay."""
    calls = [load_truth(p) for p in dev_calls(corpus_dir)]
    rounds: list[set[str]] = []
    for _ in range(5):
        kinds: set[str] = set()
        for call in calls:
            run = Run(make_config(tmp_path / "state", skill="developing", min_gap_s=0.0))
            try:
                run.replay(call)
                kinds |= {t.moment for t in tips(run.events)}
                mastery = run.coach._mastery
            finally:
                run.close()
        rounds.append(kinds)
    off = {k for k in rounds[0] | rounds[-1] if mastery.stage("default", k, "developing") == "off"}
    assert off & rounds[0], "something coached at first has been mastered by the last round"
    assert not off & rounds[-1], "a mastered moment is no longer tipped"
    assert rounds[-1], "moments not mastered are still coached"
