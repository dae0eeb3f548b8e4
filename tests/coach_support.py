"""Shared helpers for the coach tests: a coach on gpiozero's MockFactory, driven by ground truth."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from firmware.coach.build import CoachBox, build_coach
from firmware.coach.config import SKILL_LEVELS, CoachConfig, DeliveryConfig
from firmware.coach.playbook import MOMENT_KINDS
from firmware.config import Config, PathsConfig
from firmware.cues.pins import make_pin_factory
from firmware.events import Event
from firmware.testing.truth import TruthCall, drive, load_truth

FIXTURE_CALL = Path(__file__).parent / "fixtures" / "coach" / "synthetic_call.json"
# Words the mastery file legitimately holds: its keys, the moment kinds, the skill levels.
STATE_VOCABULARY = set("version reps moments pace words speech seen handled net skill default helpful not".split())
STATE_VOCABULARY |= {part for kind in MOMENT_KINDS for part in kind.split("_")} | set(SKILL_LEVELS)


def synthetic_call() -> TruthCall:
    return load_truth(FIXTURE_CALL)


def make_config(state_dir: Path, *, skill: str = "new", **delivery: Any) -> Config:
    coach = CoachConfig(skill_level=skill, delivery=dataclasses.replace(DeliveryConfig(), **delivery))  # type: ignore[arg-type]
    return Config(paths=PathsConfig(state_dir=state_dir), coach=coach)


class Run:
    """One coach (with its mock GPIO) and every event it published."""

    def __init__(self, config: Config, rep_id: str = "default") -> None:
        self.events: list[Event] = []
        self.kit: CoachBox = build_coach(config, self.events.append, pin_factory=make_pin_factory("mock"), rep_id=rep_id)
        assert self.kit.coach is not None
        self.coach = self.kit.coach

    def replay(self, call: TruthCall, delay_s: float = 0.6, end: bool = True) -> float:
        t = drive(call, self.coach.on_activity, self.coach.on_event, delay_s)
        if end:
            self.recap = self.coach.end_call(t)
        return t

    def close(self) -> None:
        self.kit.close()
