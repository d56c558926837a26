"""Experiment 4 of issue #7: data mixtures (Ye et al. 2024 data-mixing laws; Xie et al. 2023 DoReMi).

Stage 1 trains a tiny model on a designed grid of mixtures of three byte-level text domains
(``python_code``, ``python_docstrings``, ``python_prose`` of scalelab.harness.sources.text;
nothing is downloaded) and measures the held-out loss on every domain. Stage 2 fits Ye et al.'s
data-mixing law ``L_d(r) = c + k exp(sum_j t_j r_j)`` per domain, recommends the mixture that
minimises the objective with :func:`scalelab.predict.mixture.recommend_mixture` (with bootstrap
intervals), trains that mixture with the same seeds, and compares the predicted with the
measured objective, and the recommendation with the uniform and the best grid mixture. Stage 3
trains the uniform and the recommended mixture (the one stage 2 found on the tiny model) at
larger model sizes with the same steps, batch, learning rate and seeds, so the effect of the
recommendation (objective of uniform - objective of recommended, paired by seed) is measured at
three sizes (tiny from stages 1-2); it is written as the ``effects`` list experiment 6 reads.

The objective, fixed before any run: the mean held-out loss over the three domains (equal
weights), each domain's loss being the final-step eval loss on its held-out documents.

    python experiments/mixture/run.py [--quick] [--out DIR] [--workers 2]
"""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common as C

from scalelab.errors import DataError

NAME = "mixture"
#: source name in the run config -> text domain of scalelab.harness.sources.text
DOMAINS: dict[str, str] = {"code": "python_code", "docstrings": "python_docstrings",
                           "prose": "python_prose"}
#: the objective, chosen up front: mean held-out loss over the three domains
OBJECTIVE: dict[str, float] = {d: 1.0 / len(DOMAINS) for d in DOMAINS}
COVERAGE = 0.95
Z = 1.959963984540054  # standard normal quantile for 95%
BOOT_SEED = 0
#: the effect emitted for experiment 6 (the scale caveat), and the coverage of its intervals
EFFECT = f"{NAME}:recommended_vs_uniform"
EFFECT_COVERAGE = 0.9
#: the size of stages 1-2
BASE_SIZE = "tiny"


# ----------------------------------------------------------------------------- the design
def permutations_of(shares: Sequence[float]) -> list[tuple[float, ...]]:
    """The distinct orderings of ``shares`` over the domains, in a fixed order.

    Examples
    --------
    >>> permutations_of([0.8, 0.1, 0.1])
    [(0.8, 0.1, 0.1), (0.1, 0.8, 0.1), (0.1, 0.1, 0.8)]
    """
    seen: list[tuple[float, ...]] = []
    for p in itertools.permutations(shares):
        if p not in seen:
            seen.append(tuple(p))
    return sorted(seen, key=lambda p: tuple(-v for v in p))


def design(quick: bool) -> list[tuple[float, ...]]:
    """Stage-1 mixtures (shares of code, docstrings, prose), every share in [0.1, 0.8].

    Full (13): the centre, the corners' neighbourhood (0.8, 0.1, 0.1), asymmetric points near
    the edges (0.5, 0.4, 0.1) and an interior ring (0.2, 0.4, 0.4). Quick (7): the centre, the
    near-corners and the interior ring. Both span the simplex in two dimensions, so the law's
    four identified parameters per domain (c, k and two differences of t) are pinned down.
    """
    third = (1 / 3, 1 / 3, 1 / 3)
    corners = permutations_of([0.8, 0.1, 0.1])
    ring = permutations_of([0.2, 0.4, 0.4])
    if quick:
        return [third, *corners, *ring]
    return [third, *corners, *permutations_of([0.5, 0.4, 0.1]), *ring]


def mixture_label(shares: Sequence[float]) -> str:
    """A short name: the shares of code, docstrings, prose in percent.

    Examples
    --------
    >>> mixture_label((0.8, 0.1, 0.1))
    'c80-d10-p10'
    """
    return "-".join(f"{d[0]}{round(100 * s):d}" for d, s in zip(DOMAINS, shares, strict=True))


def settings(quick: bool) -> dict[str, Any]:
    """Training budget and analysis settings per mode (``scale_sizes``: the stage-3 sizes)."""
    if quick:
        return {"steps": 250, "seeds": [0], "batch_size": 32, "seq_len": 64, "eval_size": 64,
                "eval_count": 4, "bootstrap": 60, "scale_sizes": ["mini"]}
    return {"steps": 800, "seeds": [0, 1], "batch_size": 32, "seq_len": 64, "eval_size": 128,
            "eval_count": 8, "bootstrap": 200, "scale_sizes": ["mini", "small"]}


def base_config(quick: bool) -> dict[str, Any]:
    """The run config shared by both stages (schedule set per run)."""
    s = settings(quick)
    return {
        "steps": s["steps"], "device": "cpu", "checkpoint_every": 0,
        "model": {"size": BASE_SIZE},
        "optim": {"lr": 3e-3, "weight_decay": 0.1, "warmup_steps": 20, "min_lr_ratio": 0.1},
        "data": {
            "seq_len": s["seq_len"], "batch_size": s["batch_size"],
            # source seed fixed at 0: every run is evaluated on the same held-out windows
            "sources": {name: {"kind": "text", "options": {"domain": dom, "eval_size": s["eval_size"]}}
                        for name, dom in DOMAINS.items()},
            "schedule": {"mixture": dict.fromkeys(DOMAINS, 1.0)},
        },
        "eval": {"count": s["eval_count"], "max_examples": s["eval_size"]},
    }


def _schedule(shares: Sequence[float]) -> dict[str, Any]:
    return {"mixture": {d: float(s) for d, s in zip(DOMAINS, shares, strict=True)}}


def grid_spec(quick: bool) -> dict[str, Any]:
    """Stage 1: the designed mixtures x seeds."""
    mixes = design(quick)
    return {
        "name": "mixq" if quick else "mix",
        "base": base_config(quick),
        "axis": [
            {"name": "mix", "path": "data.schedule", "values": [_schedule(m) for m in mixes],
             "labels": [mixture_label(m) for m in mixes]},
            {"name": "seed", "paths": ["init_seed", "data_seed"], "values": settings(quick)["seeds"]},
        ],
    }


def rounded_shares(weights: Mapping[str, float], digits: int = 3) -> tuple[float, ...]:
    """Shares rounded to ``digits`` decimals that still sum to exactly 1 (the largest absorbs it).

    Examples
    --------
    >>> rounded_shares({"code": 0.33333, "docstrings": 0.33333, "prose": 0.33334})
    (0.333, 0.333, 0.334)
    """
    raw = [float(weights[d]) for d in DOMAINS]
    r = [round(v, digits) for v in raw]
    big = int(np.argmax(raw))
    r[big] = round(1.0 - sum(v for i, v in enumerate(r) if i != big), digits)
    if min(r) < 0:
        raise DataError(f"recommended shares {weights} do not form a mixture; check the fit")
    return tuple(r)


def recommended_spec(quick: bool, shares: Sequence[float]) -> dict[str, Any]:
    """Stage 2: the recommended mixture, with the same seeds as stage 1."""
    base = base_config(quick)
    base["data"]["schedule"] = _schedule(shares)
    return {
        "name": "mixrecq" if quick else "mixrec",
        "base": base,
        "axis": [
            {"name": "mix", "path": "data.schedule", "values": [_schedule(shares)],
             "labels": ["recommended"]},
            {"name": "seed", "paths": ["init_seed", "data_seed"], "values": settings(quick)["seeds"]},
        ],
    }


UNIFORM = (1 / 3, 1 / 3, 1 / 3)


def scale_spec(quick: bool, shares: Sequence[float]) -> dict[str, Any]:
    """Stage 3: the uniform and the recommended mixture at the larger sizes, same seeds.

    Steps, batch, learning rate, evaluation and seeds are those of stage 1; only
    ``model.size`` changes. The tiny model's uniform run is stage 1's centre and its
    recommended run is stage 2, so neither is trained again.
    """
    base = base_config(quick)
    sizes = settings(quick)["scale_sizes"]
    return {
        "name": "mixscaleq" if quick else "mixscale",
        "base": base,
        "axis": [
            {"name": "size", "path": "model.size", "values": list(sizes)},
            {"name": "mix", "path": "data.schedule", "values": [_schedule(UNIFORM), _schedule(shares)],
             "labels": [mixture_label(UNIFORM), "recommended"]},
            {"name": "seed", "paths": ["init_seed", "data_seed"], "values": settings(quick)["seeds"]},
        ],
    }


# ----------------------------------------------------------------------------- measuring
def run_rows(curves: Mapping[str, Mapping[str, Any]], stage: str | None = None) -> list[dict[str, Any]]:
    """One row per run: its stage, model size, mixture, seed, final held-out loss per domain
    and the objective. ``stage`` defaults to ``recommended`` or ``grid`` by the mixture label."""
    rows = []
    for rid, rec in curves.items():
        mix = rec["config"]["data"]["schedule"]["mixture"]
        total = sum(float(mix.get(d, 0.0)) for d in DOMAINS)
        size = str(rec["config"].get("model", {}).get("size", BASE_SIZE))
        row: dict[str, Any] = {
            "run": rid,
            "stage": stage or ("recommended" if rec["labels"]["mix"] == "recommended" else "grid"),
            "size": size, "n_params": C.n_params({"model": {"size": size}}),
            "mixture": rec["labels"]["mix"], "seed": int(rec["labels"]["seed"]),
            "steps": int(rec["config"]["steps"]),
        }
        for d in DOMAINS:
            row[f"r_{d}"] = float(mix.get(d, 0.0)) / total
            if d not in rec["curves"]:
                raise DataError(f"run {rid} has no eval loss for {d}; rerun it")
            steps, loss = rec["curves"][d]
            if int(steps[-1]) != row["steps"]:
                raise DataError(f"run {rid} stopped at step {int(steps[-1])} of {row['steps']}; "
                                "rerun the command to finish it")
            row[f"loss_{d}"] = float(loss[-1])
        row["objective"] = objective_of(row)
        rows.append(row)
    order = {"grid": 0, "recommended": 1}
    return sorted(rows, key=lambda r: (order.get(r["stage"], 2), r["n_params"], r["mixture"], r["seed"]))


def objective_of(row: Mapping[str, Any]) -> float:
    """The objective of a row: the weighted mean of its per-domain losses."""
    return float(sum(w * row[f"loss_{d}"] for d, w in OBJECTIVE.items()))


def mixture_means(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per mixture: shares, and the per-domain losses and objective averaged over seeds."""
    out = []
    for label in dict.fromkeys(r["mixture"] for r in rows):
        rs = [r for r in rows if r["mixture"] == label]
        m: dict[str, Any] = {"mixture": label, "seeds": len(rs)}
        for d in DOMAINS:
            m[f"r_{d}"] = rs[0][f"r_{d}"]
            m[f"loss_{d}"] = float(np.mean([r[f"loss_{d}"] for r in rs]))
        m["objective"] = float(np.mean([r["objective"] for r in rs]))
        m["objective_seeds"] = [r["objective"] for r in rs]
        out.append(m)
    return out


def pooled_seed_sd(rows: Sequence[Mapping[str, Any]], key: str = "objective") -> float | None:
    """Pooled within-mixture standard deviation of ``key`` over seeds (None with one seed).

    Examples
    --------
    >>> rows = [{"mixture": "a", "objective": 1.0}, {"mixture": "a", "objective": 3.0},
    ...         {"mixture": "b", "objective": 5.0}, {"mixture": "b", "objective": 5.0}]
    >>> pooled_seed_sd(rows)
    1.0
    """
    ss, df = 0.0, 0
    for label in dict.fromkeys(r["mixture"] for r in rows):
        v = np.array([r[key] for r in rows if r["mixture"] == label], dtype=float)
        ss += float(np.sum((v - v.mean()) ** 2))
        df += v.size - 1
    return math.sqrt(ss / df) if df > 0 else None


def seed_residual_sd(rows: Sequence[Mapping[str, Any]], key: str = "objective") -> float | None:
    """Residual SD of ``key`` after a mixture effect and a seed effect (two-way, no interaction).

    Every mixture is trained with the same seeds, so a seed that is lucky for one mixture is
    lucky for all (its effect cancels in paired comparisons and in the law's prediction for
    the recommended runs, which reuse the seeds); what remains is this residual. Mixtures that
    lack a seed are left out; None when fewer than two seeds or two mixtures remain.

    Examples
    --------
    >>> rows = [{"mixture": m, "seed": s, "objective": v}
    ...         for m, s, v in [("a", 0, 1.0), ("a", 1, 3.0), ("b", 0, 5.0), ("b", 1, 5.0)]]
    >>> seed_residual_sd(rows)
    1.0
    """
    seeds = sorted({int(r["seed"]) for r in rows})
    labels = [m for m in dict.fromkeys(r["mixture"] for r in rows)
              if {int(r["seed"]) for r in rows if r["mixture"] == m} == set(seeds)]
    if len(seeds) < 2 or len(labels) < 2:
        return None
    X = np.array([[next(float(r[key]) for r in rows if r["mixture"] == m and int(r["seed"]) == s)
                   for s in seeds] for m in labels])
    resid = X - X.mean(axis=1, keepdims=True) - X.mean(axis=0, keepdims=True) + X.mean()
    return float(math.sqrt(np.sum(resid**2) / ((X.shape[0] - 1) * (X.shape[1] - 1))))


# ----------------------------------------------------------------------------- the law
def law_values(params: Mapping[str, Mapping[str, float]], shares: np.ndarray) -> dict[str, np.ndarray]:
    """Per-domain predictions of fitted data-mixing laws at ``shares`` (rows of K shares),
    plus ``objective``."""
    from scalelab.laws import make_law

    law = make_law("data_mixing", domains=len(DOMAINS))
    W = np.atleast_2d(np.asarray(shares, dtype=float))
    inputs = {f"r{j + 1}": W[:, j] for j in range(W.shape[1])}
    with np.errstate(over="ignore"):  # far outside the grid a bad fit can overflow to inf
        out = {d: np.asarray(law(**inputs, **params[d]), dtype=float) for d in DOMAINS}
    out["objective"] = sum(w * out[d] for d, w in OBJECTIVE.items())
    return out


def fit_laws(mix: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Point fits of the data-mixing law per domain (as recommend_mixture fits them)."""
    from scalelab.fit import fit
    from scalelab.laws import make_law

    law = make_law("data_mixing", domains=len(DOMAINS))
    data = {f"r{j + 1}": [m[f"r_{d}"] for m in mix] for j, d in enumerate(DOMAINS)}
    out = {}
    for d in DOMAINS:
        res = fit(law, {**data, "y": [m[f"loss_{d}"] for m in mix]},
                  x={k: k for k in data}, y="y", loss="mse", seed=BOOT_SEED)
        out[d] = res.values()
    return out


def inside_range(point: Sequence[float], others: np.ndarray, tol: float = 1e-9) -> bool:
    """Whether every share of ``point`` lies within the range of ``others`` (rows of shares):
    the law is interpolated there, not extrapolated (the recommender's ``observed`` region).

    Examples
    --------
    >>> inside_range([0.5, 0.5], np.array([[0.2, 0.8], [0.8, 0.2]]))
    True
    >>> inside_range([0.9, 0.1], np.array([[0.2, 0.8], [0.8, 0.2]]))
    False
    """
    p = np.asarray(point, dtype=float)
    return bool(np.all(p >= others.min(axis=0) - tol) and np.all(p <= others.max(axis=0) + tol))


def leave_one_out(mix: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """For each mixture, the laws fitted on all the others, evaluated at it (out-of-sample).

    ``interpolated`` says whether the left-out mixture lies inside the others' share ranges;
    a left-out near-corner is an extrapolation, which the recommender never makes.
    """
    W = np.array([[m[f"r_{d}"] for d in DOMAINS] for m in mix])
    preds = []
    for i in range(len(mix)):
        keep = np.arange(len(mix)) != i
        params = fit_laws([x for j, x in enumerate(mix) if keep[j]])
        v = law_values(params, W[i : i + 1])
        preds.append({**{k: float(a[0]) for k, a in v.items()},
                      "interpolated": inside_range(W[i], W[keep])})
    return preds


def rmse(errors: Sequence[float]) -> float | None:
    """Root-mean-square of finite ``errors`` (None if there are none)."""
    e = np.asarray(errors, dtype=float)
    return float(np.sqrt(np.mean(e**2))) if e.size and np.all(np.isfinite(e)) else None


def recommend(mix: Sequence[Mapping[str, Any]], *, reference: str, bootstrap: int) -> Any:
    """:func:`recommend_mixture` on the seed-averaged grid (one row per mixture)."""
    from scalelab.predict.mixture import recommend_mixture

    table = {"mixture": [m["mixture"] for m in mix],
             **{d: [m[f"r_{d}"] for m in mix] for d in DOMAINS},
             **{f"loss_{d}": [m[f"loss_{d}"] for m in mix] for d in DOMAINS}}
    return recommend_mixture(
        table, domains=list(DOMAINS), targets={f"loss_{d}": w for d, w in OBJECTIVE.items()},
        reference=reference, region="observed", run_col="mixture", loss="mse",
        bootstrap=bootstrap, coverage=COVERAGE, seed=BOOT_SEED, workers=1,
    )


# ----------------------------------------------------------------------------- comparing
def interval_with_noise(low: float, high: float, sd: float | None, n: int) -> tuple[float, float] | None:
    """Widen a confidence interval for the mean law into one for a mean of ``n`` seeds.

    Half-widths add in quadrature: ``sqrt(h^2 + (z sd / sqrt(n))^2)`` around the midpoint.

    Examples
    --------
    >>> interval_with_noise(1.0, 3.0, 0.0, 2)
    (1.0, 3.0)
    """
    if sd is None:
        return None
    mid, half = (low + high) / 2, (high - low) / 2
    h = math.sqrt(half**2 + (Z * sd / math.sqrt(n)) ** 2)
    return (mid - h, mid + h)


def paired_difference(a: Mapping[int, float], b: Mapping[int, float], sd: float | None) -> dict[str, Any]:
    """``a - b`` over the seeds both have: per seed, the mean, and a normal 95% interval from
    the residual seed SD ``sd`` (:func:`seed_residual_sd`): ``mean +- z sqrt(2) sd / sqrt(n)``
    (None when the SD is unknown).

    Examples
    --------
    >>> d = paired_difference({0: 2.0, 1: 2.2}, {0: 2.5, 1: 2.5}, 0.1)
    >>> round(d["mean"], 6), d["n"]
    (-0.4, 2)
    """
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise DataError("no seed in common between the two mixtures compared")
    per = {s: a[s] - b[s] for s in seeds}
    mean = float(np.mean(list(per.values())))
    half = None if sd is None else Z * math.sqrt(2.0) * sd / math.sqrt(len(seeds))
    return {"per_seed": per, "mean": mean, "n": len(seeds),
            "low": None if half is None else mean - half, "high": None if half is None else mean + half}


def by_seed(rows: Sequence[Mapping[str, Any]], label: str, key: str = "objective") -> dict[int, float]:
    return {int(r["seed"]): float(r[key]) for r in rows if r["mixture"] == label}


def compare(rows: Sequence[Mapping[str, Any]], mix: Sequence[Mapping[str, Any]], rec: Any,
            loo: Sequence[Mapping[str, float]]) -> dict[str, Any]:
    """Predicted against measured at the recommended mixture, and the measured comparisons."""
    grid = [r for r in rows if r["stage"] == "grid"]
    recd = [r for r in rows if r["stage"] == "recommended"]
    if not recd:
        raise DataError("the recommended mixture has no runs; rerun the command to train them")
    sd = seed_residual_sd(grid)
    n = len(recd)
    out: dict[str, Any] = {"seed_sd_objective": pooled_seed_sd(grid), "seed_residual_sd_objective": sd,
                           "n_seeds": n, "coverage": COVERAGE, "targets": {}}
    fits = {t.target.removeprefix("loss_"): t for t in rec.targets}
    for key in [*DOMAINS, "objective"]:
        col = "objective" if key == "objective" else f"loss_{key}"
        measured = float(np.mean([r[col] for r in recd]))
        if key == "objective":
            pred, lo, hi = rec.objective, rec.objective_low, rec.objective_high
            sd_k = sd
        else:
            t = fits[key]
            pred, lo, hi = t.recommended, t.recommended_low, t.recommended_high
            sd_k = seed_residual_sd(grid, col)
        wide = interval_with_noise(lo, hi, sd_k, n)
        pairs = list(zip(mix, loo, strict=True))
        out["targets"][key] = {
            "predicted": pred, "low": lo, "high": hi, "measured": measured,
            "measured_seeds": [r[col] for r in recd],
            "error": measured - pred, "relative_error": (measured - pred) / measured,
            "inside_ci": bool(lo <= measured <= hi),
            "prediction_interval": wide,
            "inside_prediction_interval": None if wide is None else bool(wide[0] <= measured <= wide[1]),
            "loo_rmse_grid_interpolated": rmse([m[col] - p[key] for m, p in pairs if p["interpolated"]]),
            "loo_rmse_grid_all": rmse([m[col] - p[key] for m, p in pairs]),
            "n_interpolated": sum(bool(p["interpolated"]) for _, p in pairs),
        }
    uniform = mixture_label((1 / 3, 1 / 3, 1 / 3))
    best = min(mix, key=lambda m: m["objective"])["mixture"]
    rec_obj = by_seed(recd, "recommended")
    out["uniform_mixture"], out["best_grid_mixture"] = uniform, best
    out["vs_uniform"] = paired_difference(rec_obj, by_seed(grid, uniform), sd)
    out["vs_best_grid"] = paired_difference(rec_obj, by_seed(grid, best), sd)
    for k in ("vs_uniform", "vs_best_grid"):
        d = out[k]
        d["beats"] = d["mean"] < 0
        d["resolved"] = None if d["high"] is None else bool(d["high"] < 0 or d["low"] > 0)
    measured_gain = -out["vs_uniform"]["mean"]
    out["gain_vs_uniform"] = {"predicted": rec.gain, "low": rec.gain_low, "high": rec.gain_high,
                              "measured": measured_gain,
                              "inside_ci": bool(rec.gain_low <= measured_gain <= rec.gain_high)}
    return out


# ----------------------------------------------------------------------------- across sizes
def scale_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The runs that measure the effect at each size: uniform and recommended, per size.

    The base size's uniform runs are stage 1's centre, which must be exactly uniform (the
    design's first point is); its recommended runs are stage 2's; the larger sizes' are stage 3's.
    """
    uniform = mixture_label(UNIFORM)
    out = []
    for r in rows:
        if r["mixture"] not in (uniform, "recommended"):
            continue
        if r["mixture"] == uniform and not all(abs(r[f"r_{d}"] - 1 / len(DOMAINS)) < 1e-12 for d in DOMAINS):
            raise DataError(f"run {r['run']} is labelled {uniform} but its shares are not exactly uniform; "
                            "rerun stage 1 with the design's centre (1/3, 1/3, 1/3)")
        out.append({**r, "arm": "uniform" if r["mixture"] == uniform else "recommended"})
    return out


def paired_by_seed(rows: Sequence[Mapping[str, Any]], size: str) -> dict[int, float]:
    """Per seed at ``size``: objective of uniform - objective of recommended (seeds both have).

    Examples
    --------
    >>> rows = [{"size": "a", "arm": "uniform", "seed": 1, "objective": 2.5},
    ...         {"size": "a", "arm": "recommended", "seed": 1, "objective": 2.25},
    ...         {"size": "a", "arm": "uniform", "seed": 0, "objective": 3.0},
    ...         {"size": "a", "arm": "recommended", "seed": 0, "objective": 2.5}]
    >>> paired_by_seed(rows, "a")
    {0: 0.5, 1: 0.25}
    """
    arms: dict[str, dict[int, float]] = {"uniform": {}, "recommended": {}}
    for r in rows:
        if r["size"] != size:
            continue
        seed = int(r["seed"])
        if seed in arms[r["arm"]]:
            raise DataError(f"two {r['arm']} runs with seed {seed} at size {size}; keep one store per stage")
        arms[r["arm"]][seed] = float(r["objective"])
    seeds = sorted(set(arms["uniform"]) & set(arms["recommended"]))
    if not seeds:
        raise DataError(f"size {size} has no seed with both a uniform and a recommended run; "
                        "rerun the command to train stage 3")
    return {s: arms["uniform"][s] - arms["recommended"][s] for s in seeds}


def size_effects(rows: Sequence[Mapping[str, Any]], *, coverage: float = EFFECT_COVERAGE,
                 grid_sd: float | None = None, grid_df: int = 0) -> list[dict[str, Any]]:
    """The effect of the recommendation at each model size, with a t interval over seeds.

    Per size, the paired differences ``d_s = objective(uniform, seed s) - objective(recommended,
    seed s)`` (> 0: the recommendation helps); the value is their mean. With two seeds a size's
    own SD has one degree of freedom, so the SD of a paired difference is pooled over sizes
    (``sum over sizes of sum_s (d_s - mean)^2 / sum over sizes of (n - 1)``, i.e. assuming the
    seed noise of a paired difference is the same at every size) and the interval is
    ``mean +- t_{df}((1 + coverage) / 2) x pooled SD / sqrt(n)``. Each size also gets its own
    unpooled interval (``own_lower``/``own_upper``, None with one seed), and, given the
    stage-1 grid's residual seed SD ``grid_sd`` (:func:`seed_residual_sd`, ``grid_df`` degrees
    of freedom), the interval that noise implies, ``mean +- t_{grid_df} sqrt(2) grid_sd /
    sqrt(n)`` (``grid_lower``/``grid_upper``; measured on the base size only). No interval
    (None) when no size has two seeds.

    Returns one dict per size, ordered by parameter count: ``size``, ``n_params``, ``value``,
    ``lower``, ``upper``, ``per_seed``, ``n``, ``sd_pooled``, ``df``, ``own_lower``,
    ``own_upper``, ``grid_lower``, ``grid_upper``, ``coverage``.
    """
    from scipy.stats import t as student_t

    if not 0 < coverage < 1:
        raise DataError(f"coverage must be between 0 and 1, got {coverage}")
    sizes = sorted({r["size"] for r in rows}, key=lambda z: next(int(r["n_params"]) for r in rows if r["size"] == z))
    if not sizes:
        raise DataError("no uniform or recommended runs to compare; run the experiment first")
    diffs = {z: paired_by_seed(rows, z) for z in sizes}
    ss = sum(float(np.sum((np.array(list(d.values())) - np.mean(list(d.values()))) ** 2)) for d in diffs.values())
    df = sum(len(d) - 1 for d in diffs.values())
    sd = math.sqrt(ss / df) if df > 0 else None
    q = (1 + coverage) / 2
    out = []
    for z in sizes:
        d = np.array(list(diffs[z].values()))
        mean, n = float(d.mean()), int(d.size)
        half = None if sd is None else float(student_t.ppf(q, df)) * sd / math.sqrt(n)
        own = None if n < 2 else float(student_t.ppf(q, n - 1)) * float(d.std(ddof=1)) / math.sqrt(n)
        grid = None if grid_sd is None or grid_df < 1 else \
            float(student_t.ppf(q, grid_df)) * math.sqrt(2.0) * grid_sd / math.sqrt(n)
        out.append({
            "size": z, "n_params": next(int(r["n_params"]) for r in rows if r["size"] == z),
            "value": mean, "lower": None if half is None else mean - half,
            "upper": None if half is None else mean + half, "per_seed": diffs[z], "n": n,
            "sd_pooled": sd, "df": df, "own_lower": None if own is None else mean - own,
            "own_upper": None if own is None else mean + own,
            "grid_lower": None if grid is None else mean - grid,
            "grid_upper": None if grid is None else mean + grid, "coverage": coverage,
        })
    return out


def effects(per_size: Sequence[Mapping[str, Any]], shares: Sequence[float]) -> list[dict[str, Any]]:
    """The effects list experiment 6 reads (issue #7 contract), one row per model size."""
    rec = ", ".join(f"{d} {s:g}" for d, s in zip(DOMAINS, shares, strict=True))
    out = []
    for e in per_size:
        note = ""
        if e["lower"] is None:
            note = f"{e['n']} seed(s) per size: no seed noise estimate, so no interval"
        out.append({
            "effect": EFFECT,
            "description": (f"mean held-out loss (3 domains) of the uniform mixture minus that of the "
                            f"mixture recommended on the {BASE_SIZE} model ({rec}); paired by seed, "
                            f"t interval with the paired SD pooled over sizes"),
            "kind": "difference", "size": e["size"], "n_params": int(e["n_params"]),
            "value": e["value"], "lower": e["lower"], "upper": e["upper"], "coverage": e["coverage"],
            "neutral": 0.0, "note": note,
        })
    return out


# ----------------------------------------------------------------------------- figure
def _xy(shares: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ternary coordinates: code at (0, 0), docstrings at (1, 0), prose at (0.5, sqrt(3)/2)."""
    W = np.atleast_2d(shares)
    return W[:, 1] + 0.5 * W[:, 2], W[:, 2] * math.sqrt(3) / 2


def figure(rows: Sequence[Mapping[str, Any]], mix: Sequence[Mapping[str, Any]],
           loo: Sequence[Mapping[str, Any]], params: Mapping[str, Mapping[str, float]], rec: Any,
           cmp: Mapping[str, Any], per_size: Sequence[Mapping[str, Any]], path: Path, title: str) -> Path:
    """Left: predicted (leave-one-out for grid mixtures) against measured loss per run, with
    the recommended runs and the law's interval. Middle: the simplex, shaded by the law's
    predicted objective inside the searched region, runs coloured by measured objective.
    Right: the effect of the recommendation (uniform - recommended) against model size."""
    import matplotlib.tri as mtri

    fig, ax = C.new_figure(3, width=5.4, height=4.6)
    a = ax[0][0]
    grid = [r for r in rows if r["stage"] == "grid"]
    loo_by = {m["mixture"]: p for m, p in zip(mix, loo, strict=True)}
    colors = {"code": "tab:blue", "docstrings": "tab:orange", "prose": "tab:green", "objective": "k"}
    measured_all = [r[f"loss_{d}"] for r in rows for d in DOMAINS]
    lo_ax, hi_ax = min(measured_all) - 0.05, max(measured_all) + 0.05
    off = 0
    for key, c in colors.items():
        col = "objective" if key == "objective" else f"loss_{key}"
        for interp in (True, False):
            rs = [r for r in grid if bool(loo_by[r["mixture"]]["interpolated"]) == interp]
            xs = [r[col] for r in rs]
            ys = [loo_by[r["mixture"]][key] for r in rs]
            off += sum(1 for y in ys if not lo_ax <= y <= hi_ax)
            a.scatter(xs, np.clip(ys, lo_ax, hi_ax), s=22 if key == "objective" else 12,
                      color=c if interp else "none", edgecolor=c, alpha=0.9 if key == "objective" else 0.6,
                      label=f"{key} (leave-one-out)" if interp else None)
    t = cmp["targets"]["objective"]
    for r in (r for r in rows if r["stage"] == "recommended"):
        p, low, high = t["predicted"], max(t["low"], lo_ax), min(t["high"], hi_ax)
        a.errorbar([r["objective"]], [p], yerr=[[p - low], [high - p]], fmt="*", color="tab:red",
                   ms=13, capsize=3, zorder=5)
    a.plot([], [], "*", color="tab:red", ms=10, label=f"recommended: objective, {COVERAGE:.0%} CI (per seed)")
    a.scatter([], [], color="none", edgecolor="grey", label="hollow: left-out mixture outside the others' range")
    a.plot([lo_ax, hi_ax], [lo_ax, hi_ax], color="grey", lw=0.7)
    a.set(xlim=(lo_ax, hi_ax), ylim=(lo_ax, hi_ax), xlabel="measured held-out loss (nats/byte)",
          ylabel="predicted by the data-mixing law")
    a.set_title(title + (f"\n({off} prediction(s) off-scale, drawn at the edge)" if off else ""), fontsize=7)
    a.legend(fontsize=6, loc="upper left")

    b = ax[0][1]
    mesh = _simplex_mesh(60)
    tri = mtri.Triangulation(*_xy(mesh))
    lo_r = np.array([rec.bounds[d][0] for d in DOMAINS])
    hi_r = np.array([rec.bounds[d][1] for d in DOMAINS])
    centroid = mesh[tri.triangles].mean(axis=1)
    tri.set_mask(np.any((centroid < lo_r - 1e-9) | (centroid > hi_r + 1e-9), axis=1))
    z = law_values(params, mesh)["objective"]
    meas = [m["objective"] for m in mix] + [r["objective"] for r in rows if r["stage"] == "recommended"]
    vmin, vmax = min(meas), max(meas)
    b.tricontourf(tri, np.clip(z, vmin, vmax), levels=np.linspace(vmin, vmax, 15), cmap="viridis", alpha=0.45)
    W = np.array([[m[f"r_{d}"] for d in DOMAINS] for m in mix])
    x, y = _xy(W)
    sc = b.scatter(x, y, c=[m["objective"] for m in mix], cmap="viridis", s=70, edgecolor="k",
                   vmin=vmin, vmax=vmax, label="grid mixture (mean over seeds)")
    rx, ry = _xy(np.array([[rec.weights[d] for d in DOMAINS]]))
    rec_meas = float(np.mean([r["objective"] for r in rows if r["stage"] == "recommended"]))
    b.scatter(rx, ry, marker="*", s=300, c=[rec_meas], cmap="viridis", vmin=vmin, vmax=vmax,
              edgecolor="tab:red", linewidth=1.5, label="recommended (measured colour)", zorder=5)
    best = min(mix, key=lambda m: m["objective"])
    bx, by = _xy(np.array([[best[f"r_{d}"] for d in DOMAINS]]))
    b.scatter(bx, by, marker="s", s=150, facecolor="none", edgecolor="tab:red", label="best grid mixture")
    b.plot([0, 1, 0.5, 0], [0, 0, math.sqrt(3) / 2, 0], color="k", lw=0.8)
    for (vx, vy), d in zip([(0, 0), (1, 0), (0.5, math.sqrt(3) / 2)], DOMAINS, strict=True):
        b.annotate(d, (vx, vy), ha="center", va="top" if vy == 0 else "bottom", fontsize=8)
    fig.colorbar(sc, ax=b, label="mean held-out loss (points: measured; shading: law)")
    b.set(aspect="equal", xticks=[], yticks=[], xlim=(-0.12, 1.12), ylim=(-0.1, 1.0))
    b.set_title("shading only inside the searched region (shares within the grid's range)", fontsize=7)
    b.legend(fontsize=6, loc="upper left")
    _effect_panel(ax[0][2], per_size)
    return C.save_figure(fig, path)


def _effect_panel(a: Any, per_size: Sequence[Mapping[str, Any]]) -> None:
    """Effect of the recommendation against non-embedding parameters: seeds, mean, interval."""
    x = np.array([e["n_params"] for e in per_size], float)
    for e in per_size:
        a.scatter([e["n_params"]] * e["n"], list(e["per_seed"].values()), s=14, color="grey", zorder=3)
    y = np.array([e["value"] for e in per_size])
    a.plot(x, y, "o-", color="tab:red", ms=7, zorder=4, label="mean over seeds")
    if all(e["lower"] is not None for e in per_size):
        lo = np.array([e["lower"] for e in per_size])
        hi = np.array([e["upper"] for e in per_size])
        a.errorbar(x, y, yerr=[y - lo, hi - y], fmt="none", color="tab:red", capsize=4,
                   label=f"{per_size[0]['coverage']:.0%} t interval (paired SD pooled over sizes)")
    if all(e["grid_lower"] is not None for e in per_size):
        gl = np.array([e["grid_lower"] for e in per_size])
        gh = np.array([e["grid_upper"] for e in per_size])
        a.errorbar(x * 1.06, y, yerr=[y - gl, gh - y], fmt="none", color="grey", capsize=3, lw=0.8,
                   label=f"{per_size[0]['coverage']:.0%} interval from the {BASE_SIZE} grid's seed noise")
    a.scatter([], [], s=14, color="grey", label="one seed (paired)")
    a.axhline(0.0, color="k", lw=0.8)
    for e in per_size:
        a.annotate(e["size"], (e["n_params"], e["value"]), textcoords="offset points", xytext=(6, 4),
                   fontsize=7)
    a.set(xscale="log", xlabel="non-embedding parameters",
          ylabel="objective: uniform - recommended (nats/byte; > 0 helps)")
    a.set_title("does the tiny model's recommendation hold at larger models?", fontsize=7)
    a.legend(fontsize=6, loc="best")

def _simplex_mesh(n: int) -> np.ndarray:
    pts = [(i / n, j / n, (n - i - j) / n) for i in range(n + 1) for j in range(n + 1 - i)]
    return np.array(pts)


# ----------------------------------------------------------------------------- report
def markdown(rows: Sequence[Mapping[str, Any]], mix: Sequence[Mapping[str, Any]],
             loo: Sequence[Mapping[str, float]], rec: Any, cmp: Mapping[str, Any], quick: bool,
             title: str) -> str:
    f = C.fmt
    t = cmp["targets"]
    lines = [f"# Data mixtures ({'quick' if quick else 'full'} mode)", "", title, "",
             "Objective (fixed up front): mean held-out loss over code, docstrings and prose "
             "(nats per byte, final step).", "",
             "Grid (mean over seeds; `predicted` is leave-one-out: the laws refitted without that "
             "mixture):", "",
             C.markdown_table(
                 ["mixture", "code", "docstrings", "prose", "loss code", "loss docstrings",
                  "loss prose", "objective", "predicted (LOO)", "LOO interpolates"],
                 [[m["mixture"], *[m[f"r_{d}"] for d in DOMAINS], *[m[f"loss_{d}"] for d in DOMAINS],
                   m["objective"], p["objective"], p["interpolated"]] for m, p in zip(mix, loo, strict=True)]),
             "",
             "Recommended mixture (region: each share within the grid's range), "
             f"{COVERAGE:.0%} bootstrap intervals of the re-optimised shares: " + ", ".join(
                 f"{d} {f(rec.weights[d])} [{f(rec.weights_low[d])}, {f(rec.weights_high[d])}]"
                 for d in DOMAINS), "",
             C.markdown_table(
                 ["target", "predicted", f"{COVERAGE:.0%} CI (law)", "+ seed noise", "measured",
                  "error", "inside CI", "inside + noise", "grid LOO RMSE (interpolated)"],
                 [[k, v["predicted"], f"[{f(v['low'])}, {f(v['high'])}]",
                   "-" if v["prediction_interval"] is None else
                   f"[{f(v['prediction_interval'][0])}, {f(v['prediction_interval'][1])}]",
                   v["measured"], v["error"], v["inside_ci"], v["inside_prediction_interval"],
                   v["loo_rmse_grid_interpolated"]] for k, v in t.items()]),
             ""]
    for k, name in (("vs_uniform", f"uniform ({cmp['uniform_mixture']})"),
                    ("vs_best_grid", f"best grid mixture ({cmp['best_grid_mixture']})")):
        d = cmp[k]
        ci = "" if d["low"] is None else f" [{f(d['low'])}, {f(d['high'])}]"
        lines.append(f"* recommended - {name}: measured objective difference {f(d['mean'])}{ci} "
                     f"(per seed: {', '.join(f(v) for v in d['per_seed'].values())}); "
                     f"{'beats' if d['beats'] else 'does not beat'} it"
                     + ("" if d["resolved"] is None else
                        " (resolved beyond seed noise)" if d["resolved"] else " (within seed noise)"))
    g = cmp["gain_vs_uniform"]
    lines.append(f"* gain over uniform (objective, uniform - recommended): predicted {f(g['predicted'])} "
                 f"[{f(g['low'])}, {f(g['high'])}], measured {f(g['measured'])} "
                 f"({'inside' if g['inside_ci'] else 'outside'} the {COVERAGE:.0%} CI)")
    lines += [f"* note: {n}" for n in rec.notes]
    return "\n".join(lines)


def scale_markdown(per_size: Sequence[Mapping[str, Any]], scale: Sequence[Mapping[str, Any]]) -> str:
    """The section on stage 3: the effect per size, its intervals and the per-size losses."""
    f = C.fmt
    cov = f"{per_size[0]['coverage']:.0%}"

    def iv(lo: float | None, hi: float | None) -> str:
        return "-" if lo is None else f"[{f(lo)}, {f(hi)}]"

    lines = ["## Does it hold at larger models?", "",
             "Effect = objective(uniform) - objective(recommended), paired by seed (> 0: the "
             f"recommendation helps); {cov} t intervals, the paired SD pooled over sizes "
             f"(SD {f(per_size[0]['sd_pooled'])}, {per_size[0]['df']} df), per size alone, and "
             f"with the {BASE_SIZE} grid's residual seed noise:", "",
             C.markdown_table(
                 ["size", "non-embedding params", "effect", f"{cov} (pooled SD)", f"{cov} (own SD)",
                  f"{cov} ({BASE_SIZE} grid noise)", "per seed", "verdict (pooled)"],
                 [[e["size"], int(e["n_params"]), e["value"], iv(e["lower"], e["upper"]),
                   iv(e["own_lower"], e["own_upper"]), iv(e["grid_lower"], e["grid_upper"]),
                   ", ".join(f(v) for v in e["per_seed"].values()), verdict_of(e)] for e in per_size]), ""]
    if scale:
        lines += ["Stage-3 runs (final held-out loss):", "",
                  C.markdown_table(["size", "mixture", "seed", "loss code", "loss docstrings", "loss prose",
                                    "objective"],
                                   [[r["size"], r["mixture"], r["seed"], *[r[f"loss_{d}"] for d in DOMAINS],
                                     r["objective"]] for r in scale])]
    return "\n".join(lines)


def verdict_of(e: Mapping[str, Any]) -> str:
    """``helps``/``hurts`` when the (pooled) interval excludes 0, else ``tie``; sign only without one.

    Examples
    --------
    >>> verdict_of({"value": 0.02, "lower": 0.01, "upper": 0.03})
    'helps'
    >>> verdict_of({"value": 0.02, "lower": -0.01, "upper": 0.05})
    'tie (within seed noise)'
    """
    if e["lower"] is None:
        return "helps (no interval)" if e["value"] > 0 else "hurts (no interval)"
    if e["lower"] > 0:
        return "helps"
    if e["upper"] < 0:
        return "hurts"
    return "tie (within seed noise)"


def finite_or_none(value: Any) -> Any:
    """A copy of nested lists/dicts with non-finite floats replaced by None (strict JSON).

    Examples
    --------
    >>> finite_or_none({"a": [1.0, float("inf")], "b": (float("nan"),)})
    {'a': [1.0, None], 'b': [None]}
    """
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def body(argv: Sequence[str] | None) -> int:
    args = C.parse_args(__doc__.splitlines()[0], argv, "results/mixture")
    s = settings(args.quick)
    spec = grid_spec(args.quick)
    wall = C.run_cells(spec, args.out, workers=args.workers)
    rows = run_rows(C.eval_curves(args.out / "store", "loss"))
    mix = mixture_means([r for r in rows if r["stage"] == "grid"])
    rec = recommend(mix, reference="uniform", bootstrap=s["bootstrap"])
    shares = rounded_shares(rec.weights)
    print(f"recommended mixture {dict(zip(DOMAINS, shares, strict=True))}; training it", file=sys.stderr)
    stage2 = recommended_spec(args.quick, shares)
    wall += C.run_cells(stage2, args.out / "stage2", workers=args.workers)
    stage3 = scale_spec(args.quick, shares)
    print(f"stage 3: uniform and recommended at {', '.join(s['scale_sizes'])}", file=sys.stderr)
    wall += C.run_cells(stage3, args.out / "stage3", workers=args.workers)
    rows = run_rows(C.eval_curves(args.out / "store", "loss")) + \
        run_rows(C.eval_curves(args.out / "stage2" / "store", "loss"))
    scale = run_rows(C.eval_curves(args.out / "stage3" / "store", "loss"), stage="scale")
    params = fit_laws(mix)
    loo = leave_one_out(mix)
    cmp = compare(rows, mix, rec, loo)
    grid_df = (len(mix) - 1) * (len(s["seeds"]) - 1)  # every grid mixture has every seed
    per_size = size_effects(scale_rows(rows + scale), grid_sd=cmp["seed_residual_sd_objective"],
                            grid_df=grid_df)
    effs = effects(per_size, shares)
    title = (f"{BASE_SIZE} model, {s['steps']} steps x {s['batch_size']} rows x {s['seq_len']} bytes, "
             f"{len(mix)} mixtures x {len(s['seeds'])} seed(s) + the recommended mixture")
    figure(rows, mix, loo, params, rec, cmp, per_size,
           args.out / f"{NAME}{'_quick' if args.quick else ''}.png", title)
    md = markdown(rows, mix, loo, rec, cmp, args.quick, title) + "\n\n" + scale_markdown(per_size, scale)
    results = {"grid": spec, "stage2": stage2, "stage3": stage3, "objective": OBJECTIVE, "runs": rows,
               "scale_runs": scale, "mixtures": mix, "leave_one_out": loo, "fitted_params": params,
               "recommendation": rec.to_dict(), "recommended_shares_trained": shares,
               "comparison": cmp, "effect_by_size": per_size}
    C.write_results(args.out, NAME, args, finite_or_none(results), md, wall_seconds=wall,
                    effects=finite_or_none(effs))
    print(md)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return C.main_wrapper(body, argv)


if __name__ == "__main__":
    sys.exit(main())
