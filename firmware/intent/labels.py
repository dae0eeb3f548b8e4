"""The intent label set: the ONE place it is written.

The classifier (fallback label, which labels the rep may say), the playbook and the coach
(which moments are intents), training, the benchmark and the tests all import it from here.
A model's own label list (in its manifest) must be drawn from :data:`LABELS`.
"""

from __future__ import annotations

LABELS: tuple[str, ...] = (
    "objection_price",
    "objection_timing",
    "objection_authority",
    "objection_need",
    "objection_risk",
    "competitor_mention",
    "buying_signal",
    "pain_point",
    "product_question",
    "next_step",
    "other",
)
FALLBACK_LABEL = "other"
# By definition objections, pain, buying signals and competitor talk come from the buyer; the rep's
# own lines can only propose a next step, ask about the product, or be anything else.
REP_LABELS: tuple[str, ...] = ("product_question", "next_step", "other")
# The labels that are coaching moments: every label but the fallback, in the same order.
INTENT_KINDS: tuple[str, ...] = tuple(label for label in LABELS if label != FALLBACK_LABEL)
