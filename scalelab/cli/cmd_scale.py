"""``scalelab skills``, ``scalelab mixture`` and ``scalelab persist``: effects across scales.

* ``skills`` -- per skill, the crossing step (or tokens) of each model size, a power law of the
  crossings against model size, and the predicted crossing of a larger model (or a backtest
  holding out the larger sizes), judged against a budget when one is given.
* ``mixture`` -- a data-mixing law per target fitted over small runs with different mixtures,
  the mixture minimising the targets, and its gain over a reference with a bootstrap interval.
* ``persist`` -- an effect measured at several sizes (e.g. a speedup) fitted against size,
  and whether it persists at a target size.

Definitions are in docs/predict_skills.md. numpy and the library load only when a command runs.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from typing import Any

from scalelab.cli.commands import _check_output, _number, _write_json
from scalelab.cli.curve_options import DATA_HELP as _DATA_HELP
from scalelab.cli.curve_options import add_hold_args, add_level_args, add_table_args
from scalelab.cli.curve_options import num as _num
from scalelab.errors import DataError

__all__ = ["main", "register", "run_mixture", "run_persist", "run_skills"]

_SKILLS_EPILOG = """\
examples:
  scalelab skills evals.csv --size-col n_params --skill-col task --metric acc \\
      --tokens-col tokens --stderr-col stderr --threshold 0.8 --target-n 1e10 --budget 2e10
  scalelab skills ../shared/data/pythia_v1_evals_by_checkpoint.csv --size-col params_total \\
      --run-col model --skill-col task --stderr-col stderr --unit step \\
      --where "num_fewshot == 0 and deduped == 0 and task in ['lambada_openai', 'sciq']" \\
      --fraction 0.5 --chance lambada_openai=0 --chance sciq=0.25 --holdout-above 2e9
"""
_MIXTURE_EPILOG = """\
examples:
  scalelab mixture runs.csv --domains w_code,w_text,w_math --target loss_code \\
      --target loss_text --reference uniform --json mix.json
  scalelab mixture runs.csv --domains tok_code,tok_text --normalize --target loss_code=2 \\
      --target loss_text=1 --reference best --run-col run
"""
_PERSIST_EPILOG = """\
examples:
  scalelab persist speedups.csv --size-col n_params --effect-col speedup \\
      --lower-col speedup_low --upper-col speedup_high --target-n 7e9
  scalelab persist gains.csv --size-col n_params --effect-col acc_gain --kind difference \\
      --threshold 0.01 --target-n 1e10 --target-n 7e10
"""


def register(sub: Any) -> None:
    """Add the ``skills``, ``mixture`` and ``persist`` subcommands to an argparse subparsers.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The object returned by ``parser.add_subparsers(...)``.
    """
    _add_skills(sub)
    _add_mixture(sub)
    _add_persist(sub)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--where", metavar="EXPR", help='row filter, e.g. "n_params < 2e9"')
    p.add_argument("--coverage", type=float, default=0.95, help="interval coverage (default 0.95)")
    p.add_argument("--json", metavar="OUT", help="write the results as JSON")


def _add_skills(sub: Any) -> None:
    p = sub.add_parser(
        "skills",
        help="per-skill emergence against model size: predict when a larger model gets there",
        description="Measure each run's crossing of each skill (emergence step, or sigmoid "
        "midpoint), fit the crossings of each skill against model size as a power law, and "
        "predict the crossing of larger models with an interval (or a budget verdict), or "
        "backtest on the larger sizes of the table.",
        epilog=_SKILLS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_table_args(p, "acc")
    p.add_argument("--size-col", required=True, metavar="COL", help="model size of each run")
    add_level_args(p)
    add_hold_args(p)
    p.add_argument(
        "--measure",
        choices=("crossing", "transition"),
        default="crossing",
        help="emergence step (default) or the midpoint of a sigmoid fit",
    )
    p.add_argument(
        "--unit", choices=("tokens", "step"), help="default: tokens with --tokens-col, else steps"
    )
    p.add_argument(
        "--target-n",
        action="append",
        metavar="N",
        help="model size(s) to predict (repeatable or comma-separated)",
    )
    p.add_argument("--budget", type=float, metavar="X", help="training budget, in --unit")
    p.add_argument(
        "--holdout-above",
        type=float,
        metavar="N",
        help="fit only sizes <= N and compare the larger runs with their predictions",
    )
    p.add_argument("--skill", action="append", metavar="SKILL", help="only this skill (repeatable)")
    p.add_argument("--bootstrap", type=int, default=200, metavar="B", help="redraws (200)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the intervals")
    p.add_argument("--workers", type=int, help="threads for sigmoid fits")
    _add_common(p)
    p.set_defaults(handler=run_skills)


def _add_mixture(sub: Any) -> None:
    p = sub.add_parser(
        "mixture",
        help="recommend the data mixture that minimises target losses (data-mixing law)",
        description="Fit Ye et al.'s data-mixing law per target over runs with different "
        "mixtures, find the mixture minimising the (weighted) targets, and report its gain "
        "over a reference with a bootstrap-over-runs interval.",
        epilog=_MIXTURE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("data", metavar="DATA", help=_DATA_HELP)
    p.add_argument(
        "--domains", required=True, metavar="COLS", help="comma-separated proportion columns"
    )
    p.add_argument(
        "--target",
        action="append",
        required=True,
        metavar="COL[=WEIGHT]",
        help="target column to minimise, optionally weighted (repeatable)",
    )
    p.add_argument(
        "--reference",
        default="uniform",
        metavar="REF",
        help="uniform (default), best (best observed run) or proportions like 0.5,0.3,0.2",
    )
    p.add_argument(
        "--region",
        choices=("observed", "simplex"),
        default="observed",
        help="search within the observed shares per domain (default) or the whole simplex",
    )
    p.add_argument(
        "--normalize", action="store_true", help="rescale each row's domain columns to sum to 1"
    )
    p.add_argument("--run-col", metavar="COL", help="run column (resample whole runs)")
    p.add_argument("--loss", default="mse", help="fitting objective (default mse: log space)")
    p.add_argument("--bootstrap", type=int, default=200, metavar="B", help="resamples (200)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the bootstrap")
    p.add_argument("--workers", type=int, help="threads for the fitting engine")
    _add_common(p)
    p.set_defaults(handler=run_mixture)


def _add_persist(sub: Any) -> None:
    p = sub.add_parser(
        "persist",
        help="does an effect measured on small models persist at a target size?",
        description="Fit an effect (a speedup, or a difference) against model size, weighted "
        "by its intervals, and say whether it persists, vanishes or is undetermined at the "
        "target size.",
        epilog=_PERSIST_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("data", metavar="DATA", help=_DATA_HELP)
    p.add_argument("--size-col", required=True, metavar="COL", help="model size of each row")
    p.add_argument("--effect-col", required=True, metavar="COL", help="the measured effect")
    p.add_argument("--lower-col", metavar="COL", help="lower end of each effect's interval")
    p.add_argument("--upper-col", metavar="COL", help="upper end of each effect's interval")
    p.add_argument(
        "--interval-coverage",
        type=float,
        default=0.95,
        help="coverage of those intervals (default 0.95)",
    )
    p.add_argument(
        "--target-n",
        action="append",
        required=True,
        metavar="N",
        help="model size(s) to judge at (repeatable or comma-separated)",
    )
    p.add_argument(
        "--kind",
        choices=("ratio", "difference"),
        default="ratio",
        help="ratio (fitted in log, neutral 1; default) or difference (neutral 0)",
    )
    p.add_argument(
        "--threshold", type=float, help="smallest effect that still counts (default: neutral)"
    )
    _add_common(p)
    p.set_defaults(handler=run_persist)


# ----------------------------------------------------------------------------- skills
def run_skills(args: argparse.Namespace) -> int:
    """Handler of ``scalelab skills``."""
    from scalelab.cli.cmd_curves import _chances
    from scalelab.predict.skills import measure_crossings, predict_skills

    _check_output(args.json)
    targets = _sizes(args.target_n, "--target-n")
    if not targets and args.holdout_above is None:
        raise DataError("give --target-n N (a size to predict) or --holdout-above N (a backtest)")
    crossings = measure_crossings(
        args.data,
        size_col=args.size_col,
        metric=args.metric,
        run_col=args.run_col,
        step_col=args.step_col,
        skill_col=args.skill_col,
        metric_col=args.metric_col,
        value_col=args.value_col,
        tokens_col=args.tokens_col,
        stderr_col=args.stderr_col,
        chance_col=args.chance_col,
        where=args.where,
        threshold=args.threshold,
        fraction=args.fraction,
        chance=_chances(args.chance),
        sustain=args.sustain,
        offset=args.offset,
        measure=args.measure,
        unit=args.unit,
        bootstrap=args.bootstrap,
        coverage=args.coverage,
        seed=args.seed,
        workers=args.workers,
    )
    res = predict_skills(
        crossings,
        target_n=targets,
        budget=args.budget,
        holdout_above=args.holdout_above,
        skills=args.skill,
    )
    if args.json:
        _write_json(args.json, res.to_dict())
    _print_skills(res)
    if args.json:
        print(f"\nwrote {args.json}")
    return 0


def _print_skills(res: Any) -> None:
    c = res.crossings
    pct = f"{100 * res.coverage:g}%"
    if c.mode == "fraction":
        level = f"{c.fraction:g} of the way from chance to the final value"
    else:
        level = f"{c.threshold:g}"
    print(f"data     {c.source}" + (f" where {c.where}" if c.where else ""))
    if c.measure == "crossing":
        print(
            f"crossing emergence step in {c.unit}s; level {level}; held for {c.sustain} "
            "evaluation(s)"
        )
    else:
        print(f"crossing midpoint of a sigmoid fit in log-step, in {c.unit}s")
    print(f"fit      log crossing = a + b log {c.size_col} per skill; {pct} prediction intervals")
    for note in (*c.notes, *res.notes):
        print(f"note     {note}")
    print()
    head = f"{'skill':<18} {'sizes':>5}  {'exponent b':>10} {pct + ' interval':>18}"
    for n in res.target_n:
        head += f"  | {'N=' + _num(n):>9} {pct + ' interval':>22}"
        if res.budget is not None:
            head += f" {'vs budget':>13}"
    print(head)
    print("-" * len(head))
    for s in res.skills:
        if s.status != "ok":
            print(f"{s.skill:<18} {'-':>5}  insufficient: {s.reason}")
            continue
        line = (
            f"{s.skill:<18} {s.trend.n_sizes:>5}  {_num(s.exponent, 3):>10} "
            f"{_pair(s.exponent_low, s.exponent_high, 3):>18}"
        )
        for p in s.predictions:
            line += f"  | {_count(p.value):>9} {_pair(p.low, p.high):>22}"
            if p.verdict is not None:
                line += f" {p.verdict.replace('_', ' '):>13}"
        print(line)
    rows = [(s.skill, b) for s in res.skills for b in s.backtest]
    if rows:
        print(f"\nbacktest: sizes above {_num(res.holdout_above)} held out of the fits")
        head = (
            f"{'skill':<18} {'run':<14} {'predicted':>10} {pct + ' interval':>22} "
            f"{'measured':>10} {pct + ' interval':>22} {'ratio':>6}  inside"
        )
        print(head)
        print("-" * len(head))
        for skill, b in rows:
            if b.measured is None:
                print(
                    f"{skill:<18} {b.run:<14} {_count(b.predicted):>10} "
                    f"{_pair(b.low, b.high):>22} not resolved: {b.reason}"
                )
                continue
            print(
                f"{skill:<18} {b.run:<14} {_count(b.predicted):>10} {_pair(b.low, b.high):>22} "
                f"{_count(b.measured):>10} {_pair(b.measured_low, b.measured_high):>22} "
                f"{_num(b.ratio, 3):>6}  {'yes' if b.inside else 'NO'}"
            )
    lines = [f"  {s.skill} / {run}: {reason}" for s in res.skills for run, reason in s.excluded]
    lines += [f"  {s.skill}: {note}" for s in res.skills for note in s.notes]
    if lines:
        print("\nnot fitted / notes")
        print("\n".join(lines))


# ----------------------------------------------------------------------------- mixture
def run_mixture(args: argparse.Namespace) -> int:
    """Handler of ``scalelab mixture``."""
    from scalelab.predict.mixture import recommend_mixture

    _check_output(args.json)
    domains = [d.strip() for d in args.domains.split(",") if d.strip()]
    res = recommend_mixture(
        args.data,
        domains=domains,
        targets=_targets(args.target),
        reference=_reference(args.reference),
        region=args.region,
        normalize=args.normalize,
        where=args.where,
        run_col=args.run_col,
        loss=args.loss,
        bootstrap=args.bootstrap,
        coverage=args.coverage,
        seed=args.seed,
        workers=args.workers,
    )
    if args.json:
        _write_json(args.json, res.to_dict())
    _print_mixture(res)
    if args.json:
        print(f"\nwrote {args.json}")
    return 0


def _targets(items: Sequence[str]) -> dict[str, float] | list[str]:
    """``--target a --target b=2`` -> ``{"a": 1.0, "b": 2.0}``."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not name:
            raise DataError(f"--target {item!r}: expected COLUMN or COLUMN=WEIGHT")
        if name in out:
            raise DataError(f"--target {name} is given twice; name each target once")
        out[name] = _number(text, "--target") if sep else 1.0
    return out


def _reference(text: str) -> str | list[float]:
    if text in ("uniform", "best"):
        return text
    if "," not in text:
        raise DataError(
            f"--reference {text!r}: expected uniform, best, or proportions like 0.5,0.3,0.2"
        )
    return [_number(v, "--reference") for v in text.split(",")]


def _print_mixture(res: Any) -> None:
    pct = f"{100 * res.coverage:g}%"
    targets = ", ".join(f"{t.target} (weight {t.weight:.3g})" for t in res.targets)
    print(f"data     {res.source}" + (f" where {res.where}" if res.where else ""))
    print(f"runs     {res.n_runs}; domains {', '.join(res.domains)}; targets {targets}")
    fits = ", ".join(f"{t.target} {_num(t.rmse, 3)}" for t in res.targets)
    print(f"law      data_mixing per target: L = c + k exp(sum_j t_j r_j); fit RMSE {fits}")
    print(
        f"search   {res.region} region; intervals: {pct} bootstrap over runs, "
        f"{res.n_resamples - res.n_failed} of {res.n_resamples} resamples"
    )
    print()
    ref = res.reference + (f" ({res.reference_run})" if res.reference_run else "")
    head = (
        f"{'domain':<16} {'recommended':>11} {pct + ' re-optimised':>22} "
        f"{'ref ' + res.reference:>12} {'searched':>16}"
    )
    print(head)
    print("-" * len(head))
    for d in res.domains:
        lo, hi = res.bounds[d]
        print(
            f"{d:<16} {res.weights[d]:>11.3f} "
            f"{'[' + f'{res.weights_low[d]:.3f}, {res.weights_high[d]:.3f}' + ']':>22} "
            f"{res.reference_weights[d]:>12.3f} {'[' + f'{lo:.3f}, {hi:.3f}' + ']':>16}"
        )
    print()
    print(
        f"predicted  recommended {_num(res.objective, 5)} "
        f"{_pair(res.objective_low, res.objective_high, 5)}; reference {ref} "
        f"{_num(res.reference_objective, 5)} "
        f"{_pair(res.reference_objective_low, res.reference_objective_high, 5)}"
        + (
            f" (measured {_num(res.reference_measured, 5)})"
            if res.reference_measured is not None
            else ""
        )
    )
    print(
        f"gain       {_num(res.gain, 4)} {pct} {_pair(res.gain_low, res.gain_high, 4)} "
        f"({100 * res.relative_gain:.3g}% of the reference, "
        f"[{100 * res.relative_gain_low:.3g}%, {100 * res.relative_gain_high:.3g}%])"
    )
    for t in res.targets:
        print(
            f"  {t.target}: recommended {_num(t.recommended, 5)} "
            f"{_pair(t.recommended_low, t.recommended_high, 5)}, reference "
            f"{_num(t.reference, 5)} {_pair(t.reference_low, t.reference_high, 5)}"
        )
    for note in res.notes:
        print(f"note     {note}")


# ----------------------------------------------------------------------------- persist
def run_persist(args: argparse.Namespace) -> int:
    """Handler of ``scalelab persist``."""
    from scalelab.predict.persistence import persistence_from_table

    _check_output(args.json)
    results = [
        persistence_from_table(
            args.data,
            size_col=args.size_col,
            effect_col=args.effect_col,
            target_n=n,
            lower_col=args.lower_col,
            upper_col=args.upper_col,
            where=args.where,
            interval_coverage=args.interval_coverage,
            kind=args.kind,
            threshold=args.threshold,
            coverage=args.coverage,
        )
        for n in _sizes(args.target_n, "--target-n")
    ]
    if args.json:
        _write_json(
            args.json,
            {
                "schema": "scalelab.persistence/1",
                "source": args.data,
                "where": args.where,
                "results": [r.to_dict() for r in results],
            },
        )
    _print_persist(results)
    if args.json:
        print(f"\nwrote {args.json}")
    return 0


def _print_persist(results: Sequence[Any]) -> None:
    first = results[0]
    t = first.trend
    pct = f"{100 * first.coverage:g}%"
    weighting = (
        f"weighted by their {100 * first.interval_coverage:g}% intervals"
        if first.interval_coverage is not None
        else "unweighted (no intervals)"
    )
    print(
        f"effect   {first.label} ({first.kind}): {t.n_points} measurement(s) at {t.n_sizes} "
        f"sizes ({_num(t.size_range[0])} to {_num(t.size_range[1])}), {weighting}"
    )
    scale = "log " if first.kind == "ratio" else ""
    decade = math.log(10.0)
    if first.kind == "ratio":
        change = (
            f"x{_num(first.change_per_decade, 3)} per 10x in size "
            f"[{_num(math.exp(t.slope_low * decade), 3)}, "
            f"{_num(math.exp(t.slope_high * decade), 3)}]"
        )
    else:
        change = (
            f"{first.change_per_decade:+.3g} per 10x in size "
            f"[{t.slope_low * decade:+.3g}, {t.slope_high * decade:+.3g}]"
        )
    print(
        f"trend    {scale}{first.label} linear in log N: {change}; scatter between sizes "
        f"tau {_num(t.tau, 3)} ({scale or 'effect '}units)"
    )
    side = "above" if first.direction == "above" else "below"
    print(
        f"verdict  against threshold {_num(first.threshold, 4)} (the measured effects lie "
        f"{side} it); {pct} prediction intervals"
    )
    if first.threshold_n is not None:
        print(f"         the fitted line reaches the threshold at N = {_num(first.threshold_n)}")
    print()
    for r in results:
        print(
            f"N={_num(r.target_n):<9} predicted {_num(r.predicted, 4)} "
            f"{_pair(r.low, r.high, 4)} -> {r.verdict}"
        )
        for note in r.notes:
            print(f"            note: {note}")


# ----------------------------------------------------------------------------- helpers
def _sizes(items: Sequence[str] | None, flag: str) -> list[float]:
    out = []
    for item in items or []:
        for text in item.split(","):
            if text.strip():
                out.append(_number(text.strip(), flag))
    return out


def _count(value: float | None) -> str:
    """Steps or tokens: thousands separators below 1e7, else 3 significant digits."""
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:,.0f}" if abs(value) < 1e7 else f"{value:.3g}"


def _pair(low: float | None, high: float | None, digits: int | None = None) -> str:
    fmt = _count if digits is None else (lambda v: _num(v, digits))
    return f"[{fmt(low)}, {fmt(high)}]"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``scalelab skills`` / ``mixture`` / ``persist`` alone; returns the exit code.

    Errors are handled as in :func:`scalelab.cli.main.main`: a
    :class:`~scalelab.errors.ScalelabError` prints one ``error: ...`` line on stderr and
    returns 2.
    """
    from scalelab.cli.main import run_commands

    return run_commands(argv, register)
