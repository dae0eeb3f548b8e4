"""Choosing and filling a tip's text: variants in rotation, the competitor heard, the persona."""

from __future__ import annotations

import itertools
import secrets
import threading
from collections import Counter

from firmware.coach.playbook import MomentPlay, Playbook, fill
from firmware.errors import ConfigError

# Keyword hits before a persona is trusted from what the buyer says.
_PERSONA_MIN_HITS = 2


class TipIds:
    """Tip ids unique on the box across restarts: "<8 hex boot nonce>-<counter>".

    The nonce is drawn once per process from the OS's random source, so two boots collide with
    odds of 1 in 2**32 per pair and nothing needs to be written to disk for it. Thread-safe.
    """

    def __init__(self, nonce: str | None = None) -> None:
        self.nonce = nonce if nonce is not None else secrets.token_hex(4)
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            return f"{self.nonce}-{next(self._counter)}"


class TipWriter:
    def __init__(self, playbook: Playbook) -> None:
        self._playbook = playbook
        self._rotation: Counter[str] = Counter()
        self._persona_hits: Counter[str] = Counter()
        self._persona_set: str | None = None

    def set_persona(self, persona: str | None) -> None:
        if persona is not None and persona not in self._playbook.personas:
            raise ConfigError(f"unknown persona {persona!r} (playbook has: {', '.join(self._playbook.personas) or 'none'})")
        self._persona_set = persona

    def hear_buyer(self, text: str) -> None:
        self._persona_hits.update({k: v for k, v in self._playbook.persona_hits(text).items() if v})

    @property
    def persona(self) -> str | None:
        if self._persona_set is not None:
            return self._persona_set
        ranked = self._persona_hits.most_common(2)
        if not ranked or ranked[0][1] < _PERSONA_MIN_HITS:
            return None
        if len(ranked) > 1 and ranked[1][1] == ranked[0][1]:
            return None  # a tie says nothing about who the buyer is
        return ranked[0][0]

    def competitor_in(self, text: str) -> str | None:
        card = self._playbook.battlecard_for(text)
        return card.name if card else None

    def write(self, play: MomentPlay, competitor: str | None) -> str | None:
        slots: dict[str, str] = {}
        if competitor is not None:
            slots["competitor"] = competitor
            card = next(c for c in self._playbook.battlecards if c.name == competitor)
            if play.kind == "competitor_mention":
                return fill(card.tip, slots)
        persona = self.persona
        variants: tuple[str, ...] = play.tips
        if persona is not None:
            slots["persona"] = self._playbook.personas[persona].label
            variants = play.persona_tips.get(persona) or play.tips
        start = self._rotation[play.kind]
        for i in range(len(variants)):
            text = fill(variants[(start + i) % len(variants)], slots)
            if text is not None:
                self._rotation[play.kind] = start + i + 1
                return text
        return None
