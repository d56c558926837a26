"""Frozen fit results: parameters with intervals, predictions, JSON round trip, reports."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
from scipy import stats

from scalelab.errors import DataError, LawError
from scalelab.laws import make_law
from scalelab.laws.base import Law

__all__ = ["Estimate", "FitResult", "Prediction"]

SCHEMA = "scalelab.fit/1"


@dataclass(frozen=True)
class Estimate:
    """A fitted parameter (or derived quantity) with its standard error and interval."""

    name: str
    value: float
    stderr: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    fixed: bool = False
    tied: str | None = None
    at_bound: bool = False

    @property
    def ci(self) -> tuple[float, float]:
        return (self.ci_low, self.ci_high)

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "stderr": _num(self.stderr),
            "ci_low": _num(self.ci_low),
            "ci_high": _num(self.ci_high),
            "fixed": self.fixed,
            "tied": self.tied,
            "at_bound": self.at_bound,
        }

    @classmethod
    def from_dict(cls, name: str, d: Mapping[str, Any]) -> Estimate:
        return cls(
            name=name,
            value=float(d["value"]),
            stderr=_float(d.get("stderr")),
            ci_low=_float(d.get("ci_low")),
            ci_high=_float(d.get("ci_high")),
            fixed=bool(d.get("fixed", False)),
            tied=d.get("tied"),
            at_bound=bool(d.get("at_bound", False)),
        )


@dataclass(frozen=True)
class Prediction:
    """Predicted values with a ``coverage`` interval ``[lower, upper]`` (arrays of shape (n,))."""

    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    coverage: float
    method: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean": self.mean.tolist(),
            "lower": self.lower.tolist(),
            "upper": self.upper.tolist(),
            "coverage": self.coverage,
            "method": self.method,
        }


@dataclass(frozen=True)
class FitResult:
    """The outcome of :func:`scalelab.fit`. Immutable; save with :meth:`save`.

    ``params`` maps each parameter name to an :class:`Estimate`. Intervals are bootstrap
    percentiles when the fit was bootstrapped, Wald intervals from the Hessian covariance
    otherwise (``interval_method`` says which); log-scaled parameters get their Wald interval
    in log space, so it stays positive.
    """

    law: Law
    params: Mapping[str, Estimate]
    objective: float
    n_points: int
    n_free: int
    converged: bool
    message: str
    seconds: float
    coverage: float
    interval_method: str
    inputs: Mapping[str, str]
    y: str
    stats: Mapping[str, float]
    derived: Mapping[str, Estimate]
    options: Mapping[str, Any]
    data: Mapping[str, Any]
    provenance: Mapping[str, Any]
    free: tuple[str, ...] = ()
    covariance: np.ndarray | None = field(default=None, repr=False)
    bootstrap: np.ndarray | None = field(default=None, repr=False)  # (B, P) natural units
    bootstrap_failed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        object.__setattr__(self, "derived", MappingProxyType(dict(self.derived)))

    # ----------------------------------------------------------------- values
    @property
    def theta(self) -> np.ndarray:
        """Best-fit parameter vector in the law's order (natural units)."""
        return np.array([self.params[n].value for n in self.law.param_names])

    def values(self) -> dict[str, float]:
        return {n: e.value for n, e in self.params.items()}

    # ----------------------------------------------------------------- prediction
    def predict(self, X: Mapping[str, Any] | None = None, /, *, coverage: float | None = None, **inputs: Any) -> Prediction:
        """Predict at new inputs, with an interval from parameter uncertainty.

        ``result.predict(N=70e9, D=1.4e12)`` or ``result.predict({"N": [...], "D": [...]})``.
        With a bootstrap the interval is the percentile interval of the resampled fits'
        predictions; otherwise it uses the delta method on the Hessian covariance (in log
        space for positive laws). The interval covers parameter uncertainty only, not the
        scatter of individual runs around the law.
        """
        cov_level = self.coverage if coverage is None else float(coverage)
        if not 0 < cov_level < 1:
            raise DataError(f"coverage must be between 0 and 1, got {cov_level}")
        pts = self.law.prepare_inputs({**dict(X or {}), **inputs})
        bad = [k for k, v in pts.items() if not np.all(np.isfinite(v))]
        if bad:
            raise DataError(f"prediction inputs {bad} must be finite numbers")
        mean = self.law.evaluate(self.theta, pts)
        alpha = (1 - cov_level) / 2
        if self.bootstrap is not None and len(self.bootstrap):
            with np.errstate(all="ignore"):
                draws = self.law.evaluate(self.bootstrap, pts)
            lower, upper = np.nanquantile(draws, [alpha, 1 - alpha], axis=0)
            return Prediction(mean, lower, upper, cov_level, "bootstrap-percentile")
        lower, upper = self._delta_interval(pts, mean, stats.norm.ppf(1 - alpha))
        return Prediction(mean, lower, upper, cov_level, "delta-method")

    def _delta_interval(self, pts: Mapping[str, np.ndarray], mean: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
        if self.covariance is None or not np.all(np.isfinite(self.covariance)):
            nan = np.full_like(mean, np.nan)
            return nan, nan
        from scalelab.fit.parametrization import Parametrization

        param = self._parametrization(Parametrization)
        u = param.to_internal(self.theta)[None]
        h = 1e-6 * np.maximum(1.0, np.abs(u[0]))
        log_space = self.law.positive
        f = self.law.log_evaluate if log_space else self.law.evaluate
        grads = []
        for k in range(u.shape[1]):
            du = np.zeros_like(u)
            du[0, k] = h[k]
            grads.append((f(param.to_natural(u + du), pts)[0] - f(param.to_natural(u - du), pts)[0]) / (2 * h[k]))
        g = np.stack(grads, axis=-1)  # (n, F)
        sd = np.sqrt(np.einsum("nf,fg,ng->n", g, self.covariance, g))
        if log_space:
            return mean * np.exp(-z * sd), mean * np.exp(z * sd)
        return mean - z * sd, mean + z * sd

    def _parametrization(self, cls: Any) -> Any:
        opts = self.options
        return cls(
            self.law,
            fixed=dict(opts.get("fixed", {})),
            tied=dict(opts.get("tied", {})),
            bounds={k: tuple(v) for k, v in opts.get("bounds", {}).items()},
        )

    def compute_optimal(self, compute: float, *, coverage: float | None = None) -> dict[str, Estimate]:
        """Compute-optimal N, D, tokens per parameter and loss at budget ``compute`` (C = 6ND)."""
        if not (np.isfinite(compute) and compute > 0):
            raise DataError(f"compute must be a positive number of FLOPs, got {compute}")
        cov_level = self.coverage if coverage is None else float(coverage)
        best = self.law.compute_optimal(self.theta[None], compute)
        best = {**best, "tokens_per_param": best["D"] / best["N"]}
        draws = None
        if self.bootstrap is not None and len(self.bootstrap):
            draws = self.law.compute_optimal(self.bootstrap, compute)
            draws = {**draws, "tokens_per_param": draws["D"] / draws["N"]}
        out = {}
        alpha = (1 - cov_level) / 2
        for key, val in best.items():
            lo = hi = math.nan
            if draws is not None:
                lo, hi = _draw_quantiles(np.asarray(draws[key], dtype=float).ravel(), alpha)
            out[key] = Estimate(key, float(np.ravel(val)[0]), ci_low=lo, ci_high=hi)
        return out

    # ----------------------------------------------------------------- reports
    def table(self) -> str:
        """A plain-text parameter table with intervals."""
        pct = f"{100 * self.coverage:g}%"
        head = f"{'param':<10} {'value':>13} {'stderr':>11} {pct + ' low':>13} {pct + ' high':>13}"
        lines = [head, "-" * len(head)]
        for e in list(self.params.values()) + list(self.derived.values()):
            note = " (fixed)" if e.fixed else f" (= {e.tied})" if e.tied else " (at bound)" if e.at_bound else ""
            lines.append(
                f"{e.name:<10} {_fmt(e.value):>13} {_fmt(e.stderr):>11} {_fmt(e.ci_low):>13} {_fmt(e.ci_high):>13}{note}"
            )
        return "\n".join(lines)

    def report(self) -> str:
        """A human-readable report: law, data, optimum, intervals and fit statistics."""
        s = self.stats
        opts = self.options
        loss = opts.get("loss", "?")
        if "delta" in opts:
            loss += f" (delta {opts['delta']:g})"
        lines = [
            f"law        {self.law.name}: {self.law.equation}",
            f"           {self.law.reference}",
            f"data       {self.data.get('source', '?')}: {self.n_points} points"
            + (f" where {opts['where']}" if opts.get("where") else ""),
            f"objective  {loss} on {opts.get('space', '?')} residuals, summed = {self.objective:.8g}",
            f"starts     {opts.get('n_starts', '?')} ({opts.get('starts', '?')}); "
            f"{'converged' if self.converged else 'NOT converged'}: {self.message}",
            f"intervals  {self.interval_method}"
            + (f", {len(self.bootstrap)} resamples" if self.bootstrap is not None else "")
            + (f" ({self.bootstrap_failed} did not converge)" if self.bootstrap_failed else ""),
            "",
            self.table(),
            "",
            f"fit        RMSE {s['rmse']:.4g}  MAPE {100 * s['mape']:.3g}%  max |err| {s['max_abs_error']:.4g}  "
            f"AIC {s['aic']:.2f}  BIC {s['bic']:.2f}   ({self.seconds:.2f} s)",
        ]
        return "\n".join(lines)

    def lmfit_report(self) -> str:
        """The parameter section of an lmfit fit report (values, stderr, correlations)."""
        import lmfit

        pars = lmfit.Parameters()
        for e in self.params.values():
            pars.add(e.name, value=e.value, vary=not (e.fixed or e.tied))
            pars[e.name].stderr = None if math.isnan(e.stderr) else e.stderr
        return lmfit.fit_report(pars)

    # ----------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "law": self.law.name,
            "law_config": self.law.config(),
            "equation": self.law.equation,
            "reference": self.law.reference,
            "inputs": dict(self.inputs),
            "y": self.y,
            "params": {n: e.to_dict() for n, e in self.params.items()},
            "derived": {n: e.to_dict() for n, e in self.derived.items()},
            "objective": self.objective,
            "n_points": self.n_points,
            "n_free": self.n_free,
            "converged": self.converged,
            "message": self.message,
            "seconds": self.seconds,
            "coverage": self.coverage,
            "interval_method": self.interval_method,
            "stats": dict(self.stats),
            "options": _jsonable(dict(self.options)),
            "data": _jsonable(dict(self.data)),
            "provenance": _jsonable(dict(self.provenance)),
            "free": list(self.free),
            "covariance": None if self.covariance is None else _nan_list(self.covariance),
            "bootstrap": None
            if self.bootstrap is None
            else {"samples": _nan_list(self.bootstrap), "failed": self.bootstrap_failed},
        }

    def save(self, path: str | Path) -> None:
        """Write the result as JSON (``json.dumps`` with no NaN: missing values are null)."""
        from scalelab._io import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FitResult:
        try:
            if d.get("schema") != SCHEMA:
                raise DataError(f"not a scalelab fit (schema {d.get('schema')!r}, expected {SCHEMA!r})")
            law = make_law(d["law"], **d.get("law_config", {}))
            boot = d.get("bootstrap")
            cov = d.get("covariance")
            return cls(
                law=law,
                params={n: Estimate.from_dict(n, e) for n, e in d["params"].items()},
                objective=float(d["objective"]),
                n_points=int(d["n_points"]),
                n_free=int(d["n_free"]),
                converged=bool(d["converged"]),
                message=str(d["message"]),
                seconds=float(d["seconds"]),
                coverage=float(d["coverage"]),
                interval_method=str(d["interval_method"]),
                inputs=dict(d["inputs"]),
                y=str(d["y"]),
                stats=dict(d["stats"]),
                derived={n: Estimate.from_dict(n, e) for n, e in d.get("derived", {}).items()},
                options=dict(d["options"]),
                data=dict(d["data"]),
                provenance=dict(d["provenance"]),
                free=tuple(d.get("free", ())),
                covariance=None if cov is None else np.array(cov, dtype=float),
                bootstrap=None if boot is None else np.array(boot["samples"], dtype=float).reshape(-1, law.n_params),
                bootstrap_failed=0 if boot is None else int(boot.get("failed", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, (DataError, LawError)):
                raise
            raise DataError(f"malformed fit JSON: {type(exc).__name__}: {exc}") from None

    @classmethod
    def load(cls, path: str | Path) -> FitResult:
        """Read a result written by :meth:`save` (or ``scalelab fit --json``)."""
        p = Path(path)
        try:
            text = p.read_text()
        except FileNotFoundError:
            raise DataError(f"fit file {str(p)!r} not found; write one with `scalelab fit ... --json {p}`") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot read fit file {str(p)!r}: {exc}") from None
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{str(p)!r} is not valid JSON (line {exc.lineno}): is it a `scalelab fit --json` file?") from None
        if not isinstance(d, dict):
            raise DataError(f"{str(p)!r} is not a scalelab fit file")
        return cls.from_dict(d)


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _float(x: Any) -> float:
    return math.nan if x is None else float(x)


def _nan_list(a: np.ndarray) -> list[Any]:
    return np.where(np.isfinite(a), a, np.nan).astype(object).tolist() if a.size == 0 else [
        _nan_list(row) if np.ndim(row) else _num(float(row)) for row in a
    ]


def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.floating, float)):
        return _num(float(x))
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def _fmt(x: float) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:.6g}"


def _draw_quantiles(values: np.ndarray, alpha: float) -> tuple[float, float]:
    """The ``alpha`` and ``1 - alpha`` quantiles of bootstrap draws, NaNs dropped.

    A draw may be infinite (a refit whose optimum runs off to infinite N or D). Interpolating
    next to it is ``inf - inf``; that quantile is then the infinite end itself, not NaN, and
    numpy's warning about it is not raised to the caller.
    """
    values = values[~np.isnan(values)]
    if values.size == 0:
        return math.nan, math.nan
    with np.errstate(invalid="ignore"):
        q = np.quantile(values, [alpha, 1 - alpha])
    out = []
    for v, rank in zip(q, (alpha, 1 - alpha), strict=True):
        if np.isnan(v):  # interpolated between an infinite draw and its neighbour
            v = np.sort(values)[min(values.size - 1, int(np.ceil(rank * (values.size - 1))))]
        out.append(float(v))
    return out[0], out[1]

