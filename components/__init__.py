"""mtrec's TFX components. ValidatedStatistics is importable from here because its type name is its import path
(see components/artifacts.py). It loads on first access, so that importing a light module of this package (the
input contract, say) does not import TFX and TFDV."""

from typing import Any

__all__ = ["ValidatedStatistics"]


def __getattr__(name: str) -> Any:
    if name == "ValidatedStatistics":
        from components.artifacts import ValidatedStatistics

        return ValidatedStatistics
    raise AttributeError(f"module 'components' has no attribute {name!r}")
