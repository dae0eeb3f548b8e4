"""The words the recogniser knows whole: its tokenizer's word pieces that are a word on their own.

Whisper's byte-pair vocabulary holds the common English words whole, as one piece with a leading
space (" facilities", " pounds", " Monday"); a rarer word, and nearly every product or company
name that is not an English word ("Tidewell", "Pipedrive", "Zendesk"), it spells from pieces. So
a word of a transcript that is not in :func:`whole_words` is a rare word, and often a name,
however the recogniser capitalised it. The coach uses that as evidence of a competitor's name
(firmware/coach/reading.py).
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path

from firmware.errors import ModelError

_LETTERS = re.compile(rb"[A-Za-z]+")


def whole_words(tokens: Path) -> frozenset[str]:
    """The lower-cased words (letters only, two or more) that ``tokens`` (sherpa-onnx's Whisper
    tokens file: one base64 piece and its id per line) holds as one piece after a space."""
    try:
        lines = tokens.read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"cannot read the recogniser's tokens {tokens}: {exc}") from None
    words = set()
    for line in lines:
        parts = line.split()
        if len(parts) != 2:
            continue
        try:
            piece = base64.b64decode(parts[0], validate=True)
        except (binascii.Error, ValueError):
            raise ModelError(f"{tokens}: not a tokens file (a line is not base64: {line[:40]!r})") from None
        if piece[:1] == b" " and len(piece) > 2 and _LETTERS.fullmatch(piece[1:]):
            words.add(piece[1:].decode("ascii").lower())
    return frozenset(words)


def load_whole_words(models_dir: Path, model: str) -> frozenset[str]:
    """:func:`whole_words` of the store's current ``model`` (ModelError if it is not there)."""
    from firmware.store import ModelStore

    return whole_words(ModelStore(models_dir).load(model).file("tokens"))
