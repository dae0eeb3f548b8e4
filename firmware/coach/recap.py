"""The short private recap the rep gets on their phone when a call ends (a :class:`RecapEvent`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from firmware.coach.config import DynamicsConfig
from firmware.events import RecapEvent


def compose_recap(
    figures: Mapping[str, Any], counts: Mapping[str, int], handled_well: int, cfg: DynamicsConfig, *, call_id: int | None = None
) -> RecapEvent:
    """Pick one strength and one thing to try from the call's figures and moment counts."""
    ratio = figures.get("talk_ratio_rep")
    questions = int(figures.get("questions_asked", 0))
    projected = figures.get("questions_projected_per_call")
    strengths: list[str] = []
    if handled_well:
        strengths.append("you asked back or paused before answering the buyer")
    if projected is not None and questions >= 3 and projected >= cfg.questions_target_min:
        strengths.append("plenty of discovery questions")
    if ratio is not None and ratio <= 0.5:
        strengths.append("you let the buyer talk more than you")
    if counts.get("long_silence"):
        strengths.append("you gave the buyer room to think")
    if not counts.get("interruption"):
        strengths.append("you let the buyer finish")
    tries: list[str] = []
    if counts.get("rep_monologue"):
        tries.append("break long explanations with a question")
    if counts.get("interruption"):
        tries.append("let the buyer finish before you answer")
    if counts.get("rep_fast_speech"):
        tries.append("slow down when you explain the product")
    if counts.get("quick_reply"):
        tries.append("pause a beat before answering objections")
    if ratio is not None and ratio > cfg.talk_ratio_max:
        tries.append("aim to talk less than half the time")
    if projected is not None and projected < cfg.questions_target_min:
        tries.append("ask a few more open questions")
    duration_s = float(figures.get("duration_s", 0.0))
    return RecapEvent(
        t=duration_s,
        call_id=call_id,
        duration_s=duration_s,
        talk_ratio_rep=ratio,
        longest_monologue_s=float(figures.get("longest_monologue_s", 0.0)),
        questions_asked=questions,
        went_well=strengths[0] if strengths else "you got through the call",
        try_next=tries[0] if tries else "keep the same rhythm next call",
    )
