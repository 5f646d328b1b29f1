"""The task suites: procedural generators with difficulty levels and reference solutions."""
