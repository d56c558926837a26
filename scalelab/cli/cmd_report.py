"""``scalelab report [ROOT|FIT.json] -o DIR``: an HTML report with its figures (PNG and SVG).

Imports only the standard library at module import; the report package (numpy, scipy,
matplotlib) loads when the command runs. Progress of the long parts (transition fits,
figures) goes to stderr.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scalelab.errors import DataError

__all__ = ["main", "register", "run_report"]

DESCRIPTION = """\
Write an HTML report (DIR/index.html, figures in DIR/figures as PNG and SVG): per-skill
learning curves with detected transitions, an emergence map (skill x step, one panel per
size), each fit against its data with residuals, its extrapolation with prediction bands out
to a target, the isoFLOP view and compute-optimal frontier (laws of N and D), and backtest
tables.
"""

EPILOG = """\
examples:
  scalelab report runs/mixture_demo -o report/
  scalelab report fit.json --target-compute 5.76e23 -o report/
  scalelab report runs/ --fit fit.json --backtest bt.json --target N=70e9,D=1.4e12 -o report/
  scalelab report --curves evals.csv --run-col model --skill-col task --size-col params \\
      --curves-where "num_fewshot == 0" -o report/ --screenshot
"""


def register(sub: Any) -> None:
    """Add the ``report`` subcommand to an argparse subparsers object."""
    p = sub.add_parser(
        "report",
        help="write an HTML report with figures from a run store, fits and backtests",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("source", nargs="?", metavar="ROOT|FIT.json",
                   help="a run store directory, or a fit file (same as --fit)")
    p.add_argument("-o", "--out", required=True, metavar="DIR",
                   help="output folder (created if absent)")
    p.add_argument("--fit", action="extend", nargs="+", default=[], metavar="FIT.json",
                   help="fit files written by `scalelab fit --json` (repeatable)")
    p.add_argument("--backtest", action="extend", nargs="+", default=[], metavar="BT.json",
                   help="backtest files (schema scalelab.backtest/1)")
    p.add_argument("--data", metavar="TABLE",
                   help="the fitted points, when a fit's own data source cannot be read")
    tgt = p.add_mutually_exclusive_group()
    tgt.add_argument("--target", metavar="INPUT=VALUE,...",
                     help="extrapolate to these law inputs, e.g. N=70e9,D=1.4e12 "
                     "(default: 10x the largest fitted value)")
    tgt.add_argument("--target-compute", type=float, metavar="C",
                     help="extrapolate laws of N and D along the compute-optimal frontier to "
                     "this many FLOPs (C = 6ND)")
    p.add_argument("--coverage", type=float, help="interval coverage (default: each fit's, 0.95 for transitions)")
    curves = p.add_argument_group("learning curves from a table instead of a run store")
    curves.add_argument("--curves", metavar="TABLE", help="a tidy table of evaluations")
    curves.add_argument("--run-col", default="run", metavar="COL", help="run column (default run)")
    curves.add_argument("--skill-col", metavar="COL", help="skill / task column")
    curves.add_argument("--step-col", default="step", metavar="COL", help="step column (default step)")
    curves.add_argument("--metric", default="acc", help="metric to plot (default acc)")
    curves.add_argument("--metric-col", metavar="COL",
                        help="metric-name column of a long table (default: 'metric' if present)")
    curves.add_argument("--value-col", default="value", metavar="COL", help="value column (default value)")
    curves.add_argument("--curves-where", metavar="EXPR", help="row filter for --curves")
    p.add_argument("--size-col", metavar="COL",
                   help="column giving each run's size (default n_params for a run store; none "
                   "for --curves: each run is its own panel)")
    p.add_argument("--bootstrap", type=int, default=100, metavar="B",
                   help="resamples for each transition's interval (default 100)")
    p.add_argument("--chance", action="append", metavar="VALUE|SKILL=VALUE",
                   help="chance level for all skills or one (repeatable); fixes the sigmoid floor")
    p.add_argument("--seed", type=int, default=0, help="seed of the transition bootstraps")
    p.add_argument("--title", default="scalelab report", help="page title")
    p.add_argument("--screenshot", action="store_true",
                   help="also render DIR/screenshot.png with headless Chromium")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(handler=run_report)


def _chances(items: Sequence[str] | None) -> dict[str, float] | None:
    """``--chance 0.25 --chance piqa=0.5`` -> ``{"*": 0.25, "piqa": 0.5}``."""
    if not items:
        return None
    out: dict[str, float] = {}
    for item in items:
        name, sep, text = item.rpartition("=")
        key = name.strip() if sep else "*"
        try:
            out[key] = float(text)
        except ValueError:
            raise DataError(f"--chance {item!r}: expected VALUE or SKILL=VALUE") from None
    return out


def _split_source(source: str | None) -> tuple[str | None, list[str]]:
    """The positional argument as ``(store root, [fit file])``."""
    if source is None:
        return None, []
    path = Path(source)
    if path.is_dir():
        return source, []
    if path.is_file():
        if path.suffix.lower() != ".json":
            raise DataError(
                f"{source!r} is a file but not a fit (.json); pass a run store directory, a "
                "fit file, or a table with --curves"
            )
        return None, [source]
    raise DataError(f"{source!r} not found: pass a run store directory or a fit file (FIT.json)")


def run_report(args: argparse.Namespace) -> int:
    """Handler of ``scalelab report``: build the report, print where it is."""
    from scalelab.report import build_report, curves_from_table, parse_target
    from scalelab.report.progress import stream_progress

    store, fits = _split_source(args.source)
    if store is not None and args.curves:
        raise DataError("give a run store ROOT or --curves TABLE, not both")
    target = parse_target(args.target) if args.target else None
    progress = None if args.quiet else stream_progress(sys.stderr)
    curves = None
    if args.curves:
        curves = curves_from_table(
            args.curves,
            metric=args.metric,
            run_col=args.run_col,
            skill_col=args.skill_col,
            step_col=args.step_col,
            metric_col=args.metric_col,
            value_col=args.value_col,
            where=args.curves_where,
            size_col=args.size_col,
        )
    report = build_report(
        args.out,
        store=store,
        curves=curves,
        size_col=args.size_col or "n_params",
        fits=[*fits, *args.fit],
        backtests=args.backtest,
        data=args.data,
        target=target,
        target_compute=args.target_compute,
        coverage=args.coverage,
        bootstrap=args.bootstrap,
        chance=_chances(args.chance),
        seed=args.seed,
        title=args.title,
        command=" ".join(shlex.quote(a) for a in ["scalelab", *sys.argv[1:]]) if _from_console() else None,
        progress=progress,
    )
    identified = sum(1 for t in report.transitions if t.identified)
    print(f"wrote {report.html}: {len(report.figures)} figures (PNG + SVG) in {report.folder / 'figures'}")
    if report.transitions:
        print(f"transitions: {identified} of {len(report.transitions)} curves have one")
    for key, pred in report.predictions.items():
        at = ", ".join(f"{k}={v:.4g}" for k, v in pred.inputs.items())
        print(f"{key}: predicted {pred.mean:.5g} [{pred.lower:.5g}, {pred.upper:.5g}] at {at} "
              f"({100 * pred.coverage:g}%, {pred.method})")
    for note in report.notes:
        print(f"note: {note}")
    if args.screenshot:
        from scalelab.report import screenshot

        shot = screenshot(report.html, report.folder / "screenshot.png")
        print(f"wrote {shot}")
    return 0


def _from_console() -> bool:
    """Whether this process is ``scalelab report ...`` (so ``sys.argv`` is the command)."""
    exe = Path(sys.argv[0])
    named = exe.name == "scalelab" or (exe.name == "__main__.py" and exe.parent.name == "scalelab")
    return named and sys.argv[1:2] == ["report"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``scalelab report ...`` with only this command registered (``argv`` starts with
    ``"report"``); errors print one ``error:`` line and return 2."""
    from scalelab.cli.main import run_commands

    return run_commands(argv, register)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
