"""mtrec's TFX components. The artifact types ValidatedStatistics and RetrievalEvaluation are importable from here
because their type names are their import paths (see components/artifacts.py). They load on first access, so that
importing a light module of this package (the input contract, say) does not import TFX and TFDV."""

from typing import Any

__all__ = ["RetrievalEvaluation", "ValidatedStatistics"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from components import artifacts

        return getattr(artifacts, name)
    raise AttributeError(f"module 'components' has no attribute {name!r}")
