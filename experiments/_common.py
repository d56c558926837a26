"""Shared runner for the experiments of issue #7: grids from a dict, a store under a results
directory, threshold crossings with bootstrap intervals over seeds, figures and result files.

Each experiment's ``run.py`` builds a grid spec (the same shape as a grid TOML: ``name``,
``base``, ``axis``), calls :func:`run_cells` to train it into ``OUT/store`` with the normal grid
runner, reads the store back as plain records with :func:`eval_curves`, analyses them with the
helpers here, and writes ``results.json``, ``summary.md`` and PNG figures with :func:`write_results`
and :func:`new_figure`. Nothing here is specific to one experiment, so later experiments reuse it.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python experiments/<name>/run.py` from a checkout
    sys.path.insert(0, str(ROOT))

from scalelab.errors import DataError  # noqa: E402

__all__ = [
    "Crossing",
    "ExperimentArgs",
    "bootstrap_median",
    "eval_curves",
    "first_reach",
    "loglog_slope",
    "main_wrapper",
    "markdown_table",
    "n_params",
    "new_figure",
    "parse_args",
    "run_cells",
    "sizes_of",
    "write_results",
]


# ----------------------------------------------------------------------------- command line
@dataclass(frozen=True)
class ExperimentArgs:
    """The options every experiment takes."""

    quick: bool
    out: Path
    workers: int


def parse_args(description: str, argv: Sequence[str] | None, default_out: str) -> ExperimentArgs:
    """Parse ``[--quick] [--out DIR] [--workers N]``."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--quick", action="store_true", help="the small, fast version (CI)")
    ap.add_argument("--out", default=None, help=f"results directory (default {default_out}[-quick])")
    ap.add_argument("--workers", type=int, default=2, help="training processes (default 2)")
    ns = ap.parse_args(argv)
    if ns.workers < 1:
        raise DataError(f"--workers must be at least 1, got {ns.workers}")
    out = Path(ns.out) if ns.out else Path(default_out + ("-quick" if ns.quick else ""))
    return ExperimentArgs(quick=bool(ns.quick), out=out, workers=int(ns.workers))


def main_wrapper(body: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run ``body(argv)``; a scalelab error becomes one ``error:`` line and exit code 2."""
    from scalelab.errors import ScalelabError

    try:
        return body(argv)
    except ScalelabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


# ----------------------------------------------------------------------------- model sizes
def n_params(config: Mapping[str, Any]) -> int:
    """Non-embedding parameters of a run config's model (a named ``size`` or explicit dimensions).

    The harness's own count, computed without building the model: for the GPT
    :func:`scalelab.harness.config.non_embedding_params`; for ``model.kind = "mlp"``
    :func:`scalelab.harness.config.mlp_params` (hidden and output layers; the output layer's size
    depends on the vocabulary, which is the largest ``vocab_size`` of the config's sources).
    """
    from scalelab.harness.config import SIZE_LADDER, mlp_params, non_embedding_params

    m = config.get("model", {})
    if m.get("kind", "gpt") == "mlp":
        from scalelab.harness.sources import make_source
        from scalelab.harness.vocab import VOCAB_SIZE

        data = config.get("data", {})
        vocab = max((int(getattr(make_source(spec["kind"], name=name, **dict(spec.get("options", {}))),
                                 "vocab_size", VOCAB_SIZE))
                     for name, spec in data.get("sources", {}).items()), default=VOCAB_SIZE)
        block = int(m.get("block_size") or data["seq_len"])
        return mlp_params(int(m["n_layer"]), int(m["d_model"]), vocab_size=vocab, block_size=block)[1]
    size = m.get("size")
    if size is not None and size not in SIZE_LADDER:
        raise DataError(f"unknown model size {size!r} in a run config; use one of {', '.join(SIZE_LADDER)}")
    dims = SIZE_LADDER[size] if size is not None else None
    n_layer = dims.n_layer if dims else int(m["n_layer"])
    d_model = dims.d_model if dims else int(m["d_model"])
    return non_embedding_params(n_layer, d_model)


def sizes_of(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """The ``size`` labels of result rows (each with ``n_params``), smallest model first."""
    n = {r["size"]: r["n_params"] for r in rows}
    return sorted(n, key=lambda s: (n[s], s))


# ----------------------------------------------------------------------------- running
def run_cells(spec: Mapping[str, Any], out: Path, *, workers: int = 2, quiet: bool = False) -> float:
    """Train every cell of the grid ``spec`` into ``out/store``; return the wall seconds.

    Finished cells are skipped (the store is the only state), so rerunning resumes. A failed
    cell raises :class:`DataError` naming it, so the experiment exits non-zero.
    """
    from scalelab.harness.executors import LocalExecutor, run_grid
    from scalelab.harness.grid import parse_grid

    runs = parse_grid(dict(spec), source=f"grid {spec.get('name', '?')}").runs()
    out.mkdir(parents=True, exist_ok=True)
    (out / "grid.json").write_text(json.dumps(spec, indent=1, sort_keys=True) + "\n")
    t0 = time.perf_counter()
    say = (lambda _m: None) if quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    summary = run_grid(runs, str(out / "store"), LocalExecutor(workers=workers, threads=1), progress=say)
    failed = [o for o in summary.outcomes if o.status == "failed"]
    if failed:
        last = failed[0].error.strip().splitlines()[-1] if failed[0].error else "no message"
        raise DataError(f"{len(failed)} run(s) failed, first {failed[0].run_id}: {last}; "
                        f"see {out / 'store'}")
    return time.perf_counter() - t0


def eval_curves(store: Path, metric: str = "acc") -> dict[str, dict[str, Any]]:
    """Eval curves of every run in a store, keyed by run id.

    Returns ``{run_id: {"labels": {axis: label}, "curves": {source: (steps, values)},
    "examples": {step: examples}, "tokens": {step: tokens}}}`` for the eval ``metric``.
    """
    from scalelab.store.runs import RunStore

    rs = RunStore(store)
    table = rs.export()
    if len(table) == 0:
        raise DataError(f"the store {store} has no metrics; run the experiment first")
    run = np.asarray(table["run"]).astype(str)
    split = np.asarray(table["split"]).astype(str)
    source = np.asarray(table["source"]).astype(str)
    met = np.asarray(table["metric"]).astype(str)
    step = np.asarray(table["step"], dtype=float)
    value = np.asarray(table["value"], dtype=float)
    examples = np.asarray(table["examples"], dtype=float)
    out: dict[str, dict[str, Any]] = {}
    for rid in sorted(set(run)):
        cfg = rs.run(rid).config()
        rec: dict[str, Any] = {"labels": dict(cfg.get("grid", {}).get("labels", {})), "curves": {},
                               "config": cfg}
        m = (run == rid) & (split == "eval") & (met == metric)
        for src in sorted(set(source[m])):
            mm = m & (source == src)
            order = np.argsort(step[mm], kind="stable")
            rec["curves"][src] = (step[mm][order], value[mm][order])
        mm = run == rid
        rec["examples_per_step"] = float(np.nanmax(examples[mm]) / max(np.nanmax(step[mm]), 1.0))
        out[rid] = rec
    return out


# ----------------------------------------------------------------------------- analysis
@dataclass(frozen=True)
class Crossing:
    """The first step at which a curve reaches a level, or the last step if it never does."""

    step: float
    reached: bool


def first_reach(steps: Sequence[float], values: Sequence[float], level: float) -> Crossing:
    """First step where ``values >= level``, interpolated in log step between evaluations.

    Evaluations are log-spaced, so the crossing is placed by linear interpolation of the value
    in ``log(step + 1)`` between the last evaluation below the level and the first at or above
    it. A curve that never reaches the level is censored at its last step (``reached=False``).

    Examples
    --------
    >>> first_reach([0, 9, 99], [0.0, 0.5, 1.0], 0.75)
    Crossing(step=31.0, reached=True)
    >>> first_reach([0, 10], [0.1, 0.2], 0.9)
    Crossing(step=10.0, reached=False)
    """
    s = np.asarray(steps, dtype=float)
    v = np.asarray(values, dtype=float)
    if s.size == 0 or s.shape != v.shape:
        raise DataError(f"first_reach needs equal-length non-empty steps and values, got {s.size} and {v.size}")
    hit = np.flatnonzero(v >= level)
    if hit.size == 0:
        return Crossing(float(s[-1]), False)
    i = int(hit[0])
    if i == 0:
        return Crossing(float(s[0]), True)
    u0, u1 = math.log(s[i - 1] + 1.0), math.log(s[i] + 1.0)
    frac = (level - v[i - 1]) / (v[i] - v[i - 1]) if v[i] != v[i - 1] else 1.0
    return Crossing(float(round(math.exp(u0 + frac * (u1 - u0)) - 1.0, 6)), True)


def bootstrap_median(
    values: Sequence[float], reached: Sequence[bool] | None = None, *, n_boot: int = 2000,
    coverage: float = 0.9, seed: int = 0,
) -> dict[str, Any]:
    """Median over seeds with a percentile-bootstrap interval, honest about censoring.

    Censored values (not reached by the last step) enter as +inf: if the median itself is
    censored it is reported as ``None`` with ``"censored": True``, and an interval end that
    falls on a censored draw is ``None`` (unbounded above).

    Examples
    --------
    >>> r = bootstrap_median([10.0, 20.0, 30.0], n_boot=200)
    >>> r["median"], r["n"]
    (20.0, 3)
    """
    x = np.asarray(values, dtype=float)
    ok = np.ones(x.shape, bool) if reached is None else np.asarray(reached, dtype=bool)
    if x.size == 0:
        raise DataError("bootstrap_median needs at least one value")
    y = np.where(ok, x, np.inf)
    rng = np.random.default_rng(seed)
    draws = np.median(y[rng.integers(0, y.size, size=(n_boot, y.size))], axis=1)
    med = float(np.median(y))
    lo, hi = np.quantile(draws, [(1 - coverage) / 2, (1 + coverage) / 2], method="lower")

    def fin(v: float) -> float | None:
        return None if not math.isfinite(v) else float(v)

    return {"median": fin(med), "censored": not math.isfinite(med), "low": fin(float(lo)),
            "high": fin(float(hi)), "n": int(x.size), "n_reached": int(ok.sum()), "coverage": coverage}


def bootstrap_ratio(base: Sequence[float], base_reached: Sequence[bool], treat: Sequence[float],
                    treat_reached: Sequence[bool], *, n_boot: int = 2000, coverage: float = 0.9,
                    seed: int = 0) -> dict[str, Any]:
    """Speedup ``median(base) / median(treat)`` over seeds, with a percentile-bootstrap interval.

    ``base`` and ``treat`` are steps (or examples, tokens) to a threshold, a run that never
    reached it entered at its last step ``L`` with ``reached=False``. Seeds are resampled
    independently in each arm. A censored run is only known to need more than ``L``, so each
    interval end takes the side of censoring that makes it conservative: the lower end puts a
    censored baseline run at ``L`` (its least possible value) and a censored treatment run at
    +inf; the upper end puts a censored baseline run at +inf and a censored treatment run at
    ``L``. An upper end of +inf is reported as ``None`` (unbounded). The point value is ``None``
    unless both medians are reached; ``bound`` then gives what the medians still say (``"> x"``:
    the baseline's median is censored, so the ratio is at least ``x``; ``"< x"``: the
    treatment's is).

    Examples
    --------
    >>> r = bootstrap_ratio([100.0, 100.0], [True, True], [50.0, 50.0], [True, True], n_boot=100)
    >>> r["value"], r["lower"], r["upper"]
    (2.0, 2.0, 2.0)
    """
    b, t = np.asarray(base, float), np.asarray(treat, float)
    bok, tok = np.asarray(base_reached, bool), np.asarray(treat_reached, bool)
    if b.size == 0 or t.size == 0 or b.shape != bok.shape or t.shape != tok.shape:
        raise DataError(f"bootstrap_ratio needs non-empty values with one reached flag each, got "
                        f"{b.size}/{bok.size} baseline and {t.size}/{tok.size} treatment")
    if np.any(~np.isfinite(b) | (b <= 0)) or np.any(~np.isfinite(t) | (t <= 0)):
        raise DataError("bootstrap_ratio needs finite positive steps or examples (censored runs at "
                        "their last step), got a zero, negative or non-finite value")
    rng = np.random.default_rng(seed)
    ib = rng.integers(0, b.size, size=(n_boot, b.size))
    it = rng.integers(0, t.size, size=(n_boot, t.size))

    def draws(base_censored: float | None, treat_censored: float | None) -> np.ndarray:
        """Ratio of medians per bootstrap draw, censored runs at the given value (None: at L)."""
        yb = np.where(bok, b, b if base_censored is None else base_censored)
        yt = np.where(tok, t, t if treat_censored is None else treat_censored)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.median(yb[ib], axis=1) / np.median(yt[it], axis=1)

    qlo, qhi = (1 - coverage) / 2, (1 + coverage) / 2
    lo = float(np.quantile(draws(None, np.inf), qlo, method="lower"))
    hi = float(np.quantile(draws(np.inf, None), qhi, method="higher"))
    yb, yt = np.where(bok, b, np.inf), np.where(tok, t, np.inf)
    med_b, med_t = float(np.median(yb)), float(np.median(yt))
    value: float | None = None
    bound: str | None = None
    if math.isfinite(med_b) and math.isfinite(med_t):
        value = med_b / med_t
    elif math.isfinite(med_t):  # the baseline did not reach: at least its censoring point / treatment
        bound = f"> {float(np.median(b)) / med_t:.3g}"
    elif math.isfinite(med_b):  # the treatment did not reach
        bound = f"< {med_b / float(np.median(t)):.3g}"
    return {"value": value, "lower": lo, "upper": hi if math.isfinite(hi) else None, "bound": bound,
            "coverage": coverage, "n_base": int(b.size), "n_treat": int(t.size),
            "n_base_reached": int(bok.sum()), "n_treat_reached": int(tok.sum())}


def loglog_slope(x: Sequence[float], y: Sequence[float], *, n_boot: int = 2000, coverage: float = 0.9,
                 seed: int = 0) -> dict[str, float]:
    """Least-squares slope of ``log y`` on ``log x`` with a pairs-bootstrap interval.

    Examples
    --------
    >>> r = loglog_slope([1, 10, 100], [100, 10, 1], n_boot=50)
    >>> round(r["slope"], 6)
    -1.0
    """
    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    if lx.size < 3 or not (np.all(np.isfinite(lx)) and np.all(np.isfinite(ly))):
        raise DataError(f"loglog_slope needs at least 3 positive points, got {lx.size}")
    slope = float(np.polyfit(lx, ly, 1)[0])
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        i = rng.integers(0, lx.size, lx.size)
        if np.ptp(lx[i]) > 0:
            boots.append(np.polyfit(lx[i], ly[i], 1)[0])
    lo, hi = np.quantile(boots, [(1 - coverage) / 2, (1 + coverage) / 2])
    return {"slope": slope, "low": float(lo), "high": float(hi), "n": int(lx.size), "coverage": coverage}


# ----------------------------------------------------------------------------- output
def new_figure(ncols: int = 1, width: float = 5.0, height: float = 3.6) -> tuple[Any, Any]:
    """A matplotlib figure on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)


def save_figure(fig: Any, path: Path) -> Path:
    """Save and close a figure."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def fmt(v: Any, digits: int = 3) -> str:
    """Format a number for a markdown table (None -> '-')."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "-"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.{digits}g}"
    return str(v)


def interval_text(r: Mapping[str, Any], digits: int = 3) -> str:
    """``median [low, high]`` from :func:`bootstrap_median`, with censoring spelled out."""
    if r["censored"]:
        return f"not reached ({r['n_reached']}/{r['n']} seeds)"
    hi = fmt(r["high"], digits) if r["high"] is not None else "not reached"
    return f"{fmt(r['median'], digits)} [{fmt(r['low'], digits)}, {hi}] ({r['n_reached']}/{r['n']})"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def write_results(out: Path, name: str, args: ExperimentArgs, results: Mapping[str, Any], summary_md: str,
                  *, wall_seconds: float, effects: Sequence[Mapping[str, Any]] | None = None) -> None:
    """Write ``results.json`` (with provenance) and ``summary.md`` into ``out``.

    ``effects`` (experiments measured at several model sizes) go to the top-level ``effects``
    list of ``results.json``, one row per (effect, size): the contract that
    ``experiments/scale_caveat/run.py`` reads (see its docstring).
    """
    command = f"python experiments/{name}/run.py" + (" --quick" if args.quick else "") + \
        f" --out {args.out} --workers {args.workers}"
    doc: dict[str, Any] = {
        "experiment": name,
        "mode": "quick" if args.quick else "full",
        "command": command,
        "wall_seconds_this_invocation": round(wall_seconds, 1),  # finished runs are skipped
        "provenance": {"git_commit": _git_commit(), "python": platform.python_version(),
                       "host": platform.node(), "workers": args.workers},
        "results": results,
    }
    if effects is not None:
        doc["effects"] = list(effects)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(doc, indent=1, default=_json_default) + "\n")
    head = f"<!-- {doc['mode']} mode: `{command}`; {wall_seconds:.0f} s wall this invocation (finished runs are skipped) -->\n\n"
    (out / "summary.md").write_text(head + summary_md.rstrip() + "\n")


def _json_default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")
