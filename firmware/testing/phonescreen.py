"""The rep's phone screen in the terminal, from the very bytes the box would send it.

:class:`PhoneMirror` is a ``PhoneSink`` for replays and the demo. Each event goes the link's way
up to the radio: the phone allowlist (``firmware.outward``), the JSON payload, a sealed DATA
frame of a real session, 20-byte chunks. The chunks are then read back as the app reads them
(reassembled, authenticated, decrypted, parsed) and the screen the app would show is drawn.
What reached the phone is kept (``delivered``) for the HTML report. Dev-only: the device's link
is :class:`firmware.phone.link.PhoneLink`.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from typing import IO, Any

from firmware.phone import protocol as p

WIDTH = 44


@dataclass
class PhoneScreen:
    tips: dict[str, dict[str, Any]] = field(default_factory=dict)
    status: dict[str, Any] | None = None
    recap: dict[str, Any] | None = None
    last_result: dict[str, Any] | None = None

    def apply(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        now = event.get("t")
        if isinstance(now, (int, float)) and now > 0:  # the app hides a tip ttl_s after it arrived
            for tip_id, tip in list(self.tips.items()):
                if float(tip.get("t", 0.0)) + float(tip.get("ttl_s", 0.0)) < now:
                    del self.tips[tip_id]
        if kind == "tip" and isinstance(event.get("tip_id"), str):
            self.tips.setdefault(event["tip_id"], event)
            while len(self.tips) > 2:  # the app keeps the newest two on screen
                self.tips.pop(next(iter(self.tips)))
        elif kind == "status":
            self.status = event
            if not event.get("call_active"):
                self.tips.clear()
        elif kind == "recap":
            self.recap = event
        elif kind == "control_result":
            self.last_result = event
            if event.get("action") == "dismiss" and event.get("outcome") == "applied":
                self.tips.pop(str(event.get("tip_id")), None)

    def render(self, width: int = WIDTH) -> list[str]:
        inner = width - 4
        rows: list[str] = []

        def row(text: str = "") -> None:
            words, line = text.split(" "), ""
            for word in words:
                if line and len(line) + 1 + len(word) > inner:
                    rows.append(line)
                    line = word
                else:
                    line = f"{line} {word}" if line else word
            rows.append(line[:inner])

        st = self.status or {}
        if st.get("call_active"):
            state = "muted" if st.get("muted") else "snoozed" if st.get("snoozed_until_s") is not None else "coaching"
            row(f"Call #{st.get('call_id', '?')} - {state}")
        else:
            row("No call")
        for tip in self.tips.values():
            row()
            row(f"> {str(tip.get('moment', '')).replace('_', ' ')}")
            row(str(tip.get("text", "")))
        if self.recap:
            r = self.recap
            row()
            row(f"Recap: {r.get('duration_s', 0):.0f} s, {r.get('questions_asked', 0)} questions")
            if r.get("went_well"):
                row(f"+ {r['went_well']}")
            if r.get("try_next"):
                row(f"> {r['try_next']}")
        if self.last_result and self.last_result.get("outcome") != "applied":
            row()
            row(f"({self.last_result.get('action')}: {self.last_result.get('reason') or self.last_result.get('outcome')})")
        top = "+" + "-" * (width - 2) + "+"
        return [top, *(f"| {r.ljust(inner)} |" for r in rows), top]


class PhoneMirror:
    """A ``PhoneSink``: ``send`` is called on the coach's thread; it is quick (no I/O unless ``out``)."""

    def __init__(self, out: IO[str] | None = None, payload_size: int = p.MIN_CHUNK) -> None:
        from firmware.phone.secret import BoxSecret

        self._lock = threading.Lock()
        self._out = out
        self._payload = payload_size
        secret = BoxSecret(1, os.urandom(p.SECRET_LEN))
        box_nonce, phone_nonce = p.new_nonce(), p.new_nonce()
        reply = p.phone_hello(secret.secret, 1, box_nonce, phone_nonce)
        self._box = p.Session.box_side(secret.secret, 1, box_nonce, reply)
        self._phone = p.Session.phone_side(secret.secret, 1, box_nonce, phone_nonce)
        self._reassembler = p.Reassembler()
        self._tag = 0
        self.screen = PhoneScreen()
        self.delivered: list[dict[str, Any]] = []
        self.chunks = 0
        self.bytes = 0

    def send(self, event: Any) -> None:
        from firmware.outward import outward

        wire = outward("phone", event)
        if wire is None:
            return
        with self._lock:
            frame = self._box.seal(p.Kind.DATA, p.event_payload(wire))
            self._tag = (self._tag + 1) % 256
            chunks = p.chunk(frame, self._payload, self._tag)
            self.chunks += len(chunks)
            self.bytes += sum(map(len, chunks))
            received = None
            for c in chunks:  # the app's side, from the bytes alone
                whole = self._reassembler.push(c)
                if whole is not None:
                    received = json.loads(self._phone.open(whole).plaintext)
            assert received is not None
            self.delivered.append(received)
            self.screen.apply(received)
            if self._out is not None:
                self._draw(received, len(chunks), sum(map(len, chunks)))

    def _draw(self, event: dict[str, Any], n_chunks: int, n_bytes: int) -> None:
        assert self._out is not None
        head = f"PHONE  {event.get('type')} arrived: {n_chunks} chunks, {n_bytes} bytes over BLE"
        print(head, file=self._out)
        for line in self.screen.render():
            print("       " + line, file=self._out)
        self._out.flush()
