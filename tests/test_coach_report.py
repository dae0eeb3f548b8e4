"""The HTML report: one self-contained file a person reads at a glance."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from coach_support import Run, make_config, synthetic_call

from firmware.coach.report import write_report
from firmware.events import Event, Summary, Utterance
from firmware.testing.truth import stream


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_report_shows_speech_lanes_moments_tips_and_cues(tmp_path: Path) -> None:
    call = synthetic_call()
    run = Run(make_config(tmp_path / "state"))
    events: list[Event] = []
    try:
        # The report sees what the bus carries: utterances, then the coach's moments and tips.
        run.coach._publish = events.append
        for item in stream(call):
            if isinstance(item, Utterance):
                events.append(item)
                run.coach.on_event(item)
            else:
                run.coach.on_activity(item)
        run.coach.end_call(run.coach.now)
        events.append(Summary(t=run.coach.now, duration_s=run.coach.now, cpu_s=0.1, extra=run.coach.summary_fields()))
    finally:
        run.close()
    path = tmp_path / "call.html"
    write_report(events, path, title="Synthetic <call>")
    text = path.read_text(encoding="utf-8")
    parser = _Collect()
    parser.feed(text)
    tags = parser.tags
    # Self-contained: no scripts, nothing fetched from elsewhere.
    assert not [t for t, a in tags if t in ("script", "link", "img", "iframe")]
    assert not re.search(r"(src|href)=\"https?:", text)
    assert "Synthetic &lt;call&gt;" in text
    rects = [a for t, a in tags if t == "rect"]
    utterances = [e for e in events if isinstance(e, Utterance)]
    dynamics = [e for e in events if e.type == "moment" and getattr(e, "speaker") == "rep"]
    assert len(rects) == len(utterances) + len(dynamics)
    tips = [e for e in events if e.type == "tip"]
    assert tips
    for tip in tips:
        assert tip.text in text  # type: ignore[attr-defined]
    assert len([t for t, a in tags if t == "circle"]) == sum("led" in t.cues for t in tips)  # type: ignore[attr-defined]
    for lane in ("Rep", "Buyer", "Moments", "Tips", "Cues"):
        assert f">{lane}</text>" in text
    assert "talk_ratio_rep" in text and "longest_monologue_s" in text
