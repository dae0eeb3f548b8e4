"""coach subsystem."""
