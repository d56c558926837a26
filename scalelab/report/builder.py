"""Build the report: analyses, figures (PNG + SVG), ``index.html`` and ``report.json``.

Layout of the output folder::

    DIR/index.html         the report (self-contained apart from the figures beside it)
    DIR/figures/*.png|svg  every figure, both formats
    DIR/report.json        what was drawn: figure files, transitions, predictions, notes

Rebuilding into the same folder replaces the files of the previous report (those listed in
its ``report.json``) and leaves anything else alone.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scalelab._io import atomic_write_text
from scalelab._version import __version__
from scalelab.curves import Transition
from scalelab.errors import DataError
from scalelab.fit import Estimate, FitResult
from scalelab.report import html as H
from scalelab.report._mpl import FigureFile
from scalelab.report.backtest import Backtest, load_backtest
from scalelab.report.curve_data import CurveData, curves_from_store
from scalelab.report.fit_data import FitInput, has_compute_view, load_fit, resolve_target
from scalelab.report.fit_figures import FrontierPoint, TargetPrediction
from scalelab.report.progress import ProgressCallback, Steps

__all__ = ["MANIFEST", "REPORT_SCHEMA", "Report", "build_report"]

REPORT_SCHEMA = "scalelab.report/1"
MANIFEST = "report.json"
FIGURES = "figures"


@dataclass(frozen=True)
class Report:
    """What :func:`build_report` wrote.

    Attributes
    ----------
    folder : pathlib.Path
    html : pathlib.Path
        ``folder/index.html``.
    figures : tuple of FigureFile
    transitions : tuple of Transition
        One per accuracy curve, in the curves' order.
    predictions : mapping of str to TargetPrediction
        Per fit key, the prediction at the extrapolation target.
    frontiers : mapping of str to tuple of FrontierPoint
        Per fit key (N, D laws), the compute-optimal plans tabulated.
    backtests : tuple of Backtest
    notes : tuple of str
    """

    folder: Path
    html: Path
    figures: tuple[FigureFile, ...]
    transitions: tuple[Transition, ...] = ()
    predictions: Mapping[str, TargetPrediction] = field(default_factory=dict)
    frontiers: Mapping[str, tuple[FrontierPoint, ...]] = field(default_factory=dict)
    backtests: tuple[Backtest, ...] = ()
    notes: tuple[str, ...] = ()


def build_report(
    out_dir: str | Path,
    *,
    store: str | Path | None = None,
    curves: CurveData | None = None,
    size_col: str | None = "n_params",
    fits: Sequence[str | Path | FitResult] = (),
    backtests: Sequence[str | Path | Backtest] = (),
    data: Any = None,
    target: Mapping[str, float] | None = None,
    target_compute: float | None = None,
    coverage: float | None = None,
    bootstrap: int = 100,
    chance: float | Mapping[str, float] | None = None,
    seed: int = 0,
    title: str = "scalelab report",
    command: str | None = None,
    progress: ProgressCallback | None = None,
) -> Report:
    """Analyse the inputs, draw every figure and write the HTML report into ``out_dir``.

    Parameters
    ----------
    out_dir : path
        Output folder (created if absent).
    store : path, optional
        A run store: per-skill learning curves, transitions, emergence map, loss curves.
    curves : CurveData, optional
        Learning curves from a table instead (:func:`scalelab.report.curves_from_table`).
    size_col : str or None
        The store's column giving each run's size (default ``n_params``).
    fits : sequence of paths or FitResult
        Saved fits: law against data, extrapolation, isoFLOP view (N, D laws).
    backtests : sequence of paths or Backtest
        ``scalelab.backtest/1`` files: metrics, table of held-out runs, figure.
    data : path, dataset name or Table, optional
        The fitted points, for fits whose own source cannot be read.
    target : mapping of str to float, optional
        Extrapolate to these law inputs (``{"N": 7e10, "D": 1.4e12}``).
    target_compute : float, optional
        Extrapolate N, D laws along the compute-optimal frontier to this budget.
    coverage : float, optional
        Interval coverage of bands and predictions (default: each fit's own).
    bootstrap : int
        Resamples for each transition's interval.
    chance : float or mapping of skill -> float, optional
        Chance level(s): fixes the floor of the transition fits.
    seed : int
        Seed of the transition bootstraps.
    title : str
        Page title.
    command : str, optional
        The command line, shown in the provenance header.
    progress : callable, optional
        Receives progress lines (transition fits, figures).

    Returns
    -------
    Report

    Raises
    ------
    DataError
        With nothing to report, both ``store`` and ``curves``, unreadable inputs, or a
        target the laws cannot use.
    """
    from scalelab.report import backtest_figure as bf
    from scalelab.report import curve_figures as cf
    from scalelab.report import fit_figures as ff
    from scalelab.report._mpl import new_figure
    from scalelab.report.transitions import detect_transitions

    if store is not None and curves is not None:
        raise DataError("give a run store or a curves table, not both")
    if store is None and curves is None and not fits and not backtests:
        raise DataError(
            "nothing to report: give a run store ROOT, --fit FIT.json, --curves TABLE or "
            "--backtest BT.json"
        )
    if coverage is not None and not 0 < coverage < 1:
        raise DataError(f"--coverage must be between 0 and 1, got {coverage}")
    if bootstrap < 0:
        raise DataError(f"--bootstrap must be a non-negative number of resamples, got {bootstrap}")
    folder = _prepare(Path(out_dir))
    new_figure(1, 1)  # fail on a missing matplotlib before any long work

    # ------------------------------------------------------------- inputs
    notes: list[str] = []
    if store is not None:
        curves = curves_from_store(str(store), size_col=size_col)
    loaded = [
        load_fit(f, key=f"fit{i + 1}", data=data) for i, f in enumerate(fits)
    ]
    tests = tuple(b if isinstance(b, Backtest) else load_backtest(b) for b in backtests)
    targets, refused = {}, []
    for fit in loaded:
        try:
            tgt, why = resolve_target(fit, inputs=target, compute=target_compute)
        except DataError as exc:  # a target for another law: this fit gets the default
            refused.append(exc)
            tgt, why = resolve_target(fit)
            notes.append(f"{fit.key}: the target does not apply ({exc}); default target used")
        targets[fit.key] = tgt
        if tgt is None:
            notes.append(f"{fit.key}: {why}")
    if loaded and len(refused) == len(loaded):
        raise refused[0]

    transitions: tuple[Transition, ...] = ()
    if curves is not None and curves.accuracy is not None:
        transitions = detect_transitions(
            curves.accuracy.curves,
            chance=chance,
            bootstrap=bootstrap,
            coverage=0.95 if coverage is None else coverage,
            seed=seed,
            progress=progress,
        )

    # ------------------------------------------------------------- figures
    n_figures = 0
    if curves is not None:
        n_figures += 2 * (curves.accuracy is not None) + (curves.loss is not None)
    for fit in loaded:
        n_figures += 1 + (targets[fit.key] is not None) + has_compute_view(fit.result)
    n_figures += sum(1 for b in tests if b.rows)
    steps = Steps("figures", n_figures, progress)
    steps.start()
    fig_dir = folder / FIGURES
    figures: list[FigureFile] = []
    sections: list[H.Section] = []
    predictions: dict[str, TargetPrediction] = {}
    frontiers: dict[str, tuple[FrontierPoint, ...]] = {}

    if curves is not None:
        blocks: list[str] = []
        if curves.accuracy is not None:
            fig = cf.learning_curves(curves, transitions, fig_dir)
            figures.append(fig)
            steps.advance("learning curves")
            blocks += [H.figure_html(fig, folder), _transitions_table(transitions, curves)]
        if curves.loss is not None:
            fig = cf.loss_curves(curves, fig_dir)
            figures.append(fig)
            steps.advance("loss curves")
            blocks.append(H.figure_html(fig, folder))
        blocks.append(H.notes_html(curves.notes))
        sections.append(H.Section("curves", "Learning curves", tuple(blocks)))
        if curves.accuracy is not None:
            fig, _ = cf.emergence_map(curves, transitions, fig_dir)
            figures.append(fig)
            steps.advance("emergence map")
            sections.append(H.Section("emergence", "Emergence map", (H.figure_html(fig, folder),)))

    for fit in loaded:
        res = fit.result
        cov = res.coverage if coverage is None else coverage
        blocks = [_fit_summary(fit)]
        drawn = ff.law_vs_data(fit, fig_dir, coverage=cov)
        steps.advance(f"{fit.key} law against data")
        if drawn is not None:
            figures.append(drawn)
            blocks.append(H.figure_html(drawn, folder))
        else:
            fit_notes = (*fit.notes, "no law-against-data figure: a law of several inputs needs the points")
            fit = FitInput(fit.path, fit.key, fit.result, fit.points, fit_notes)
        tgt = targets[fit.key]
        if tgt is not None:
            drawn, pred = ff.extrapolation(fit, tgt, fig_dir, coverage=cov)
            figures.append(drawn)
            predictions[fit.key] = pred
            steps.advance(f"{fit.key} extrapolation")
            blocks += [H.figure_html(drawn, folder), _prediction_table(res, pred, tgt.describe())]
        if has_compute_view(res):
            drawn, plans = ff.isoflop(fit, tgt, fig_dir, coverage=cov)
            figures.append(drawn)
            frontiers[fit.key] = tuple(plans)
            steps.advance(f"{fit.key} isoFLOP view")
            blocks += [H.figure_html(drawn, folder), _frontier_table(plans, cov)]
        blocks.append(H.notes_html(fit.notes))
        source = res.data.get("source", "?")
        sections.append(H.Section(fit.key, f"Fit {fit.key}: {res.law.name} on {source}", tuple(blocks)))

    if tests:
        blocks = []
        for i, bt in enumerate(tests):
            blocks.append(f"<h3>{H.esc(f'Backtest {i + 1}: {bt.law} predicting {bt.y}')}</h3>")
            blocks.append(_backtest_tables(bt))
            drawn = bf.backtest_figure(bt, fig_dir, f"backtest{i + 1}")
            if drawn is not None:
                figures.append(drawn)
                steps.advance(f"backtest {i + 1}")
                blocks.append(H.figure_html(drawn, folder))
        sections.append(H.Section("backtests", "Backtests", tuple(blocks)))

    if notes:
        sections.append(H.Section("notes", "Notes", (H.notes_html(notes),)))
    created = datetime.now(UTC).isoformat(timespec="seconds")
    provenance = _provenance(created, command, store, curves, loaded, tests)
    index = folder / "index.html"
    atomic_write_text(index, H.page(title, provenance, sections))
    _readable(index)
    report = Report(
        folder=folder,
        html=index,
        figures=tuple(figures),
        transitions=transitions,
        predictions=predictions,
        frontiers=frontiers,
        backtests=tests,
        notes=tuple(notes),
    )
    _write_manifest(report, created, provenance)
    return report


# ------------------------------------------------------------------------------ folder
def _prepare(folder: Path) -> Path:
    """Create the folder; remove the figure files a previous report listed."""
    if folder.exists() and not folder.is_dir():
        raise DataError(f"report folder {str(folder)!r} is a file; pass a folder with -o")
    try:
        (folder / FIGURES).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create report folder {str(folder)!r}: {exc.strerror or exc}") from None
    old = folder / MANIFEST
    if old.is_file():
        try:
            listed = json.loads(old.read_text()).get("figures", [])
        except (OSError, ValueError, AttributeError):
            listed = []
        for item in listed if isinstance(listed, list) else []:
            for key in ("png", "svg"):
                name = item.get(key) if isinstance(item, dict) else None
                if isinstance(name, str) and "/" in name and ".." not in name:
                    (folder / name).unlink(missing_ok=True)
    return folder


def _write_manifest(report: Report, created: str, provenance: Sequence[tuple[str, str]]) -> None:
    from scalelab.curves._json import jsonable

    def rel(p: Path) -> str:
        return p.relative_to(report.folder).as_posix()

    doc = {
        "schema": REPORT_SCHEMA,
        "scalelab": __version__,
        "created": created,
        "provenance": dict(provenance),
        "html": rel(report.html),
        "figures": [
            {"stem": f.stem, "title": f.title, "png": rel(f.png), "svg": rel(f.svg)}
            for f in report.figures
        ],
        "transitions": [t.to_dict() for t in report.transitions],
        "predictions": {
            k: {kk: jsonable(vv) for kk, vv in vars(p).items()} | {"inputs": dict(p.inputs)}
            for k, p in report.predictions.items()
        },
        "frontiers": {
            k: [
                {"compute": fp.compute, **{n: _estimate_json(e) for n, e in fp.plan.items()}}
                for fp in plans
            ]
            for k, plans in report.frontiers.items()
        },
        "notes": list(report.notes),
    }
    atomic_write_text(report.folder / MANIFEST, json.dumps(doc, indent=1, allow_nan=False) + "\n")
    _readable(report.folder / MANIFEST)


def _readable(path: Path) -> None:
    """Give a written file the usual permissions (the atomic write creates it private)."""
    mask = os.umask(0)
    os.umask(mask)
    with contextlib.suppress(OSError):
        path.chmod(0o666 & ~mask)


def _estimate_json(e: Estimate) -> dict[str, float | None]:
    def clean(x: float) -> float | None:
        return float(x) if math.isfinite(x) else None

    return {"value": clean(e.value), "ci_low": clean(e.ci_low), "ci_high": clean(e.ci_high)}


def _provenance(
    created: str,
    command: str | None,
    store: Any,
    curves: CurveData | None,
    fits: Sequence[FitInput],
    tests: Sequence[Backtest],
) -> list[tuple[str, str]]:
    from importlib import metadata

    versions = [f"scalelab {__version__}", f"python {platform.python_version()}"]
    for name in ("numpy", "scipy", "matplotlib"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions.append(f"{name} {metadata.version(name)}")
    out = [("created", created), ("versions", ", ".join(versions))]
    if command:
        out.append(("command", command))
    if store is not None and curves is not None:
        n_runs = len(curves.sizes)
        out.append(("run store", f"{store} ({n_runs} runs with records)"))
    elif curves is not None:
        out.append(("curves", curves.source))
    for fit in fits:
        d = fit.result.data
        out.append((
            f"fit {fit.key}",
            f"{fit.path}: {fit.result.law.name} on {d.get('source', '?')} "
            f"({fit.result.n_points} points, data fingerprint {str(d.get('fingerprint', '?'))[:12]})",
        ))
    for i, bt in enumerate(tests):
        out.append((f"backtest {i + 1}", f"{bt.source}: {bt.law}, {bt.n_holdout} held out"))
    return out


# ------------------------------------------------------------------------------ tables
def _interval(low: float | None, high: float | None) -> str:
    if low is None and high is None:
        return "-"
    return f"[{H.num(low)}, {H.num(high)}]"


def _transitions_table(transitions: Sequence[Transition], curves: CurveData) -> str:
    rows = []
    for t in transitions:
        size = curves.sizes[t.run].label if t.run in curves.sizes else ""
        note = t.notes[0] if t.notes else ""
        rows.append([
            t.run, size, t.skill, t.status, H.num(t.step), _interval(t.step_low, t.step_high),
            H.num(t.width, 3), H.num(t.evidence, 3), note,
        ])
    levels = {t.coverage for t in transitions}
    pct = f"{100 * levels.pop():g}% interval" if len(levels) == 1 else "interval"
    caption = (
        "Detected transitions: midpoint of a sigmoid in log-step (scalelab.curves.fit_transition); "
        "width in ln(step + 1) units; evidence = BIC difference flat line - sigmoid (>= 10 "
        "needed). Statuses: ok, weak (interval leaves the data), outside_range, no_transition, "
        "insufficient, failed."
    )
    return H.table(
        ["run", "size", "skill", "status", "transition step", pct, "width", "evidence", "note"],
        rows,
        numeric=(4, 5, 6, 7),
        caption=caption,
        css="transitions",
    )


def _estimate_text(e: Estimate) -> str:
    if math.isfinite(e.ci_low) and math.isfinite(e.ci_high):
        return f"{H.num(e.value)} [{H.num(e.ci_low)}, {H.num(e.ci_high)}]"
    return H.num(e.value)


def _fit_summary(fit: FitInput) -> str:
    res = fit.result
    s = res.stats
    lines = [
        f'<p><span class="equation">{H.esc(res.law.equation)}</span><br>{H.esc(res.law.reference)}</p>',
        "<p>"
        + H.esc(
            f"{res.n_points} points of {res.data.get('source', '?')}"
            + (f" where {res.options['where']}" if res.options.get("where") else "")
            + f"; {res.y} from "
            + ", ".join(f"{k} = {v}" for k, v in res.inputs.items())
            + f"; objective {res.options.get('loss', '?')} on {res.options.get('space', '?')} "
            f"residuals; intervals: {res.interval_method}"
            + (f" ({len(res.bootstrap)} resamples)" if res.bootstrap is not None else "")
            + f"; {'converged' if res.converged else 'NOT converged'}. RMSE "
            f"{H.num(s.get('rmse'))}, MAPE {H.num(100 * s.get('mape', math.nan), 3)}%."
        )
        + "</p>",
    ]
    pct = f"{100 * res.coverage:g}%"
    rows = []
    for e in (*res.params.values(), *res.derived.values()):
        note = "fixed" if e.fixed else f"= {e.tied}" if e.tied else "at bound" if e.at_bound else ""
        rows.append([e.name, H.num(e.value, 6), H.num(e.stderr, 4), H.num(e.ci_low, 6),
                     H.num(e.ci_high, 6), note])
    lines.append(H.table(["parameter", "value", "stderr", f"{pct} low", f"{pct} high", "note"],
                         rows, numeric=(1, 2, 3, 4), caption=f"Fitted parameters ({fit.path})",
                         css="params"))
    return "\n".join(lines)


def _prediction_table(res: FitResult, pred: TargetPrediction, described: str) -> str:
    names = list(pred.inputs)
    head = [*names, *(["C = 6ND"] if pred.compute is not None else []), res.y,
            f"{100 * pred.coverage:g}% low", f"{100 * pred.coverage:g}% high", "interval",
            "reach"]
    row = [H.num(pred.inputs[n]) for n in names]
    if pred.compute is not None:
        row.append(H.num(pred.compute))
    row += [H.num(pred.mean, 5), H.num(pred.lower, 5), H.num(pred.upper, 5), pred.method,
            f"{pred.reach:.3g}x" if pred.reach is not None else "-"]
    return H.table(head, [row], numeric=tuple(range(len(head) - 2)),
                   caption=f"Prediction at the target: {described}; reach = target / largest fitted value",
                   css="prediction")


def _frontier_table(plans: Sequence[FrontierPoint], coverage: float) -> str:
    rows = []
    for fp in plans:
        p = fp.plan
        rows.append([H.num(fp.compute), _estimate_text(p["N"]), _estimate_text(p["D"]),
                     _estimate_text(p["tokens_per_param"]), _estimate_text(p["loss"])])
    return H.table(
        ["compute C (FLOPs)", "N*", "D*", "tokens per parameter", "loss at optimum"],
        rows,
        numeric=(0, 1, 2, 3, 4),
        caption=f"Compute-optimal allocation (FitResult.compute_optimal) at the isoFLOP budgets "
        f"and the target, with {100 * coverage:g}% intervals when the fit was bootstrapped",
        css="frontier",
    )


def _backtest_tables(bt: Backtest) -> str:
    m = bt.metrics
    level = 100 * bt.coverage_level
    coverage_css = "good" if m["coverage"] >= bt.coverage_level else "bad"
    summary = H.table(
        ["metric", "value"],
        [
            ["law", bt.law],
            ["predicted column", bt.y],
            ["inputs", ", ".join(f"{k} = {v}" for k, v in bt.x.items())],
            ["held out", bt.holdout],
            ["runs fitted / held out", f"{bt.n_fit} / {bt.n_holdout}"],
            ["mean absolute relative error (are)", H.num(m["are"], 6)],
            ["mean absolute error (mae)", H.num(m["mae"], 6)],
            ["max absolute error", H.num(m["max_abs_error"], 6)],
            [f"interval coverage (nominal {level:g}%)",
             H.Cell(H.num(m["coverage"], 6), coverage_css)],
        ],
        numeric=(1,),
        caption=f"Backtest summary ({bt.source})",
        css="backtest-metrics",
    )
    names = list(bt.x)
    rows = []
    for r in bt.rows:
        rows.append([
            *(H.num(r.inputs[n], 6) for n in names),
            H.num(r.y, 6), H.num(r.yhat, 6), H.num(r.lower, 6), H.num(r.upper, 6),
            H.num(100 * r.relative_error, 3),
            H.Cell("yes" if r.inside else "no", "good" if r.inside else "bad"),
        ])
    detail = H.table(
        [*names, f"measured {bt.y}", "predicted", f"{level:g}% low", f"{level:g}% high",
         "error %", "inside"],
        rows,
        numeric=tuple(range(len(names) + 5)),
        caption="Held-out runs",
        css="backtest-rows",
    )
    notes = []
    if len(bt.rows) != bt.n_holdout:
        notes.append(f"the file lists {len(bt.rows)} rows but n_holdout = {bt.n_holdout}")
    return summary + "\n" + detail + H.notes_html(notes)
