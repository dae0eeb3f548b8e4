"""intent subsystem."""
