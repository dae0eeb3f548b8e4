"""Guards against Whisper's failure modes on short, noisy or non-speech audio.

Whisper was trained on captioned video, so silence and noise come out as "(upbeat music)" or
"[BLANK_AUDIO]", and a confused decoder repeats a phrase until its token budget runs out.
Nothing here invents text: it only removes what cannot be the party's words.
"""

from __future__ import annotations

import math
import re

_ANNOTATION = re.compile(r"\s*(\([^)]*\)|\[[^\]]*\]|\*[^*]*\*|♪+[^♪]*♪*)\s*")
_HAS_WORD = re.compile(r"[A-Za-z0-9]")
_MAX_NGRAM = 8


def strip_annotations(text: str) -> str:
    """Remove caption-style sound annotations: (music), [BLANK_AUDIO], *laughs*, ♪ ... ♪."""
    return re.sub(r"\s{2,}", " ", _ANNOTATION.sub(" ", text)).strip()


def collapse_repeats(words: list[str], keep: int = 2) -> list[str]:
    """Collapse a word n-gram repeated more than ``keep`` times in a row to ``keep`` copies."""
    out = list(words)
    for n in range(1, _MAX_NGRAM + 1):
        i = 0
        while i + n <= len(out):
            gram = [w.lower().strip(",.!?") for w in out[i : i + n]]
            reps = 1
            while out[i + reps * n : i + (reps + 1) * n] and [
                w.lower().strip(",.!?") for w in out[i + reps * n : i + (reps + 1) * n]
            ] == gram:
                reps += 1
            if reps > keep:
                del out[i + keep * n : i + reps * n]
            i += 1
    return out


def clean_transcript(text: str, duration_s: float, *, max_words_per_s: float, min_words: int) -> str:
    """Return the usable words of a recogniser result, or "" when there are none."""
    text = strip_annotations(text)
    if not _HAS_WORD.search(text):
        return ""
    words = collapse_repeats(text.split())
    cap = max(min_words, math.ceil(duration_s * max_words_per_s))
    return " ".join(words[:cap])
