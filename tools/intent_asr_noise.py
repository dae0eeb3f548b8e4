"""Synthetic recogniser errors for intent training text (used by tools/train_intent.py only).

Real transcripts from ``tools/render_intent_asr.py`` cover espeak voices through the box's
recogniser; this module adds the cheaper, broader kinds of damage a small Whisper does to
real people on a phone line, so the model does not overfit one synthetic voice:

- casing and punctuation vary or vanish, fillers are dropped (Whisper rarely writes "um"),
- short function words disappear, sound-alike words swap ("quote" -> "coat"),
- words are replaced by a similar-looking real word from the corpus vocabulary,
- compounds split or merge ("on boarding", "followup"), numbers turn into digits,
- the utterance is cut at either end, as VAD fragments and barge-ins do.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence

_FILLERS = {"um", "uh", "er", "erm", "hmm", "like,", "you know,"}
_FUNCTION = {"the", "a", "an", "to", "of", "and", "that", "is", "it", "we", "i", "in", "on", "for", "just", "so", "but"}
# Sound-alike swaps typical of small Whisper models on band-limited audio.
_SOUNDALIKE = {
    "their": ["there", "they're"], "there": ["their"], "to": ["too", "two"], "too": ["to"], "for": ["four", "far"],
    "were": ["where", "we're"], "we're": ["were", "where"], "your": ["you're", "you"], "you're": ["your"],
    "it's": ["its", "is"], "quote": ["coat", "quota"], "quoted": ["coated", "courted"], "price": ["prize", "prices"],
    "pricey": ["pricy", "prices"], "cost": ["cast", "caused"], "costs": ["cost", "courses"], "budget": ["budge it", "budgets"],
    "budgeted": ["budget it", "budget"], "contract": ["contact", "contracts"], "trial": ["trail", "try all"],
    "demo": ["demo's", "dental"], "sign": ["sine", "signed"], "signed": ["sign", "sine"], "deal": ["dell", "dial"],
    "quarter": ["quota", "corner"], "q3": ["queue three", "q three"], "q4": ["queue four", "q for"], "q1": ["queue one"],
    "q2": ["queue to"], "vp": ["v p", "vee pee"], "cfo": ["c f o", "see if oh"], "ceo": ["c e o", "seo"],
    "procurement": ["procure meant", "pro curement"], "onboarding": ["on boarding", "boarding"],
    "integrate": ["integrated", "in to great"], "integration": ["integrations", "in aggression"], "api": ["a p i", "happy"],
    "security": ["secure tea", "securities"], "compliance": ["complaints", "compliant"], "later": ["layer", "letter"],
    "worried": ["wary", "word"], "risk": ["risks", "wrist"], "data": ["dater", "date"], "rollout": ["roll out", "role out"],
    "roll": ["role", "rule"], "team": ["teen", "theme"], "need": ["knead", "neat"], "fine": ["find", "five"],
    "budget's": ["budgets"], "expensive": ["extensive", "expansive"], "cheaper": ["cheap", "chipper"],
    "competitor": ["competed her", "competitors"], "vendor": ["vender", "fender"], "freeze": ["frees", "free"],
    "pilot": ["pirate", "pile it"], "proposal": ["purpose all", "proposals"], "invite": ["invites", "in vite"],
    "week": ["weak", "wake"], "next": ["necks", "text"], "call": ["cool", "called"], "meeting": ["meeting's", "eating"],
    "board": ["bored", "border"], "boss": ["bus", "boss's"], "approve": ["prove", "a proof"], "sign-off": ["sign off", "sign of"],
    "hours": ["ours", "our"], "waste": ["waist", "west"], "losing": ["loosing", "using"], "lose": ["loose", "lose"],
    "stock": ["stuck", "stalk"], "orders": ["borders", "order"], "spreadsheet": ["spread sheet", "spreadsheets"],
    "works": ["work", "walks"], "priority": ["priorities", "prior tea"], "how": ["who", "hau"], "could": ["good", "cut"],
    "soon": ["seen", "soo"], "fast": ["first", "past"], "start": ["star", "starred"], "live": ["life", "leave"],
}
_NUMBERS = {
    "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "ten": "10", "twelve": "12",
    "fifteen": "15", "twenty": "20", "thirty": "30", "forty": "40", "fifty": "50", "hundred": "100",
    "thousand": "1000", "percent": "%",
}
_WORD = re.compile(r"[A-Za-z0-9'%-]+|[^\sA-Za-z0-9'%-]")


def _edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


class AsrNoise:
    """Deterministic (given its ``random.Random``) generator of recogniser-style variants."""

    def __init__(self, vocabulary: Iterable[str], rng: random.Random) -> None:
        self._rng = rng
        words = sorted({w for w in vocabulary if w.isalpha() and len(w) >= 4})
        by_length: dict[int, list[str]] = {}
        for w in words:
            by_length.setdefault(len(w), []).append(w)
        self._by_length = by_length
        self._neighbours: dict[str, list[str]] = {}

    def _lookalikes(self, word: str) -> list[str]:
        if word not in self._neighbours:
            pool = [w for n in (len(word) - 1, len(word), len(word) + 1) for w in self._by_length.get(n, [])]
            limit = max(1, len(word) // 3)
            self._neighbours[word] = [w for w in pool if w != word and w[0] == word[0] and _edit_distance(w, word) <= limit]
        return self._neighbours[word]

    def variant(self, text: str, error_rate: float) -> str:
        rng = self._rng
        tokens = [t for t in _WORD.findall(text) if t.lower() not in _FILLERS]
        words = [t for t in tokens if t[0].isalnum()]
        if rng.random() < 0.25 and len(words) > 6:
            # VAD fragment: keep a contiguous stretch of 55-90 % of the words.
            keep = max(3, int(len(words) * rng.uniform(0.55, 0.9)))
            start = rng.randint(0, len(words) - keep)
            words = words[start : start + keep]
        out: list[str] = []
        for word in words:
            low = word.lower()
            roll = rng.random()
            if roll < error_rate * 0.3 and low in _FUNCTION:
                continue  # dropped
            if roll < error_rate:
                choice = rng.random()
                if low in _SOUNDALIKE and choice < 0.6:
                    out.extend(rng.choice(_SOUNDALIKE[low]).split())
                    continue
                if low in _NUMBERS and choice < 0.8:
                    out.append(_NUMBERS[low])
                    continue
                near = self._lookalikes(low) if low.isalpha() and len(low) >= 4 else []
                if near and choice < 0.85:
                    out.append(rng.choice(near))
                    continue
                if len(low) >= 7 and choice < 0.95:
                    cut = rng.randint(3, len(low) - 3)
                    out.extend((low[:cut], low[cut:]))  # compound split
                    continue
                if out and choice >= 0.95:
                    out[-1] = out[-1] + low  # merge with the previous word
                    continue
            out.append(word)
        if not out:
            out = words[:1] or ["okay"]
        sentence = " ".join(out)
        style = rng.random()
        if style < 0.5:
            return sentence.lower()
        if style < 0.8:
            return sentence[:1].upper() + sentence[1:] + rng.choice([".", "?", "", "..."])
        return sentence


def variants(texts: Sequence[str], per_text: int, error_rates: Sequence[float], seed: int) -> list[list[str]]:
    """``per_text`` noisy variants of every text, error rates cycling through ``error_rates``."""
    vocabulary = {w.lower() for t in texts for w in _WORD.findall(t)}
    noise = AsrNoise(vocabulary, random.Random(seed))
    return [[noise.variant(t, error_rates[k % len(error_rates)]) for k in range(per_text)] for t in texts]
