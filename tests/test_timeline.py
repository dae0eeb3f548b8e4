"""The replay timeline shows the rep's controls, what became of them, and the coach's status."""

from __future__ import annotations

import io

from firmware.events import Control, ControlResult, RecapEvent, Status, Tip
from firmware.replay import TimelinePrinter


def test_a_control_exchange_reads_as_one() -> None:
    out = io.StringIO()
    printer = TimelinePrinter(out)
    for event in [
        Tip(t=62.0, tip_id="0a1b2c3d-7", call_id=3, moment="objection_price", text="Ask what they compare it with.",
            priority=80, ttl_s=10.0, cues=("led", "phone")),
        Control(t=63.5, action="dismiss", source="phone", tip_id="0a1b2c3d-7", call_id=3),
        ControlResult(t=63.5, action="dismiss", source="phone", outcome="applied", tip_id="0a1b2c3d-7", call_id=3),
        Control(t=70.0, action="snooze", source="button"),
        ControlResult(t=70.0, action="snooze", source="button", outcome="applied", call_id=3),
        Status(t=70.0, call_active=True, call_id=3, snoozed_until_s=370.0),
        Control(t=71.0, action="skill", source="cli", value="expert"),
        ControlResult(t=71.0, action="skill", source="cli", outcome="refused",
                      reason="unknown skill level 'expert' (choose from new, developing, experienced)"),
        Status(t=75.0, call_active=True, call_id=3, muted=True),
        Status(t=300.0, call_active=False, call_id=3),
        RecapEvent(t=300.0, call_id=3, duration_s=300.0, talk_ratio_rep=0.42, longest_monologue_s=31.0,
                   questions_asked=4, went_well="you let the buyer finish", try_next="ask a few more open questions"),
        Control(t=0.0, action="persona", source="phone", value="finance"),
        ControlResult(t=0.0, action="persona", source="phone", outcome="next_call"),
    ]:
        printer(event)
    assert out.getvalue().splitlines() == [
        "[01:02.00] TIP    objection_price: Ask what they compare it with. [led, phone] #0a1b2c3d-7",
        "[01:03.50] CONTROL dismiss from the phone (tip 0a1b2c3d-7)",
        "[01:03.50]   -> dismiss applied",
        "[01:10.00] CONTROL snooze from the button",
        "[01:10.00]   -> snooze applied",
        "[01:10.00] STATUS call #3: snoozed until 06:10.00",
        "[01:11.00] CONTROL skill from the command line (value expert)",
        "[01:11.00]   -> skill refused: unknown skill level 'expert' (choose from new, developing, experienced)",
        "[01:15.00] STATUS call #3: muted for the call",
        "[05:00.00] STATUS call #3 over",
        "[05:00.00] RECAP  for the rep's phone",
        "             You talked 42% of the time",
        "             Longest monologue 31 s",
        "             Questions asked: 4",
        "             Went well: you let the buyer finish",
        "             Try next: ask a few more open questions",
        "[00:00.00] CONTROL persona from the phone (value finance)",
        "[00:00.00]   -> persona kept for the next call",
    ]
