"""A one-file HTML timeline of a replayed call: two speech lanes, moments, tips and cues.

Self-contained (inline CSS and SVG, no scripts, nothing fetched), so it opens anywhere and can be
attached to a ticket. Hover a bar or marker for its details.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from firmware.cues.spec import COLOURS
from firmware.events import Event, Moment, Summary, Tip, Utterance
from firmware.intent.labels import INTENT_KINDS

PX_PER_S = 8
LEFT = 90
LANE_H = 34
_LANES = ("Rep", "Buyer", "Moments", "Tips", "Cues")
_FAMILY_COLOUR = {
    "objection": "amber",
    "competitor_mention": "purple",
    "buying_signal": "green",
    "next_step": "green",
    "pain_point": "blue",
    "product_question": "cyan",
}


def moment_colour(kind: str) -> str:
    family = "objection" if kind.startswith("objection_") else kind
    name = _FAMILY_COLOUR.get(family, "red" if kind == "interruption" else "yellow")
    r, g, b = COLOURS[name]
    return f"rgb({int(r * 230)},{int(g * 200)},{int(b * 230)})"


def render_report(events: Iterable[Event], title: str = "Call replay", phone: list[dict[str, Any]] | None = None) -> str:
    """``phone``: the events as the phone decoded them (``parallax demo``); None: the events the
    box sends its phone, through the phone allowlist, as published on the bus."""
    events = list(events)
    utterances = [e for e in events if isinstance(e, Utterance)]
    moments = [e for e in events if isinstance(e, Moment)]
    tips = [e for e in events if isinstance(e, Tip)]
    summary = next((e for e in events if isinstance(e, Summary)), None)
    end = max([e.t for e in events] + [u.end for u in utterances] + [1.0])
    width = LEFT + int(end * PX_PER_S) + 40
    height = LANE_H * len(_LANES) + 40
    svg: list[str] = [f'<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">']
    svg += _axis(end, height)
    for i, name in enumerate(_LANES):
        y = 20 + i * LANE_H
        svg.append(f'<text x="8" y="{y + 21}" class="lane">{name}</text>')
        svg.append(f'<line x1="{LEFT}" y1="{y + LANE_H}" x2="{width}" y2="{y + LANE_H}" class="sep"/>')
    for u in utterances:
        lane = 0 if u.speaker == "rep" else 1
        label = f"{u.speaker} {u.start:.1f}-{u.end:.1f} s" + (f" [{u.intent} {u.confidence:.2f}]" if u.intent else "")
        fill = "#4a78c2" if u.speaker == "rep" else "#3f9b6b"
        svg.append(_bar(u.start, u.end, lane, fill, f"{label}\n{u.text}", 0.85))
    for m in moments:
        lane = 2
        if m.kind in INTENT_KINDS:
            x = _x(m.end)
            y = 20 + lane * LANE_H + 17
            svg.append(
                f'<path d="M{x} {y - 9} L{x + 7} {y} L{x} {y + 9} L{x - 7} {y} Z" fill="{moment_colour(m.kind)}" '
                f'stroke="#333"><title>{_esc(_moment_text(m))}</title></path>'
            )
        else:
            svg.append(_bar(m.start, m.end, lane, moment_colour(m.kind), _moment_text(m), 0.55, hatch=True))
            svg.append(f'<text x="{_x(m.start) + 3}" y="{20 + lane * LANE_H + 21}" class="small">{_esc(m.kind)}</text>')
    for tip in tips:
        x = _x(tip.t)
        y = 20 + 3 * LANE_H
        svg.append(f'<line x1="{x}" y1="{y + 4}" x2="{x}" y2="{y + LANE_H - 4}" class="tip"/>')
        svg.append(
            f'<text x="{x + 4}" y="{y + 21}" class="tiptext"><title>{_esc(tip.moment)} at {tip.t:.1f} s</title>'
            f"{_esc(tip.text)}</text>"
        )
        svg += _cue_marks(tip, x, 20 + 4 * LANE_H)
    svg.append("</svg>")
    if phone is None:
        phone = _to_phone(events)
    return _page(title, summary, moments, tips, "\n".join(svg), phone)


def write_report(events: Iterable[Event], path: Path, title: str = "Call replay",
                 phone: list[dict[str, Any]] | None = None) -> None:  # fmt: skip
    """Written atomically (a temp file beside it, then renamed), mode 0644; a failed write raises
    :class:`~firmware.errors.StorageError` and leaves ``path`` as it was."""
    from firmware.atomic import write_text_atomic

    write_text_atomic(Path(path), render_report(events, title, phone), perms=0o644)


_PHONE_TYPES = ("tip", "status", "recap", "control_result")


def _to_phone(events: list[Event]) -> list[dict[str, Any]]:
    from firmware.outward import outward

    out = []
    for e in events:
        if e.type in _PHONE_TYPES:
            wire = outward("phone", e)
            if wire is not None:
                out.append(wire)
    return out


def _phone_row(e: dict[str, Any]) -> str:
    kind = str(e.get("type"))
    if kind == "tip":
        what = f"{e.get('moment', '')}: {e.get('text', '')} (priority {e.get('priority', '')}, shown {e.get('ttl_s', '')} s)"
    elif kind == "status":
        state = "call active" if e.get("call_active") else "no call"
        state += ", muted" if e.get("muted") else ""
        state += f", snoozed until {e['snoozed_until_s']:.0f} s" if isinstance(e.get("snoozed_until_s"), (int, float)) else ""
        what = state
    elif kind == "recap":
        what = ", ".join(f"{k} {v}" for k, v in e.items() if k not in ("type", "v", "t", "call_id"))
    else:
        what = ", ".join(f"{k} {v}" for k, v in e.items() if k not in ("type", "v", "t"))
    t = e.get("t")
    return f"<tr><td>{t:.1f} s</td><td>{_esc(kind)}</td><td>{_esc(what)}</td></tr>" if isinstance(t, (int, float)) else ""


def _x(t: float) -> int:
    return LEFT + int(round(t * PX_PER_S))


def _bar(start: float, end: float, lane: int, fill: str, tooltip: str, opacity: float, hatch: bool = False) -> str:
    x, w = _x(start), max(2, int((end - start) * PX_PER_S))
    y = 20 + lane * LANE_H + 6
    stroke = ' stroke="#333" stroke-dasharray="3 2"' if hatch else ""
    return (
        f'<rect x="{x}" y="{y}" width="{w}" height="{LANE_H - 12}" rx="3" fill="{fill}" fill-opacity="{opacity}"{stroke}>'
        f"<title>{_esc(tooltip)}</title></rect>"
    )


def _cue_marks(tip: Tip, x: int, y: int) -> list[str]:
    out = []
    if "led" in tip.cues:
        out.append(f'<circle cx="{x + 6}" cy="{y + 17}" r="6" fill="{moment_colour(tip.moment)}" stroke="#333"><title>LED</title></circle>')
    labels = [name for name in ("haptic", "phone") if name in tip.cues]
    if labels:
        out.append(f'<text x="{x + 15}" y="{y + 21}" class="small">{" + ".join(labels)}</text>')
    return out


def _axis(end: float, height: int) -> list[str]:
    out = []
    step = 10
    for s in range(0, int(end) + step, step):
        x = _x(s)
        out.append(f'<line x1="{x}" y1="14" x2="{x}" y2="{height - 6}" class="grid"/>')
        out.append(f'<text x="{x + 2}" y="12" class="small">{s // 60}:{s % 60:02d}</text>')
    return out


def _moment_text(m: Moment) -> str:
    return f"{m.kind} ({m.speaker}) {m.start:.1f}-{m.end:.1f} s, confidence {m.confidence:.2f}, raised at {m.t:.1f} s"


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _figures(summary: Summary | None) -> Mapping[str, object]:
    if summary is None:
        return {}
    return {"duration_s": summary.duration_s, **summary.extra}


def _page(title: str, summary: Summary | None, moments: list[Moment], tips: list[Tip], svg: str,
          phone: list[dict[str, Any]]) -> str:  # fmt: skip
    phone_rows = "".join(_phone_row(e) for e in phone)
    figures = "".join(
        f"<tr><th>{_esc(str(k))}</th><td>{_esc(f'{v:.3g}' if isinstance(v, float) else str(v))}</td></tr>"
        for k, v in _figures(summary).items()
    )
    tip_rows = "".join(
        f"<tr><td>{t.t:.1f} s</td><td>{_esc(t.moment)}</td><td>{_esc(t.text)}</td><td>{_esc(', '.join(t.cues))}</td></tr>"
        for t in tips
    )
    kinds: dict[str, int] = {}
    for m in moments:
        kinds[m.kind] = kinds.get(m.kind, 0) + 1
    legend = " ".join(
        f'<span class="chip" style="background:{moment_colour(k)}">{_esc(k)} &times;{n}</span>' for k, n in sorted(kinds.items())
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 16px; color: #222; }}
.scroll {{ overflow-x: auto; border: 1px solid #ccc; background: #fafafa; }}
.lane {{ font-weight: 600; font-size: 13px; }} .small {{ font-size: 11px; fill: #444; }}
.tiptext {{ font-size: 11px; fill: #8a2a00; }} .tip {{ stroke: #d24a00; stroke-width: 2; }}
.grid {{ stroke: #e4e4e4; }} .sep {{ stroke: #ddd; }}
table {{ border-collapse: collapse; margin: 8px 0 16px; }} th, td {{ text-align: left; padding: 2px 10px 2px 0; }}
.chip {{ display: inline-block; padding: 1px 6px; margin: 2px; border-radius: 8px; font-size: 12px; }}
</style></head><body>
<h1>{_esc(title)}</h1>
<p>{len(moments)} moments, {len(tips)} tips. {legend}</p>
<div class="scroll">{svg}</div>
<h2>Tips</h2><table><tr><th>time</th><th>moment</th><th>text</th><th>cues</th></tr>{tip_rows}</table>
<h2>What reached the phone</h2><p>{len(phone)} events over Bluetooth LE (the phone allowlist: tips, status, recap, control results).</p>
<table class="phone"><tr><th>time</th><th>type</th><th>content</th></tr>{phone_rows}</table>
<h2>Figures</h2><table>{figures}</table>
</body></html>
"""
