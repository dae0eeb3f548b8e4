"""speech subsystem."""
