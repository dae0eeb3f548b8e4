"""Text -> fixed-size feature vector, in plain numpy, shared by training and the device.

Features are hashed (no vocabulary to ship or keep in sync): word unigrams, word bigrams and
character n-grams over the normalised text. Character n-grams are what keep the model useful on
ASR output, where "budget it" for "budgeted" or "hub spot" for "HubSpot" still share most
of their trigrams with the clean spelling. All hashing is vectorised, so cost grows with text
length only through a few numpy passes; text is capped at ``max_chars`` so latency is bounded.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

_NON_WORD = re.compile(r"[^a-z0-9]+")
_APOSTROPHES = re.compile(r"['\u2019\u2018`]")
_MASK32 = np.uint64(0xFFFFFFFF)
# Distinct seeds keep the three feature families from colliding systematically.
_SEED_WORD = 0x9E3779B1
_SEED_BIGRAM = 0x85EBCA77
_SEED_CHAR = 0xC2B2AE3D


@dataclass(frozen=True)
class FeatureSpec:
    """Everything that must match between training and the device; stored in the manifest."""

    buckets: int = 4096
    char_ngrams: tuple[int, ...] = (3, 4, 5)
    word_bigrams: bool = True
    max_chars: int = 600
    # Whole words carry most of the meaning but are outnumbered ~8:1 by character n-grams.
    word_weight: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["char_ngrams"] = list(self.char_ngrams)
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> FeatureSpec:
        # A model trained with features this runtime cannot compute would be fed wrong vectors
        # and answer confidently wrong: refuse it (an update's self-test then rolls it back).
        unknown = sorted(set(raw) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"feature settings this runtime does not know: {', '.join(unknown)}")
        ngrams = raw.get("char_ngrams", cls.char_ngrams)
        spec = cls(
            buckets=int(raw["buckets"]),
            char_ngrams=tuple(int(n) for n in ngrams),
            word_bigrams=bool(raw.get("word_bigrams", True)),
            max_chars=int(raw.get("max_chars", cls.max_chars)),
            word_weight=float(raw.get("word_weight", cls.word_weight)),
        )
        if spec.buckets < 16 or any(n < 1 for n in spec.char_ngrams) or spec.max_chars < 1 or not spec.word_weight > 0:
            raise ValueError(f"feature settings out of range: {spec}")
        return spec


def normalise(text: str, max_chars: int = 600) -> str:
    """Lower-case ASCII words separated by single spaces: what every recogniser and typist agree on."""
    text = unicodedata.normalize("NFKD", text[: max_chars * 2])
    text = text.encode("ascii", "ignore").decode("ascii").lower()
    text = _APOSTROPHES.sub("", text)  # "don't" and ASR's "dont" become one token
    return _NON_WORD.sub(" ", text).strip()[:max_chars]


def _mix(h: np.ndarray) -> np.ndarray:
    # murmur3 finaliser: spreads polynomial hashes evenly over the buckets.
    h = h & _MASK32
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & _MASK32
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & _MASK32
    h ^= h >> np.uint64(16)
    return h


def _char_ngram_hashes(padded: bytes, sizes: tuple[int, ...]) -> list[np.ndarray]:
    # Rolling polynomial: the hash of every n-gram extends the (n-1)-gram hash in one array op.
    codes = np.frombuffer(padded, dtype=np.uint8).astype(np.uint64)
    wanted = set(sizes)
    out: list[np.ndarray] = []
    h = codes + np.uint64(_SEED_CHAR)
    for n in range(2, max(sizes, default=0) + 1):
        if codes.size < n:
            break
        h = (h[:-1] * np.uint64(16777619) + codes[n - 1 :]) & _MASK32
        if n in wanted:
            out.append(h + np.uint64(n << 24))
    if 1 in wanted:
        out.append(codes + np.uint64(_SEED_CHAR))
    return out


def featurise(text: str, spec: FeatureSpec) -> np.ndarray:
    """Return a float32 vector of ``spec.buckets`` log-counts, L2-normalised (zeros for empty text)."""
    clean = normalise(text, spec.max_chars)
    vector = np.zeros(spec.buckets, dtype=np.float32)
    if not clean:
        return vector
    words = clean.split(" ")
    word_hashes = np.fromiter((zlib.crc32(w.encode()) for w in words), dtype=np.uint64, count=len(words))
    parts = [word_hashes ^ np.uint64(_SEED_WORD)]
    if spec.word_bigrams and len(words) > 1:
        parts.append(word_hashes[:-1] * np.uint64(31) + word_hashes[1:] + np.uint64(_SEED_BIGRAM))
    n_word = sum(len(p) for p in parts)
    parts.extend(_char_ngram_hashes(f" {clean} ".encode("ascii"), spec.char_ngrams))
    indices = (_mix(np.concatenate(parts)) % np.uint64(spec.buckets)).astype(np.intp)
    if spec.word_weight == 1.0:
        counts = np.bincount(indices, minlength=spec.buckets).astype(np.float32)
    else:
        weights = np.ones(indices.size, dtype=np.float64)
        weights[:n_word] = spec.word_weight
        counts = np.bincount(indices, weights=weights, minlength=spec.buckets).astype(np.float32)
    np.log1p(counts, out=vector)
    norm = float(np.linalg.norm(vector))
    if norm > 0.0:
        vector /= norm
    return vector
