"""Subcommands of the ``scalelab`` CLI. Each handler makes one library call and prints it."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from typing import Any

from scalelab.errors import DataError

__all__ = ["add_datasets", "add_fit", "add_laws", "add_optimal", "add_predict"]

DATA_HELP = "a .csv, .tsv, .jsonl, .json or .parquet file, or a bundled dataset name (see `scalelab datasets`)"


# ----------------------------------------------------------------------------- parsing helpers
def _pairs(items: Sequence[str] | None, flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise DataError(f"{flag} {item!r}: expected NAME=VALUE")
        out[key.strip()] = value.strip()
    return out


def _number(text: str, flag: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{flag}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise DataError(f"{flag}: {text!r} must be a finite number")
    return value


def _numbers(items: Sequence[str] | None, flag: str) -> dict[str, list[float]]:
    return {k: [_number(v, flag) for v in val.split(",")] for k, val in _pairs(items, flag).items()}


def _bounds(items: Sequence[str] | None) -> dict[str, tuple[float, float]]:
    out = {}
    for name, text in _pairs(items, "--bound").items():
        lo, sep, hi = text.partition(":")
        if not sep:
            raise DataError(f"--bound {name}={text}: expected NAME=LOW:HIGH (e.g. alpha=0:1; use inf for none)")
        out[name] = (float(lo) if lo.strip() else -math.inf, float(hi) if hi.strip() else math.inf)
    return out


def _law_options(items: Sequence[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, text in _pairs(items, "--law-opt").items():
        try:
            out[key] = json.loads(text)
        except json.JSONDecodeError:
            out[key] = text
    return out


def _write_json(path: str, payload: dict[str, Any]) -> None:
    from scalelab._io import atomic_write_text

    atomic_write_text(path, json.dumps(payload, indent=1, allow_nan=False) + "\n")


def _check_output(path: str | None) -> None:
    """Fail before any work when the output folder is missing."""
    from pathlib import Path

    if path is not None:
        folder = Path(path).parent
        if not folder.is_dir():
            raise DataError(f"cannot write {path!r}: folder {str(folder)!r} does not exist")


def _clean(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


# ----------------------------------------------------------------------------- fit
def add_fit(sub: Any) -> None:
    p = sub.add_parser(
        "fit",
        help="fit a scaling law to a table of runs",
        description="Fit a law with many starts (vectorised), polish the best, and report intervals.",
    )
    p.add_argument("data", metavar="DATA", help=DATA_HELP)
    p.add_argument("--law", required=True, help="law name (see `scalelab laws`)")
    p.add_argument("--law-opt", action="append", metavar="KEY=VALUE", help="law option, e.g. breaks=2")
    p.add_argument("--x", action="append", metavar="INPUT=COLUMN", help="map a law input to a column, e.g. N=params_N")
    p.add_argument("--y", required=True, metavar="COLUMN", help="the column to fit (loss, accuracy, ...)")
    p.add_argument("--where", metavar="EXPR", help='row filter, e.g. "excluded_by_epoch == 0"')
    p.add_argument("--loss", default="huber", choices=["huber", "mse", "mse_log", "mse_linear", "asymmetric"])
    p.add_argument("--delta", type=float, help="Huber delta on log residuals (default 1e-3)")
    p.add_argument("--penalty", type=float, help="asymmetric loss: weight of over-estimates (default 4)")
    p.add_argument("--starts", default="grid", help="'grid' (default), 'random', or a number of random starts")
    p.add_argument("--keep", type=float, default=0.1, help="fraction of starts kept after 8 iterations (default 0.1; 1 keeps all)")
    p.add_argument("--bootstrap", type=int, default=0, metavar="B", help="bootstrap resamples (default 0: Hessian intervals)")
    p.add_argument("--bootstrap-by", metavar="COLUMN", help="resample whole groups (e.g. runs) instead of rows")
    p.add_argument("--weights", metavar="COLUMN", help="column of point weights")
    p.add_argument("--fix", action="append", metavar="NAME=VALUE", help="fix a parameter")
    p.add_argument("--tie", action="append", metavar="NAME=EXPR", help="tie a parameter, e.g. beta=alpha")
    p.add_argument("--bound", action="append", metavar="NAME=LOW:HIGH", help="override a parameter's bounds")
    p.add_argument("--coverage", type=float, default=0.95, help="interval coverage (default 0.95)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, help="threads for the batched search (default: usable cores, max 8)")
    p.add_argument("--at", nargs="+", metavar="INPUT=VALUE", help="also predict here, e.g. --at N=70e9 D=1.4e12")
    p.add_argument("--json", metavar="OUT", help="write the fit as JSON (read by predict / optimal)")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(handler=run_fit)


def run_fit(args: argparse.Namespace) -> int:
    from scalelab.fit import fit
    from scalelab.laws import make_law

    _check_output(args.json)
    if args.keep is not None and not 0 < args.keep <= 1:
        raise DataError(f"--keep must be in (0, 1], got {args.keep}")
    starts: str | int = int(args.starts) if args.starts.isdigit() else args.starts
    fixed = {k: _number(v, "--fix") for k, v in _pairs(args.fix, "--fix").items()}
    law = make_law(args.law, **_law_options(args.law_opt))
    at = _numbers(args.at, "--at") if args.at else None
    if at is not None:
        law.prepare_inputs(at)  # check the prediction point before spending time on the fit
    progress = None if args.quiet else (lambda msg: print(f"... {msg}", file=sys.stderr))
    res = fit(
        law,
        args.data,
        x=_pairs(args.x, "--x"),
        y=args.y,
        where=args.where,
        loss=args.loss,
        delta=args.delta,
        penalty=args.penalty,
        starts=starts,
        keep=None if args.keep == 1 else args.keep,
        bootstrap=args.bootstrap,
        bootstrap_by=args.bootstrap_by,
        weights=args.weights,
        fixed=fixed,
        tie=_pairs(args.tie, "--tie"),
        bounds=_bounds(args.bound),
        coverage=args.coverage,
        seed=args.seed,
        workers=args.workers,
        progress=progress,
    )
    if args.json:
        res.save(args.json)
    if not args.quiet:
        print(res.report())
        if at is not None:
            print()
            _print_prediction(res, at, res.coverage)
        if args.json:
            print(f"\nwrote {args.json}")
    return 0


# ----------------------------------------------------------------------------- predict
def add_predict(sub: Any) -> None:
    p = sub.add_parser(
        "predict",
        help="predict from a saved fit, chain of fits or per-skill result, with intervals",
        description="Predict from a fit (`scalelab fit --json`), from a chain of fits "
        "(schema scalelab.chain/1, e.g. task loss from (N, D), then accuracy from task loss), or "
        "from per-skill crossings against model size (`scalelab skills --json`: when each skill "
        "emerges at a new N). A chain's interval propagates every fit's parameter draws plus "
        "observation noise.",
        epilog="examples:\n"
        "  scalelab predict fit.json --at N=70e9 D=1.4e12\n"
        "  scalelab predict chain.json --at N=13.2e9 D=5e12\n"
        "  scalelab predict skills.json --at N=1e10,7e10 --budget 2e11\n"
        "  scalelab predict bpb_fit.json --then acc_fit.json --chance 0.25 --at N=13.2e9 D=5e12 "
        "--save-chain chain.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("fit", metavar="FILE.json",
                   help="a fit written by `scalelab fit --json`, a chain (scalelab.chain/1), or "
                   "per-skill results (`scalelab skills --json`)")
    p.add_argument("--at", nargs="+", required=True, metavar="INPUT=VALUE",
                   help="inputs, e.g. N=70e9 D=1.4e12 (comma-separated for several points)")
    p.add_argument("--then", metavar="STEP2.json",
                   help="chain FILE.json into this fit of one input (it receives FILE.json's prediction)")
    p.add_argument("--chance", type=float,
                   help="with --then: chance accuracy of the task (clips the prediction to [0, 1])")
    p.add_argument("--save-chain", metavar="OUT", help="with --then: write the chain as JSON")
    p.add_argument("--no-noise", action="store_true",
                   help="chains: interval of the fitted curves only, without observation noise")
    p.add_argument("--seed", type=int, default=0, help="chains: seed of the simulated draws (default 0)")
    p.add_argument("--budget", type=float, metavar="X",
                   help="per-skill results: training budget in the crossings' unit; says whether "
                   "each skill emerges within it")
    p.add_argument("--coverage", type=float, help="interval coverage (default: the fit's; 0.95 for chains)")
    p.add_argument("--json", metavar="OUT", help="write predictions as JSON")
    p.set_defaults(handler=run_predict)


def _print_prediction(res: Any, at: dict[str, list[float]], coverage: float | None) -> dict[str, Any]:
    pred = res.predict(at, coverage=coverage)
    pts = res.law.prepare_inputs(at)
    names = list(pts)
    pct = f"{100 * pred.coverage:g}%"
    head = "  ".join(f"{n:>12}" for n in names) + f"  {res.y:>12}  {pct + ' low':>12}  {pct + ' high':>12}"
    print(head)
    print("-" * len(head))
    rows = []
    for i in range(len(pred.mean)):
        vals = [float(pts[n][i]) for n in names]
        print("  ".join(f"{v:>12.4g}" for v in vals)
              + f"  {pred.mean[i]:>12.6g}  {pred.lower[i]:>12.6g}  {pred.upper[i]:>12.6g}")
        rows.append({**dict(zip(names, vals, strict=True)), "mean": float(pred.mean[i]),
                     "lower": _clean(pred.lower[i]), "upper": _clean(pred.upper[i])})
    print(f"({pred.method}; parameter uncertainty only)")
    return {"law": res.law.name, "y": res.y, "coverage": pred.coverage, "method": pred.method, "predictions": rows}


def run_predict(args: argparse.Namespace) -> int:
    from scalelab.fit import FitResult
    from scalelab.predict.chain import SCHEMA as CHAIN_SCHEMA
    from scalelab.predict.chain import Chain, read_json

    _check_output(args.json)
    _check_output(args.save_chain)
    at = _numbers(args.at, "--at")
    d = read_json(args.fit, "fit")
    is_chain = str(d.get("schema", "")).startswith("scalelab.chain/")
    if str(d.get("schema", "")).startswith("scalelab.skills/"):
        return _predict_skills(d, at, args)
    if args.budget is not None:
        raise DataError("--budget applies to per-skill results (`scalelab skills --json`)")
    if args.then is None:
        if args.chance is not None or args.save_chain:
            raise DataError("--chance and --save-chain only apply with --then STEP2.json")
        if not is_chain:
            if args.no_noise:
                raise DataError("--no-noise applies to chains; a single fit's interval has no noise")
            res = FitResult.from_dict(d)
            payload = _print_prediction(res, at, args.coverage)
            warn = _extrapolation_note(res, at)
            if warn:
                print(warn)
            if args.json:
                _write_json(args.json, payload)
            return 0
        chain = Chain.from_dict(d)
    else:
        if is_chain:
            raise DataError(f"--then chains two single fits; {args.fit!r} is already a chain "
                            f"({CHAIN_SCHEMA})")
        chain = Chain.two_step(FitResult.from_dict(d), FitResult.from_dict(read_json(args.then, "fit")),
                               chance=args.chance)
        if args.save_chain:
            chain.save(args.save_chain)
    payload = _print_chain_prediction(chain, at, args.coverage, not args.no_noise, args.seed)
    if args.then is not None and args.save_chain:
        print(f"wrote {args.save_chain}")
    if args.json:
        _write_json(args.json, payload)
    return 0


def _predict_skills(d: dict[str, Any], at: dict[str, list[float]], args: argparse.Namespace) -> int:
    from scalelab.predict.skills import predict_saved_skills

    if set(at) != {"N"}:
        raise DataError(f"per-skill results predict at model sizes only: give --at N=..., got {', '.join(at)}")
    if args.then is not None or args.chance is not None or args.save_chain or args.no_noise:
        raise DataError("--then, --chance, --save-chain and --no-noise apply to fits and chains, "
                        "not to per-skill results")
    rows = predict_saved_skills(d, at["N"], budget=args.budget, coverage=args.coverage)
    unit = next((r["unit"] for r in rows if "unit" in r), "step")
    level = next((r["coverage"] for r in rows if "coverage" in r), None)
    pct = f"{100 * level:g}%" if level is not None else ""
    head = (f"{'skill':<24} {'N':>10} {'crossing (' + unit + ')':>18} {pct + ' low':>12} "
            f"{pct + ' high':>12} {'x fitted N':>10}" + ("  verdict" if args.budget is not None else ""))
    print(head)
    print("-" * len(head))
    for r in rows:
        if "value" not in r:
            print(f"{r['skill']!s:<24} not predicted: {r['reason']}")
            continue
        line = (f"{r['skill']:<24} {r['n']:>10.4g} {r['value']:>18.5g} {r['low']:>12.5g} "
                f"{r['high']:>12.5g} {r['extrapolation']:>10.3g}")
        print(line + (f"  {r['verdict']}" if r["verdict"] else ""))
    if args.json:
        _write_json(args.json, {"schema": "scalelab.skills-prediction/1", "budget": args.budget,
                                "predictions": rows})
    return 0


def _print_chain_prediction(chain: Any, at: dict[str, list[float]], coverage: float | None,
                            noise: bool, seed: int) -> dict[str, Any]:
    cov = 0.95 if coverage is None else coverage
    pred = chain.predict(at, coverage=cov, noise=noise, seed=seed)
    values = chain.stage_values(at)
    names = list(chain.inputs)
    middle = [s.output for s in chain.stages[:-1]]
    pct = f"{100 * pred.coverage:g}%"
    print(chain.describe())
    print()
    head = ("  ".join(f"{n:>12}" for n in [*names, *middle])
            + f"  {chain.target:>12}  {pct + ' low':>12}  {pct + ' high':>12}")
    print(head)
    print("-" * len(head))
    rows = []
    for i in range(len(pred.mean)):
        vals = [float(values[n][i]) for n in [*names, *middle]]
        print("  ".join(f"{v:>12.4g}" for v in vals)
              + f"  {pred.mean[i]:>12.6g}  {pred.lower[i]:>12.6g}  {pred.upper[i]:>12.6g}")
        rows.append({**dict(zip([*names, *middle], vals, strict=True)), "mean": float(pred.mean[i]),
                     "lower": _clean(pred.lower[i]), "upper": _clean(pred.upper[i])})
    what = "every fit's parameter draws + observation noise" if noise else "parameter draws only"
    print(f"({pred.method}: {what})")
    notes = chain.extrapolation_notes(at)
    if notes:
        print("note: extrapolating: " + "; ".join(notes))
    return {"chain": chain.method, "target": chain.target, "coverage": pred.coverage,
            "method": pred.method, "noise": noise, "predictions": rows}


def _extrapolation_note(res: Any, at: dict[str, list[float]]) -> str:
    notes = []
    for name, values in at.items():
        rng = res.data.get("ranges", {}).get(name)
        if rng and rng[1] and max(values) > rng[1]:
            notes.append(f"{name} up to {max(values) / rng[1]:.3g}x the largest fitted value")
    return ("note: extrapolating: " + "; ".join(notes)) if notes else ""


# ----------------------------------------------------------------------------- optimal
def add_optimal(sub: Any) -> None:
    p = sub.add_parser("optimal", help="compute-optimal N and D for a FLOP budget (C = 6ND)")
    p.add_argument("fit", metavar="FIT.json", help="a fit of a law with inputs N and D")
    p.add_argument("--compute", nargs="+", required=True, metavar="C", help="training FLOPs, e.g. 5.88e23")
    p.add_argument("--coverage", type=float, help="interval coverage (default: the fit's)")
    p.add_argument("--json", metavar="OUT", help="write the plan as JSON")
    p.set_defaults(handler=run_optimal)


def run_optimal(args: argparse.Namespace) -> int:
    from scalelab.fit import FitResult

    _check_output(args.json)
    res = FitResult.load(args.fit)
    budgets = [_number(c, "--compute") for c in args.compute]
    plans = []
    for c in budgets:
        plan = res.compute_optimal(c, coverage=args.coverage)
        plans.append({"compute": c, **{k: {"value": e.value, "ci_low": _clean(e.ci_low), "ci_high": _clean(e.ci_high)}
                                      for k, e in plan.items()}})
        cov = res.coverage if args.coverage is None else args.coverage
        print(f"compute {c:.4g} FLOPs (C = 6ND)")
        for key, label in (("N", "params N"), ("D", "tokens D"), ("tokens_per_param", "tokens/param"), ("loss", "loss")):
            e = plan[key]
            ci = (f"   {100 * cov:g}% [{e.ci_low:.4g}, {e.ci_high:.4g}]" if math.isfinite(e.ci_low)
                  else "   (no interval: refit with --bootstrap)")
            print(f"  {label:<13} {e.value:.4g}{ci}")
    if args.json:
        _write_json(args.json, {"law": res.law.name, "plans": plans})
    return 0


# ----------------------------------------------------------------------------- listings
def add_laws(sub: Any) -> None:
    p = sub.add_parser("laws", help="list the laws you can fit")
    p.set_defaults(handler=run_laws)


def run_laws(args: argparse.Namespace) -> int:
    from scalelab.laws import available_laws, make_law

    for name in available_laws():
        law = make_law(name)
        print(f"{name:<18} {law.equation}")
        print(f"{'':<18} inputs: {', '.join(law.inputs)}; params: {', '.join(law.param_names)}")
        print(f"{'':<18} {law.reference}")
    return 0


def add_datasets(sub: Any) -> None:
    p = sub.add_parser("datasets", help="list the bundled datasets")
    p.set_defaults(handler=run_datasets)


def run_datasets(args: argparse.Namespace) -> int:
    from scalelab import datasets

    for name in datasets.available():
        info = datasets.info(name)
        print(f"{name}: {info.get('description', '')}")
        print(f"  {info.get('citation', '')}")
    return 0
