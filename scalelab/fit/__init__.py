"""The fitting engine: objectives, vectorised multi-start, polishing, uncertainty, results."""

from scalelab.fit.engine import fit, make_starts
from scalelab.fit.objectives import Asymmetric, Huber, Objective, SquaredError, make_objective
from scalelab.fit.parametrization import Parametrization, law_parameters
from scalelab.fit.result import Estimate, FitResult, Prediction

__all__ = [
    "Asymmetric",
    "Estimate",
    "FitResult",
    "Huber",
    "Objective",
    "Parametrization",
    "Prediction",
    "SquaredError",
    "fit",
    "law_parameters",
    "make_objective",
    "make_starts",
]


def _make_module_callable() -> None:
    """Let ``scalelab.fit(...)`` call :func:`fit` although ``scalelab.fit`` is this package.

    Importing the subpackage binds ``scalelab.fit`` to the module, so the module itself is
    made callable (forwarding to :func:`scalelab.fit.engine.fit`) instead of renaming either.
    """
    import sys
    import types

    class _CallableModule(types.ModuleType):
        def __call__(self, *args: object, **kwargs: object) -> FitResult:
            return fit(*args, **kwargs)  # type: ignore[arg-type]

    sys.modules[__name__].__class__ = _CallableModule


_make_module_callable()
