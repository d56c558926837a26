"""The law specification shared by every scaling-law family.

A :class:`Law` is pure maths: parameter names and bounds, a data-driven guess, starting grids
and vectorised evaluation. It never fits and never does I/O; :mod:`scalelab.fit` does the
fitting. Every method works on a *batch* of parameter vectors so the engine can optimise
thousands of starts (or bootstrap resamples) at once.

Shapes used throughout::

    theta : (..., P)   natural-space parameter values, in the order of ``law.param_names``
    X     : {input: (n,)} the law's inputs, each a float array of the n data points
    out   : (..., n)   predictions for every parameter vector and every point
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from scalelab.errors import LawError

__all__ = ["Law", "Param", "as_theta", "geometric_mean"]

Inputs = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class Param:
    """One parameter of a law.

    Parameters
    ----------
    name : str
        Name used in results, JSON and the CLI (``--fix alpha=0.34``).
    lower, upper : float
        Hard bounds in natural units; infinite when unbounded.
    log : bool
        Optimise ``log(value)`` instead of ``value``. Used for positive scale parameters
        (``A``, ``B``, ``E`` in Chinchilla) whose plausible values span many decades.
    init : (float, float)
        A plausible range in natural units, from which random starts are drawn (log-uniform
        when ``log``). It must lie inside the bounds.
    description : str
        One line saying what the parameter means.
    """

    name: str
    lower: float = -math.inf
    upper: float = math.inf
    log: bool = False
    init: tuple[float, float] = (0.0, 1.0)
    description: str = ""

    def __post_init__(self) -> None:
        if self.log and self.lower < 0:
            raise LawError(f"parameter {self.name!r} is log-scaled, so its lower bound must be >= 0")
        lo, hi = self.init
        if not (self.lower <= lo <= hi <= self.upper):
            raise LawError(f"parameter {self.name!r}: init range {self.init} must lie in its bounds")


def as_theta(theta: Any, n_params: int) -> np.ndarray:
    """Return ``theta`` as a float array whose last axis has ``n_params`` entries."""
    arr = np.asarray(theta, dtype=float)
    if arr.ndim == 0 or arr.shape[-1] != n_params:
        raise LawError(f"expected parameter vectors with {n_params} entries, got shape {arr.shape}")
    return arr


def geometric_mean(x: np.ndarray) -> float:
    """Geometric mean of positive values (used by data-driven guesses)."""
    x = np.asarray(x, dtype=float)
    return float(np.exp(np.mean(np.log(x))))


class Law:
    """Base class of a scaling law ``y = f(inputs; theta)``.

    Subclasses set the class attributes, implement :meth:`evaluate` and :meth:`guess`, and may
    override :meth:`log_evaluate` (for numerical stability), :meth:`log_jacobian` (analytic
    derivatives make the vectorised engine several times faster), :meth:`start_grid`,
    :meth:`derived` and :meth:`compute_optimal`.
    """

    #: registry name, used by ``scalelab fit --law NAME``
    name: ClassVar[str] = ""
    #: the equation in plain text
    equation: ClassVar[str] = ""
    #: paper(s) the law comes from
    reference: ClassVar[str] = ""
    #: whether predictions are strictly positive (so log residuals are defined)
    positive: ClassVar[bool] = True

    # ----------------------------------------------------------------- description
    @property
    def inputs(self) -> tuple[str, ...]:
        """Names of the independent variables, e.g. ``("N", "D")``."""
        raise NotImplementedError

    @property
    def params(self) -> tuple[Param, ...]:
        """The parameters, in the order used by ``theta``."""
        raise NotImplementedError

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @property
    def n_params(self) -> int:
        return len(self.params)

    def config(self) -> dict[str, Any]:
        """Constructor keyword arguments, so ``make_law(name, **config)`` rebuilds this law."""
        return {}

    def describe(self) -> str:
        """Name, equation and reference, one per line."""
        return f"{self.name}: {self.equation}\n  {self.reference}"

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"

    # ----------------------------------------------------------------- evaluation
    def evaluate(self, theta: np.ndarray, X: Inputs) -> np.ndarray:
        """Predictions, shape ``theta.shape[:-1] + (n,)``."""
        raise NotImplementedError

    def log_evaluate(self, theta: np.ndarray, X: Inputs) -> np.ndarray:
        """``log`` of the predictions; override for a numerically stable form."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(self.evaluate(theta, X))

    def log_jacobian(self, theta: np.ndarray, X: Inputs) -> np.ndarray | None:
        """``d log f / d theta`` (natural units), shape ``theta.shape[:-1] + (n, P)``.

        Return ``None`` (the default) to let the engine use finite differences.
        """
        return None

    def jacobian(self, theta: np.ndarray, X: Inputs) -> np.ndarray | None:
        """``d f / d theta`` (natural units), shape ``theta.shape[:-1] + (n, P)``, or ``None``."""
        jl = self.log_jacobian(theta, X)
        if jl is None:
            return None
        return jl * self.evaluate(theta, X)[..., None]

    def __call__(self, X: Inputs | None = None, /, **values: Any) -> np.ndarray:
        """Evaluate with named inputs and parameters: ``law(N=1e9, D=2e10, E=1.8, ...)``."""
        X = dict(X or {})
        for key in list(values):
            if key in self.inputs:
                X[key] = values.pop(key)
        missing = [p for p in self.param_names if p not in values]
        unknown = [k for k in values if k not in self.param_names]
        if unknown:
            raise LawError(f"{self.name}: unknown parameter(s) {unknown}; expected {list(self.param_names)}")
        if missing:
            raise LawError(f"{self.name}: missing parameter(s) {missing}")
        theta = np.array([float(values[p]) for p in self.param_names])
        return self.evaluate(theta, self.prepare_inputs(X))

    def prepare_inputs(self, X: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Check that every input is present and return them as 1-D float arrays."""
        missing = [k for k in self.inputs if k not in X]
        if missing:
            raise LawError(f"{self.name} needs input(s) {missing}; got {sorted(X)}")
        arrays = {k: np.atleast_1d(np.asarray(X[k], dtype=float)) for k in self.inputs}
        shapes = {a.shape for a in arrays.values()}
        if len(shapes) > 1:
            arrays = dict(zip(arrays, np.broadcast_arrays(*arrays.values()), strict=True))
        return {k: np.ravel(v) for k, v in arrays.items()}

    # ----------------------------------------------------------------- starts
    def guess(self, X: Inputs, y: np.ndarray) -> np.ndarray:
        """A data-driven starting point (natural units), shape ``(P,)``."""
        raise NotImplementedError

    def start_grid(self, X: Inputs, y: np.ndarray) -> np.ndarray:
        """A data-aware grid of starting points, shape ``(S, P)``.

        The default spreads each parameter around :meth:`guess` over its ``init`` range (three
        values per parameter, the guess included). Laws with a published grid override this.
        """
        g = self.clip(self.guess(X, y))
        axes = []
        for value, p in zip(g, self.params, strict=True):
            lo, hi = p.init
            if p.log:
                vals = {value, math.sqrt(lo * value) if lo > 0 else value / 10, math.sqrt(hi * value)}
            else:
                vals = {value, (lo + value) / 2, (hi + value) / 2}
            axes.append(sorted(vals))
        mesh = np.meshgrid(*axes, indexing="ij")
        return self.clip(np.stack([m.ravel() for m in mesh], axis=-1))

    def clip(self, theta: np.ndarray) -> np.ndarray:
        """Clip parameter vectors into the bounds (strictly positive for log parameters)."""
        lo = np.array([max(p.lower, 1e-300) if p.log else p.lower for p in self.params])
        hi = np.array([p.upper for p in self.params])
        return np.clip(np.asarray(theta, dtype=float), lo, hi)

    # ----------------------------------------------------------------- derived quantities
    def derived(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Quantities computed from the parameters (e.g. allocation exponents), batched."""
        return {}

    def compute_optimal(self, theta: np.ndarray, compute: float | np.ndarray) -> dict[str, np.ndarray]:
        """Compute-optimal ``N`` and ``D`` for a budget ``C = 6 N D`` (laws with inputs N, D)."""
        raise LawError(
            f"law {self.name!r} has no compute-optimal allocation; use a law with inputs N and D "
            "(chinchilla, kaplan, data_constrained)"
        )
