"""Coach settings: dynamics thresholds, delivery policy and mastery fading.

Defaults follow published call behaviour (see docs/engineering-notes "Call behaviour") and the
dynamics definitions of the evaluation corpus, so the box and the ground truth measure alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from firmware.settings import Checked, rule, setting

SkillLevel = Literal["new", "developing", "experienced"]
SKILL_LEVELS: tuple[SkillLevel, ...] = ("new", "developing", "experienced")
Channel = Literal["led", "haptic", "phone"]
# The longest snooze the rep can ask for (config or a control): longer than any call.
MAX_SNOOZE_S = 4 * 3600.0


@dataclass(frozen=True)
class DynamicsConfig(Checked):
    # A rep burst this short while the buyer talks is earpiece leak or a backchannel, not a turn.
    leak_min_rep_burst_s: float = setting(0.3, ge=0.0, le=5.0)
    monologue_gap_s: float = setting(0.7, gt=0.0, le=10.0)
    monologue_cue_s: float = setting(75.0, gt=0.0, le=3600.0)
    # Fast speech as the corpus defines it (dev README): consecutive rep utterances each >= 190 wpm,
    # spanning >= fast_min_span_s, words / span >= 190 wpm. The box's bar sits a little above the
    # definition's because the box times a line from its voiced audio, shorter than the truth's span
    # of a Kokoro clip with its soft tail: on calibration set v2 (reps at a natural pace, 13 fast
    # stretches; tools/calibrate_dynamics.py on its tapes) 190 wpm found 10 with 2 false (lines of
    # 186 and 190 wpm by the truth, 192 and 196 as the box heard them), 193-195 found 10 with none
    # false, 197 8, 200 7. On v1 (every rep fast, 26 stretches) 195 also dropped its one false at no
    # loss (24/26). Dev and dev-kokoro: 1/1 each, none false, at every value from 190 to 200.
    # A 5.5 s span instead of 5 cost a stretch on both sets.
    fast_wpm: float = setting(195.0, gt=0.0, le=1000.0)
    fast_min_span_s: float = setting(5.0, gt=0.0, le=600.0)
    pace_window_s: float = setting(20.0, gt=0.0, le=600.0)
    # A fast stretch is cued once the rolling pace over the rep's turn (its last pace_window_s), with
    # fast_confirm_speech_s of speech, is >= fast_wpm too (None: no such check): a guard against word
    # counts a misheard segment inflates (dev dcall03 68.3 s, an espeak rep line of 14 words heard as
    # 20: 223 wpm for 160, 5.4 s). A turn with less speech than that still counts when the rep's pace
    # over the call so far (this stretch included) is >= fast_wpm (fast_call_pace_confirms): the rep
    # is fast, not one line misheard. Chosen on calibration set v1 (tools/calibrate_dynamics.py on its
    # tapes), whose 26 fast stretches are single rep lines of 5.2-9.8 s between buyer turns:
    # the turn check alone (10 s, the rule before) found 0/26; with the call's pace 24/26, 1 false (a
    # 4.9 s line at 195 wpm the box timed at 5.0 s); no check at all, or 5 s or 0 s, scored the same
    # there but raised the dev false again, which the call's pace (184 wpm there, the calibration
    # reps' 192-272 at their stretches) keeps out; a 5.5 s span instead cost two (22/26, 0 false).
    # Confirmed on v2, where most reps are ordinary and false alarms show (at 190 wpm): this rule
    # 10/13 with 2 false, no check 10/13 with 3 false, the turn check alone 1/13.
    fast_confirm_speech_s: float | None = setting(10.0, ge=0.0, le=600.0, optional=True)
    fast_call_pace_confirms: bool = setting(True)
    baseline_delta_wpm: float = setting(15.0, ge=0.0, le=500.0)
    baseline_sustain_s: float = setting(20.0, ge=0.0, le=3600.0)
    # The rep's own baseline is trusted only after this much rep speech has been heard.
    baseline_min_speech_s: float = setting(60.0, gt=0.0, le=36000.0)  # a baseline needs some speech: 0 s divides by zero
    interruption_overlap_s: float = setting(1.0, gt=0.0, le=60.0)
    silence_after_question_s: float = setting(4.0, gt=0.0, le=600.0)
    # Transcripts often lose the question mark, and a rep who stops for 4 s has handed over the
    # floor anyway: by default such a silence counts, with confidence 0.6 when no question was heard.
    long_silence_requires_question: bool = setting(False)
    quick_reply_s: float = setting(0.5, ge=0.0, le=10.0)
    # A gap after the buyer stops above this is "the rep paused before replying" (handled well).
    considered_pause_s: float = setting(1.0, ge=0.0, le=10.0)
    talk_ratio_max: float = setting(0.65, ge=0.0, le=1.0)
    talk_ratio_window_s: float = setting(180.0, gt=0.0, le=36000.0)
    talk_ratio_min_elapsed_s: float = setting(300.0, ge=0.0, le=36000.0)
    questions_target_min: int = setting(11, ge=0, le=1000)
    questions_target_max: int = setting(14, ge=0, le=1000)
    expected_call_s: float = setting(1800.0, gt=0.0, le=36000.0)
    few_questions_check_s: float = setting(600.0, ge=0.0, le=36000.0)

    RULES = (
        rule("questions_target_min <= questions_target_max", "questions_target_min", "questions_target_max",
             holds=lambda lo, hi: lo <= hi),
        rule("few_questions_check_s <= expected_call_s", "few_questions_check_s", "expected_call_s",
             holds=lambda check, call: check <= call),
        rule("quick_reply_s <= considered_pause_s", "quick_reply_s", "considered_pause_s", holds=lambda a, b: a <= b),
        rule("monologue_gap_s < monologue_cue_s", "monologue_gap_s", "monologue_cue_s", holds=lambda a, b: a < b),
    )  # fmt: skip


@dataclass(frozen=True)
class DeliveryConfig(Checked):
    # A natural pause: the rep silent this long (or the buyer holding the floor). Reps breathe
    # between sentences of one line: at a natural pace (calibration set v2, reps at ~155-185 wpm)
    # those pauses run to ~0.75 s. On its 40 calls 0.3 s gave 2 of 75 tips inside a rep's line (one
    # in such a pause, one in a line's soft tail), 0.5 s 1, 0.7 s none, 0.9 and 1.2 s none either;
    # tips 75 and median latency 0.51 -> 0.53 s. Confirmed on dev (0 of 12, latency 0.53 -> 0.42 s)
    # and dev-kokoro (0 of 14, unchanged).
    pause_s: float = setting(0.7, ge=0.0, le=10.0)
    # A ready tip waits this long, the rep still silent, before it goes: a rep who starts to talk the
    # instant a tip is ready is heard by the onset guard (firmware/coach/onset.py) a frame or two
    # later, and would be cued mid-word. On the first calibration set (v1, reps at 229 wpm), 0 ->
    # 0.04 s took the tips given while the rep speaks from 1 of 71 to 0 (that tip went out 10 ms
    # after the rep's onset), for 0.08 s more median latency (0.47 -> 0.55 s); 0.02-0.06 s all did
    # it, at 0.1 and 0.2 s a tip held that long met another rep onset. On v2 with pause_s 0.7 it
    # changes no tip (latency 0.47 -> 0.53 s). Dev and dev-kokoro: 0 of 13 and 0 of 14 either way.
    settle_s: float = setting(0.04, ge=0.0, le=2.0)
    min_gap_s: float = setting(30.0, ge=0.0, le=3600.0)
    max_tips_per_call: int = setting(8, ge=0, le=1000)
    tip_ttl_s: float = setting(10.0, gt=0.0, le=600.0)
    # A tip about what the buyer said is stale once the rep has answered for this long.
    reply_stale_s: float = setting(3.0, gt=0.0, le=60.0)
    # How long a snooze lasts when the control names no length (the button's hold).
    snooze_s: float = setting(300.0, gt=0.0, le=MAX_SNOOZE_S)
    # The intent classifier already falls back to "other" below its calibrated threshold; this
    # is an extra bar for the coach on top of that, off by default so one calibration decides.
    min_confidence: float = setting(0.0, ge=0.0, le=1.0)
    # An early (partial) transcript is a fragment, so its intent must be surer before it
    # raises a moment; the final transcript can still raise the moment at min_confidence.
    partial_min_confidence: float = setting(0.6, ge=0.0, le=1.0)
    # Which cues the rep wants; any combination of led, haptic, phone.
    channels: tuple[Channel, ...] = setting(("led", "haptic", "phone"), unique=True)


@dataclass(frozen=True)
class ReadingConfig(Checked):
    """How buyer transcripts become moments (see firmware/coach/reading.py)."""

    # A partial this sure raises its moment alone; below it, two consecutive readings of the same
    # segment must agree (each at least delivery.partial_min_confidence). 0.75 since the fragment
    # bar below (chosen with it on the same grid; 0.85 found two fewer right moments there).
    partial_sure_confidence: float = setting(0.75, ge=0.0, le=1.0)
    # Buyer segments this close, with no rep speech between them, are one turn: read together,
    # and each moment kind raised once.
    turn_max_gap_s: float = setting(3.0, ge=0.0, le=60.0)
    # A rep line inviting a moment kind (a playbook play's invited_by phrases, or a proposed next
    # step) multiplies that kind's probability in the buyer's answer by this; 1 turns it off.
    context_prior_weight: float = setting(3.0, gt=0.0, le=100.0)
    # The answer must start within this long of the rep's line.
    context_window_s: float = setting(8.0, ge=0.0, le=600.0)
    # The coach's own bar on top of the classifier's cut-off (see firmware/coach/reading.py): the
    # least probability for a final transcript read alone and for the turn read whole, and the least
    # lead of the winning kind over the runner-up (other included; needs the classifier's scores).
    # Calibrated with intent model 1.4.0 on 32 synthetic calls of held-out sentences, never the dev
    # calls (tools/render_calls.py, then tools/calibrate_coach.py): a whole turn read at under 0.50
    # was right 3 times in 21, hence the turn bar (F1 there 0.471 -> 0.476). The final and margin
    # bars stay off: there, cutting finals under 0.40 (right 30 % of the time) traded recall for
    # precision at an unchanged F1; a bar chosen for a 0.75-F1 coach (finals 0.40, turns 0.50)
    # did not carry over to the dev calls (recall 0.85 -> 0.56, precision 0.70 -> 0.83), where
    # the model is right more often at a given confidence; the margin added nothing.
    # Re-checked on the 40 distinct calibration conversations (tools/render_calibration.py
    # --per-script 1, recorded pipeline output, tools/calibrate_coach.py, with the competitor rule
    # below in place): the turn bar changes nothing there (its turns are one sentence, rarely cut
    # in two); finals under 0.35 were right 2 times in 16 (F1 0.834 -> 0.856), and a 0.1 margin did
    # the same. Not taken: it did not carry over again. The dev calls' buyers speak in long turns
    # that the VAD cuts into segments, read alone at lower confidence yet right: dev recall 0.815
    # -> 0.667 (F1 0.815 -> 0.783), dev-kokoro 0.926 -> 0.852 (F1 0.820 -> 0.793). A bar for a
    # final read alone needs calibration calls whose turns are cut like that.
    final_min_confidence: float = setting(0.0, ge=0.0, le=1.0)
    turn_min_confidence: float = setting(0.5, ge=0.0, le=1.0)
    min_margin: float = setting(0.0, ge=0.0, le=1.0)
    # A final transcript of at most this many words, read alone, is a fragment: it must reach
    # fragment_min_confidence (0 words turns this off). Calibrated the same way, on the grid with the
    # bars above (tools/calibrate_coach.py, 32 calls of seed 1): there, finals of at most six words
    # read alone raised 21 moments, 2 of them right (and those two the turn read whole raised as
    # well); this bar removed 19 of the 146 false moments and no right one. With it and
    # partial_sure_confidence 0.75, F1 went 0.476 -> 0.495 there, and 0.428 -> 0.441 on 16 fresh
    # calls (seed 2) that took no part in choosing either. Re-checked on the 40 distinct calibration
    # conversations (with the competitor rule below): off 0.833, 6 words at 0.8 0.834 (3 false
    # moments and 1 right one removed); 0.6 or 8 words moved one moment: kept. partial_sure_confidence
    # likewise: 0.65 raised 2 more right and 2 more false moments (F1 0.834 -> 0.840), 0.85-0.95
    # changed nothing: kept at 0.75.
    fragment_max_words: int = setting(6, ge=0, le=1000)
    fragment_min_confidence: float = setting(0.8, ge=0.0, le=1.0)
    # The most moments one buyer turn raises, the first come (see firmware/coach/reading.py).
    # 10 (every intent kind once) is no cap: off, because the calibration calls cannot choose it.
    # Each of their buyer lines is a turn of its own holding at most one labelled moment
    # (tools/render_calibration.py alternates rep and buyer lines), so a cap there only ever removes
    # false moments; yet it removed none (F1 0.818 at 1, 2 and 10), since their one-sentence turns
    # rarely read as two kinds. On the dev calls, whose long turns the VAD cuts into segments, the
    # first come was as often the wrong kind as the right one: a cap of 1 removed 3 moments on dev,
    # all 3 right (F1 0.815 -> 0.745), and 6 on dev-kokoro, 3 of them right (F1 0.820 -> 0.800),
    # and dev-kokoro holds a buyer turn with two real moments (a buying signal, then a timing
    # objection). Tips are spaced delivery.min_gap_s (30 s) apart anyway, so a second moment in a
    # turn seldom reaches the rep; what it changes is the recap and the reply watch.
    turn_max_moments: int = setting(10, ge=1, le=100)
    # A competitor mention must name something: a playbook battlecard (in any case), a word written
    # like a product's name (capitalised mid-sentence, or CamelCase; not "I", a weekday, a month or
    # a short acronym), or a word the recogniser does not know whole (firmware/speech/vocabulary.py:
    # Whisper spells "Tidewell", "Pipedrive", "Zendesk" from pieces, "pounds" and "facilities" not),
    # unless the reading is at least competitor_sure_confidence sure. Chosen on the 40 calibration
    # conversations (recorded pipeline output, tools/calibrate_coach.py), from off (F1 0.818, 157
    # right of 196 raised): capitals alone removed 9 false moments and 6 right ones (names opening
    # a sentence, "Pipedrive pitched us...", or written "pipe drive", F1 0.818); the recogniser's
    # whole words kept 3 of those 6 (F1 0.828); and with the bar at 0.5-0.8, 2 more ("pipe drive",
    # read at 0.83 and 0.96): 9 false removed, 1 right (F1 0.834, precision 0.801 -> 0.839,
    # recall 0.835 -> 0.830). 0.8, the narrowest bar that keeps them (0.9 lost one). Confirmed:
    # dev-kokoro F1 0.820 -> 0.847 (its two "competitor" readings of a budget and of "our facilities
    # guys already walk the buildings" removed, no right one); dev F1 0.815 -> 0.792 (one right
    # moment lost, raised from a transcript in which espeak's "Zendesk" had become "then the topic is").
    # Re-checked on calibration set v2 (the same buyers, reps at a natural pace): off 0.833, on
    # 0.848 (precision 0.816 -> 0.850), bar 0.9 0.845; a turn cap of 1 0.850, within noise.
    competitor_needs_name: bool = setting(True)
    competitor_sure_confidence: float = setting(0.8, ge=0.0, le=1.0)
    # The call's opening (greetings, small talk): the buyer's first opening_turns turns raise a
    # moment only at opening_min_confidence or more. Counted in turns, not seconds: openings run
    # from five seconds to a minute, but the buyer's first answer is a greeting in nearly every call.
    # On the calibration calls, 1 turn at 0.9: F1 0.819 -> 0.836 (precision 0.785 -> 0.817, no right
    # moment lost); 2 turns scored 0.873 there, but only because every calibration call opens with
    # two buyer turns of small talk: the dev calls' buyers name their pain in their second turn, and
    # 2 turns lost two of those (dev recall 0.815 -> 0.741). Confirmed with 1 turn: dev F1 0.786 ->
    # 0.815 (precision 0.759 -> 0.815), dev-kokoro unchanged at 0.820. Re-checked on the 40 distinct
    # calibration conversations (with the competitor rule): 0 -> 1 turn F1 0.817 -> 0.834 (8 false
    # moments removed, no right one; any bar from 0.7 to 1.0 alike); 2 turns 0.867, for the same
    # free reason as before, so still 1.
    opening_turns: int = setting(1, ge=0, le=100)
    opening_min_confidence: float = setting(0.9, ge=0.0, le=1.0)


@dataclass(frozen=True)
class MasteryConfig(Checked):
    # Net "handled well without a tip" score at which a moment's cooldown stretches, then stops.
    fade_at: int = setting(3, ge=1, le=1000)
    off_at: int = setting(6, ge=1, le=1000)
    fade_cooldown_factor: float = setting(3.0, ge=1.0, le=100.0)
    # Where each skill level starts on that score.
    start_new: int = setting(0, ge=0, le=1000)
    start_developing: int = setting(2, ge=0, le=1000)
    start_experienced: int = setting(4, ge=0, le=1000)

    RULES = (
        rule("fade_at <= off_at", "fade_at", "off_at", holds=lambda a, b: a <= b),
        rule("start_new <= start_developing <= start_experienced", "start_new", "start_developing", "start_experienced",
             holds=lambda a, b, c: a <= b <= c),
    )  # fmt: skip


@dataclass(frozen=True)
class CoachConfig(Checked):
    # Unset: the model store's current "playbook" (followed between calls). A path: that file, fixed.
    playbook: Path | None = setting(None, nonempty=True, optional=True)
    skill_level: SkillLevel = setting("new")
    dynamics: DynamicsConfig = field(default_factory=DynamicsConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    reading: ReadingConfig = field(default_factory=ReadingConfig)
    mastery: MasteryConfig = field(default_factory=MasteryConfig)
