"""Digits, percentages and amounts as the words a speaker says: "$15,000" -> "fifteen thousand dollars".

Whisper writes "800" and "40%" where a script or a person's transcript says "eight hundred" and
"forty percent". Scoring one against the other needs both in one form; words are the form both
can reach. Only unambiguous forms are rewritten; anything else is left as it is.
"""

from __future__ import annotations

import re

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((1_000_000_000, "billion"), (1_000_000, "million"), (1000, "thousand"), (100, "hundred"))
_ORDINAL_WORDS = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
    "nine": "ninth", "twelve": "twelfth",
}

_NUMBER = re.compile(
    r"(?P<currency>\$)?(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<frac>\d+))?"
    r"(?P<suffix>st|nd|rd|th|%|k\b)?",
    re.IGNORECASE,
)
_CLOCK = re.compile(r"\b(\d{1,2}):(\d{2})\b")


def cardinal(n: int) -> str:
    """Words for a non-negative integer below a trillion."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f" {_ONES[ones]}" if ones else "")
    for value, name in _SCALES:
        if n >= value:
            high, rest = divmod(n, value)
            return f"{cardinal(high)} {name}" + (f" {cardinal(rest)}" if rest else "")
    raise AssertionError("unreachable")


def ordinal(n: int) -> str:
    words = cardinal(n).split()
    last = words[-1]
    if last in _ORDINAL_WORDS:
        words[-1] = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def _number_words(match: re.Match[str]) -> str:
    integer = int(match["int"].replace(",", ""))
    suffix = (match["suffix"] or "").lower()
    if suffix in ("st", "nd", "rd", "th") and not match["frac"]:
        return f" {ordinal(integer)} "
    words = cardinal(integer)
    if match["frac"]:
        words += " point " + " ".join(_ONES[int(d)] for d in match["frac"])
    if suffix == "k":
        words += " thousand"
    if suffix == "%":
        words += " percent"
    if match["currency"]:
        words += " dollars"
    return f" {words} "


def spoken_form(text: str) -> str:
    """``text`` with its numbers written out as words; everything else unchanged."""
    text = _CLOCK.sub(lambda m: f"{m[1]} {m[2] if m[2] != '00' else ''}", text)
    return re.sub(r" {2,}", " ", _NUMBER.sub(_number_words, text)).strip()
