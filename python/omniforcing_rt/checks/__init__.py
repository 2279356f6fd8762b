"""Fixture checks: run our implementation on reference fixtures and report max |diff| per key."""
