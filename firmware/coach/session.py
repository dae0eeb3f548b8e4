"""A call session with the coach attached: what ``parallax replay`` and live mode feed.

Wraps :class:`firmware.runtime.CallSession`: each frame's audio
reaches the coach's onset guard before the pipeline turns it into activity; utterances reach the
coach over the bus; at the end the pipeline drains first, so the last utterances count, then the
coach's figures join the call summary.
"""

from __future__ import annotations

from firmware.audio.frames import CallFrame, FrameActivity
from firmware.bus import EventBus
from firmware.coach.build import CoachBox
from firmware.coach.coach import Coach
from firmware.events import Summary
from firmware.runtime import CallSession


class CoachedSession:
    def __init__(self, session: CallSession, box: CoachBox, bus: EventBus, call_id: int | None = None) -> None:
        """``call_id``: the bridge's id for the call (None: the box numbers calls itself)."""
        self.session = session
        self._box = box
        self.coach: Coach = box.start_call(
            bus.publish, intent=session.engines.intent, call_id=call_id, playbook=session.engines.playbook
        )
        self._unsubscribe = bus.subscribe(self.coach.on_event)
        session.on_activity(self._on_activity)

    @property
    def now(self) -> float:
        return self.session.now

    def feed(self, frame: CallFrame) -> None:
        self.coach.on_audio(frame)
        self.session.feed(frame)

    def end_call(self, extra: dict[str, object] | None = None) -> Summary:
        self.session.drain()  # the last utterances reach the coach before its recap
        self._box.end_call(self.session.now)
        return self.session.end_call({**(extra or {}), **self.coach.summary_fields()})

    def close(self) -> None:
        self._unsubscribe()
        try:
            if not self.coach.ended:  # the call broke off before end_call: the next call needs the box
                self._box.end_call(self.coach.now)
        finally:
            self.session.close()

    def __enter__(self) -> CoachedSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _on_activity(self, activity: FrameActivity) -> None:
        self.coach.on_activity(activity)
