"""``scalelab compress DATA``: code length of the training data under each run's online loss.

Reads a table with one row per logged step (run, cumulative tokens, online training loss),
prints per run the tokens covered, the prequential code length in bits, bits per token, bits
per byte and the compression ratio, then ranks the runs by code length. Imports numpy only
when the command runs.

Input handling (documented in docs/compression.md): rows of a run that are out of token
order are sorted, with a note on stderr; repeated token values in a run are an error unless
``--duplicates mean`` (then their losses are averaged, with a note); NaN losses, non-positive
tokens, a missing column and one-point runs are errors (``error: ...``, exit 2).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from typing import Any

from scalelab.errors import DataError

__all__ = ["main", "register", "run_compress"]

_DATA_HELP = (
    "a .csv, .tsv, .jsonl, .json or .parquet file, or a bundled dataset name "
    "(see `scalelab datasets`)"
)
_EPILOG = """\
examples:
  scalelab compress log.csv --run-col run --tokens-col tokens --loss-col train_loss --vocab 50257
  scalelab compress log.csv --run-col run --tokens-col tokens --loss-col loss \\
      --step-col step --head first --bytes-per-token 4.2 --json code.json
"""


def register(sub: Any) -> None:
    """Add the ``compress`` subcommand to an argparse subparsers object.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The object returned by ``parser.add_subparsers(...)``.
    """
    p = sub.add_parser(
        "compress",
        help="code length (compression score) of the training data from online loss curves",
        description="Integrate each run's online training loss over tokens: the prequential "
        "code length of the data in bits, bits per token / byte, the compression ratio against "
        "the raw encoding, and runs ranked by code length.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("data", metavar="DATA", help=_DATA_HELP)
    p.add_argument("--run-col", metavar="RUN", help="column naming the run (default: one run)")
    p.add_argument("--tokens-col", required=True, metavar="TOKENS",
                   help="cumulative training tokens after the logged step (> 0)")
    p.add_argument("--loss-col", required=True, metavar="LOSS",
                   help="online training loss: each batch's loss before the update on it")
    p.add_argument("--step-col", metavar="STEP",
                   help="training step; gives tokens per step, so each loss is charged for "
                   "exactly its batch (exact when every step is logged)")
    p.add_argument("--where", metavar="EXPR", help='row filter, e.g. "metric == \'train_loss\'"')
    p.add_argument("--vocab", type=float, metavar="V",
                   help="vocabulary size: raw encoding log2(V) bits/token; needed by --head uniform")
    p.add_argument("--bytes-per-token", type=float, metavar="B",
                   help="mean bytes per token: bits per byte and a ratio against 8 bits/byte")
    p.add_argument("--head", default="uniform", choices=["uniform", "first", "exclude"],
                   help="tokens before the first logged step: log(V) nats each (uniform, "
                   "default), the first logged loss (first), or not counted (exclude)")
    p.add_argument("--rule", default="loglog", choices=["loglog", "trapezoid", "step"],
                   help="interpolation between logged points (default loglog: power law)")
    p.add_argument("--loss-unit", default="nats", choices=["nats", "bits"],
                   help="unit of the loss column (default nats)")
    p.add_argument("--duplicates", default="error", choices=["error", "mean"],
                   help="repeated token values in a run: error (default) or average their losses")
    p.add_argument("--truncate", action="store_true",
                   help="rank runs on the token range all of them cover")
    p.add_argument("--json", metavar="OUT", help="write the scores and ranking as JSON")
    p.set_defaults(handler=run_compress)


def _label(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _runs(args: argparse.Namespace, table: Any, notes: list[str]) -> dict[str, Any]:
    """Split the table into per-run curves, sorted by tokens; returns name -> OnlineLoss."""
    import numpy as np

    from scalelab.curves.compression import OnlineLoss, merge_duplicate_tokens

    tokens = table.numeric(args.tokens_col, positive=True)
    loss = table.numeric(args.loss_col)
    steps = table.numeric(args.step_col) if args.step_col else None
    if args.run_col:
        labels = np.array([_label(v) for v in table.column(args.run_col)], dtype=object)
    else:
        labels = np.full(len(table), "all", dtype=object)
    names = list(dict.fromkeys(labels.tolist()))
    runs: dict[str, Any] = {}
    for name in names:
        rows = np.flatnonzero(labels == name)
        t, y = tokens[rows], loss[rows]
        order = np.argsort(t, kind="stable")
        if np.any(np.diff(order) < 0):
            notes.append(f"run {name!r}: rows were not in token order; sorted by tokens")
        t, y = t[order], y[order]
        repeated = np.flatnonzero(np.diff(t) == 0)
        batch = None
        if repeated.size:
            if args.duplicates == "error" or steps is not None:
                fix = ("drop --step-col" if steps is not None and args.duplicates == "mean"
                       else "pass --duplicates mean to average their losses")
                raise DataError(
                    f"run {name!r} logs {repeated.size} repeated token value(s) (first "
                    f"{t[repeated[0]]:g}); each step must have its own tokens: {fix}, or "
                    "filter the rows with --where"
                )
            t, y, merged = merge_duplicate_tokens(t, y)
            notes.append(f"run {name!r}: averaged the losses of {merged} repeated token value(s)")
        if steps is not None:
            s = steps[rows][order]
            batch = _tokens_per_step(name, t, s)
        runs[name] = OnlineLoss(t, y, batch)
    return runs


def _tokens_per_step(name: str, tokens: Any, steps: Any) -> float | None:
    """Tokens per step of a run from its step column (must be constant)."""
    import numpy as np

    if tokens.size < 2:
        return None  # the one-point error comes from code_length
    ds = np.diff(steps)
    if np.any(ds <= 0):
        raise DataError(
            f"run {name!r}: steps do not increase with tokens; check --step-col and --tokens-col"
        )
    per = np.diff(tokens) / ds
    if np.ptp(per) > 1e-6 * np.max(per):
        raise DataError(
            f"run {name!r}: tokens per step varies from {np.min(per):g} to {np.max(per):g}; "
            "drop --step-col to treat each logged loss as a point on the curve"
        )
    return float(np.median(per))


def run_compress(args: argparse.Namespace) -> int:
    """Handler of ``scalelab compress``: score, rank, print, optionally write JSON."""
    from scalelab.curves.compression import code_length, compare_code_lengths
    from scalelab.store import read_table

    if args.json:
        from pathlib import Path

        folder = Path(args.json).parent
        if not folder.is_dir():
            raise DataError(f"cannot write {args.json!r}: folder {str(folder)!r} does not exist")
    table = read_table(args.data)
    if args.where:
        table = table.where(args.where)
    notes: list[str] = []
    runs = _runs(args, table, notes)
    options: dict[str, Any] = {
        "head": args.head,
        "rule": args.rule,
        "vocab": args.vocab,
        "bytes_per_token": args.bytes_per_token,
        "loss_unit": args.loss_unit,
    }
    codes = {
        name: code_length(run.tokens, run.loss, tokens_per_step=run.tokens_per_step,
                          name=f"run {name!r}", **options)
        for name, run in runs.items()
    }
    comparison = None
    ranking_note = ""
    if len(runs) > 1:
        try:
            comparison = compare_code_lengths(runs, truncate=args.truncate, **options)
        except DataError as exc:
            if args.truncate:
                raise
            ranking_note = f"no ranking: {exc}"
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    _print(args, table, codes, comparison, ranking_note)
    if args.json:
        _write(args, table, runs, codes, comparison, ranking_note)
    return 0


def _fmt(value: float | None, spec: str) -> str:
    """Format a number, or a right-aligned ``-`` of the same width when it is unknown."""
    if value is None:
        return "-".rjust(int(spec.split(".")[0]))
    return format(value, spec)


def _print(args: argparse.Namespace, table: Any, codes: dict[str, Any], comparison: Any,
           ranking_note: str) -> None:
    any_code = next(iter(codes.values()))
    unit = ""
    if args.bytes_per_token:
        unit = f"raw = 8 bits/byte x {args.bytes_per_token:g} bytes/token"
    elif args.vocab:
        unit = f"raw = log2({args.vocab:g}) = {any_code.raw_bits_per_token:.4g} bits/token"
    print(f"data      {table.source}: {len(table)} rows, {len(codes)} run(s)"
          + (f" where {args.where}" if args.where else ""))
    print(f"head      {args.head}; rule {args.rule}; loss in {args.loss_unit}" +
          (f"; {unit}" if unit else ""))
    print()
    width = max(12, *(len(n) for n in codes))
    head = (f"{'run':<{width}}  {'points':>7}  {'tokens from':>12}  {'tokens to':>12}  "
            f"{'head %':>6}  {'code (bits)':>13}  {'bits/token':>10}  {'bits/byte':>9}  "
            f"{'ratio':>7}")
    print(head)
    print("-" * len(head))
    for name, c in codes.items():
        print(f"{name:<{width}}  {c.n_points:>7d}  {c.tokens_start:>12.5g}  {c.tokens_end:>12.5g}  "
              f"{100 * c.head_tokens / c.tokens:>6.2f}  {c.bits:>13.6g}  {c.bits_per_token:>10.5f}  "
              f"{_fmt(c.bits_per_byte, '9.5f')}  {_fmt(c.compression_ratio, '7.4f')}")
    print("(head %: share of the covered tokens before the first logged step, charged by --head; "
          "ratio: raw bits / code bits)")
    if comparison is not None:
        print()
        what = "common tokens" if comparison.truncated else "same tokens"
        print(f"ranking by code length ({what} {comparison.tokens_start:.5g} to "
              f"{comparison.tokens_end:.5g}; shortest code first)")
        head = (f"{'rank':>4}  {'run':<{width}}  {'code (bits)':>13}  {'bits/token':>10}  "
                f"{'+bits vs best':>13}  {'x best':>8}")
        print(head)
        print("-" * len(head))
        for r in comparison.runs:
            print(f"{r.rank:>4d}  {r.run:<{width}}  {r.code.bits:>13.6g}  "
                  f"{r.code.bits_per_token:>10.5f}  {r.bits_minus_best:>13.6g}  "
                  f"{r.ratio_to_best:>8.5f}")
    elif ranking_note:
        print()
        print(ranking_note)
    if args.json:
        print(f"\nwrote {args.json}")


def _write(args: argparse.Namespace, table: Any, runs: dict[str, Any], codes: dict[str, Any],
           comparison: Any, ranking_note: str) -> None:
    import json

    from scalelab._io import atomic_write_text

    payload = {
        "data": table.source,
        "where": args.where,
        "fingerprint": table.fingerprint(),
        "columns": {"run": args.run_col, "tokens": args.tokens_col, "loss": args.loss_col,
                    "step": args.step_col},
        "head": args.head,
        "rule": args.rule,
        "loss_unit": args.loss_unit,
        "vocab": args.vocab,
        "bytes_per_token": args.bytes_per_token,
        "runs": [{"run": name, **{k: _clean(v) for k, v in c.to_dict().items()}}
                 for name, c in codes.items()],
        "ranking": None if comparison is None else {
            **{k: v for k, v in comparison.to_dict().items() if k != "runs"},
            "runs": [{k: _clean(v) for k, v in r.to_dict().items()} for r in comparison.runs],
        },
        "ranking_note": ranking_note or None,
    }
    atomic_write_text(args.json, json.dumps(payload, indent=1, allow_nan=False) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``scalelab compress`` alone (``argv`` starts with ``"compress"``); returns the exit code.

    Errors are handled as in :func:`scalelab.cli.main.main`: a :class:`ScalelabError` prints
    one ``error: ...`` line on stderr and returns 2.
    """
    from scalelab.cli.main import run_commands

    return run_commands(argv, register)
