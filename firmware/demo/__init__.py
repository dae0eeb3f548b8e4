"""The demo call: a short scripted sales call rendered to audio with espeak-ng."""
