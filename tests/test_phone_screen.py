"""The demo's phone screen is drawn from the bytes the box would send; the report lists what reached the phone."""

from __future__ import annotations

import io
from pathlib import Path

from firmware.coach.report import render_report, write_report
from firmware.events import ControlResult, RecapEvent, Status, Tip, Utterance
from firmware.outward import outward
from firmware.testing.phonescreen import PhoneMirror

TIP = Tip(t=12.5, tip_id="5eed0001-3", call_id=4, moment="price_objection", text="Ask what budget they had in mind.",
          priority=2, ttl_s=20.0, cues=("led", "phone"))  # fmt: skip


def test_the_mirror_decodes_exactly_the_allowlisted_event_from_20_byte_chunks() -> None:
    out = io.StringIO()
    mirror = PhoneMirror(out)
    mirror.send(Utterance(t=1.0, speaker="buyer", start=0.0, end=1.0, text="we have no budget"))
    mirror.send(Status(t=2.0, call_active=True, call_id=4))
    mirror.send(TIP)
    assert mirror.delivered == [outward("phone", Status(t=2.0, call_active=True, call_id=4)), outward("phone", TIP)]
    assert mirror.chunks >= 10 and mirror.bytes <= mirror.chunks * 20
    screen = out.getvalue()
    assert "Ask what budget they had in mind." in screen and "Call #4 - coaching" in screen
    assert "no budget" not in screen  # the utterance never left the box
    mirror.send(ControlResult(t=14.0, action="dismiss", source="phone", outcome="applied", tip_id="5eed0001-3", call_id=4))
    assert "Ask what budget" not in "\n".join(mirror.screen.render())
    mirror.send(RecapEvent(t=60.0, call_id=4, duration_s=60.0, longest_monologue_s=20.0, questions_asked=5,
                           went_well="You asked about budget early", try_next="Pause after objections"))  # fmt: skip
    assert "Recap: 60 s, 5 questions" in "\n".join(mirror.screen.render())


def test_the_report_shows_what_reached_the_phone(tmp_path: Path) -> None:
    utterance = Utterance(t=1.0, speaker="buyer", start=0.0, end=1.0, text="we have no budget")
    html_page = render_report([utterance, TIP, Status(t=13.0, call_active=True, call_id=4, muted=True)])
    section = html_page.split("What reached the phone")[1]
    assert "Ask what budget they had in mind." in section and "call active, muted" in section
    assert "no budget" not in section
    mirror = PhoneMirror()
    mirror.send(TIP)
    path = tmp_path / "r.html"
    write_report([utterance, TIP], path, phone=mirror.delivered)
    assert "1 events over Bluetooth LE" in path.read_text() and [p.name for p in tmp_path.iterdir()] == ["r.html"]


def test_the_demo_draws_the_phone_and_the_report_lists_what_reached_it(
    demo_call: Path, models_dir: Path, tmp_path: Path
) -> None:
    """`parallax demo`'s path: a replay with the mirror as the box's phone."""
    import argparse

    from firmware.cli import replay

    out = io.StringIO()
    mirror = PhoneMirror(out)
    report = tmp_path / "call.html"
    args = argparse.Namespace(config=None, call=demo_call, channels="0,1", speed="max", json_path=None,
                              report=report, phone=mirror)  # fmt: skip
    assert replay.run(args) == 0
    tips = [e for e in mirror.delivered if e["type"] == "tip"]
    assert tips and [e["type"] for e in mirror.delivered][-1] == "status"
    assert tips[0]["text"] in out.getvalue() and "PHONE  tip arrived" in out.getvalue()
    page = report.read_text().split("What reached the phone")[1]
    assert tips[0]["text"] in page and f"{len(mirror.delivered)} events over Bluetooth LE" in page
