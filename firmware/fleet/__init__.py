"""fleet subsystem."""
