"""provision subsystem."""
