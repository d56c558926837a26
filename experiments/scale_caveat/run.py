"""Experiment 6 of issue #7: the scale caveat. Do the data effects measured here persist at 10x the size?

Data effects found on small models (a format's speedup, a curriculum's) can shrink or vanish on
larger ones. This reads the "effects" lists that other experiments write into their
``results.json`` (one row per effect and model size, the contract in experiments/README.md),
groups them by effect and, for each, fits the effect against model size with
:func:`scalelab.predict.persistence.persistence` and predicts it at a target size (default 10x
the largest measured non-embedding parameter count), with a prediction interval and a verdict:
``persists``, ``vanishes`` or ``undetermined``. An effect measured at fewer than 3 sizes, or
with a censored (null) value at some size, is reported as not assessable, with the reason.

    python experiments/scale_caveat/run.py [--inputs DIR_OR_JSON ...] [--out DIR]
    python experiments/scale_caveat/run.py --quick   # the committed docs/experiments/*_full.json

No training: the full mode reads the other experiments' fresh results (default results/format,
results/curriculum and results/mixture), the quick mode the committed full-mode results
(``docs/experiments/*_full.json`` with an effects list; those of the default experiments that
have none are listed as not read, with the reason), in seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common as C

from scalelab.errors import DataError

NAME = "scale_caveat"
DOCS = C.ROOT / "docs" / "experiments"
#: experiments whose results are read by default in full mode (folder under results/)
DEFAULT_INPUTS = ("format", "curriculum", "mixture")
TARGET_FACTOR = 10.0
COVERAGE = 0.9
KEYS = ("effect", "description", "kind", "size", "n_params", "value", "lower", "upper", "coverage",
        "neutral", "note")


# ----------------------------------------------------------------------------- inputs
def parse(argv: Sequence[str] | None) -> tuple[C.ExperimentArgs, list[Path], float, float]:
    """Parse ``[--quick] [--inputs P ...] [--out DIR] [--target-factor F] [--coverage C]``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="read the committed docs/experiments/*_full.json (analysis only, seconds)")
    ap.add_argument("--inputs", nargs="+", default=None, metavar="DIR_OR_JSON",
                    help="results.json files or the folders holding them "
                         f"(default: {' '.join('results/' + n for n in DEFAULT_INPUTS)})")
    ap.add_argument("--out", default=None, help=f"results directory (default results/{NAME}[-quick])")
    ap.add_argument("--workers", type=int, default=1, help="accepted for uniformity; nothing is trained")
    ap.add_argument("--target-factor", type=float, default=TARGET_FACTOR,
                    help="target size = this x the largest measured size (default 10)")
    ap.add_argument("--coverage", type=float, default=COVERAGE, help="prediction interval coverage (0.9)")
    ns = ap.parse_args(argv)
    if ns.quick and ns.inputs:
        raise DataError("--quick reads the committed docs/experiments/*_full.json; drop --inputs or --quick")
    if not (ns.target_factor > 1 and math.isfinite(ns.target_factor)):
        raise DataError(f"--target-factor must be a number above 1, got {ns.target_factor}")
    if not 0 < ns.coverage < 1:
        raise DataError(f"--coverage must be between 0 and 1, got {ns.coverage}")
    out = Path(ns.out) if ns.out else Path(f"results/{NAME}" + ("-quick" if ns.quick else ""))
    args = C.ExperimentArgs(quick=bool(ns.quick), out=out, workers=max(1, int(ns.workers)))
    paths = [Path(p) for p in ns.inputs] if ns.inputs else (
        [] if ns.quick else [Path("results") / n for n in DEFAULT_INPUTS])
    return args, paths, float(ns.target_factor), float(ns.coverage)


def _command_for(path: Path) -> str:
    """The command that writes the results at ``path`` (named in the error for a missing input)."""
    folder = path.parent if path.suffix == ".json" else path
    name = folder.name.removesuffix("-quick")
    return f"python experiments/{name}/run.py --out {folder}"


def read_input(path: Path) -> dict[str, Any]:
    """One experiment's results.json (a file, or a folder holding one)."""
    file = path / "results.json" if path.is_dir() or path.suffix != ".json" else path
    if not file.is_file():
        raise DataError(f"no results at {file}; run {_command_for(path)} first")
    try:
        doc = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{file} is not readable JSON ({exc}); rerun {_command_for(path)}") from None
    if not isinstance(doc, dict):
        raise DataError(f"{file} is not a results.json object; rerun {_command_for(path)}")
    doc["_path"] = str(file)
    return doc


def quick_inputs(docs: Path = DOCS) -> list[Path]:
    """The committed full-mode results (``docs/experiments/*_full.json``) that carry effects."""
    return quick_plan(docs)[0]


def quick_plan(docs: Path = DOCS) -> tuple[list[Path], list[str]]:
    """The committed full-mode results to read, and why each default experiment's is not read.

    Returns
    -------
    with_effects : list of Path
        Every ``docs/*_full.json`` with an ``effects`` list (the default experiments'
        :data:`DEFAULT_INPUTS` and any other).
    skipped : list of str
        One line per default experiment whose committed results are missing or have no effects.
    """
    # this experiment's own committed results hold assessments under results.effects, not rows
    files = sorted(f for f in docs.glob("*_full.json") if f.name != f"{NAME}_full.json")
    with_effects = [f for f in files if _effects_of(json.loads(f.read_text())) is not None]
    if not with_effects:
        raise DataError(f"no {docs}/*_full.json has an 'effects' list; run an experiment measured at "
                        "3 sizes, e.g. python experiments/format/run.py, and commit its results.json there")
    skipped = []
    for name in DEFAULT_INPUTS:
        f = docs / f"{name}_full.json"
        if not f.is_file():
            skipped.append(f"{f.name}: not committed")
        elif f not in with_effects:
            skipped.append(f"{f.name}: no 'effects' list")
    return with_effects, skipped


def _effects_of(doc: Any) -> Any:
    """The effects list of a results document: top level (the contract), else under "results"."""
    if not isinstance(doc, dict):
        return None
    if "effects" in doc:
        return doc["effects"]
    inner = doc.get("results")
    return inner.get("effects") if isinstance(inner, dict) else None


def effect_rows(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The validated effects rows of one results document."""
    where = doc.get("_path", "results.json")
    rows = _effects_of(doc)
    if rows is None:
        raise DataError(f"{where} has no 'effects' list (experiments add it when measured at 3 or more "
                        f"model sizes); rerun {doc.get('command', 'the experiment')} with a version that writes it")
    if not isinstance(rows, list):
        raise DataError(f"{where}: 'effects' must be a list of rows, got {type(rows).__name__}")
    out = []
    for i, r in enumerate(rows):
        missing = [k for k in KEYS if k not in r] if isinstance(r, dict) else list(KEYS)
        if missing:
            raise DataError(f"{where}: effects row {i} lacks {', '.join(missing)}; see the effects contract")
        if r["kind"] not in ("ratio", "difference"):
            raise DataError(f"{where}: effects row {i} has kind {r['kind']!r}; use 'ratio' or 'difference'")
        n = r["n_params"]
        if isinstance(n, bool) or not isinstance(n, (int, float)) or not n > 0:
            raise DataError(f"{where}: effects row {i} has n_params {n!r}; give the positive parameter count")
        for k in ("value", "lower", "upper"):
            if r[k] is not None and not (isinstance(r[k], (int, float)) and math.isfinite(r[k])):
                raise DataError(f"{where}: effects row {i} has {k} {r[k]!r}; give a finite number or null")
        out.append({**{k: r[k] for k in KEYS}, "source": where})
    return out


# ----------------------------------------------------------------------------- analysis
def assess(rows: Sequence[Mapping[str, Any]], *, target_factor: float = TARGET_FACTOR,
           coverage: float = COVERAGE) -> dict[str, Any]:
    """Fit one effect against model size and predict it at ``target_factor`` x the largest size.

    Returns a dict with ``effect``, ``kind``, ``sizes`` (the measurements), ``status``
    (``"assessed"`` or ``"not assessable"``), and, when assessed, ``verdict``, ``target_n``,
    ``predicted``, ``low``, ``high``, ``change_per_decade``, ``weighted`` and ``notes``.
    Not assessable (with ``reason``): fewer than 3 distinct sizes, a censored value at some size,
    or mixed kinds.

    A fit weighted by the per-size intervals is checked against the unweighted fit (``unweighted``
    in the result): with 3 sizes the fit has one degree of freedom, the between-size scatter
    cannot be estimated, and one size with a narrow interval (from 2-3 seeds, itself very
    uncertain) can carry the line alone. When the two verdicts differ, the verdict is
    ``undetermined`` and a note gives both.
    """
    from scalelab.predict.persistence import MIN_SIZES, persistence

    rs = sorted(rows, key=lambda r: r["n_params"])
    name = rs[0]["effect"]
    kinds = {r["kind"] for r in rs}
    res: dict[str, Any] = {
        "effect": name, "description": rs[0]["description"], "kind": rs[0]["kind"],
        "neutral": rs[0]["neutral"],
        "sizes": [{k: r[k] for k in ("size", "n_params", "value", "lower", "upper", "coverage", "note")}
                  for r in rs],
        "sources": sorted({r["source"] for r in rs}),
    }

    def not_assessable(reason: str) -> dict[str, Any]:
        return {**res, "status": "not assessable", "reason": reason}

    if len(kinds) > 1:
        return not_assessable(f"rows disagree on the kind ({', '.join(sorted(kinds))})")
    distinct = sorted({r["n_params"] for r in rs})
    reasons = []
    if len(distinct) < MIN_SIZES:
        reasons.append(f"measured at {len(distinct)} model size(s); a trend needs {MIN_SIZES}")
    censored = [r for r in rs if r["value"] is None]
    if censored:
        first = censored[0]
        reasons.append(f"censored (no value) at {', '.join(r['size'] for r in censored)} (at {first['size']}: "
                       f"{first['note'] or 'no note'}; the other notes are in the sizes list)"
                       if len(censored) > 1 else
                       f"censored (no value) at {first['size']}: {first['note'] or 'no note'}")
    if reasons:
        return not_assessable("; ".join(reasons))
    values = np.array([r["value"] for r in rs], float)
    notes: list[str] = []
    lower = upper = None
    icov = rs[0]["coverage"]
    have = all(r["lower"] is not None and r["upper"] is not None for r in rs)
    if have and len({r["coverage"] for r in rs}) == 1 and isinstance(icov, (int, float)) and 0 < icov < 1:
        lo = np.array([r["lower"] for r in rs], float)
        hi = np.array([r["upper"] for r in rs], float)
        if np.all((lo <= values) & (values <= hi) & (hi > lo)):
            lower, upper = lo, hi
        else:
            notes.append("some interval does not strictly contain its value; fitted unweighted")
    else:
        notes.append("intervals missing, unbounded or of mixed coverage at some size; fitted unweighted")
    target = target_factor * distinct[-1]
    try:
        p = persistence([r["n_params"] for r in rs], values, target_n=target, lower=lower, upper=upper,
                        interval_coverage=float(icov) if lower is not None else 0.95,
                        kind=rs[0]["kind"], coverage=coverage, label=name)
        u = p if lower is None else persistence(
            [r["n_params"] for r in rs], values, target_n=target, kind=rs[0]["kind"], coverage=coverage,
            label=name)
    except DataError as exc:
        return not_assessable(str(exc))
    verdict = p.verdict
    if u.verdict != p.verdict:
        verdict = "undetermined"
        notes.append(f"the verdict depends on the weights: weighted by the per-size intervals "
                     f"{p.verdict} ({p.predicted:.3g} [{p.low:.3g}, {p.high:.3g}]), unweighted "
                     f"{u.verdict} ({u.predicted:.3g} [{u.low:.3g}, {u.high:.3g}]); reported as undetermined")
    return {**res, "status": "assessed", "verdict": verdict, "target_n": p.target_n,
            "predicted": p.predicted, "low": p.low, "high": p.high, "coverage": coverage,
            "direction": p.direction, "change_per_decade": p.change_per_decade,
            "threshold": p.threshold, "weighted": p.trend.weighted, "trend": p.trend.to_dict(),
            "verdict_weighted": p.verdict if lower is not None else None,
            "unweighted": {"verdict": u.verdict, "predicted": u.predicted, "low": u.low, "high": u.high,
                           "direction": u.direction, "change_per_decade": u.change_per_decade},
            "notes": notes + list(p.notes)}


def analyse(docs: Sequence[Mapping[str, Any]], *, target_factor: float = TARGET_FACTOR,
            coverage: float = COVERAGE) -> list[dict[str, Any]]:
    """Group every document's effects rows by effect name and :func:`assess` each group."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        for r in effect_rows(doc):
            groups.setdefault(r["effect"], []).append(r)
    if not groups:
        raise DataError("the inputs have empty 'effects' lists; nothing to assess")
    return [assess(groups[k], target_factor=target_factor, coverage=coverage) for k in sorted(groups)]


# ----------------------------------------------------------------------------- output
def figure(results: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Effect against N per effect: measurements, fitted trend, prediction interval at the target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    from scalelab.predict.persistence import SizeTrend

    drawn = [r for r in results if r["status"] == "assessed"]
    left_out = [r for r in results if r["status"] != "assessed"]
    n = len(drawn) + (1 if left_out else 0)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.3 * nrows), squeeze=False)
    if left_out:  # one text panel instead of an empty panel per censored effect
        text_ax = axes.ravel()[len(drawn)]
        text_ax.axis("off")
        lines = [f"{r['effect']} ({_short_reason(r['reason'])})" for r in left_out]
        text_ax.text(0, 1, f"not assessable ({len(left_out)}):\n" + "\n".join(lines), va="top",
                     fontsize=max(4.5, min(7.0, 110 / max(len(lines), 1))), transform=text_ax.transAxes)
    for ax, res in zip(axes.ravel(), drawn, strict=False):
        pts = [s for s in res["sizes"] if s["value"] is not None]
        ratio = res["kind"] == "ratio"
        if pts:
            x = np.array([s["n_params"] for s in pts], float)
            y = np.array([s["value"] for s in pts], float)
            lo = np.array([s["lower"] if s["lower"] is not None else s["value"] for s in pts], float)
            hi = np.array([s["upper"] if s["upper"] is not None else s["value"] for s in pts], float)
            ax.errorbar(x, y, yerr=[y - lo, hi - y], fmt="o", color="k", ms=4, capsize=2, label="measured")
        for s in res["sizes"]:
            if s["value"] is None:
                ax.axvline(s["n_params"], color="grey", ls=":", lw=0.8)
        if res["status"] == "assessed":
            trend = SizeTrend.from_dict(res["trend"])
            grid = np.geomspace(trend.size_range[0], res["target_n"], 60)
            mean, low, high = trend.predict(grid, coverage=res["coverage"])
            back = np.exp if ratio else (lambda v: v)
            ax.plot(grid, back(mean), color="tab:blue", lw=1, label="fitted trend")
            ax.fill_between(grid, back(low), back(high), color="tab:blue", alpha=0.15,
                            label=f"{res['coverage']:.0%} prediction interval")
            ax.errorbar([res["target_n"]], [res["predicted"]],
                        yerr=[[res["predicted"] - res["low"]], [res["high"] - res["predicted"]]],
                        fmt="s", color="tab:red", capsize=3, label="target size")
            u = res.get("unweighted")
            if res["weighted"] and u:
                ax.errorbar([res["target_n"] * 1.25], [u["predicted"]],
                            yerr=[[u["predicted"] - u["low"]], [u["high"] - u["predicted"]]],
                            fmt="D", color="tab:grey", ms=3, capsize=3, label="target, unweighted fit")
            title = f"{res['effect']}\n{res['verdict']} at {res['target_n']:.3g}"
            if res.get("verdict_weighted") not in (None, res["verdict"]):
                title += f" (weighted fit alone: {res['verdict_weighted']})"
        else:
            title = f"{res['effect']}\nnot assessable"
        ax.axhline(res["neutral"], color="grey", lw=0.6)
        ax.set_xscale("log")
        if ratio:
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax.yaxis.set_minor_formatter(NullFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(title, fontsize=7)
        ax.set_xlabel("non-embedding parameters", fontsize=7)
        ax.set_ylabel("effect" + (" (ratio)" if ratio else ""), fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    if drawn and axes.ravel()[0].get_legend_handles_labels()[0]:
        axes.ravel()[0].legend(fontsize=6)
    return C.save_figure(fig, path)


def _short_reason(reason: str) -> str:
    """The first clause of a not-assessable reason, for the figure."""
    head = reason.split(" (at ")[0].split(": ")[0]
    return head if len(head) <= 60 else head[:57] + "..."


def _measured(s: Mapping[str, Any]) -> str:
    """A measurement for the table: the value, or the bound a censored value is known to satisfy."""
    if s["value"] is not None:
        return C.fmt(s["value"])
    if s["lower"] is not None and s["lower"] > 0:
        return f"censored, >= {C.fmt(s['lower'])}"
    if s["upper"] is not None:
        return f"censored, <= {C.fmt(s['upper'])}"
    return "censored"


def summary(results: Sequence[Mapping[str, Any]], inputs: Sequence[str], target_factor: float,
            skipped: Sequence[str] = ()) -> str:
    """Markdown: one row per effect with its measurements, prediction and verdict."""
    rows = []
    for r in results:
        meas = "; ".join(f"{s['size']} {_measured(s)}" for s in r["sizes"])
        if r["status"] == "assessed":
            pred = f"{C.fmt(r['predicted'])} [{C.fmt(r['low'])}, {C.fmt(r['high'])}] at {r['target_n']:.3g}"
            u = r.get("unweighted")
            if r["weighted"] and u:
                pred = (f"weighted {pred}; unweighted {C.fmt(u['predicted'])} [{C.fmt(u['low'])}, "
                        f"{C.fmt(u['high'])}] ({u['verdict']})")
            rows.append([r["effect"], meas, C.fmt(r["change_per_decade"]), pred, r["verdict"]])
        else:
            rows.append([r["effect"], meas, "-", "-", f"not assessable: {r['reason']}"])
    counts = {v: sum(1 for r in results if r.get("verdict", r["status"]) == v)
              for v in ("persists", "vanishes", "undetermined", "not assessable")}
    return "\n".join([
        "# The scale caveat: do the measured effects persist at larger sizes?", "",
        f"Inputs: {', '.join(inputs)}. Target size: {target_factor:g}x the largest measured size of "
        "each effect." + (f" Not read: {'; '.join(skipped)}." if skipped else ""), "",
        C.markdown_table(["effect", "measured (size value)", "change per 10x N", "predicted [interval] at N",
                          "verdict"], rows), "",
        "Counts: " + ", ".join(f"{k} {v}" for k, v in counts.items()),
    ])


def body(argv: Sequence[str] | None) -> int:
    t0 = time.perf_counter()
    args, paths, factor, coverage = parse(argv)
    skipped: list[str] = []
    if args.quick:
        paths, skipped = quick_plan()
    docs = [read_input(p) for p in paths]
    results = analyse(docs, target_factor=factor, coverage=coverage)
    inputs = [d["_path"] for d in docs]
    figure(results, args.out / f"{NAME}{'_quick' if args.quick else ''}.png")
    md = summary(results, inputs, factor, skipped)
    C.write_results(args.out, NAME, args, {"inputs": inputs, "not_read": skipped, "target_factor": factor,
                                           "coverage": coverage, "effects": results}, md,
                    wall_seconds=time.perf_counter() - t0)
    _record_command(args, paths, factor, coverage)
    print(md)
    return 0


def _record_command(args: C.ExperimentArgs, paths: Sequence[Path], factor: float, coverage: float) -> None:
    """Replace the generic command in results.json and summary.md with the one that was run."""
    cmd = f"python experiments/{NAME}/run.py" + (" --quick" if args.quick else
                                                 " --inputs " + " ".join(map(str, paths)))
    cmd += f" --out {args.out}"
    if factor != TARGET_FACTOR:
        cmd += f" --target-factor {factor:g}"
    if coverage != COVERAGE:
        cmd += f" --coverage {coverage:g}"
    res = args.out / "results.json"
    doc = json.loads(res.read_text())
    old, doc["command"] = doc["command"], cmd
    res.write_text(json.dumps(doc, indent=1) + "\n")
    md = args.out / "summary.md"
    md.write_text(md.read_text().replace(old, cmd, 1))


def main(argv: Sequence[str] | None = None) -> int:
    return C.main_wrapper(body, argv)


if __name__ == "__main__":
    sys.exit(main())
