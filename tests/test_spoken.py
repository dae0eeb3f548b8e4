"""Numbers as words, so a transcript that writes "800" scores the same as a script saying "eight hundred"."""

from __future__ import annotations

import pytest

from firmware.testing.spoken import cardinal, ordinal, spoken_form


@pytest.mark.parametrize(
    ("n", "words"),
    [(0, "zero"), (13, "thirteen"), (40, "forty"), (99, "ninety nine"), (800, "eight hundred"),
     (1001, "one thousand one"), (15000, "fifteen thousand"), (2_500_000, "two million five hundred thousand")],
)
def test_cardinals(n: int, words: str) -> None:
    assert cardinal(n) == words


def test_ordinals() -> None:
    assert [ordinal(n) for n in (1, 2, 3, 5, 12, 20, 21, 100)] == [
        "first", "second", "third", "fifth", "twelfth", "twentieth", "twenty first", "one hundredth"]


def test_whisper_style_numbers_read_as_the_words_spoken() -> None:
    assert spoken_form("We ship 800 orders, 40% of them late.") == "We ship eight hundred orders, forty percent of them late."
    assert spoken_form("$15,000 a year, maybe 20k") == "fifteen thousand dollars a year, maybe twenty thousand"
    assert spoken_form("on the 2nd at 10:30") == "on the second at ten thirty"
    assert spoken_form("2.5 million") == "two point five million"


def test_text_without_numbers_is_unchanged() -> None:
    text = "Honestly, my reps waste hours every week typing up notes."
    assert spoken_form(text) == text
    assert spoken_form("") == ""
