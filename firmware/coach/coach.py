"""The coach: turns conversation dynamics and buyer intents into moments, and moments into tips.

Inputs are the per-frame floor state (:class:`FrameActivity`), transcribed, classified
utterances from the bus, and the rep's controls (through :meth:`CoachBox.control`); outputs are
Moment, Tip, Control, ControlResult, Status and RecapEvent events (``publish``), the box's cues
and the rep's phone. Frames and utterances come from different threads, so every entry point takes
one lock. Conversation text is looked at and dropped: nothing here writes or logs it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from firmware.audio.frames import CallFrame, FrameActivity
from firmware.coach.activity import ActivityTracker, DynamicHit
from firmware.coach.config import MAX_SNOOZE_S, SKILL_LEVELS, Channel, CoachConfig
from firmware.coach.mastery import MasteryStore
from firmware.coach.onset import RepOnsetGuard
from firmware.coach.pace import PaceTracker, count_questions
from firmware.coach.playbook import Playbook
from firmware.coach.policy import Candidate, DeliveryPolicy
from firmware.coach.reading import BuyerReader, IntentScorer
from firmware.coach.recap import compose_recap
from firmware.coach.replies import ReplyWatch
from firmware.coach.sinks import PhoneSink
from firmware.coach.tips import TipIds, TipWriter
from firmware.cues.spec import CueSink, CueSpec
from firmware.errors import CoachStateError, ConfigError
from firmware.events import Control, ControlOutcome, ControlResult, Event, Moment, Partial, RecapEvent, Status, Tip, Utterance
from firmware.intent.labels import INTENT_KINDS

log = logging.getLogger(__name__)

# Dynamics the rep avoids by doing well; a call without them counts toward their mastery.
_AVOIDABLE = ("rep_monologue", "rep_fast_speech", "interruption", "quick_reply")
_OBJECTIONS = frozenset(k for k in INTENT_KINDS if k.startswith("objection_"))


@dataclass(frozen=True)
class _Delivered:
    kind: str
    t: float


@dataclass(frozen=True)
class _Outcome:
    outcome: ControlOutcome
    reason: str | None = None
    tip_id: str | None = None
    status_changed: bool = False


def _refused(reason: str, tip_id: str | None = None) -> _Outcome:
    return _Outcome("refused", reason, tip_id)


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
        *,
        call_id: int = 0,
        tip_ids: TipIds | None = None,
        known_words: frozenset[str] | None = None,
    ) -> None:
        """``intent``: the classifier that labelled the transcripts; given it, the coach also reads
        whole buyer turns and weighs the rep's preceding question (see :mod:`reading`).
        ``call_id`` goes on every tip; ``tip_ids`` is the box's id source (one per process).
        ``known_words``: the recogniser's whole words, evidence of a competitor's name (see
        :func:`firmware.coach.reading.competitor_named`)."""
        self._cfg = config
        self._playbook = playbook
        self._cues = cues
        self._phone = phone
        self._mastery = mastery
        self._publish = publish
        self.rep_id = rep_id
        self.call_id = call_id
        self._tip_ids = tip_ids if tip_ids is not None else TipIds()
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
            config.reading, config.delivery, playbook, self._tips.competitor_in, self._rep_onset_between, intent,
            known_words,
        )
        self.moment_counts: Counter[str] = Counter()
        self._delivered: list[_Delivered] = []
        self._handled_well = 0
        self._talk_ratio_cued = False
        self._questions_checked = False
        self._snooze_showing = False
        self._ended = False
        self._showing: Tip | None = None  # the tip the rep sees now (until dismissed, replaced or stale)
        self._tip_kinds: dict[str, str] = {}  # this call's tip ids -> moment kind (helpful / not helpful)
        self._rated: set[str] = set()

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
                self._announce_status()
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

    # -- controls (button, phone, cli): reached through CoachBox.control only ---------------
    def handle_control(self, control: Control) -> ControlResult | None:
        """Apply one control to this call; publish it, its result and any status change.

        None (nothing published) if the call has ended: the box answers it as between calls.
        Thread-safe (any thread); never blocks on I/O (the mastery counters are saved at the
        call's end). ``control.t`` is restamped with this call's time: the sender's clock is not
        the call's.
        """
        with self._lock:
            if self._ended:
                return None
            control = dataclasses.replace(control, t=self.now)
            self._publish(control)
            if control.call_id is not None and control.call_id != self.call_id:
                done = _refused(f"call {control.call_id} is not running (call {self.call_id} is)")
            else:
                done = self._apply(control)
            result = ControlResult(
                t=self.now, action=control.action, source=control.source, outcome=done.outcome, reason=done.reason,
                tip_id=done.tip_id if done.tip_id is not None else control.tip_id, call_id=self.call_id,
            )  # fmt: skip
            self._publish(result)
            self._phone.send(result)
            if done.status_changed:
                self._announce_status()
            return result

    def _apply(self, c: Control) -> _Outcome:
        if c.action == "dismiss":
            return self._dismiss(c.tip_id)
        if c.action == "snooze":
            return self._snooze(c.minutes)
        if c.action == "mute":
            if self._policy.muted:
                return _Outcome("applied", "already muted")
            self._policy.mute()
            self._snooze_showing = False
            self._hide_tip()
            self._cues.status("muted")
            return _Outcome("applied", status_changed=True)
        if c.action == "unmute":
            if not self._policy.muted:
                return _Outcome("applied", "was not muted")
            self._policy.muted = False
            self._snooze_showing = self._policy.silenced(self.now)
            self._cues.status("snoozed" if self._snooze_showing else "idle")
            return _Outcome("applied", status_changed=True)
        if c.action == "skill":
            if c.value not in SKILL_LEVELS:
                return _refused(f"unknown skill level {c.value!r} (choose from {', '.join(SKILL_LEVELS)})")
            self.skill = c.value  # type: ignore[assignment]  (checked just above)
            self._mastery.set_skill(self.rep_id, self.skill)
            return _Outcome("applied")
        if c.action == "persona":
            reason = persona_problem(self._playbook, c.value)
            if reason is not None:
                return _refused(reason)
            self._tips.set_persona(c.value)
            return _Outcome("applied")
        return self._rate(c.tip_id, helpful=c.action == "helpful")

    def _dismiss(self, tip_id: str | None) -> _Outcome:
        showing = self._showing_tip()
        if showing is None or (tip_id is not None and tip_id != showing.tip_id):
            return _refused(self._not_showing(tip_id), tip_id)
        self._hide_tip()
        return _Outcome("applied", tip_id=showing.tip_id)

    def _snooze(self, minutes: float | None) -> _Outcome:
        seconds = self._cfg.delivery.snooze_s if minutes is None else minutes * 60.0
        if not (math.isfinite(seconds) and 0 < seconds <= MAX_SNOOZE_S):
            return _refused(f"snooze minutes must be within (0, {MAX_SNOOZE_S / 60:.0f}]")
        self._policy.snooze(self.now, seconds)
        self._hide_tip()
        if not self._policy.muted:
            self._snooze_showing = True
            self._cues.status("snoozed")
        return _Outcome("applied", status_changed=True)

    def _rate(self, tip_id: str | None, *, helpful: bool) -> _Outcome:
        if tip_id is None:
            showing = self._showing_tip()
            if showing is None:
                return _refused("no tip is showing; name the tip to rate")
            tip_id = showing.tip_id
        kind = self._tip_kinds.get(tip_id)
        if kind is None:
            return _refused(f"unknown tip {tip_id} (not from this call)", tip_id)
        if tip_id in self._rated:
            return _refused(f"tip {tip_id} is already rated", tip_id)
        self._rated.add(tip_id)
        self._mastery.rate_tip(self.rep_id, kind, helpful=helpful)
        return _Outcome("applied", tip_id=tip_id)

    def _showing_tip(self) -> Tip | None:
        tip = self._showing
        if tip is not None and self.now - tip.t > tip.ttl_s:
            self._showing = tip = None  # stale: the phone has hidden it and the LED is out
        return tip

    def _not_showing(self, tip_id: str | None) -> str:
        if tip_id is None:
            return "no tip is showing"
        if tip_id in self._tip_kinds:
            return f"tip {tip_id} is no longer showing"
        return f"unknown tip {tip_id} (not from this call)"

    def _hide_tip(self) -> None:
        self._showing = None
        self._cues.clear()

    def status(self) -> Status:
        with self._lock:
            snoozed = not self._policy.muted and self._policy.silenced(self.now)
            return Status(
                t=self.now, call_active=not self._ended, call_id=self.call_id, muted=self._policy.muted,
                snoozed_until_s=self._policy.snoozed_until if snoozed else None,
            )  # fmt: skip

    def announce_status(self) -> None:
        """Publish the current :class:`Status` and send it to the phone (call start, changes, end)."""
        with self._lock:
            self._announce_status()

    def _announce_status(self) -> None:
        status = self.status()
        self._publish(status)
        self._phone.send(status)

    def set_channels(self, channels: tuple[Channel, ...]) -> None:
        unknown = set(channels) - {"led", "haptic", "phone"}
        if unknown:
            raise ConfigError(f"unknown cue channel(s): {', '.join(sorted(unknown))} (choose from led, haptic, phone)")
        with self._lock:
            self.channels = tuple(dict.fromkeys(channels))

    def set_persona(self, persona: str | None) -> None:
        """Raises ConfigError for a persona the playbook does not have (see also the persona control)."""
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
    def end_call(self, t: float) -> RecapEvent:
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
            recap = compose_recap(
                self.figures(), self.moment_counts, self._handled_well, self._cfg.dynamics, call_id=self.call_id
            )
            self._showing = None
            self._cues.clear()
            self._cues.status("idle")  # mute and snooze last for this call only
            self._publish(recap)
            if "phone" in self.channels:
                self._phone.send(recap)
            self._announce_status()
        # Written outside the lock: a control arriving now is answered without waiting on the disk.
        try:
            self._mastery.save()
        except CoachStateError as exc:
            # Losing one call's counters must not cost the rep the recap (or the call's summary).
            log.warning("%s", exc)
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
            used.append("phone")
        tip = Tip(
            t=self.now, tip_id=self._tip_ids.next(), call_id=self.call_id, moment=cand.kind, text=cand.text,
            priority=cand.priority, ttl_s=self._cfg.delivery.tip_ttl_s, cues=tuple(used),
        )  # fmt: skip
        if "phone" in self.channels:
            self._phone.send(tip)
        self._delivered.append(_Delivered(cand.kind, self.now))
        self._showing = tip
        self._tip_kinds[tip.tip_id] = cand.kind
        self._publish(tip)

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


def persona_problem(playbook: Playbook, persona: str | None) -> str | None:
    """Why ``persona`` cannot be set (None when it can): the persona control's one check."""
    if persona is None or persona not in playbook.personas:
        return f"unknown persona {persona!r} (playbook has: {', '.join(playbook.personas) or 'none'})"
    return None
