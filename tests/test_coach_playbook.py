"""Playbook schema: the shipped playbook validates; every kind of mistake gets a clear error."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import pytest

from firmware.coach.playbook import MAX_TIP_CHARS, MOMENT_KINDS, fill, load_playbook, parse_playbook
from firmware.coach.tips import TipWriter
from firmware.errors import ConfigError, PlaybookError

DEFAULT = Path(__file__).resolve().parent.parent / "models" / "playbook" / "current" / "playbook.toml"


def raw_default() -> dict[str, Any]:
    return tomllib.loads(DEFAULT.read_text(encoding="utf-8"))


def test_default_playbook_covers_every_moment_and_fits_at_a_glance() -> None:
    book = load_playbook(DEFAULT)
    assert set(book.moments) == set(MOMENT_KINDS)
    longest_name = max(len(c.name) for c in book.battlecards)
    longest_label = max(len(p.label) for p in book.personas.values())
    for play in book.moments.values():
        for tip in play.tips + tuple(t for tips in play.persona_tips.values() for t in tips):
            filled = fill(tip, {"competitor": "x" * longest_name, "persona": "y" * longest_label})
            assert filled is not None and len(filled) <= MAX_TIP_CHARS
        assert play.tips, play.kind
    for card in book.battlecards:
        assert len(fill(card.tip, {"competitor": card.name}) or "") <= MAX_TIP_CHARS


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r["moments"]["objection_price"].update(tips=["x" * 61]), "61 characters"),
        (lambda r: r["moments"]["objection_price"].update(tips=[]), "non-empty list"),
        (lambda r: r["moments"]["objection_price"].update(led_colour="pink"), "led_colour"),
        (lambda r: r["moments"]["objection_price"].update(haptic="triple"), "haptic"),
        (lambda r: r["moments"]["objection_price"].update(priority=9), "priority"),
        (lambda r: r["moments"]["objection_price"].update(cooldown_s=-1), "cooldown_s"),
        (lambda r: r["moments"]["objection_price"].update(min_skill="guru"), "min_skill"),
        (lambda r: r["moments"]["objection_price"].update(invited_by="budget"), "invited_by: expected a list"),
        (lambda r: r["moments"]["objection_price"].update(invited_by=["budget", " "]), "invited_by: expected a list"),
        (lambda r: r["moments"]["objection_price"].update(colour="red"), "unknown key"),
        (lambda r: r["moments"]["objection_price"].pop("tips"), "missing key"),
        (lambda r: r["moments"].update(small_talk=r["moments"]["pain_point"]), "unknown moment"),
        (lambda r: r["moments"]["pain_point"].update(tips=["Ask about {budget}"]), "unknown slot"),
        (lambda r: r["moments"]["pain_point"].update(personas={"lawyer": {"tips": ["x"]}}), "not a persona"),
        (lambda r: r["battlecards"]["hubspot"].update(names=[]), "names"),
        (lambda r: r["battlecards"]["hubspot"].update(tip="{competitor} " + "y" * 55), "characters once filled"),
        (lambda r: r.update(schema=2), "schema 2"),
        (lambda r: r.pop("moments"), "missing key"),
    ],
)
def test_schema_errors_are_clear(mutate: Any, message: str) -> None:
    raw = copy.deepcopy(raw_default())
    mutate(raw)
    with pytest.raises(PlaybookError, match=message):
        parse_playbook(raw, where="test.toml")


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(PlaybookError, match="not found"):
        load_playbook(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("schema = [", encoding="utf-8")
    with pytest.raises(PlaybookError, match="not valid TOML"):
        load_playbook(bad)


def test_battlecards_match_names_and_aliases_as_words() -> None:
    book = load_playbook(DEFAULT)
    assert book.battlecard_for("we looked at hub spot last year").name == "HubSpot"  # type: ignore[union-attr]
    assert book.battlecard_for("we use SFDC for that").name == "Salesforce"  # type: ignore[union-attr]
    assert book.battlecard_for("the hubspotting team") is None


def test_tip_writer_rotates_variants_and_fills_the_persona() -> None:
    book = load_playbook(DEFAULT)
    writer = TipWriter(book)
    play = book.moments["objection_price"]
    first, second = writer.write(play, None), writer.write(play, None)
    assert first != second and {first, second} <= set(play.tips)
    writer.hear_buyer("The budget is tight and the cost has to show a payback this year.")
    assert writer.persona == "finance"
    assert writer.write(play, None) == "For a finance buyer: talk payback, not features"
    writer.set_persona("technical")
    assert writer.persona == "technical"
    with pytest.raises(ConfigError, match="unknown persona"):
        writer.set_persona("astronaut")


def test_competitor_tip_names_the_competitor_heard() -> None:
    book = load_playbook(DEFAULT)
    writer = TipWriter(book)
    name = writer.competitor_in("We're on Zendesk for tickets")
    assert name == "Zendesk"
    assert writer.write(book.moments["competitor_mention"], name) == "Zendesk: we plug into it; ask what it misses"
    generic = writer.write(book.moments["competitor_mention"], None)
    assert generic in book.moments["competitor_mention"].tips
