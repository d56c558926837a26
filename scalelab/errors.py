"""Exceptions that scalelab raises for problems a user can fix.

Every error carries a one-line message that names the problem and the fix. The CLI prints
``error: <message>`` and exits non-zero for any :class:`ScalelabError`, without a traceback.
"""

from __future__ import annotations

__all__ = ["DataError", "FitError", "LawError", "ScalelabError"]


class ScalelabError(Exception):
    """Base class for errors caused by input a user can correct."""


class DataError(ScalelabError, ValueError):
    """The data cannot be read or does not fit what was asked (columns, values, filters)."""


class LawError(ScalelabError, ValueError):
    """An unknown law, an unknown parameter, or an invalid parameter setting."""


class FitError(ScalelabError, RuntimeError):
    """A fit did not converge or produced no usable optimum."""
