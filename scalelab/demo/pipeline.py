"""``run_demo``: a small grid, its curve analytics, a scaling law, a forecast and the report.

Stages (each reports progress lines through ``progress``):

1. **grid** -- write ``OUT/grid.toml`` and train its runs into ``OUT/store``
   (:func:`scalelab.harness.executors.run_grid`: finished runs are skipped, interrupted ones
   resume, so rerunning the demo on the same folder only redoes the analysis);
2. **export** -- every record to ``OUT/runs.csv`` (:meth:`RunStore.export`);
3. **curves** -- the mixture speedup per size, its trend against size (the scale caveat) and
   the skill's crossing steps against size;
4. **fit** -- the text loss against ``N`` (non-embedding parameters) and ``D`` (text tokens
   seen) at every evaluation from a tenth of the run on (``OUT/dev_loss.csv``), a Chinchilla
   law fitted to all of it (``OUT/fit.json``) and a backtest that fits without the largest
   size and predicts it (``OUT/backtest.json``);
5. **forecast** -- the law at the ``large`` rung and the largest trained token budget, with a
   prediction interval for a new run and the out-of-range warning;
6. **report** -- :func:`scalelab.report.build_report` into ``OUT/report`` with the demo's own
   summary section, and a headless-Chromium screenshot when Chromium is on ``PATH``.

The numbers land in ``OUT/demo.json`` (schema ``scalelab.demo/1``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scalelab._io import atomic_write_text
from scalelab.demo.analysis import (
    mixture_speedups,
    skill_crossings,
    speedup_persistence,
)
from scalelab.demo.grids import TARGET_SIZE, load_demo_grid, write_grid
from scalelab.demo.result import DemoResult, Forecast
from scalelab.demo.tables import (
    SKILL,
    accuracy_curves,
    describe_runs,
    dev_loss_columns,
    write_csv,
)
from scalelab.errors import DataError

__all__ = ["DemoSettings", "fit_mixture", "run_demo"]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class DemoSettings:
    """Analysis settings of one mode (full or ``quick``).

    Attributes
    ----------
    fit_bootstrap : int
        Bootstrap refits of the law (and of the backtest's law).
    transition_bootstrap : int
        Resamples for each transition's interval in the report.
    """

    fit_bootstrap: int
    transition_bootstrap: int

    @classmethod
    def for_mode(cls, quick: bool) -> DemoSettings:
        """Fewer resamples for the ``--quick`` smoke test."""
        return cls(fit_bootstrap=20, transition_bootstrap=20) if quick else cls(100, 100)


def run_demo(
    out_dir: str | Path,
    *,
    workers: int = 2,
    quick: bool = False,
    progress: Progress | None = None,
) -> DemoResult:
    """Train the demo grid, analyse it, fit and backtest a law, forecast, write the report.

    Parameters
    ----------
    out_dir : path
        Output folder (created if absent). Rerunning on the same folder skips finished runs.
    workers : int
        Runs trained at once, one process and one torch thread each.
    quick : bool
        The smoke-test grid (3 small sizes, one mixture, short runs): about a minute.
    progress : callable, optional
        Receives progress lines.

    Returns
    -------
    DemoResult

    Raises
    ------
    DataError
        If ``out_dir`` is a file, ``workers`` is below 1, the folder's store holds runs of
        another grid, a run fails, or matplotlib is missing.

    Examples
    --------
    >>> from scalelab.demo import run_demo
    >>> result = run_demo("scalelab-demo", quick=True)  # doctest: +SKIP
    >>> print(result.summary())  # doctest: +SKIP
    """
    say = progress or (lambda _m: None)
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise DataError(f"--workers must be a whole number of at least 1, got {workers!r}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DataError(f"-o {str(out)!r} is a file; pass a folder (it is created if absent)")
    _check_matplotlib()
    settings = DemoSettings.for_mode(quick)
    clock = _Clock()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create {str(out)!r}: {exc.strerror or exc}") from None
    files: dict[str, Path] = {}
    notes: list[str] = []

    # ---------------------------------------------------------------- 1. grid
    grid_runs = load_demo_grid(quick).runs()
    run_ids = [r.run_id for r in grid_runs]
    files["store"] = out / "store"
    _check_store(files["store"], run_ids)
    files["grid"] = write_grid(out, quick)
    say(f"demo: [1/6] training the grid into {files['store']} ({workers} worker(s))")
    trained, skipped = _train(grid_runs, files["store"], workers, say)
    clock.lap("grid")

    # ---------------------------------------------------------------- 2. export
    from scalelab.store.runs import RunStore

    say("demo: [2/6] exporting the run store")
    store = RunStore(files["store"], create=False)
    files["runs_csv"] = out / "runs.csv"
    table = store.export(files["runs_csv"])
    runs = describe_runs(store, run_ids, table)
    clock.lap("export")

    # ---------------------------------------------------------------- 3. curves
    say("demo: [3/6] curve analytics: mixture speedups, skill crossings against size")
    target_n = _target_params()
    curves = accuracy_curves(table, runs)
    speedups = mixture_speedups(curves, runs)
    persistence, why = speedup_persistence(speedups, target_n)
    if persistence is None:
        notes.append(f"no scale caveat for the mixture speedup: {why}")
    skills, why = skill_crossings(table, runs, target_n)
    if skills is None:
        notes.append(f"no crossing-vs-size fit for {SKILL!r}: {why}")
    clock.lap("curves")

    # ---------------------------------------------------------------- 4. fit and backtest
    say("demo: [4/6] fitting the dev-loss law and backtesting it on the largest size")
    min_step = max(1, runs[0].steps // 10)
    files["dev_loss_csv"] = write_csv(
        dev_loss_columns(table, runs, min_step=min_step), out / "dev_loss.csv"
    )
    fit_result, backtest = _fit_and_backtest(files["dev_loss_csv"], runs, settings, say)
    files["fit"] = out / "fit.json"
    fit_result.save(files["fit"])
    files["backtest"] = out / "backtest.json"
    backtest.save(files["backtest"])
    clock.lap("fit")

    # ---------------------------------------------------------------- 5. forecast
    say(f"demo: [5/6] forecasting the {TARGET_SIZE!r} model")
    forecast = _forecast(fit_result, files["dev_loss_csv"], target_n)
    clock.lap("forecast")

    # ---------------------------------------------------------------- 6. report
    say("demo: [6/6] building the report")
    from scalelab.report import find_chromium, screenshot

    report = _build_report(out, files, forecast, settings, quick, say)
    files["report"] = report.html
    files["summary"] = out / "demo.json"
    result = DemoResult(
        out_dir=out,
        quick=quick,
        files=files,
        runs=runs,
        trained=trained,
        skipped=skipped,
        fit=fit_result,
        fit_mix=fit_mixture(runs)[0],
        forecast=forecast,
        backtest=backtest,
        transitions=tuple(t for t in report.transitions if t.skill == SKILL),
        speedups=speedups,
        persistence=persistence,
        skills=skills,
        notes=tuple(notes),
    )
    from scalelab.demo.report_section import insert_section, section_html

    insert_section(report.html, section_html(result))
    browser = find_chromium()
    if browser is None:
        notes.append("no Chromium on PATH: no screenshot (apt-get install chromium)")
    else:
        say("demo: screenshot with headless Chromium")
        files["screenshot"] = report.folder / "screenshot.png"
        screenshot(report.html, files["screenshot"], browser=browser)
    clock.lap("report")
    result = dataclasses.replace(
        result, files=files, notes=tuple(notes), seconds=clock.total(), cpu_seconds=clock.cpu(),
        stage_seconds=clock.laps,
    )
    atomic_write_text(files["summary"], json.dumps(result.to_dict(), indent=1, allow_nan=False) + "\n")
    return result


# ------------------------------------------------------------------------------ stages
def _build_report(out: Path, files: dict[str, Path], forecast: Forecast,
                  settings: DemoSettings, quick: bool, say: Progress) -> Any:
    from scalelab.report import build_report

    return build_report(
        out / "report",
        store=files["store"],
        size_col="n_params_nonembedding",
        fits=[files["fit"]],
        backtests=[files["backtest"]],
        data=files["dev_loss_csv"],
        target={"N": forecast.N, "D": forecast.D},
        bootstrap=settings.transition_bootstrap,
        chance={SKILL: 0.0},
        title="scalelab demo --quick" if quick else
        "scalelab demo: skills, mixtures and a scaling law from 6 CPU runs",
        command=f"scalelab demo{' --quick' if quick else ''} -o {out}",
        progress=say,
    )


def _check_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise DataError(
            "the demo's report needs matplotlib: pip install 'scalelab[demo]'"
        ) from None


def _check_store(root: Path, run_ids: list[str]) -> None:
    """Refuse a store that holds runs of another grid (the report would mix them in)."""
    from scalelab.store.runs import RunStore

    if not root.exists():
        return
    foreign = sorted(set(RunStore(root, create=False).run_ids()) - set(run_ids))
    if foreign:
        raise DataError(
            f"{root} holds {len(foreign)} run(s) of another grid (e.g. {foreign[0]!r}); "
            "use an empty -o DIR for this demo (--quick and the full demo need separate ones)"
        )


def _train(grid_runs: list[Any], root: Path, workers: int, say: Progress) -> tuple[int, int]:
    """Run the grid (skipping finished runs); returns (trained, skipped)."""
    from scalelab.harness.executors import LocalExecutor, run_grid

    summary = run_grid(grid_runs, str(root), LocalExecutor(workers=workers), progress=say)
    failed = [o for o in summary.outcomes if o.status == "failed"]
    if failed:
        first = failed[0].error.strip().splitlines()[-1] if failed[0].error else "no message"
        raise DataError(
            f"{len(failed)} of {len(grid_runs)} demo run(s) failed (first: {failed[0].run_id}: "
            f"{first}); rerun `scalelab demo` on the same folder to resume"
        )
    return summary.count("finished"), summary.count("skipped")


def fit_mixture(runs: tuple[Any, ...]) -> tuple[str, str | None]:
    """The mixture whose runs the law is fitted to, and the row filter selecting them.

    The law is fitted to the runs of one mixture: at the same text tokens, runs of a mixture
    with less text reach a higher text loss (measured: about 2% on the demo grid), so pooling
    mixtures would blur the law. The mixture with the largest text share is chosen.
    """
    best = max(runs, key=lambda r: r.text_share)
    several = len({r.mix for r in runs}) > 1
    return best.mix, (f"mix == '{best.mix}'" if several else None)


def _fit_and_backtest(csv_path: Path, runs: tuple[Any, ...], settings: DemoSettings,
                      say: Progress) -> tuple[Any, Any]:
    """Chinchilla on one mixture's rows; the same law fitted without the largest size, predicting it."""
    from scalelab.fit import fit
    from scalelab.predict import run_backtest

    x = {"N": "N", "D": "D"}
    _, where = fit_mixture(runs)
    res = fit("chinchilla", str(csv_path), x=x, y="loss", where=where,
              bootstrap=settings.fit_bootstrap, seed=0)
    largest = max(r.n_params for r in runs)
    # noise="residual": the extrapolation noise model needs at least 3 sizes inside the fit
    backtest = run_backtest(
        "chinchilla", str(csv_path), x=x, y="loss", where=where, holdout=f"N >= {largest:.0f}",
        bootstrap=settings.fit_bootstrap, noise="residual", seed=0, progress=say,
    )
    return res, backtest


def _target_params() -> float:
    """Non-embedding parameters of the target rung (:data:`TARGET_SIZE`)."""
    from scalelab.harness.config import SIZE_LADDER
    from scalelab.harness.model import non_embedding_params

    dims = SIZE_LADDER[TARGET_SIZE]
    return float(non_embedding_params(dims.n_layer, dims.d_model))


def _forecast(res: Any, csv_path: Path, target_n: float) -> Forecast:
    """The law at the target size and the largest fitted ``D``, with both intervals."""
    from scalelab.predict import (
        check_extrapolation,
        fitted_ranges,
        prediction_interval,
        residual_noise,
    )
    from scalelab.predict.intervals import fit_rows

    rows = fit_rows(res, str(csv_path))
    inputs = {k: rows.numeric(col) for k, col in res.inputs.items()}
    d = float(inputs["D"].max())
    noise = residual_noise(res, str(csv_path))
    new_run = prediction_interval(res, N=target_n, D=d, noise=noise, seed=0)
    law = res.predict(N=target_n, D=d)
    ranges, bound = fitted_ranges(res, inputs)
    warning = check_extrapolation(ranges, {"N": [target_n], "D": [d]},
                                  compute_is_bound=bound).message()
    return Forecast(
        size=TARGET_SIZE,
        N=target_n,
        D=d,
        mean=_scalar(new_run.mean),
        lower=_scalar(new_run.lower),
        upper=_scalar(new_run.upper),
        law_lower=_scalar(law.lower),
        law_upper=_scalar(law.upper),
        coverage=float(new_run.coverage),
        method=str(new_run.method),
        warning=warning,
    )


def _scalar(value: Any) -> float:
    import numpy as np

    return float(np.asarray(value, dtype=float).reshape(-1)[0])


class _Clock:
    """Wall and CPU time since creation (CPU of this process and its finished children)."""

    def __init__(self) -> None:
        self._t0 = time.perf_counter()
        self._last = self._t0
        self._cpu0 = _cpu_now()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = now - self._last
        self._last = now

    def total(self) -> float:
        return time.perf_counter() - self._t0

    def cpu(self) -> float:
        return _cpu_now() - self._cpu0


def _cpu_now() -> float:
    times = os.times()
    total = times.user + times.system + times.children_user + times.children_system
    return float(total) if math.isfinite(total) else 0.0
