"""Map between a law's natural parameters and the free vector the optimiser moves.

The optimiser works on ``u``: one entry per *free* parameter, in log units for the law's
log-scaled parameters (``A``, ``B``, ``E`` in Chinchilla). Fixed parameters keep their value;
tied parameters follow an expression of the others (``beta = alpha``), evaluated with lmfit's
expression engine (asteval) so the same ``expr`` strings lmfit accepts work here, batched.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scalelab.errors import LawError
from scalelab.laws.base import Law

__all__ = ["Parametrization", "law_parameters"]


def law_parameters(law: Law, values: Mapping[str, float] | None = None) -> Any:
    """An ``lmfit.Parameters`` for ``law``: bounds from the law, values from ``values``.

    Edit it (``vary=False``, ``expr="alpha"``, ``min``/``max``) and pass it to
    :func:`scalelab.fit` as ``params=`` to fix, tie or bound parameters the lmfit way.
    """
    import lmfit

    params = lmfit.Parameters()
    values = dict(values or {})
    for p in law.params:
        lo, hi = p.init
        default = math.sqrt(lo * hi) if p.log and lo > 0 else (lo + hi) / 2
        params.add(p.name, value=float(values.get(p.name, default)), min=p.lower, max=p.upper)
    return params


@dataclass(frozen=True)
class Parametrization:
    """Free/fixed/tied structure of a law's parameters, with bounds and transforms."""

    law: Law
    fixed: Mapping[str, float] = field(default_factory=dict)
    tied: Mapping[str, str] = field(default_factory=dict)
    bounds: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = self.law.param_names
        for kind, mapping in (("--fix", self.fixed), ("--tie", self.tied), ("--bound", self.bounds)):
            unknown = [k for k in mapping if k not in names]
            if unknown:
                raise LawError(
                    f"{kind}: unknown parameter(s) {unknown} for law {self.law.name!r}; "
                    f"its parameters are {', '.join(names)}"
                )
        both = set(self.fixed) & set(self.tied)
        if both:
            raise LawError(f"parameter(s) {sorted(both)} cannot be both fixed and tied")
        for name, expr in self.tied.items():
            refs = self._references(expr)
            if name in refs or any(r in self.tied for r in refs):
                raise LawError(
                    f"tie {name} = {expr!r} must refer only to free or fixed parameters"
                )
        for name, (lo, hi) in self.bounds.items():
            p = self._param(name)
            if not lo < hi:
                raise LawError(f"--bound {name}: lower bound {lo} must be below upper bound {hi}")
            if p.log and lo < 0:
                raise LawError(f"--bound {name}: {name} is positive, so its lower bound must be >= 0")
        for name, value in self.fixed.items():
            lo, hi = self.natural_bounds(name)
            if not (np.isfinite(value) and lo <= value <= hi):
                raise LawError(f"--fix {name}={value}: value must be finite and within [{lo}, {hi}]")
        if not self.free:
            raise LawError("every parameter is fixed or tied: leave at least one free to fit")

    @classmethod
    def from_lmfit(cls, law: Law, params: Any) -> Parametrization:
        """Read fixed values (``vary=False``), ties (``expr``) and bounds from lmfit Parameters."""
        fixed: dict[str, float] = {}
        tied: dict[str, str] = {}
        bounds: dict[str, tuple[float, float]] = {}
        for name, par in params.items():
            if par.expr:
                tied[name] = par.expr
            elif not par.vary:
                fixed[name] = float(par.value)
            if name in law.param_names:
                lo, hi = law.params[law.param_names.index(name)].lower, law.params[law.param_names.index(name)].upper
                if (par.min, par.max) != (lo, hi):
                    bounds[name] = (float(par.min), float(par.max))
        return cls(law, fixed=fixed, tied=tied, bounds=bounds)

    # ----------------------------------------------------------------- structure
    def _param(self, name: str) -> Any:
        return self.law.params[self.law.param_names.index(name)]

    def _references(self, expr: str) -> set[str]:
        import ast

        try:
            tree = ast.parse(expr, mode="eval")
        except SyntaxError:
            raise LawError(f"tie expression {expr!r} is not valid Python syntax") from None
        refs = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        unknown = refs - set(self.law.param_names) - {"exp", "log", "sqrt"}
        if unknown:
            raise LawError(f"tie expression {expr!r} refers to unknown name(s) {sorted(unknown)}")
        return refs & set(self.law.param_names)

    @property
    def free(self) -> tuple[str, ...]:
        return tuple(n for n in self.law.param_names if n not in self.fixed and n not in self.tied)

    @property
    def n_free(self) -> int:
        return len(self.free)

    def natural_bounds(self, name: str) -> tuple[float, float]:
        p = self._param(name)
        return self.bounds.get(name, (p.lower, p.upper))

    def is_log(self, name: str) -> bool:
        return bool(self._param(name).log)

    def internal_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Bounds of ``u`` (log units for log parameters)."""
        lo, hi = [], []
        for name in self.free:
            a, b = self.natural_bounds(name)
            if self.is_log(name):
                a = math.log(a) if a > 0 else -np.inf
                b = math.log(b) if np.isfinite(b) else np.inf
            lo.append(a)
            hi.append(b)
        return np.array(lo), np.array(hi)

    def options(self) -> dict[str, Any]:
        return {
            "fixed": dict(self.fixed),
            "tied": dict(self.tied),
            "bounds": {k: list(v) for k, v in self.bounds.items()},
        }

    # ----------------------------------------------------------------- transforms
    def to_internal(self, theta: np.ndarray) -> np.ndarray:
        """Natural parameter vectors (..., P) -> free internal vectors (..., F)."""
        theta = np.asarray(theta, dtype=float)
        cols = []
        for name in self.free:
            v = theta[..., self.law.param_names.index(name)]
            if self.is_log(name):
                with np.errstate(divide="ignore"):
                    v = np.log(v)
            cols.append(v)
        return np.stack(cols, axis=-1)

    def to_natural(self, u: np.ndarray) -> np.ndarray:
        """Free internal vectors (..., F) -> natural parameter vectors (..., P)."""
        u = np.asarray(u, dtype=float)
        batch = u.shape[:-1]
        values: dict[str, np.ndarray] = {}
        for k, name in enumerate(self.free):
            v = u[..., k]
            if self.is_log(name):
                with np.errstate(over="ignore"):
                    values[name] = np.exp(v)
            else:
                values[name] = v.copy()
        for name, value in self.fixed.items():
            values[name] = np.full(batch, float(value))
        for name, expr in self.tied.items():
            values[name] = self._eval_tie(expr, values, batch)
        return np.stack([values[n] for n in self.law.param_names], axis=-1)

    def _eval_tie(self, expr: str, values: Mapping[str, np.ndarray], batch: tuple[int, ...]) -> np.ndarray:
        if expr.strip() in values:
            return np.array(values[expr.strip()], dtype=float)
        from asteval import Interpreter

        interp = Interpreter(minimal=True, use_numpy=True)
        for name, v in values.items():
            interp.symtable[name] = v
        interp.symtable.update({"exp": np.exp, "log": np.log, "sqrt": np.sqrt})
        out = interp.eval(expr, show_errors=False, raise_errors=False)
        if interp.error or out is None:
            raise LawError(f"tie expression {expr!r} could not be evaluated")
        return np.broadcast_to(np.asarray(out, dtype=float), batch).copy()

    def dtheta_du(self, u: np.ndarray) -> np.ndarray:
        """Jacobian of natural parameters with respect to ``u``, shape (..., P, F)."""
        u = np.asarray(u, dtype=float)
        theta = self.to_natural(u)
        names = self.law.param_names
        out = np.zeros((*u.shape[:-1], len(names), self.n_free))
        for k, name in enumerate(self.free):
            i = names.index(name)
            out[..., i, k] = theta[..., i] if self.is_log(name) else 1.0
        if self.tied:
            # ties: central differences of the (cheap) expressions, chained through free params
            for k in range(self.n_free):
                h = 1e-6 * np.maximum(1.0, np.abs(u[..., k]))
                du = np.zeros_like(u)
                du[..., k] = h
                diff = (self.to_natural(u + du) - self.to_natural(u - du)) / (2 * h[..., None])
                for name in self.tied:
                    i = names.index(name)
                    out[..., i, k] = diff[..., i]
        return out
