"""Utterance-level rep dynamics: pace in words per minute and the questions the rep asks.

Only counts and timings are kept; the utterance text is looked at once and dropped.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from firmware.coach.activity import DynamicHit
from firmware.coach.config import DynamicsConfig

_WORD = re.compile(r"[A-Za-z0-9']+")
_SENTENCE = re.compile(r"[^.!?]+[.!?]*")
_INTERROGATIVES = frozenset(
    "who what when where why how which would could can do does did is are was were will shall should "
    "have has may might".split()
)


def count_words(text: str) -> int:
    # Whitespace tokens, so "15,000" or "$4,000" is one word, as it is when spoken as one figure.
    return sum(1 for token in text.split() if _WORD.search(token))


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.findall(text) if _WORD.search(s)]


def _is_question_sentence(sentence: str, punctuated: bool) -> bool:
    if sentence.endswith("?"):
        return True
    if punctuated:
        return False
    # Unpunctuated transcripts: fall back on the sentence opening like a question.
    words = _WORD.findall(sentence.lower())
    return bool(words) and words[0] in _INTERROGATIVES


def count_questions(text: str) -> int:
    punctuated = any(c in text for c in ".!?")
    return sum(_is_question_sentence(s, punctuated) for s in _sentences(text))


def ends_with_question(text: str) -> bool:
    sentences = _sentences(text)
    punctuated = any(c in text for c in ".!?")
    return bool(sentences) and _is_question_sentence(sentences[-1], punctuated)


@dataclass(frozen=True)
class _RepSpan:
    start: float
    end: float
    words: int
    question: bool

    @property
    def wpm(self) -> float:
        return self.words * 60.0 / max(self.end - self.start, 1e-3)


class PaceTracker:
    def __init__(
        self,
        config: DynamicsConfig,
        buyer_spoke_between: Callable[[float, float], bool],
        prior_words: int = 0,
        prior_speech_s: float = 0.0,
    ) -> None:
        self._cfg = config
        self._buyer_spoke_between = buyer_spoke_between
        self._prior_words = prior_words
        self._prior_speech_s = prior_speech_s
        self._spans: deque[_RepSpan] = deque(maxlen=512)
        self._run: list[_RepSpan] = []
        self._run_cued = False
        self._above_since: float | None = None
        self._baseline_cued = False
        self._last_fast_end = float("-inf")
        self.questions = 0
        self.words = 0
        self.speech_s = 0.0
        self.max_rolling_wpm = 0.0

    def on_rep_utterance(self, start: float, end: float, text: str, now: float) -> list[DynamicHit]:
        if end <= start:
            return []
        span = _RepSpan(start, end, count_words(text), ends_with_question(text))
        baseline = self.baseline_wpm(before=start)
        self._spans.append(span)
        self.questions += count_questions(text)
        self.words += span.words
        self.speech_s += end - start
        hits = self._absolute_rule(span, now)
        rolling = self.rolling_wpm(end)
        if rolling is not None:
            self.max_rolling_wpm = max(self.max_rolling_wpm, rolling)
        hits += self._baseline_rule(span, rolling, baseline, now)
        return hits

    def asked_question_ending_at(self, t: float, tolerance_s: float = 0.5) -> bool:
        return any(abs(s.end - t) <= tolerance_s and s.question for s in self._spans)

    def question_in(self, start: float, end: float) -> bool:
        return any(s.question and s.start < end and s.end > start for s in self._spans)

    def pace_wpm(self) -> float | None:
        return self.words * 60.0 / self.speech_s if self.speech_s > 0 else None

    def rolling_wpm(
        self, now: float, min_speech_s: float | None = None, spans: list[_RepSpan] | None = None
    ) -> float | None:
        horizon = now - self._cfg.pace_window_s
        words = 0.0
        seconds = 0.0
        for s in self._spans if spans is None else spans:
            overlap = min(s.end, now) - max(s.start, horizon)
            if overlap > 0:
                seconds += overlap
                words += s.words * overlap / (s.end - s.start)
        # Under a quarter of the window of speech says little about pace.
        least = self._cfg.pace_window_s / 4 if min_speech_s is None else min_speech_s
        return words * 60.0 / seconds if seconds >= least and seconds > 0 else None

    def _this_turn(self) -> list[_RepSpan]:
        """The newest rep spans with no buyer speech between them."""
        spans = list(self._spans)
        turn = spans[-1:]
        for earlier in reversed(spans[:-1]):
            if self._buyer_spoke_between(earlier.end, turn[0].start):
                break
            turn.insert(0, earlier)
        return turn

    def baseline_wpm(self, before: float) -> float | None:
        words = self._prior_words + sum(s.words for s in self._spans if s.end <= before - self._cfg.pace_window_s)
        seconds = self._prior_speech_s + sum(
            s.end - s.start for s in self._spans if s.end <= before - self._cfg.pace_window_s
        )
        return words * 60.0 / seconds if seconds >= self._cfg.baseline_min_speech_s else None

    def projected_questions(self, elapsed_s: float) -> float | None:
        """Questions per expected call at this rate; None before ``few_questions_check_s`` (and on a
        call that never got that far): extrapolating a minute to half an hour is noise, not a figure."""
        if elapsed_s <= 0 or elapsed_s < self._cfg.few_questions_check_s:
            return None
        return self.questions * self._cfg.expected_call_s / elapsed_s

    def _absolute_rule(self, span: _RepSpan, now: float) -> list[DynamicHit]:
        # The corpus definition: consecutive rep utterances, each >= fast_wpm, span >= 5 s, words/span >= fast_wpm.
        fast = span.wpm >= self._cfg.fast_wpm
        if not fast or (self._run and self._buyer_spoke_between(self._run[-1].end, span.start)):
            self._run, self._run_cued = [], False
        if not fast:
            return []
        self._run.append(span)
        first, last = self._run[0], self._run[-1]
        length = last.end - first.start
        words = sum(s.words for s in self._run)
        if self._run_cued or length < self._cfg.fast_min_span_s or words * 60.0 / length < self._cfg.fast_wpm:
            return []
        # Transcript word counts are noisy per segment (a misheard long word becomes three short
        # ones): the rolling pace over this rep turn, with fast_confirm_speech_s of speech, must agree,
        # or, a turn too short for that, the rep's pace over the call so far (DynamicsConfig).
        confirm = self._cfg.fast_confirm_speech_s
        if confirm is not None:
            rolling = self.rolling_wpm(span.end, min_speech_s=confirm, spans=self._this_turn())
            if rolling is None or rolling < self._cfg.fast_wpm:
                pace = self.pace_wpm() if self._cfg.fast_call_pace_confirms else None
                if pace is None or pace < self._cfg.fast_wpm:
                    return []
        self._run_cued = True
        if first.start <= self._last_fast_end:
            return []  # the baseline rule already flagged this stretch
        self._last_fast_end = last.end
        return [DynamicHit("rep_fast_speech", "rep", first.start, last.end, now)]

    def _baseline_rule(
        self, span: _RepSpan, rolling: float | None, baseline: float | None, now: float
    ) -> list[DynamicHit]:
        if rolling is None or baseline is None or rolling < baseline + self._cfg.baseline_delta_wpm:
            self._above_since, self._baseline_cued = None, False
            return []
        if self._above_since is None:
            self._above_since = span.start
        if self._baseline_cued or span.end - self._above_since < self._cfg.baseline_sustain_s:
            return []
        self._baseline_cued = True
        if self._above_since <= self._last_fast_end:
            return []
        self._last_fast_end = span.end
        return [DynamicHit("rep_fast_speech", "rep", self._above_since, span.end, now)]
