"""Reading buyer intents from the box's transcripts: which moment kinds the buyer's words raise, and when.

Transcripts arrive as fragments: a buyer who pauses mid-thought becomes several segments, and each
segment is transcribed early (partials) before its final transcript. Read one fragment at a time,
the same thought raises a moment twice, or a wrong one from a half sentence. So:

- A buyer *turn* is consecutive buyer segments with no rep speech in between (and gaps no longer
  than ``turn_max_gap_s``). A kind is raised at most once per turn.
- The VAD cuts a buyer's thought into segments, and each segment (and the turn read whole) may
  read as another kind, so one objection can become two or three moments. A turn raises at most
  ``turn_max_moments``, the first come (of a segment and the turn read at once, the surer); no cap
  by default, since the calibration calls cannot choose one (see config.py). Moments go out as
  they are read, not at the turn's end: that end is known only when the rep speaks or after
  ``turn_max_gap_s`` of silence, by when the tip is late (tips wait for the rep's silence and go
  stale as the rep answers); on dev-kokoro the median tip goes out 2.9 s before the buyer stops,
  from partials.
- A final transcript is read alone and, once the turn has earlier segments, as the turn so far:
  a thought cut in two is often only recognisable whole.
- A partial raises a kind only when it is sure on its own (``partial_sure_confidence``) or when
  two consecutive readings of the same segment agree (each at least ``partial_min_confidence``).
  The first two seconds of a sentence are the least reliable reading there is.
- Context: the rep's question right before the turn is evidence about the answer. A rep line
  containing a playbook moment's ``invited_by`` phrase (e.g. "who else" for an authority
  objection), or proposing a next step, multiplies that kind's probability by
  ``context_prior_weight`` before the classifier's own threshold is applied again. This needs the
  classifier's scores, so it applies only when the coach is given the classifier (``scorer``);
  without it the transcripts' own labels are used as they are.
- The coach's own bar: the classifier's cut-off is calibrated for labelling single sentences, not
  for interrupting a rep. A final transcript read alone must reach ``final_min_confidence``, the
  turn read whole ``turn_min_confidence``, and the winning kind must lead the runner-up (``other``
  included) by ``min_margin``: a reading torn between two kinds is as often the wrong kind as a
  moment. These were calibrated on synthetic calls (tools/render_calls.py), not on the dev calls,
  and re-checked on the calibration calls (config.py says what each found).
- Evidence a kind needs (``competitor_needs_name``): a competitor mention names something: a
  battlecard (matched in any case), a word written like a product's name (:func:`competitor_like`),
  or a word the recogniser spelt from pieces rather than knew whole (:func:`competitor_named`):
  names open sentences ("Tidewell pitched us...") and Whisper writes some in lower case, where
  capitals say nothing, but it knows "pounds" and "facilities" whole and "Tidewell" not. A reading
  at least ``competitor_sure_confidence`` sure needs no name: Whisper also writes a name as common
  words ("pipe drive").
- The opening (``opening_turns``): greetings and small talk come first in a call; the buyer's
  first turns raise a moment only at ``opening_min_confidence``.
- A final transcript of only a few words (``fragment_max_words``) read alone is a fragment, like a
  partial: a buyer's "To be honest," cut off by the VAD before the objection itself, is a short
  clip, and the recogniser's reading of a short clip is its least reliable one. So it must reach
  ``fragment_min_confidence``; the turn reading, which includes it, is not held to that bar.
"""

from __future__ import annotations

import calendar
import re
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from firmware.coach.config import DeliveryConfig, ReadingConfig
from firmware.coach.playbook import Playbook
from firmware.events import Partial, Utterance
from firmware.intent.labels import INTENT_KINDS

_NAMED_COMPETITOR_CONFIDENCE = 0.8
_OTHER = "other"
_EDGE_SLACK_S = 1.0
_SENTENCE_END = re.compile(r"[.?!]+(?:\s+|$)")


_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'&-]*")
# Capitalised words that name no product: the pronoun, titles, and the days and months (from the
# calendar module, in the C locale: English whatever the box's locale).
_NOT_NAMES = frozenset(
    ["i", "i'm", "i'd", "i'll", "i've", "ok", "mr", "mrs", "ms", "dr"]
    + [name.lower() for name in (*calendar.day_name, *calendar.month_name) if name]
)


def competitor_like(text: str) -> str | None:
    """The first word of ``text`` written like a product's or company's name, if any: capitalised
    but not a sentence's first word, or CamelCase anywhere ("HubSpot"); "I", weekdays, months,
    titles and all-capital words of up to four letters ("CFO", "IT", "API") are not names."""
    for sentence in _SENTENCE_END.split(text):
        for n, word in enumerate(_WORD.findall(sentence)):
            bare = word.rstrip("'-")
            if re.search(r"[a-z][A-Z]", bare):
                return bare
            if n == 0 or not bare[:1].isupper() or bare.lower() in _NOT_NAMES:
                continue
            if bare.isupper() and len(bare) <= 4:
                continue
            return bare
    return None


def competitor_named(text: str, known_words: frozenset[str] | None = None) -> str | None:
    """Evidence that ``text`` names a product or company: a word written like a name
    (:func:`competitor_like`), or, given the recogniser's whole words (firmware/speech/vocabulary.py),
    a word of three letters or more it does not know whole, however it was capitalised
    ("tidewell", or "Tidewell" opening a sentence). A contraction's or a hyphenated word's parts
    count one by one ("we've", "plug-in")."""
    like = competitor_like(text)
    if like is not None or not known_words:
        return like
    for word in _WORD.findall(text):
        for part in re.split(r"['&-]+", word):
            if len(part) >= 3 and part.lower() not in known_words:
                return part
    return None


def _last_sentence(text: str) -> str:
    sentences = [part for part in _SENTENCE_END.split(text) if part.strip()]
    return sentences[-1] if sentences else text


class IntentScorer(Protocol):
    """The intent classifier as the coach uses it (``firmware.intent.IntentClassifier`` is one)."""

    def threshold_for(self, speaker: str | None = None) -> float: ...

    def classify(self, text: str, speaker: str | None = None) -> tuple[str, float, Mapping[str, float]]: ...


@dataclass(frozen=True)
class Reading:
    kind: str
    confidence: float
    competitor: str | None = None


@dataclass
class _Turn:
    start: float
    last_start: float
    last_end: float
    texts: list[str] = field(default_factory=list)
    raised: set[str] = field(default_factory=set)
    watched: set[str] = field(default_factory=set)
    index: int = 0  # the buyer's first turn of the call is 0


class BuyerReader:
    def __init__(
        self,
        config: ReadingConfig,
        delivery: DeliveryConfig,
        playbook: Playbook,
        competitor_in: Callable[[str], str | None],
        rep_onset_between: Callable[[float, float], bool],
        scorer: IntentScorer | None = None,
        known_words: frozenset[str] | None = None,
    ) -> None:
        """``known_words``: the recogniser's whole words (:func:`competitor_named`); None tests a
        competitor's name by its capitals alone."""
        self._cfg = config
        self._known_words = known_words
        self._min_confidence = delivery.min_confidence
        self._final_floor = max(delivery.min_confidence, config.final_min_confidence)
        self._turn_floor = max(delivery.min_confidence, config.turn_min_confidence)
        self._fragment_floor = max(self._final_floor, config.fragment_min_confidence)
        self._partial_min_confidence = delivery.partial_min_confidence
        self._competitor_in = competitor_in
        self._rep_onset_between = rep_onset_between
        self._scorer = scorer
        self._invites = {
            kind: re.compile(r"\b(?:" + "|".join(re.escape(p) for p in play.invited_by) + r")\b", re.IGNORECASE)
            for kind, play in playbook.moments.items()
            if play.invited_by and kind in INTENT_KINDS
        }
        self._turn: _Turn | None = None
        self._turns = 0
        self._partials: dict[float, Reading | None] = {}  # segment start -> its latest partial reading
        # (end, kinds invited) of the rep's latest lines; their transcripts may arrive after the buyer starts.
        self._rep_lines: deque[tuple[float, frozenset[str]]] = deque(maxlen=8)

    # -- the rep -------------------------------------------------------------------------------
    def on_rep_utterance(self, start: float, end: float, text: str, intent: str | None) -> None:
        # The sentence that hands the floor over is the rep's last ("No problem at all. So how many
        # sites?" asks about sites, not problems).
        last = _last_sentence(text)
        invited = {kind for kind, pattern in self._invites.items() if pattern.search(last)}
        if intent == "next_step":
            invited.add("next_step")  # a proposed next step invites the buyer to take it
        self._rep_lines.append((end, frozenset(invited)))
        if self._turn is not None and end > self._turn.last_end:
            self._turn = None  # the rep spoke after the buyer: their turn is over

    # -- the buyer -----------------------------------------------------------------------------
    def read_partial(self, p: Partial) -> list[Reading]:
        turn = self._enter(p.start, p.end)
        reading = self._read(p.text, p.intent, p.confidence, self._context(turn), self._min_confidence, turn.index)
        before = self._partials.get(p.start)
        self._partials[p.start] = reading
        if reading is None or reading.kind in turn.raised:
            return []
        sure = reading.confidence >= self._cfg.partial_sure_confidence
        agreed = (
            before is not None
            and before.kind == reading.kind
            and min(before.confidence, reading.confidence) >= self._partial_min_confidence
        )
        if not (sure or agreed) or not self._room_for(turn):
            return []
        turn.raised.add(reading.kind)
        return [reading]

    def read_final(self, u: Utterance) -> tuple[list[Reading], list[str]]:
        """The readings that raise a moment now, and the kinds whose reply is worth watching."""
        turn = self._enter(u.start, u.end)
        self._partials.pop(u.start, None)
        context = self._context(turn)
        fragment = len(u.text.split()) <= self._cfg.fragment_max_words
        floor = self._fragment_floor if fragment else self._final_floor
        readings = [self._read(u.text, u.intent, u.confidence, context, floor, turn.index)]
        if self._scorer is not None and turn.texts:
            readings.append(self._read(" ".join([*turn.texts, u.text]), None, None, context, self._turn_floor, turn.index))
        turn.texts.append(u.text)
        new: list[Reading] = []
        watch: list[str] = []
        # The surer reading first: when the turn has room for one more moment, it gets it.
        for reading in sorted((r for r in readings if r is not None), key=lambda r: -r.confidence):
            if reading.kind not in turn.raised:
                if not self._room_for(turn):
                    continue  # not believed: its reply is not watched either
                turn.raised.add(reading.kind)
                new.append(reading)
            if reading.kind not in turn.watched:
                turn.watched.add(reading.kind)
                watch.append(reading.kind)
        return new, watch

    # -- internals -----------------------------------------------------------------------------
    def _room_for(self, turn: _Turn) -> bool:
        """Whether ``turn`` may raise one more moment: at most ``turn_max_moments`` per turn, the
        first come (of two read at once, the surer) taking the room."""
        return len(turn.raised) < self._cfg.turn_max_moments

    def _enter(self, start: float, end: float) -> _Turn:
        """The turn a buyer segment belongs to: the current one, or a new one after rep speech or a long gap."""
        turn = self._turn
        if turn is not None and start > turn.last_start and (
            start - turn.last_end > self._cfg.turn_max_gap_s or self._rep_onset_between(turn.last_end, start)
        ):
            turn = None
        if turn is None:
            turn = self._turn = _Turn(start, start, end, index=self._turns)
            self._turns += 1
        turn.last_start = max(turn.last_start, start)
        turn.last_end = max(turn.last_end, end)
        return turn

    def _context(self, turn: _Turn) -> frozenset[str]:
        """What the rep's last line before the turn invited, if the buyer answered it promptly.
        Segment edges are padded, so the buyer may seem to start a little before the rep ends."""
        before = [line for line in self._rep_lines if line[0] <= turn.start + _EDGE_SLACK_S]
        if not before:
            return frozenset()
        end, invited = max(before, key=lambda line: line[0])
        return invited if turn.start - end <= self._cfg.context_window_s else frozenset()

    def _read(
        self, text: str, intent: str | None, confidence: float | None, context: frozenset[str], floor: float,
        turn_index: int = 0,
    ) -> Reading | None:
        """What ``text`` (in the buyer's turn ``turn_index``) raises, if the reading clears ``floor``
        (and, with scores, the margin), in the opening its bar, and has its kind's evidence."""
        if turn_index < self._cfg.opening_turns:
            floor = max(floor, self._cfg.opening_min_confidence)
        clear = True
        if self._scorer is not None:
            kind, conf, margin = self._decide(self._scorer.classify(text, "buyer")[2], context)
            clear = margin >= self._cfg.min_margin
        else:
            kind, conf = intent or _OTHER, confidence if confidence is not None else 0.0
        clear = clear and kind in INTENT_KINDS and conf >= floor
        named = self._competitor_in(text)
        if (
            clear and kind == "competitor_mention" and named is None and self._cfg.competitor_needs_name
            and conf < self._cfg.competitor_sure_confidence
        ):
            clear = competitor_named(text, self._known_words) is not None
        if named is not None and not clear and _NAMED_COMPETITOR_CONFIDENCE >= floor:
            # A battlecard competitor named outright is a competitor mention even if the classifier missed it.
            kind, conf, clear = "competitor_mention", _NAMED_COMPETITOR_CONFIDENCE, True
        if not clear:
            return None
        return Reading(kind, conf, named if kind == "competitor_mention" else None)

    def _decide(self, scores: Mapping[str, float], context: frozenset[str]) -> tuple[str, float, float]:
        """The classifier's decision after weighing in what the rep's question invited: the kind, its
        probability, and its lead over the runner-up."""
        assert self._scorer is not None
        weight = self._cfg.context_prior_weight
        weighted = {k: p * (weight if k in context else 1.0) for k, p in scores.items()}
        total = sum(weighted.values()) or 1.0
        ranked = sorted(weighted.values(), reverse=True)
        kind = max(weighted, key=lambda k: weighted[k])
        conf = weighted[kind] / total
        margin = (ranked[0] - (ranked[1] if len(ranked) > 1 else 0.0)) / total
        if conf < self._scorer.threshold_for("buyer"):
            return _OTHER, weighted.get(_OTHER, 0.0) / total, margin
        return kind, conf, margin
