"""coach subsystem: conversation dynamics, moments, the playbook, tip delivery, mastery, recap.

Entry points (imported from their modules, so ``import firmware`` stays light):

- :class:`firmware.coach.build.CoachBox` - lives as long as the process: playbook, mastery store,
  LED/haptic cues and the button (gpiozero, ``pin_factory=``), phone sink. ``start_call(publish,
  intent=None, call_id=None)`` returns a per-call :class:`firmware.coach.coach.Coach`;
  ``end_call(t)`` returns its RecapEvent; ``control(Control) -> ControlResult`` is the one way in
  for the rep's controls (button, phone, cli), during a call or between calls; ``status()``.
- :class:`firmware.coach.session.CoachedSession` - wraps a ``runtime.CallSession`` with the coach
  attached (what ``parallax replay`` and ``parallax run`` feed).
- :class:`firmware.coach.coach.Coach` - ``on_audio(CallFrame)`` (optional, before the frame's
  activity: the rep-onset guard), ``on_activity(FrameActivity)``, ``on_event(Event)`` (utterances),
  ``end_call(t) -> RecapEvent``, ``summary_fields()``, ``handle_control()`` (CoachBox's),
  ``set_channels()``, ``set_persona()``. Publishes Moment, Tip, Control, ControlResult, Status and
  RecapEvent events; sends Tip, Status, RecapEvent and ControlResult to the phone
  (:class:`firmware.coach.sinks.PhoneSink`).
- :mod:`firmware.coach.report` renders a call's HTML timeline. Driving a coach from a call's ground
  truth and scoring it are dev tools: :mod:`firmware.testing.truth`, :mod:`firmware.testing.evaluate`.
"""
