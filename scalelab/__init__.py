"""scalelab: predict how training will go before paying for it.

The top-level names are imported lazily so ``import scalelab`` (and the CLI) start fast.
"""

from __future__ import annotations

from typing import Any

from scalelab._version import __version__

__all__ = ["DataError", "FitError", "FitResult", "LawError", "ScalelabError", "__version__", "fit", "laws"]


def __getattr__(name: str) -> Any:
    if name == "fit":  # the subpackage; calling it runs scalelab.fit.engine.fit
        import importlib

        return importlib.import_module("scalelab.fit")
    if name == "FitResult":
        from scalelab.fit import FitResult

        return FitResult
    if name in ("DataError", "FitError", "LawError", "ScalelabError"):
        from scalelab import errors

        return getattr(errors, name)
    if name in ("laws", "datasets", "store"):
        import importlib

        return importlib.import_module(f"scalelab.{name}")
    raise AttributeError(f"module 'scalelab' has no attribute {name!r}")
