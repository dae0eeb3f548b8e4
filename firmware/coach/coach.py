"""The coach: turns conversation dynamics and buyer intents into moments, and moments into tips.

Inputs are the per-frame floor state (:class:`FrameActivity`) and transcribed, classified
utterances from the bus; outputs are Moment and Tip events (``publish``), the box's cues and
the rep's phone. Frames and utterances come from different threads, so every entry point takes
one lock. Conversation text is looked at and dropped: nothing here writes or logs it.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from firmware.audio.frames import CallFrame, FrameActivity
from firmware.coach.activity import ActivityTracker, DynamicHit
from firmware.coach.config import SKILL_LEVELS, Channel, CoachConfig
from firmware.coach.mastery import MasteryStore
from firmware.coach.onset import RepOnsetGuard
from firmware.coach.pace import PaceTracker, count_questions
from firmware.coach.playbook import INTENT_KINDS, Playbook
from firmware.coach.policy import Candidate, DeliveryPolicy
from firmware.coach.reading import BuyerReader, IntentScorer
from firmware.coach.recap import Recap, compose_recap
from firmware.coach.replies import ReplyWatch
from firmware.coach.sinks import PhoneSink, PhoneTip
from firmware.coach.tips import TipWriter
from firmware.cues.spec import CueSink, CueSpec
from firmware.errors import CoachStateError, ConfigError
from firmware.events import Event, Moment, Partial, Tip, Utterance

log = logging.getLogger(__name__)

# Dynamics the rep avoids by doing well; a call without them counts toward their mastery.
_AVOIDABLE = ("rep_monologue", "rep_fast_speech", "interruption", "quick_reply")
_OBJECTIONS = frozenset(k for k in INTENT_KINDS if k.startswith("objection_"))


@dataclass(frozen=True)
class _Delivered:
    kind: str
    t: float


class Coach:
    def __init__(
        self,
        config: CoachConfig,
        playbook: Playbook,
        cues: CueSink,
        phone: PhoneSink,
        mastery: MasteryStore,
        publish: Callable[[Event], None],
        rep_id: str = "default",
        intent: IntentScorer | None = None,
    ) -> None:
        """``intent``: the classifier that labelled the transcripts; given it, the coach also reads
        whole buyer turns and weighs the rep's preceding question (see :mod:`reading`)."""
        self._cfg = config
        self._playbook = playbook
        self._cues = cues
        self._phone = phone
        self._mastery = mastery
        self._publish = publish
        self.rep_id = rep_id
        self._lock = threading.RLock()
        self.skill = mastery.skill(rep_id, config.skill_level)
        self.channels: tuple[Channel, ...] = config.delivery.channels
        self.now = 0.0
        words, speech_s = mastery.pace_baseline(rep_id)
        self._pace = PaceTracker(config.dynamics, self._buyer_spoke_between, words, speech_s)
        self._activity = ActivityTracker(config.dynamics, self._pace.asked_question_ending_at)
        self._policy = DeliveryPolicy(config.delivery)
        self._tips = TipWriter(playbook)
        self._replies = ReplyWatch(config.dynamics, self._activity.buyer_heard_end)
        self._onset = RepOnsetGuard()
        self._reader = BuyerReader(
            config.reading, config.delivery, playbook, self._tips.competitor_in, self._rep_onset_between, intent
        )
        self.moment_counts: Counter[str] = Counter()
        self._delivered: list[_Delivered] = []
        self._handled_well = 0
        self._talk_ratio_cued = False
        self._questions_checked = False
        self._snooze_showing = False
        self._ended = False

    # -- inputs ----------------------------------------------------------------------------
    def on_activity(self, frame: FrameActivity) -> None:
        with self._lock:
            if self._ended:
                return
            hits = self._activity.on_frame(frame)
            self.now = max(self.now, self._activity.now)
            for hit in hits:
                self._on_dynamic(hit)
            self._settle_replies()
            self._periodic_checks()
            if self._snooze_showing and not self._policy.silenced(self.now):
                self._snooze_showing = False
                self._cues.status("idle")  # the snooze ran out: coaching is back
            self._try_deliver()

    def follow_leak(self, leak_db: Callable[[], float]) -> None:
        """The onset guard reads the pipeline's measured earpiece leak (dB) instead of its default."""
        with self._lock:
            self._onset.leak_db = leak_db

    def on_audio(self, frame: CallFrame) -> None:
        """Optional: the frame's audio, before its activity, so tips never chase a rep onset."""
        with self._lock:
            self._onset.on_frame(frame)

    def on_event(self, event: Event) -> None:
        if not isinstance(event, (Utterance, Partial)):
            return  # the coach's own moments and tips come back on the bus too
        with self._lock:
            if self._ended:
                return
            self.now = max(self.now, event.t)
            if isinstance(event, Partial):
                if event.speaker == "buyer":
                    self._on_buyer_partial(event)
                    self._try_deliver()
                return
            if event.speaker == "rep":
                for hit in self._pace.on_rep_utterance(event.start, event.end, event.text, self.now):
                    self._on_dynamic(hit)
                self._replies.on_rep_utterance(event.start, event.end, count_questions(event.text) > 0)
                self._reader.on_rep_utterance(event.start, event.end, event.text, event.intent)
            else:
                self._on_buyer_utterance(event)
            self._settle_replies()
            self._try_deliver()

    # -- controls (button, phone) ----------------------------------------------------------
    def dismiss(self) -> None:
        with self._lock:
            self._cues.clear()
            self._phone.dismiss_tip()

    def snooze(self) -> None:
        with self._lock:
            self._policy.snooze(self.now)
            self._cues.clear()
            self._phone.dismiss_tip()
            if not self._policy.muted:
                self._snooze_showing = True
                self._cues.status("snoozed")

    def mute(self) -> None:
        with self._lock:
            self._policy.mute()
            self._snooze_showing = False
            self._cues.clear()
            self._phone.dismiss_tip()
            self._cues.status("muted")

    def set_channels(self, channels: tuple[Channel, ...]) -> None:
        unknown = set(channels) - {"led", "haptic", "phone"}
        if unknown:
            raise ConfigError(f"unknown cue channel(s): {', '.join(sorted(unknown))} (choose from led, haptic, phone)")
        with self._lock:
            self.channels = tuple(dict.fromkeys(channels))

    def set_persona(self, persona: str | None) -> None:
        with self._lock:
            self._tips.set_persona(persona)

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def muted(self) -> bool:
        return self._policy.muted

    @property
    def snoozed(self) -> bool:
        return self._policy.silenced(self.now) and not self._policy.muted

    # -- call end --------------------------------------------------------------------------
    def end_call(self, t: float) -> Recap:
        with self._lock:
            if self._ended:
                raise RuntimeError("call already ended")
            self.now = max(self.now, t)
            for hit in self._activity.close(self.now):
                self._on_dynamic(hit)
            self._settle_replies(final=True)
            self._ended = True
            self._record_avoidable()
            self._mastery.add_pace(self.rep_id, self._pace.words, self._pace.speech_s)
            try:
                self._mastery.save()
            except CoachStateError as exc:
                # Losing one call's counters must not cost the rep the recap (or the call's summary).
                log.warning("%s", exc)
            recap = compose_recap(self.figures(), self.moment_counts, self._handled_well, self._cfg.dynamics)
            if "phone" in self.channels:
                self._phone.send_recap(recap)
            self._cues.clear()
            self._cues.status("idle")  # mute and snooze last for this call only
            return recap

    def figures(self) -> dict[str, Any]:
        with self._lock:
            a, p = self._activity, self._pace
            return {
                "duration_s": self.now,
                "talk_ratio_rep": a.talk_ratio(),
                "talk_ratio_rep_rolling": a.rolling_talk_ratio(),
                "rep_talk_s": a.rep_talk_s,
                "buyer_talk_s": a.buyer_talk_s,
                "questions_asked": p.questions,
                "questions_projected_per_call": p.projected_questions(self.now),
                "longest_monologue_s": a.longest_monologue_s,
                "buyer_longest_stretch_s": a.buyer_longest_stretch_s,
                "pace_wpm": p.pace_wpm(),
                "pace_max_rolling_wpm": p.max_rolling_wpm or None,
                "interruptions": a.interruptions,
            }

    def summary_fields(self) -> dict[str, Any]:
        """Figures for the replay summary's ``extra`` (no conversation content)."""
        with self._lock:
            out = {k: v for k, v in self.figures().items() if k != "duration_s" and v is not None}
            c = self._policy.counters
            out.update(
                moments=sum(self.moment_counts.values()),
                tips=c.delivered,
                tips_expired=c.expired + c.overtaken,
                tips_merged=c.merged,
                tips_held_back=c.cooled_down + c.over_cap + c.silenced,
            )
            return out

    # -- internals -------------------------------------------------------------------------
    def _buyer_spoke_between(self, a: float, b: float) -> bool:
        return self._activity.buyer_spoke_between(a, b)

    def _rep_onset_between(self, a: float, b: float) -> bool:
        return any(a < t < b for t in self._activity.rep_onsets)

    def _on_buyer_partial(self, p: Partial) -> None:
        """Act on the buyer's words while they still talk; the final transcript will not repeat it."""
        for r in self._reader.read_partial(p):
            self._emit_moment(r.kind, "buyer", p.start, p.end, r.confidence, competitor=r.competitor)

    def _on_buyer_utterance(self, u: Utterance) -> None:
        self._tips.hear_buyer(u.text)
        raised, watch = self._reader.read_final(u)
        for r in raised:
            self._emit_moment(r.kind, "buyer", u.start, u.end, r.confidence, competitor=r.competitor)
        for kind in watch:
            self._replies.watch(kind, u.start, u.end, self._tips_for_since(kind, u.end))

    def _on_dynamic(self, hit: DynamicHit) -> None:
        self._emit_moment(hit.kind, hit.speaker, hit.start, hit.end, hit.confidence)

    def _emit_moment(self, kind: str, speaker: str, start: float, end: float, confidence: float, *, competitor: str | None = None) -> None:
        self.moment_counts[kind] += 1
        self._publish(Moment(t=self.now, kind=kind, speaker=speaker, start=start, end=end, confidence=confidence))  # type: ignore[arg-type]
        self._offer_tip(kind, competitor)

    def _offer_tip(self, kind: str, competitor: str | None) -> None:
        play = self._playbook.play(kind)
        if play is None or SKILL_LEVELS.index(self.skill) < SKILL_LEVELS.index(play.min_skill):
            return
        stage = self._mastery.stage(self.rep_id, kind, self.skill)
        if stage == "off":
            return
        text = self._tips.write(play, competitor)
        if text is None:
            return
        cooldown = play.cooldown_s * (self._cfg.mastery.fade_cooldown_factor if stage == "fading" else 1.0)
        self._policy.offer(
            Candidate(
                kind=kind,
                key=f"{kind}:{competitor or ''}",
                text=text,
                priority=play.priority,
                moment_t=self.now,
                cooldown_s=cooldown,
                led_colour=play.led_colour,
                led_pattern=play.led_pattern,
                haptic=play.haptic,
                rep_talk_at_moment_s=self._activity.rep_talk_s,
                stale_after_rep_talk_s=self._cfg.delivery.reply_stale_s if kind in INTENT_KINDS else None,
            ),
            self.now,
        )

    def _try_deliver(self) -> None:
        if not self.channels:
            return
        a = self._activity
        cand = self._policy.due(
            self.now,
            rep_speaking=a.rep_speaking_raw or self._onset.voiced(self.now),
            rep_silent_s=a.rep_silent_s(),
            buyer_speaking=a.buyer_speaking,
            rep_talk_s=a.rep_talk_s,
        )
        if cand is None:
            return
        cue = CueSpec(
            led_colour=cand.led_colour if "led" in self.channels else None,
            led_pattern=cand.led_pattern,
            haptic=cand.haptic if "haptic" in self.channels else "none",
        )
        used = list(cue.channels())
        if used:
            self._cues.tip(cue)
        if "phone" in self.channels:
            self._phone.send_tip(PhoneTip(t=self.now, moment=cand.kind, text=cand.text, priority=cand.priority))
            used.append("phone")
        self._delivered.append(_Delivered(cand.kind, self.now))
        self._publish(Tip(t=self.now, moment=cand.kind, text=cand.text, cues=tuple(used)))

    def _tips_for_since(self, kind: str, t: float) -> Callable[[float], bool]:
        def tipped_before(until: float) -> bool:
            return any(d.kind == kind and t - self._cfg.delivery.tip_ttl_s <= d.t <= until for d in self._delivered)

        return tipped_before

    def _settle_replies(self, final: bool = False) -> None:
        for outcome in self._replies.settle(self._activity.rep_onsets, self.now, final=final):
            if outcome.kind in _OBJECTIONS and outcome.quick:
                self._emit_moment("quick_reply", "rep", outcome.buyer_end, outcome.onset, 1.0)
            self._handled_well += outcome.handled_well
            self._mastery.record(self.rep_id, outcome.kind, handled_well=outcome.handled_well, tipped=outcome.tipped)

    def _periodic_checks(self) -> None:
        d, a = self._cfg.dynamics, self._activity
        if not self._talk_ratio_cued and self.now >= d.talk_ratio_min_elapsed_s:
            ratio = a.rolling_talk_ratio()
            if ratio is not None and ratio > d.talk_ratio_max:
                self._talk_ratio_cued = True
                self._emit_moment("talk_ratio", "rep", max(0.0, self.now - d.talk_ratio_window_s), self.now, 1.0)
        if not self._questions_checked and self.now >= d.few_questions_check_s:
            self._questions_checked = True
            projected = self._pace.projected_questions(self.now)
            if projected is not None and projected < d.questions_target_min:
                self._emit_moment("few_questions", "rep", 0.0, self.now, 1.0)

    def _record_avoidable(self) -> None:
        if self._activity.rep_talk_s < 30.0:
            return  # too little of the rep to say they avoided anything
        tipped = {d.kind for d in self._delivered}
        for kind in _AVOIDABLE:
            happened = self.moment_counts[kind] > 0
            self._mastery.record(self.rep_id, kind, handled_well=not happened, tipped=kind in tipped)
