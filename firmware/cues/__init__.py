"""cues subsystem."""
