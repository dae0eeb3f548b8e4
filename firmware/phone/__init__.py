"""phone subsystem."""
