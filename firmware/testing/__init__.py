"""Test rigs and fakes: never imported by device code."""
