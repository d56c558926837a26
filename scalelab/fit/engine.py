"""``scalelab.fit``: fit a law to a table with many starts, polishing and honest intervals."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from scipy import stats

from scalelab._version import __version__
from scalelab.errors import DataError, FitError, LawError
from scalelab.fit.batched import minimize_batched_parallel
from scalelab.fit.objectives import Objective, make_objective
from scalelab.fit.parametrization import Parametrization
from scalelab.fit.polish import polish
from scalelab.fit.problem import Problem
from scalelab.fit.result import Estimate, FitResult
from scalelab.fit.uncertainty import bootstrap_refit, bootstrap_weights, hessian_covariance
from scalelab.laws import make_law
from scalelab.laws.base import Law

__all__ = ["fit", "make_starts"]

#: how many of the best distinct batched optima are polished with scipy
N_POLISH = 4


def fit(
    law: str | Law,
    data: Any,
    *,
    x: Mapping[str, str] | None = None,
    y: str = "loss",
    where: str | None = None,
    loss: str | Objective = "huber",
    delta: float | None = None,
    penalty: float | None = None,
    space: str | None = None,
    starts: str | int | np.ndarray = "grid",
    keep: float | None = 0.1,
    bootstrap: int = 0,
    bootstrap_by: str | None = None,
    weights: str | None = None,
    fixed: Mapping[str, float] | None = None,
    tie: Mapping[str, str] | None = None,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    params: Any = None,
    coverage: float = 0.95,
    seed: int = 0,
    raise_on_failure: bool = True,
    workers: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> FitResult:
    """Fit ``law`` to ``data`` and return a frozen :class:`FitResult`.

    Parameters
    ----------
    law : str or Law
        A registry name (``"chinchilla"``) or a law instance.
    data : path, dataset name, Table, DataFrame or mapping of columns
        One row per run or checkpoint.
    x : mapping of law input -> column, optional
        E.g. ``{"N": "params_N", "D": "tokens_D"}``; defaults to columns named like the inputs.
    y : str
        The column to fit (loss, accuracy, ...).
    where : str, optional
        A row filter such as ``"excluded_by_epoch == 0"``.
    loss : str
        ``huber`` (on log residuals, ``delta`` default 1e-3, summed over points),
        ``mse`` / ``mse_log``, ``mse_linear`` or ``asymmetric`` (penalises over-estimates).
    starts : "grid", "random", int or (S, P) array
        ``"grid"``: the law's data-aware grid (Hoffmann et al.'s 4,500 starts for Chinchilla);
        an int: that many random starts from the parameters' plausible ranges plus the guess;
        an array: explicit starting parameter vectors (natural units).
    keep : float or None
        Fraction of starts kept after 5 batched iterations (successive halving); ``None``
        iterates every start to convergence.
    workers : int, optional
        Threads for the batched search and bootstrap (default: the usable cores, at most 8).
    bootstrap : int
        Number of nonparametric bootstrap resamples (0 for Hessian intervals only).
    bootstrap_by : str, optional
        Resample whole groups (e.g. a run id column, when rows are checkpoints of one run).
    weights : str, optional
        A column of non-negative point weights.
    fixed, tie, bounds, params
        Fix parameters (``{"alpha": 0.34}``), tie them (``{"beta": "alpha"}``), override
        bounds (``{"alpha": (0, 1)}``), or pass an ``lmfit.Parameters`` doing all three.
    coverage : float
        Interval coverage (0.95 gives 95% intervals).
    seed : int
        Seed for random starts and bootstrap resampling.
    raise_on_failure : bool
        Raise :class:`FitError` when the optimum did not converge (default); with ``False``
        the result is returned with ``converged=False``.

    Examples
    --------
    >>> import scalelab
    >>> res = scalelab.fit("chinchilla", "chinchilla", x={"N": "params_N", "D": "tokens_D"},
    ...                    y="loss", where="excluded_by_epoch == 0")  # doctest: +SKIP
    >>> round(res.params["alpha"].value, 3)  # doctest: +SKIP
    0.347
    """
    t0 = time.perf_counter()
    say = progress or (lambda _msg: None)
    law = make_law(law)
    if not 0 < coverage < 1:
        raise DataError(f"coverage must be between 0 and 1, got {coverage}")
    if bootstrap < 0:
        raise DataError(f"bootstrap must be a non-negative number of resamples, got {bootstrap}")
    objective = make_objective(loss, delta=delta, penalty=penalty, space=space)  # type: ignore[arg-type]
    if objective.space == "log" and not law.positive:
        raise LawError(f"law {law.name!r} can be negative; use a linear-space loss (mse_linear)")
    if params is not None:
        if fixed or tie or bounds:
            raise LawError("give either an lmfit Parameters (params=) or fixed/tie/bounds, not both")
        param = Parametrization.from_lmfit(law, params)
    else:
        param = Parametrization(law, fixed=dict(fixed or {}), tied=dict(tie or {}), bounds=dict(bounds or {}))

    # ------------------------------------------------------------ data
    from scalelab.store import read_table

    table = read_table(data)
    if where:
        table = table.where(where)
    mapping = _resolve_inputs(law, x, table)
    positive_x = {k: _needs_positive(law, k) for k in law.inputs}
    X = {k: table.numeric(col, positive=positive_x[k]) for k, col in mapping.items()}
    yv = table.numeric(y, positive=objective.space == "log")
    w = np.ones(len(table)) if weights is None else table.numeric(weights)
    if weights is not None and (np.any(w < 0) or not np.any(w > 0)):
        raise DataError(f"weights column {weights!r} must be non-negative with at least one positive value")
    n_eff = int(np.count_nonzero(w))
    if n_eff <= param.n_free:
        raise DataError(
            f"{n_eff} data point(s) for {param.n_free} free parameter(s) of {law.name}: "
            "a fit needs more points than parameters; widen --where or fix parameters with --fix"
        )
    groups = table.column(bootstrap_by) if bootstrap_by else None
    problem = Problem(law, X, yv, objective, param, w)

    # ------------------------------------------------------------ starts
    rng = np.random.default_rng(seed)
    u0, starts_label = make_starts(law, param, X, yv, starts, rng)
    say(f"optimising {len(u0)} starts together")
    # search: all starts together (in blocks on parallel threads), successive halving after
    # 5 iterations; the best distinct optima are then polished to tight tolerances, so the
    # search need not be exact
    batch = minimize_batched_parallel(
        problem,
        u0,
        workers=workers,
        keep=keep if len(u0) > 64 else None,
        prune_after=5,
        max_iter=60,
        ftol=1e-6,
    )
    finite = np.isfinite(batch.objective)
    if not finite.any():
        raise FitError(
            f"no start gave a finite objective for {law.name} on this data; check that the inputs "
            "are in the law's domain and the columns are the right ones"
        )

    # ------------------------------------------------------------ polish the best distinct optima
    order = np.argsort(np.where(finite, batch.objective, np.inf))
    candidates: list[int] = []
    for i in order[: 10 * N_POLISH]:
        if not finite[i]:
            break
        if all(not np.allclose(batch.u[i], batch.u[j], rtol=1e-4, atol=1e-6) for j in candidates):
            candidates.append(int(i))
        if len(candidates) == N_POLISH:
            break
    polished = [polish(problem, batch.u[i]) for i in candidates]
    best = min(polished, key=lambda p: p.objective)
    u_best = best.u
    converged = bool(best.success and math.isfinite(best.objective))
    message = best.message
    if not converged and raise_on_failure:
        raise FitError(
            f"{law.name} fit did not converge ({message}); try more starts (--starts 2000), "
            "fix a parameter (--fix), or check the data"
        )
    theta = param.to_natural(u_best)

    # ------------------------------------------------------------ uncertainty
    cov = hessian_covariance(problem, u_best)
    z = stats.norm.ppf(0.5 + coverage / 2)
    boot_theta = None
    n_failed = 0
    if bootstrap:
        say(f"bootstrap: refitting {bootstrap} resamples together")
        counts = bootstrap_weights(problem.n, bootstrap, rng, groups=groups)
        u_boot, ok = bootstrap_refit(problem, u_best, counts, workers=workers)
        n_failed = int((~ok).sum())
        boot_theta = param.to_natural(u_boot[ok])
        if len(boot_theta) < max(10, bootstrap // 2):
            raise FitError(
                f"only {len(boot_theta)} of {bootstrap} bootstrap refits converged; "
                "the law is poorly identified on this data"
            )
    lo_q, hi_q = (1 - coverage) / 2, (1 + coverage) / 2
    estimates: dict[str, Estimate] = {}
    se_u = np.sqrt(np.clip(np.diag(cov), 0, None)) if np.all(np.isfinite(cov)) else np.full(param.n_free, np.nan)
    lo_b, hi_b = param.internal_bounds()
    for i, name in enumerate(law.param_names):
        value = float(theta[i])
        if name in param.fixed:
            estimates[name] = Estimate(name, value, 0.0, value, value, fixed=True)
            continue
        k = param.free.index(name) if name in param.free else None
        se = ci_lo = ci_hi = math.nan
        if k is not None:
            uk = u_best[k]
            if param.is_log(name):
                se = value * se_u[k]
                with np.errstate(over="ignore"):
                    ci_lo, ci_hi = float(np.exp(uk - z * se_u[k])), float(np.exp(uk + z * se_u[k]))
            else:
                se = float(se_u[k])
                ci_lo, ci_hi = value - z * se, value + z * se
        if boot_theta is not None:
            col = boot_theta[:, i]
            se = float(np.std(col, ddof=1))
            ci_lo, ci_hi = (float(q) for q in np.quantile(col, [lo_q, hi_q]))
        at_bound = k is not None and bool(
            np.isclose(u_best[k], lo_b[k], rtol=1e-6, atol=1e-9) or np.isclose(u_best[k], hi_b[k], rtol=1e-6, atol=1e-9)
        )
        estimates[name] = Estimate(name, value, float(se), ci_lo, ci_hi, tied=param.tied.get(name), at_bound=at_bound)
    derived = {}
    for name, val in law.derived(theta).items():
        ci_lo = ci_hi = se = math.nan
        if boot_theta is not None:
            draws = law.derived(boot_theta)[name]
            se = float(np.nanstd(draws, ddof=1))
            ci_lo, ci_hi = (float(q) for q in np.nanquantile(draws, [lo_q, hi_q]))
        derived[name] = Estimate(name, float(val), se, ci_lo, ci_hi)
    if any(e.at_bound for e in estimates.values()):
        message += "; at bound: " + ", ".join(n for n, e in estimates.items() if e.at_bound)

    return FitResult(
        law=law,
        params=estimates,
        objective=float(best.objective),
        n_points=len(yv),
        n_free=param.n_free,
        converged=converged,
        message=message,
        seconds=time.perf_counter() - t0,
        coverage=coverage,
        interval_method="bootstrap-percentile" if boot_theta is not None else "hessian-wald",
        inputs=mapping,
        y=y,
        stats=_fit_stats(problem, u_best, param.n_free),
        derived=derived,
        options={
            **objective.options(),
            **param.options(),
            "starts": starts_label,
            "n_starts": len(u0),
            "keep": keep,
            "bootstrap": bootstrap,
            "bootstrap_by": bootstrap_by,
            "weights": weights,
            "where": where,
            "seed": seed,
            "workers": workers,
        },
        data={
            "source": table.source,
            "fingerprint": table.fingerprint(),
            "n_rows": len(table),
            "ranges": {k: [float(v.min()), float(v.max())] for k, v in X.items()},
            "y_range": [float(yv.min()), float(yv.max())],
            **_compute_range(X),
        },
        provenance=_provenance(),
        free=param.free,
        covariance=cov,
        bootstrap=boot_theta,
        bootstrap_failed=n_failed,
    )


def _compute_range(X: Mapping[str, np.ndarray]) -> dict[str, list[float]]:
    """``{"compute_range": [min, max]}`` of ``C = 6 N D`` for laws of N and D (else empty).

    The extrapolation warning measures a target in multiples of the largest fitted compute;
    from the N and D ranges alone it could only bound it.
    """
    if "N" not in X or "D" not in X or "C" in X:
        return {}
    c = 6.0 * np.asarray(X["N"], dtype=float) * np.asarray(X["D"], dtype=float)
    return {"compute_range": [float(c.min()), float(c.max())]}


def make_starts(
    law: Law,
    param: Parametrization,
    X: Mapping[str, np.ndarray],
    y: np.ndarray,
    starts: str | int | np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, str]:
    """Starting points in internal coordinates (S, F) and a label for the result."""
    guess = law.clip(law.guess(X, y))[None]
    if isinstance(starts, str) and starts.isdigit():
        starts = int(starts)
    if isinstance(starts, str):
        if starts == "grid":
            theta, label = np.concatenate([law.start_grid(X, y), guess]), "grid"
        elif starts == "random":
            theta, label = np.concatenate([_random_starts(law, 1000, rng), guess]), "random"
        else:
            raise LawError(f"--starts must be 'grid', 'random' or a number of random starts, got {starts!r}")
    elif isinstance(starts, (int, np.integer)):
        if starts < 1:
            raise LawError(f"--starts must be at least 1, got {starts}")
        theta, label = np.concatenate([guess, _random_starts(law, int(starts) - 1, rng)]), f"random({starts})"
    else:
        theta = np.atleast_2d(np.asarray(starts, dtype=float))
        if theta.shape[-1] != law.n_params:
            raise LawError(f"explicit starts need {law.n_params} columns ({', '.join(law.param_names)})")
        label = "explicit"
    theta = law.clip(theta)
    for name, value in param.fixed.items():
        theta[:, law.param_names.index(name)] = value
    u = param.to_internal(theta)
    u = u[np.all(np.isfinite(u), axis=1)]
    u = np.unique(u, axis=0)
    if len(u) == 0:
        raise LawError("no finite starting point; check --bound and --fix values")
    return u, label


def _random_starts(law: Law, count: int, rng: np.random.Generator) -> np.ndarray:
    cols = []
    for p in law.params:
        lo, hi = p.init
        if p.log and lo > 0:
            cols.append(np.exp(rng.uniform(math.log(lo), math.log(hi), count)))
        else:
            cols.append(rng.uniform(lo, hi, count))
    return np.stack(cols, axis=-1) if count else np.empty((0, law.n_params))


def _resolve_inputs(law: Law, x: Mapping[str, str] | None, table: Any) -> dict[str, str]:
    mapping = dict(x or {})
    unknown = [k for k in mapping if k not in law.inputs]
    if unknown:
        raise LawError(
            f"--x {unknown[0]}=...: {law.name} has no input {unknown[0]!r}; its inputs are "
            f"{', '.join(law.inputs)}"
        )
    for name in law.inputs:
        if name not in mapping:
            if name in table.columns:
                mapping[name] = name
            else:
                raise LawError(
                    f"{law.name} needs input {name!r}: map it to a column with --x {name}=COLUMN"
                )
    for col in mapping.values():
        table.column(col)  # raises DataError naming unknown columns
    return {k: mapping[k] for k in law.inputs}


def _needs_positive(law: Law, name: str) -> bool:
    """Inputs whose logarithm the law takes (sizes, tokens, compute) must be positive."""
    return name in {"N", "D", "C", "U", "x"}


def _fit_stats(problem: Problem, u: np.ndarray, k: int) -> dict[str, float]:
    theta = problem.param.to_natural(u)
    pred = problem.law.evaluate(theta, problem.X)
    err = pred - problem.y
    n = problem.n
    rss_log = float(np.sum((problem.residuals(u[None])[0]) ** 2))
    nonzero = problem.y != 0
    # Gaussian likelihood on the residual space, for comparing laws on the same data
    aic = n * math.log(max(rss_log / n, 1e-300)) + 2 * k
    bic = n * math.log(max(rss_log / n, 1e-300)) + k * math.log(n)
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        # relative error over the points where it is defined (accuracies can be exactly 0)
        "mape": float(np.mean(np.abs(err[nonzero] / problem.y[nonzero]))) if nonzero.any() else math.nan,
        "max_abs_error": float(np.max(np.abs(err))),
        "rmse_residual_space": math.sqrt(rss_log / n),
        "aic": aic,
        "bic": bic,
    }


def _provenance() -> dict[str, Any]:
    import platform

    import scipy

    return {
        "scalelab": __version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "python": platform.python_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
