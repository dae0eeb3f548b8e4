"""Test rigs, evaluation and demo rendering: code the device never imports.

Like gpiozero shipping its mock pins beside the real ones, these live in the package so the
tests, the ``tools/`` benchmarks and the dev subcommands (``parallax demo``, ``parallax coach
simulate``) share one copy, but no module in the device's rooms (audio, speech, intent, coach,
cues, runtime) imports them; ``tests/test_light_imports.py`` checks that.

- :mod:`~firmware.testing.paced` - clocked PCMs for unpaced ALSA plugins and simulated time.
- :mod:`~firmware.testing.testbed` - the real-ALSA test harness (file/null PCMs, asoundrc).
- :mod:`~firmware.testing.truth` - drive a coach from a call's ground-truth JSON.
- :mod:`~firmware.testing.evaluate` - score a coach's moments and tips against the truth.
- :mod:`~firmware.testing.dataset` - intent training-data readers and the fixed held-out split.
- :mod:`~firmware.testing.metrics` - classification figures (precision/recall/F1, confusion).
- :mod:`~firmware.testing.spoken` - numbers as spoken words, for scoring recogniser output.
- :mod:`~firmware.testing.render` - render a scripted call to audio, voiced by Kokoro-82M or
  espeak-ng (``demo_call.toml`` is the ``parallax demo`` script).
- :mod:`~firmware.testing.kokoro` - Kokoro-82M natural voices: pinned assets from PyPI and npm, synthesis.
- :mod:`~firmware.testing.corpora` - the evaluation corpora by name (calibration, dev, dev-kokoro).
- :mod:`~firmware.testing.fakebluez` - a fake BlueZ on a private dbus-daemon, for bleak end to end.
"""
