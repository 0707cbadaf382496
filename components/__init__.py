"""mtrec's TFX components. ValidatedStatistics is importable from here because its type name is its import path
(see components/artifacts.py)."""

from components.artifacts import ValidatedStatistics

__all__ = ["ValidatedStatistics"]
