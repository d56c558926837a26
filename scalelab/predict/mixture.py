"""Mixture recommendation: fit a data-mixing law per target and pick the best mixture.

Input is one tidy table with a row per small run: the proportion of each training domain in
its mixture (one column per domain) and the measured target(s), e.g. the validation loss on
code, or the tokens a run needed to reach a skill threshold (lower is better in both cases).
Definitions (also in docs/predict_skills.md):

* **Law.** Per target, Ye et al.'s (2024) data-mixing law ``L(r) = c + k exp(sum_j t_j r_j)``
  (:class:`scalelab.laws.DataMixing`), fitted with :func:`scalelab.fit` (log-space squared
  error by default, the law's data-aware grid of starts).
* **Objective.** The weighted mean of the targets' predicted values, ``sum_t s_t L_t(r)``
  (target weights ``s_t`` sum to 1). It is convex in ``r``. With a single target the law
  depends on ``r`` only through ``t . r``, so the optimum is always a corner of the search
  region (as much as allowed of the most helpful domain); an interior optimum needs several
  targets that pull different ways, which is how Ye et al. use the law.
* **Region.** ``observed`` (default): each domain's share between the smallest and largest
  share any run used, so the law is not extrapolated beyond the grid along any domain;
  ``simplex``: any mixture. The minimum is found with SLSQP (proportions summing to 1).
* **Reference and gain.** ``gain = objective(reference) - objective(recommended)`` (positive:
  the recommendation is better), with the reference the uniform mixture, the best observed
  run's mixture, or given proportions. Both ends are predicted by the same fitted laws.
* **Intervals: bootstrap over runs.** Runs are resampled with replacement (whole runs when a
  run column is given and runs have several rows); every target's law is refitted on the same
  resample (from the full-data optimum, with the engine's batched refit), so the targets'
  uncertainties stay paired. The percentile interval of the gain keeps the recommended
  mixture fixed (the gain of adopting *this* mixture); the interval of each domain's share
  comes from re-optimising the mixture on every resample (how firmly the data pin it down).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from scalelab.errors import DataError, FitError

__all__ = ["MixtureRecommendation", "TargetFit", "recommend_mixture"]

REGIONS = ("observed", "simplex")
#: how far a row's proportions may sum from 1 before it is an error (rounded CSV values)
SUM_TOLERANCE = 1e-3


def _json(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (tuple, list)):
        return [_json(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _json(v) for k, v in value.items()}
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return value


@dataclass(frozen=True)
class TargetFit:
    """One target's data-mixing law and its predictions at the two mixtures compared.

    Attributes
    ----------
    target : str
        The target column.
    weight : float
        Its weight in the objective.
    params : dict of str to float
        Fitted ``c``, ``k``, ``t1 .. tK`` (``t_j`` for the j-th domain; only differences
        between the ``t_j`` are identified when proportions sum to 1).
    rmse : float
        Root-mean-square error of the fit, in target units.
    recommended, recommended_low, recommended_high : float
        Predicted target at the recommended mixture, with its bootstrap interval.
    reference, reference_low, reference_high : float
        Predicted target at the reference mixture, with its interval.
    """

    target: str
    weight: float
    params: Mapping[str, float]
    rmse: float
    recommended: float
    recommended_low: float
    recommended_high: float
    reference: float
    reference_low: float
    reference_high: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {f.name: _json(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True)
class MixtureRecommendation:
    """The mixture predicted to minimise the targets, and its gain over a reference.

    Attributes
    ----------
    domains : tuple of str
        The proportion columns.
    weights, weights_low, weights_high : dict of str to float
        Recommended proportions, and per domain the percentile interval of the re-optimised
        proportions over the bootstrap.
    objective : float
        Predicted objective (weighted mean of the targets) at the recommended mixture.
    objective_low, objective_high : float
    reference : str
        ``uniform``, ``best`` (the best observed run's mixture) or ``given``.
    reference_weights : dict of str to float
    reference_run : str or None
        The run whose mixture is the reference (``best``).
    reference_measured : float or None
        Its measured objective (``best``).
    reference_objective, reference_objective_low, reference_objective_high : float
        Predicted objective at the reference.
    gain, gain_low, gain_high : float
        ``reference - recommended`` in objective units (positive: an improvement), with its
        bootstrap interval.
    relative_gain, relative_gain_low, relative_gain_high : float
        The gain as a fraction of the reference's objective.
    targets : tuple of TargetFit
    region : str
        ``observed`` or ``simplex``.
    bounds : dict of str to (float, float)
        The search region per domain.
    at_edge : tuple of str
        Domains whose recommended share sits on the region's edge (the law would move
        further that way if allowed: the data cannot say what lies beyond).
    n_runs, n_resamples, n_failed : int
        Runs fitted, bootstrap resamples asked for, and resamples dropped because a refit
        did not converge.
    coverage : float
    seed : int
    source, fingerprint : str
    where : str or None
    notes : tuple of str
    """

    domains: tuple[str, ...]
    weights: Mapping[str, float]
    weights_low: Mapping[str, float]
    weights_high: Mapping[str, float]
    objective: float
    objective_low: float
    objective_high: float
    reference: str
    reference_weights: Mapping[str, float]
    reference_run: str | None
    reference_measured: float | None
    reference_objective: float
    reference_objective_low: float
    reference_objective_high: float
    gain: float
    gain_low: float
    gain_high: float
    relative_gain: float
    relative_gain_low: float
    relative_gain_high: float
    targets: tuple[TargetFit, ...]
    region: str
    bounds: Mapping[str, tuple[float, float]]
    at_edge: tuple[str, ...]
    n_runs: int
    n_resamples: int
    n_failed: int
    coverage: float
    seed: int
    source: str
    fingerprint: str
    where: str | None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary with schema ``scalelab.mixture/1``."""
        return {
            "schema": "scalelab.mixture/1",
            **{f.name: _json(getattr(self, f.name)) for f in fields(self)},
        }


# ------------------------------------------------------------------------------ input
def _target_weights(targets: str | Sequence[str] | Mapping[str, float]) -> dict[str, float]:
    if isinstance(targets, str):
        targets = [targets]
    if isinstance(targets, Mapping):
        raw = {str(k): float(v) for k, v in targets.items()}
    else:
        names = list(targets)
        if len(set(names)) < len(names):
            raise DataError(f"target columns repeat: {names}; name each target once")
        raw = {str(k): 1.0 for k in names}
    if not raw:
        raise DataError("no target: give at least one target column (--target loss_code)")
    bad = [k for k, v in raw.items() if not (math.isfinite(v) and v > 0)]
    if bad:
        raise DataError(f"target weights must be positive numbers; got {bad[0]}={raw[bad[0]]}")
    total = sum(raw.values())
    return {k: v / total for k, v in raw.items()}


def _proportions(table: Any, domains: Sequence[str], normalize: bool) -> np.ndarray:
    """The (n, K) proportions, checked: non-negative and summing to 1 (or rescaled)."""
    if len(domains) < 2:
        raise DataError(
            f"a mixture needs at least 2 domain columns, got {list(domains)}; "
            "give them as --domains w_code,w_text"
        )
    if len(set(domains)) < len(domains):
        raise DataError(f"domain columns repeat: {list(domains)}; name each domain once")
    W = np.stack([table.numeric(col) for col in domains], axis=1)
    rows = table.row_numbers
    neg = np.argwhere(W < 0)
    if neg.size:
        i, j = (int(v) for v in neg[0])
        raise DataError(
            f"column {domains[j]!r} has a negative proportion at row {int(rows[i])} "
            f"({W[i, j]:g}); mixture weights must be >= 0"
        )
    sums = W.sum(axis=1)
    if normalize:
        bad = np.flatnonzero(~(sums > 0))
        if bad.size:
            raise DataError(
                f"the domain columns of row {int(rows[bad[0]])} sum to {sums[bad[0]]:g}; to "
                "rescale amounts into proportions every row needs a positive total"
            )
    else:
        bad = np.flatnonzero(np.abs(sums - 1.0) > SUM_TOLERANCE)
        if bad.size:
            i = int(bad[0])
            raise DataError(
                f"the mixture weights of row {int(rows[i])} sum to {sums[i]:.6g}, not 1 "
                f"({len(bad)} row(s) like this); give proportions that sum to 1, or rescale "
                "amounts with normalize=True (--normalize)"
            )
    return W / sums[:, None]


def _parse_reference(
    reference: str | Sequence[float] | Mapping[str, float], domains: Sequence[str]
) -> tuple[str, np.ndarray | None]:
    """``("uniform" | "best", None)`` or ``("given", proportions)``."""
    if isinstance(reference, str):
        if reference in ("uniform", "best"):
            return reference, None
        raise DataError(
            f"reference must be 'uniform', 'best' or proportions for {', '.join(domains)}; "
            f"got {reference!r}"
        )
    if isinstance(reference, Mapping):
        unknown = [k for k in reference if k not in domains]
        if unknown:
            raise DataError(
                f"reference names unknown domain(s) {unknown}; domains: {list(domains)}"
            )
        values = [float(reference.get(d, 0.0)) for d in domains]
    else:
        values = [float(v) for v in reference]
    r = np.array(values, dtype=float)
    if r.size != len(domains):
        raise DataError(
            f"the reference mixture has {r.size} proportion(s) for {len(domains)} domains "
            f"({', '.join(domains)})"
        )
    if not np.all(np.isfinite(r)) or np.any(r < 0) or abs(r.sum() - 1.0) > SUM_TOLERANCE:
        raise DataError(
            f"the reference proportions {values} must be >= 0 and sum to 1 (they sum to "
            f"{r.sum():.6g})"
        )
    return "given", r / r.sum()


# ------------------------------------------------------------------------------ optimisation
def _objective_terms(thetas: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """From stacked per-target parameters (T, 2 + K): log-scales, slopes, constant."""
    const = float(np.sum(s * thetas[:, 0]))
    log_scale = np.log(s) + np.log(thetas[:, 1])
    return log_scale, thetas[:, 2:], const


def _evaluate(thetas: np.ndarray, s: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Objective ``sum_t s_t (c_t + k_t exp(t_t . r))`` at mixtures ``r`` (..., K)."""
    log_scale, slopes, const = _objective_terms(thetas, s)
    expo = log_scale + np.asarray(r) @ slopes.T  # (..., T)
    return const + np.sum(np.exp(expo), axis=-1)


def _minimise(
    thetas: np.ndarray, s: np.ndarray, lo: np.ndarray, hi: np.ndarray, starts: Sequence[np.ndarray]
) -> np.ndarray:
    """Minimise the (convex) objective over ``{r : lo <= r <= hi, sum r = 1}``."""
    from scipy import optimize

    log_scale, slopes, _ = _objective_terms(thetas, s)

    def fun(r: np.ndarray) -> tuple[float, np.ndarray]:
        terms = np.exp(log_scale + slopes @ r)
        return float(np.sum(terms)), slopes.T @ terms

    best_r, best_f = None, math.inf
    for r0 in starts:
        res = optimize.minimize(
            fun,
            np.clip(r0, lo, hi),
            jac=True,
            method="SLSQP",
            bounds=list(zip(lo, hi, strict=True)),
            constraints=[{"type": "eq", "fun": lambda r: np.sum(r) - 1.0, "jac": np.ones_like}],
            options={"ftol": 1e-12, "maxiter": 500},
        )
        r = np.clip(res.x, lo, hi)
        r = r / r.sum()
        f = fun(r)[0]
        if np.all(np.isfinite(r)) and f < best_f:
            best_r, best_f = r, f
    if best_r is None:
        raise FitError("the mixture search found no finite optimum; check the fitted laws")
    return best_r


# ------------------------------------------------------------------------------ the recommender
def recommend_mixture(
    source: Any,
    *,
    domains: Sequence[str],
    targets: str | Sequence[str] | Mapping[str, float],
    reference: str | Sequence[float] | Mapping[str, float] = "uniform",
    region: str = "observed",
    normalize: bool = False,
    where: str | None = None,
    run_col: str | None = None,
    loss: str = "mse",
    bootstrap: int = 200,
    coverage: float = 0.95,
    seed: int = 0,
    workers: int | None = None,
) -> MixtureRecommendation:
    """Fit a data-mixing law per target and recommend the mixture minimising them.

    Parameters
    ----------
    source : path, dataset name, Table, DataFrame or mapping of columns
        One row per small run: domain proportions and measured targets.
    domains : sequence of str
        The proportion columns (at least 2), in order.
    targets : str, sequence of str, or mapping of str to float
        Target column(s) to minimise (losses, or tokens to reach a skill threshold); a
        mapping gives each target's weight in the objective (rescaled to sum to 1).
    reference : "uniform", "best", sequence or mapping of proportions
        The mixture the gain is measured against.
    region : {"observed", "simplex"}
        Where to search (see the module docstring).
    normalize : bool
        Rescale each row's domain columns to proportions (for amounts such as tokens per
        domain); otherwise they must already sum to 1 (within 1e-3).
    where : str, optional
        Row filter, e.g. ``"n_params == 2e7"`` (one model size per recommendation).
    run_col : str, optional
        Run column: rows of one run are resampled together, and ``best`` names the run.
    loss : str
        Fitting objective (see :func:`scalelab.fit`).
    bootstrap : int
        Resamples of runs for the intervals (at least 20).
    coverage : float
        Interval coverage.
    seed : int
        Seed of the resampling.
    workers : int, optional
        Threads for the fitting engine.

    Returns
    -------
    MixtureRecommendation

    Raises
    ------
    DataError
        For unknown columns, proportions that are negative or do not sum to 1, non-positive
        targets, too few runs for the law, or a bad reference.
    FitError
        When a law does not converge, or most bootstrap refits fail.
    """
    from scalelab.fit import Parametrization, fit, make_objective
    from scalelab.fit.problem import Problem
    from scalelab.fit.uncertainty import bootstrap_refit, bootstrap_weights
    from scalelab.laws import make_law
    from scalelab.store import read_table

    if region not in REGIONS:
        raise DataError(f"region must be 'observed' or 'simplex', got {region!r}")
    if not 0 < coverage < 1:
        raise DataError(f"coverage must be between 0 and 1, got {coverage}")
    if bootstrap < 20:
        raise DataError(f"bootstrap must be at least 20 resamples for an interval, got {bootstrap}")
    weights_t = _target_weights(targets)
    table = read_table(source)
    if where:
        table = table.where(where)
    for col in [*domains, *weights_t, *([run_col] if run_col else [])]:
        table.column(col)  # unknown column -> DataError listing the table's columns
    W = _proportions(table, domains, normalize)
    kind, given = _parse_reference(reference, domains)
    n, K = W.shape
    if n < K + 3:
        raise DataError(
            f"{n} run(s) for {K} domains: a data-mixing law has {K + 2} parameters, so a fit "
            f"with intervals needs at least {K + 3} runs with different mixtures"
        )
    Y = {t: table.numeric(t, positive=True) for t in weights_t}
    runs = (
        [str(v) for v in table.column(run_col).tolist()]
        if run_col
        else [f"row {int(i)}" for i in table.row_numbers]
    )
    s = np.array(list(weights_t.values()))

    # ---------------------------------------------------------------- point fits
    law = make_law("data_mixing", domains=K)
    inputs = {f"r{j + 1}": W[:, j] for j in range(K)}
    objective = make_objective(loss)
    param = Parametrization(law)
    fits = {}
    for target, y in Y.items():
        fits[target] = fit(
            law,
            {**inputs, "y": y},
            x={k: k for k in inputs},
            y="y",
            loss=objective,
            seed=seed,
            workers=workers,
        )
    thetas = np.stack([fits[t].theta for t in Y])

    # ---------------------------------------------------------------- the region and the optimum
    if region == "observed":
        lo, hi = W.min(axis=0), W.max(axis=0)
    else:
        lo, hi = np.zeros(K), np.ones(K)
    centre = W.mean(axis=0) if region == "observed" else np.full(K, 1.0 / K)
    measured = np.sum([w * Y[t] for t, w in weights_t.items()], axis=0)
    best_row = int(np.argmin(measured))
    starts = [centre, W[best_row]]
    r_best = _minimise(thetas, s, lo, hi, starts)

    reference_run = reference_measured = None
    if kind == "best":
        r_ref = W[best_row]
        reference_run, reference_measured = runs[best_row], float(measured[best_row])
    elif given is not None:
        r_ref = given
    else:
        r_ref = np.full(K, 1.0 / K)

    # ---------------------------------------------------------------- bootstrap over runs
    rng = np.random.default_rng(seed)
    groups = np.array(runs, dtype=object) if run_col else None
    counts = bootstrap_weights(n, bootstrap, rng, groups=groups)
    ok = np.ones(bootstrap, dtype=bool)
    boot = []
    for target, y in Y.items():
        problem = Problem(law, inputs, y, objective, param, np.ones(n))
        u_best = param.to_internal(fits[target].theta[None])[0]
        u, converged = bootstrap_refit(problem, u_best, counts, workers=workers)
        boot.append(param.to_natural(u))
        ok &= converged & np.all(np.isfinite(u), axis=1)
    n_ok = int(ok.sum())
    if n_ok < bootstrap // 2:
        raise FitError(
            f"only {n_ok} of {bootstrap} bootstrap refits converged for every target; the "
            "data-mixing law is poorly identified on these runs (add runs with more varied mixtures)"
        )
    draws = np.stack(boot, axis=1)[ok]  # (B, T, 2 + K)
    alpha = (1 - coverage) / 2
    q = (alpha, 1 - alpha)

    def interval(values: np.ndarray) -> tuple[float, float]:
        low, high = np.quantile(values, q)
        return float(low), float(high)

    obj_rec = np.array([_evaluate(d, s, r_best) for d in draws])
    obj_ref = np.array([_evaluate(d, s, r_ref) for d in draws])
    gains = obj_ref - obj_rec
    rel = gains / obj_ref
    reopt = np.array([_minimise(d, s, lo, hi, [r_best, centre]) for d in draws])

    f_rec, f_ref = float(_evaluate(thetas, s, r_best)), float(_evaluate(thetas, s, r_ref))
    target_fits = []
    for i, target in enumerate(Y):
        one = np.ones(1)
        per_rec = np.array([_evaluate(d[i : i + 1], one, r_best) for d in draws])
        per_ref = np.array([_evaluate(d[i : i + 1], one, r_ref) for d in draws])
        target_fits.append(
            TargetFit(
                target=target,
                weight=float(weights_t[target]),
                params=fits[target].values(),
                rmse=float(fits[target].stats["rmse"]),
                recommended=float(_evaluate(thetas[i : i + 1], one, r_best)),
                recommended_low=interval(per_rec)[0],
                recommended_high=interval(per_rec)[1],
                reference=float(_evaluate(thetas[i : i + 1], one, r_ref)),
                reference_low=interval(per_ref)[0],
                reference_high=interval(per_ref)[1],
            )
        )

    # ---------------------------------------------------------------- notes
    tol = 1e-6
    at_edge = tuple(
        d
        for j, d in enumerate(domains)
        if hi[j] - lo[j] > tol and (r_best[j] <= lo[j] + tol or r_best[j] >= hi[j] - tol)
    )
    notes = []
    if len(Y) == 1:
        notes.append(
            "one target: the law depends on the mixture only through t . r, so the optimum is "
            "a corner of the search region"
        )
    if region == "observed" and at_edge:
        notes.append(
            "the recommendation sits on the edge of the observed shares for "
            f"{', '.join(at_edge)}: runs beyond that edge would show whether to go further"
        )
    if region == "observed" and (np.any(r_ref < lo - tol) or np.any(r_ref > hi + tol)):
        notes.append(
            "the reference mixture lies outside the observed shares: its prediction extrapolates"
        )
    fixed = [d for j, d in enumerate(domains) if hi[j] - lo[j] <= tol]
    if fixed:
        notes.append(
            f"every run has the same share of {', '.join(fixed)}: its effect is not identified"
        )
    n_failed = bootstrap - n_ok
    if n_failed:
        notes.append(f"{n_failed} of {bootstrap} resamples dropped: a refit did not converge")

    def by_domain(values: np.ndarray) -> dict[str, float]:
        return {d: float(v) for d, v in zip(domains, values, strict=True)}

    return MixtureRecommendation(
        domains=tuple(domains),
        weights=by_domain(r_best),
        weights_low=by_domain(np.quantile(reopt, alpha, axis=0)),
        weights_high=by_domain(np.quantile(reopt, 1 - alpha, axis=0)),
        objective=f_rec,
        objective_low=interval(obj_rec)[0],
        objective_high=interval(obj_rec)[1],
        reference=kind,
        reference_weights=by_domain(r_ref),
        reference_run=reference_run,
        reference_measured=reference_measured,
        reference_objective=f_ref,
        reference_objective_low=interval(obj_ref)[0],
        reference_objective_high=interval(obj_ref)[1],
        gain=f_ref - f_rec,
        gain_low=interval(gains)[0],
        gain_high=interval(gains)[1],
        relative_gain=(f_ref - f_rec) / f_ref,
        relative_gain_low=interval(rel)[0],
        relative_gain_high=interval(rel)[1],
        targets=tuple(target_fits),
        region=region,
        bounds={d: (float(lo[j]), float(hi[j])) for j, d in enumerate(domains)},
        at_edge=at_edge,
        n_runs=n,
        n_resamples=bootstrap,
        n_failed=n_failed,
        coverage=coverage,
        seed=seed,
        source=table.source,
        fingerprint=table.fingerprint(),
        where=where,
        notes=tuple(notes),
    )
