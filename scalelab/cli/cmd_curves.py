"""``scalelab curves`` and ``scalelab speedup``: learning-curve analytics from a tidy table.

``curves`` prints, per run and skill, the emergence step (the first step at which the metric
reaches a level and stays there, interpolated in log-step, or "not reached") and a sigmoid
phase-change fit with intervals. ``speedup`` prints how many times fewer tokens one run needs
than a baseline to reach a target loss (or a skill's accuracy threshold), with an interval
across seeds. Definitions are in docs/curves.md. numpy and the library load only when a
command runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from scalelab.cli.commands import _check_output, _number, _write_json
from scalelab.cli.curve_options import add_hold_args, add_level_args, add_table_args
from scalelab.cli.curve_options import num as _num
from scalelab.errors import DataError

__all__ = ["main", "register", "run_curves", "run_speedup"]

_CURVES_EPILOG = """\
examples:
  scalelab curves evals.csv --run-col model --skill-col task --step-col step --metric acc \\
      --threshold 0.9 --sustain 3 --json curves.json
  scalelab curves ../shared/data/pythia_v1_evals_by_checkpoint.csv --run-col model \\
      --skill-col task --metric acc --tokens-col tokens --stderr-col stderr \\
      --where "num_fewshot == 0 and deduped == 0 and task in ['piqa', 'sciq']" \\
      --fraction 0.5 --chance piqa=0.5 --chance sciq=0.25 --order-by params_total
"""
_SPEEDUP_EPILOG = """\
examples:
  scalelab speedup runs.csv --baseline base --run doremi --target-loss 3.2 \\
      --tokens-col tokens --value-col loss --metric-col metric --seed-col seed
  scalelab speedup evals.csv --baseline base --run mix --skill arith --threshold 0.9 \\
      --skill-col task --tokens-col tokens --seed-col seed
"""


def register(sub: Any) -> None:
    """Add the ``curves`` and ``speedup`` subcommands to an argparse subparsers object.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The object returned by ``parser.add_subparsers(...)``.
    """
    _add_curves(sub)
    _add_speedup(sub)


def _add_table_args(p: argparse.ArgumentParser, metric_default: str | None) -> None:
    add_table_args(p, metric_default)
    p.add_argument("--seed-col", metavar="COL", help="seed column (curves per run and seed)")
    p.add_argument("--where", metavar="EXPR", help='row filter, e.g. "num_fewshot == 0"')
    add_hold_args(p)
    p.add_argument("--coverage", type=float, default=0.95, help="interval coverage (default 0.95)")
    p.add_argument("--json", metavar="OUT", help="write the results as JSON")


def _add_curves(sub: Any) -> None:
    p = sub.add_parser(
        "curves",
        help="emergence step and phase-change fit per run and skill",
        description="Per run and skill: the first step at which the metric reaches a level and "
        "stays there (interpolated in log-step; 'not reached' when it never does), and a "
        "sigmoid fit in log-step with its transition point and width.",
        epilog=_CURVES_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_table_args(p, None)
    p.add_argument("--flops-col", metavar="COL", help="FLOPs spent by each step")
    p.add_argument("--order-by", metavar="COL", help="numeric column to order runs by")
    add_level_args(p)
    p.add_argument(
        "--bootstrap",
        type=int,
        default=200,
        metavar="B",
        help="redraws / resamples for the intervals (default 200; 0 for none)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed of the intervals")
    p.add_argument("--no-fit", action="store_true", help="skip the sigmoid phase-change fit")
    p.add_argument("--workers", type=int, help="threads for the fitting engine")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(handler=run_curves)


def _add_speedup(sub: Any) -> None:
    p = sub.add_parser(
        "speedup",
        help="how many times fewer tokens a run needs than a baseline to reach a target",
        description="tokens_baseline(target) / tokens_run(target), interpolated in log space, "
        "with a pooled-t interval on log tokens across seeds.",
        epilog=_SPEEDUP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_table_args(p, "")
    p.add_argument("--baseline", required=True, metavar="RUN", help="the baseline run")
    p.add_argument("--run", required=True, metavar="RUN", help="the run compared with it")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--target-loss", type=float, metavar="X", help="target loss")
    target.add_argument(
        "--threshold", type=float, metavar="T", help="accuracy threshold (with --skill)"
    )
    p.add_argument("--skill", metavar="SKILL", help="the skill whose accuracy is compared")
    p.set_defaults(handler=run_speedup)


# ----------------------------------------------------------------------------- curves
def run_curves(args: argparse.Namespace) -> int:
    """Handler of ``scalelab curves``."""
    from scalelab.curves import analyze_curves, read_curves

    _check_output(args.json)
    chance = _chances(args.chance)
    curves = read_curves(
        args.data,
        metric=args.metric,
        run_col=args.run_col,
        step_col=args.step_col,
        skill_col=args.skill_col,
        metric_col=args.metric_col,
        value_col=args.value_col,
        tokens_col=args.tokens_col,
        flops_col=args.flops_col,
        stderr_col=args.stderr_col,
        seed_col=args.seed_col,
        chance_col=args.chance_col,
        where=args.where,
        order_by=args.order_by,
    )
    quiet = args.quiet
    fits = not args.no_fit

    def say(message: str) -> None:
        if not quiet:
            print(f"... {message}", file=sys.stderr)

    if fits:
        say(f"{len(curves)} curve(s): fitting a sigmoid to each ({args.bootstrap} resamples)")
    results = analyze_curves(
        curves,
        threshold=args.threshold,
        fraction=args.fraction,
        chance=chance,
        sustain=args.sustain,
        offset=args.offset,
        bootstrap=args.bootstrap,
        coverage=args.coverage,
        seed=args.seed,
        fit_transitions=fits,
        workers=args.workers,
    )
    if args.json:
        _write_json(
            args.json,
            {
                "schema": "scalelab.curves/1",
                "source": curves.source,
                "fingerprint": curves.fingerprint,
                "where": curves.where,
                "metric": curves.metric,
                "options": {
                    "threshold": args.threshold,
                    "fraction": args.fraction,
                    "chance": chance,
                    "chance_col": args.chance_col,
                    "sustain": args.sustain,
                    "offset": args.offset,
                    "bootstrap": args.bootstrap,
                    "coverage": args.coverage,
                    "seed": args.seed,
                    "fit": fits,
                },
                "notes": list(curves.notes),
                "curves": [r.to_dict() for r in results],
            },
        )
    if not quiet:
        _print_curves(args, curves, results)
        if args.json:
            print(f"\nwrote {args.json}")
    return 0


def _chances(items: Sequence[str] | None) -> dict[str, float] | None:
    """``--chance 0.25 --chance piqa=0.5`` -> ``{"*": 0.25, "piqa": 0.5}``."""
    if not items:
        return None
    out: dict[str, float] = {}
    for item in items:
        key, sep, text = item.rpartition("=")
        name = key.strip() if sep else "*"
        if sep and not name:
            raise DataError(f"--chance {item!r}: expected VALUE or SKILL=VALUE")
        out[name] = _number(text, "--chance")
    return out


def _print_curves(args: argparse.Namespace, curves: Any, results: Sequence[Any]) -> None:
    pct = f"{100 * args.coverage:g}%"
    if args.fraction is not None:
        level = f"{args.fraction:g} of the way from chance to the final value"
    else:
        level = f"{0.9 if args.threshold is None else args.threshold:g}"
    print(
        f"metric   {curves.metric} from {curves.source}"
        + (f" where {curves.where}" if curves.where else "")
    )
    print(f"level    {level}; held for {args.sustain} evaluation(s); log(step + {args.offset:g})")
    for note in curves.notes:
        print(f"note     {note}")
    print()
    head = (
        f"{'run':<14} {'skill':<16} {'level':>7}  {'emerges at step':>16} {pct + ' interval':>20}"
        f"  {'between evals':>17}"
    )
    if not args.no_fit:
        head += f"  | {'transition':>11} {pct + ' interval':>20} {'width':>6}  fit"
    print(head)
    print("-" * len(head))
    for r in results:
        e = r.emergence
        name = e.run + (f" [{e.seed}]" if e.seed else "")
        line = f"{name:<14} {e.skill or '-':<16} {_num(e.level):>7}  "
        if e.status == "reached":
            line += (
                f"{_step(e.step):>16} {_interval(e.step_low, e.step_high, e.interval_method):>20}"
            )
            line += f"  {_step(e.bracket[0]) + '-' + _step(e.bracket[1]):>17}"
        elif e.status == "at_start":
            line += f"{'<= ' + _step(e.step):>16} {'':>20}  {'(first eval)':>17}"
        elif e.status == "not_reached":
            line += f"{'not reached':>16} {'':>20}  {'by ' + _step(e.last_step):>17}"
        else:
            line += f"{e.status.replace('_', ' '):>16} {'':>20}  {'':>17}"
        t = r.transition
        if t is not None:
            if t.identified:
                line += (
                    f"  | {_step(t.step):>11} {_interval(t.step_low, t.step_high, 'fit'):>20}"
                    f" {_num(t.width, 3):>6}  {t.status}"
                )
            else:
                line += f"  | {'-':>11} {'':>20} {'':>6}  {t.status.replace('_', ' ')}"
        print(line)
    _print_notes(results)


def _print_notes(results: Sequence[Any]) -> None:
    lines = []
    for r in results:
        label = r.emergence.run + (f" / {r.emergence.skill}" if r.emergence.skill else "")
        for note in r.emergence.notes:
            lines.append(f"  {label}: {note}")
        if r.transition is not None:
            for note in r.transition.notes:
                lines.append(f"  {label}: fit: {note}")
    if lines:
        print("\nnotes")
        print("\n".join(lines))


# ----------------------------------------------------------------------------- speedup
def run_speedup(args: argparse.Namespace) -> int:
    """Handler of ``scalelab speedup``."""
    from scalelab.curves import read_curves, speedup

    _check_output(args.json)
    loss_mode = args.target_loss is not None
    if not loss_mode and args.skill is None and args.skill_col is not None:
        raise DataError("--threshold compares a skill's accuracy: give --skill SKILL")
    if args.skill is not None and args.skill_col is None:
        raise DataError("--skill needs --skill-col, the column naming each row's skill")
    metric = args.metric or ("loss" if loss_mode else "acc")
    curves = read_curves(
        args.data,
        metric=metric,
        run_col=args.run_col,
        step_col=args.step_col,
        skill_col=args.skill_col,
        metric_col=args.metric_col,
        value_col=args.value_col,
        tokens_col=args.tokens_col,
        seed_col=args.seed_col,
        where=args.where,
    )
    res = speedup(
        curves,
        baseline=args.baseline,
        run=args.run,
        target=args.target_loss if loss_mode else args.threshold,
        kind="loss" if loss_mode else "accuracy",
        skill=args.skill,
        sustain=args.sustain,
        offset=args.offset,
        coverage=args.coverage,
    )
    if args.json:
        _write_json(
            args.json,
            {
                "schema": "scalelab.speedup/1",
                "source": curves.source,
                "fingerprint": curves.fingerprint,
                "where": curves.where,
                **res.to_dict(),
            },
        )
    _print_speedup(res)
    if args.json:
        print(f"\nwrote {args.json}")
    return 0


def _print_speedup(res: Any) -> None:
    what = f"{res.metric} {'<=' if res.kind == 'loss' else '>='} {res.target:g}"
    if res.skill:
        what += f" on {res.skill}"
    print(f"target   {what} (held for the sustain window; interpolated in log {res.unit})")
    for label, name, reach in (
        ("baseline", res.baseline, res.baseline_reach),
        ("run", res.run, res.run_reach),
    ):
        shown = ", ".join(
            _num(r.value, 4) if r.reached else f"not reached by {_num(r.last, 4)}" for r in reach
        )
        print(f"{label:<8} {name}: {res.unit} to target per seed: {shown}")
    pct = f"{100 * res.coverage:g}%"
    if res.status == "ok":
        interval = (
            f"   {pct} [{_num(res.low, 4)}, {_num(res.high, 4)}] (pooled t on log {res.unit} "
            "across seeds)"
            if res.low is not None
            else ""
        )
        print(f"speedup  {_num(res.speedup, 4)}x{interval}")
    elif res.bound is not None:
        relation = ">=" if res.bound_kind == "lower" else "<="
        print(f"speedup  {relation} {_num(res.bound, 4)}x ({res.status.replace('_', ' ')})")
    else:
        print(f"speedup  none ({res.status.replace('_', ' ')})")
    for note in res.notes:
        print(f"note     {note}")


# ----------------------------------------------------------------------------- formatting
def _step(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1e7:
        return f"{value:.4g}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def _interval(low: float | None, high: float | None, method: str) -> str:
    if method == "none" or (low is None and high is None):
        return "-"
    return f"[{_step(low)}, {_step(high) if high is not None else 'beyond'}]"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``scalelab curves`` / ``scalelab speedup`` alone; returns the exit code.

    Errors are handled as in :func:`scalelab.cli.main.main`: a
    :class:`~scalelab.errors.ScalelabError` prints one ``error: ...`` line on stderr and
    returns 2.
    """
    from scalelab.cli.main import run_commands

    return run_commands(argv, register)
