"""``scalelab backtest`` and ``scalelab plan``: score a law on held-out runs; plan a budget.

``backtest DATA --law LAW --x ... --y ... --holdout EXPR`` fits the law on the rows that do
not match EXPR (with every option of ``scalelab fit``), predicts the rows that do with
intervals for a new run, and prints ARE, absolute errors and interval coverage.
``plan FIT.json --compute C [C ...]`` prints the compute-optimal N, D and loss per budget with
intervals and says how far each planned run lies beyond the fitted data. Heavy imports happen
only when a command runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from scalelab.cli.commands import (
    DATA_HELP,
    _bounds,
    _check_output,
    _law_options,
    _number,
    _pairs,
    _write_json,
)
from scalelab.errors import DataError

__all__ = ["main", "register", "run_backtest_command", "run_plan_command"]

_BACKTEST_EPILOG = """\
examples:
  scalelab backtest chinchilla --law chinchilla --x N=params_N --x D=tokens_D --y loss \\
      --where "excluded_by_epoch == 0" --holdout "params_N >= 2e9" --bootstrap 1000 --json bt.json
  scalelab backtest runs.csv --law power_law --x x=flops --y loss --holdout "flops > 1e20" \\
      --noise residual
"""

_PLAN_EPILOG = """\
examples:
  scalelab plan fit.json --compute 5.88e23 1e24
  scalelab plan fit.json --compute 5.88e23 --data chinchilla   # noise grown by extrapolation
"""


def register(sub: Any) -> None:
    """Add the ``backtest`` and ``plan`` subcommands to an argparse subparsers object."""
    _add_backtest(sub)
    _add_plan(sub)


# ----------------------------------------------------------------------------- backtest
def _add_backtest(sub: Any) -> None:
    p = sub.add_parser(
        "backtest",
        help="hold out runs (e.g. the largest), fit the rest, score the predictions",
        description="Fit a law on the rows not matching --holdout, predict the held-out rows "
        "with prediction intervals (parameter uncertainty plus observation noise), and report "
        "ARE (mean |y - yhat| / y), absolute errors and interval coverage.",
        epilog=_BACKTEST_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("data", metavar="DATA", help=DATA_HELP)
    p.add_argument("--law", required=True, help="law name (see `scalelab laws`)")
    p.add_argument(
        "--law-opt", action="append", metavar="KEY=VALUE", help="law option, e.g. breaks=2"
    )
    p.add_argument(
        "--x",
        action="append",
        metavar="INPUT=COLUMN",
        help="map a law input to a column, e.g. N=params_N",
    )
    p.add_argument(
        "--y", required=True, metavar="COLUMN", help="the column to fit (loss, accuracy, ...)"
    )
    p.add_argument(
        "--holdout",
        required=True,
        metavar="EXPR",
        help='rows to predict (not fitted), e.g. "params_N >= 2e9"',
    )
    p.add_argument(
        "--where", metavar="EXPR", help='row filter applied first, e.g. "excluded_by_epoch == 0"'
    )
    p.add_argument(
        "--loss", default="huber", choices=["huber", "mse", "mse_log", "mse_linear", "asymmetric"]
    )
    p.add_argument("--delta", type=float, help="Huber delta on log residuals (default 1e-3)")
    p.add_argument(
        "--penalty", type=float, help="asymmetric loss: weight of over-estimates (default 4)"
    )
    p.add_argument(
        "--starts", default="grid", help="'grid' (default), 'random', or a number of random starts"
    )
    p.add_argument(
        "--keep",
        type=float,
        default=0.1,
        help="fraction of starts kept after 5 iterations (default 0.1; 1 keeps all)",
    )
    p.add_argument(
        "--bootstrap",
        type=int,
        default=0,
        metavar="B",
        help="bootstrap resamples for parameter uncertainty (default 0: Hessian-normal draws)",
    )
    p.add_argument(
        "--bootstrap-by", metavar="COLUMN", help="resample whole groups (e.g. runs) instead of rows"
    )
    p.add_argument("--weights", metavar="COLUMN", help="column of point weights")
    p.add_argument("--fix", action="append", metavar="NAME=VALUE", help="fix a parameter")
    p.add_argument(
        "--tie", action="append", metavar="NAME=EXPR", help="tie a parameter, e.g. beta=alpha"
    )
    p.add_argument(
        "--bound", action="append", metavar="NAME=LOW:HIGH", help="override a parameter's bounds"
    )
    p.add_argument(
        "--coverage", type=float, default=0.95, help="prediction interval coverage (default 0.95)"
    )
    p.add_argument(
        "--noise",
        default="extrapolation",
        choices=["extrapolation", "residual"],
        help="observation noise of the intervals: grown with the distance beyond the "
        "fitted range by forward validation (default), or the in-sample residual scale",
    )
    p.add_argument(
        "--folds", type=int, default=4, help="size groups of the extrapolation noise (default 4)"
    )
    p.add_argument(
        "--order-by",
        metavar="INPUT",
        help="law input ordering the size groups (default: the first)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--workers", type=int, help="threads for the batched search (default: usable cores, max 8)"
    )
    p.add_argument(
        "--rows",
        type=int,
        default=20,
        metavar="K",
        help="held-out rows to print (default 20; all are in --json)",
    )
    p.add_argument(
        "--json", metavar="OUT", help="write the backtest as JSON (schema scalelab.backtest/1)"
    )
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(handler=run_backtest_command)


def _progress(msg: str) -> None:
    print(f"... {msg}", file=sys.stderr)


def _fit_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``scalelab.fit`` keyword arguments shared with ``scalelab fit``."""
    if args.keep is not None and not 0 < args.keep <= 1:
        raise DataError(f"--keep must be in (0, 1], got {args.keep}")
    starts: str | int = int(args.starts) if args.starts.isdigit() else args.starts
    return {
        "loss": args.loss,
        "delta": args.delta,
        "penalty": args.penalty,
        "starts": starts,
        "keep": None if args.keep == 1 else args.keep,
        "bootstrap": args.bootstrap,
        "bootstrap_by": args.bootstrap_by,
        "weights": args.weights,
        "fixed": {k: _number(v, "--fix") for k, v in _pairs(args.fix, "--fix").items()},
        "tie": _pairs(args.tie, "--tie"),
        "bounds": _bounds(args.bound),
        "workers": args.workers,
    }


def run_backtest_command(args: argparse.Namespace) -> int:
    """Handler of ``scalelab backtest``."""
    from scalelab.laws import make_law
    from scalelab.predict.backtest import run_backtest

    _check_output(args.json)
    if args.rows < 0:
        raise DataError(f"--rows must be 0 or more, got {args.rows}")
    law = make_law(args.law, **_law_options(args.law_opt))
    bt = run_backtest(
        law,
        args.data,
        holdout=args.holdout,
        x=_pairs(args.x, "--x"),
        y=args.y,
        where=args.where,
        coverage=args.coverage,
        noise=args.noise,
        folds=args.folds,
        order_by=args.order_by,
        seed=args.seed,
        progress=None if args.quiet else _progress,
        **_fit_options(args),
    )
    if args.json:
        bt.save(args.json)
    if not args.quiet:
        print(bt.report(max_rows=args.rows))
        if args.json:
            print(f"\nwrote {args.json}")
    return 0


# ----------------------------------------------------------------------------- plan
def _add_plan(sub: Any) -> None:
    p = sub.add_parser(
        "plan",
        help="compute-optimal N, D and loss per FLOP budget, with intervals",
        description="From a saved fit of a law with a compute-optimal allocation (chinchilla, "
        "kaplan, data_constrained): N*(C), D*(C) and tokens per parameter with intervals over the "
        "parameter draws, the loss of that run with a prediction interval (parameter uncertainty "
        "plus observation noise), and how far the run lies beyond the fitted data.",
        epilog=_PLAN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("fit", metavar="FIT.json", help="a file written by `scalelab fit --json`")
    p.add_argument(
        "--compute",
        nargs="+",
        required=True,
        metavar="C",
        help="training FLOPs (C = 6ND), e.g. 5.88e23",
    )
    p.add_argument("--coverage", type=float, help="interval coverage (default: the fit's)")
    p.add_argument(
        "--data",
        metavar="DATA",
        help="the data the fit was made on: lets the loss interval use residual or "
        "extrapolation noise instead of the fit's recorded in-sample RMS",
    )
    p.add_argument(
        "--noise",
        choices=["fit-rmse", "residual", "extrapolation"],
        help="noise of the loss interval (default: extrapolation with --data, else fit-rmse)",
    )
    p.add_argument(
        "--folds", type=int, default=4, help="size groups of the extrapolation noise (default 4)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="OUT", help="write the plan as JSON")
    p.set_defaults(handler=run_plan_command)


def run_plan_command(args: argparse.Namespace) -> int:
    """Handler of ``scalelab plan``."""
    from scalelab.fit import FitResult
    from scalelab.predict.intervals import (
        extrapolation_noise,
        fit_rows,
        noise_from_fit,
        residual_noise,
    )
    from scalelab.predict.plan import compute_optimal_plan

    _check_output(args.json)
    budgets = [_number(c, "--compute") for c in args.compute]
    bad = [c for c in budgets if not c > 0]
    if bad:
        raise DataError(
            f"--compute {bad[0]:g}: a budget must be a positive number of FLOPs, e.g. 5.88e23"
        )
    method = args.noise or ("extrapolation" if args.data else "fit-rmse")
    if method != "fit-rmse" and not args.data:
        raise DataError(f"--noise {method} needs --data (the data the fit was made on)")
    res = FitResult.load(args.fit)
    if method == "extrapolation":
        noise = extrapolation_noise(res, args.data, folds=args.folds, progress=_progress)
    elif method == "residual":
        noise = residual_noise(res, args.data)
    else:
        noise = noise_from_fit(res)
    fit_inputs = None
    if args.data:
        rows = fit_rows(res, args.data)
        fit_inputs = {k: rows.numeric(col) for k, col in res.inputs.items()}
    plan = compute_optimal_plan(
        res, budgets, coverage=args.coverage, noise=noise, fit_inputs=fit_inputs, seed=args.seed
    )
    print(plan.report())
    if args.json:
        _write_json(args.json, plan.to_dict())
        print(f"\nwrote {args.json}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``scalelab backtest`` / ``scalelab plan`` alone; returns the exit code.

    Errors are handled as in :func:`scalelab.cli.main.main`: a :class:`ScalelabError` prints
    one ``error: ...`` line on stderr and returns 2.
    """
    from scalelab.cli.main import run_commands

    return run_commands(argv, register)
