"""Backtest: predict the crossing steps of Pythia 2.8B, 6.9B and 12B from 70M..1.4B.

Prints the tables of docs/predict_skills.md. Zero-shot evaluations of the standard (not
deduplicated) Pythia models, metric ``acc``. The crossing is the emergence step of
docs/curves.md: the first evaluated step at which accuracy reaches half-way from chance to the
model's final (step 143,000) accuracy and holds it for 3 evaluations, interpolated in
log-step; its 95% interval comes from 200 redraws with the published standard errors (the
same curves and seeds as docs/curves.md, so the measured steps and intervals are identical).
Per task, ``log step = a + b log N`` is fitted to the 5 smaller models (weighted by those
intervals plus the scatter between sizes) and each larger model's step is predicted with a
95% prediction interval (Student's t, 3 degrees of freedom).

    python experiments/backtests/pythia_crossings.py [--data ../shared/data] [--seeds 5]
        [--absolute] [--transition]

``--seeds K`` repeats the backtest with redraw seeds 0..K-1 to show how much the predictions
move with the Monte Carlo intervals that weight the fit. ``--absolute`` adds the same
backtest at one fixed accuracy level per task (the levels of docs/curves.md), and
``--transition`` with the midpoints of the sigmoid fits of docs/curves.md instead of the
emergence steps (200 bootstrap resamples per curve: about a minute).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scalelab.predict.skills import skills_at_scale
from scalelab.store import read_table

CHANCE = {"lambada_openai": 0.0, "piqa": 0.5, "arc_easy": 0.25, "sciq": 0.25, "winogrande": 0.5}
TASKS = ("lambada_openai", "piqa", "arc_easy", "sciq")
ABSOLUTE = {"lambada_openai": 0.2, "piqa": 0.58, "arc_easy": 0.35, "sciq": 0.6}
HOLDOUT_ABOVE = 2e9  # fit 70M, 160M, 410M, 1B, 1.4B; predict 2.8B, 6.9B, 12B


def backtest(table: Any, where: str, seed: int = 0, **level: Any) -> Any:
    """One backtest of the tasks selected by ``where``."""
    return skills_at_scale(
        table,
        size_col="params_total",
        run_col="model",
        skill_col="task",
        metric="acc",
        tokens_col="tokens",
        stderr_col="stderr",
        unit="step",
        where=where,
        bootstrap=200,
        seed=seed,
        holdout_above=HOLDOUT_ABOVE,
        **level,
    )


def _steps(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def print_table(res: Any, title: str) -> list[tuple[float, float]]:
    """Markdown table of predicted vs measured; returns (log error, baseline log error)."""
    print(f"\n{title}\n")
    print(
        "| task | b (95%) | model | predicted [95%] | measured [95%] | ratio | inside | "
        "baseline ratio |"
    )
    print("|---|---|---|---|---|---|---|---|")
    errors = []
    for s in res.skills:
        if s.status != "ok":
            print(f"| {s.skill} | - | - | insufficient: {s.reason} | | | | |")
            continue
        largest = max(
            (p for p in res.crossings.for_skill(s.skill) if p.size < HOLDOUT_ABOVE),
            key=lambda p: p.size,
        )
        for i, b in enumerate(s.backtest):
            expo = f"{s.exponent:.3f} [{s.exponent_low:.3f}, {s.exponent_high:.3f}]"
            base = largest.value / b.measured if b.measured else None
            print(
                f"| {s.skill if i == 0 else ''} | {expo if i == 0 else ''} | "
                f"{b.run.removeprefix('pythia-')} | {_steps(b.predicted)} "
                f"[{_steps(b.low)}, {_steps(b.high)}] | {_steps(b.measured)} "
                f"[{_steps(b.measured_low)}, {_steps(b.measured_high)}] | "
                f"{b.ratio:.2f} | {'yes' if b.inside else 'NO'} | {base:.2f} |"
            )
            if b.measured and base:
                errors.append((abs(math.log(b.ratio)), abs(math.log(base))))
    if errors:
        inside = sum(b.inside for s in res.skills for b in s.backtest)
        total = sum(1 for s in res.skills for _ in s.backtest)
        ours = statistics.median(e for e, _ in errors)
        base = statistics.median(b for _, b in errors)
        print(
            f"\n{inside} of {total} measured steps inside their 95% prediction intervals; median "
            f"|log(predicted / measured)| {ours:.3f} (x{math.exp(ours):.2f}); baseline (the "
            f"1.4B model's step for every larger model) {base:.3f} (x{math.exp(base):.2f})"
        )
    return errors


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", default=str(Path(__file__).resolve().parents[2].parent / "shared" / "data")
    )
    parser.add_argument("--seeds", type=int, default=1, help="repeat with redraw seeds 0..K-1")
    parser.add_argument("--absolute", action="store_true", help="also fixed accuracy levels")
    parser.add_argument(
        "--transition", action="store_true", help="also sigmoid midpoints (about 70 s)"
    )
    args = parser.parse_args(argv)
    table = read_table(Path(args.data) / "pythia_v1_evals_by_checkpoint.csv").where(
        "num_fewshot == 0 and deduped == 0"
    )
    where = f"task in {list(TASKS)}"  # exactly the curves (and seeds) of docs/curves.md
    res = backtest(table, where, fraction=0.5, chance=CHANCE)
    print_table(res, "Midpoint crossing (half-way from chance to the final accuracy), steps")

    wino = backtest(table, "task == 'winogrande'", fraction=0.5, chance=CHANCE)
    print("\nwinogrande (chance 0.5): rise from chance to the final accuracy per model")
    for p in wino.crossings.points:
        state = "resolved" if p.resolved else f"not resolved: {p.reason}"
        print(f"  {p.run:<12} final {p.final_value:.4f}  crossing {_steps(p.value):>8}  {state}")
    print(f"  -> {wino.skill('winogrande').status}: {wino.skill('winogrande').reason}")

    if args.seeds > 1:
        print(f"\npredicted steps over redraw seeds 0..{args.seeds - 1} (min-max)")
        runs: dict[tuple[str, str], list[float]] = {}
        for seed in range(args.seeds):
            r = backtest(table, where, seed=seed, fraction=0.5, chance=CHANCE)
            for s in r.skills:
                for b in s.backtest:
                    runs.setdefault((s.skill, b.run), []).append(b.predicted)
        for (skill, run), values in runs.items():
            print(f"  {skill:<15} {run:<12} {min(values):>8,.0f} - {max(values):>8,.0f}")

    if args.transition:
        r = backtest(table, where, fraction=0.5, chance=CHANCE, measure="transition")
        print_table(r, "Sigmoid midpoint (floor at chance), steps")

    if args.absolute:
        for task, level in ABSOLUTE.items():
            r = backtest(table, f"task == '{task}'", threshold=level)
            print_table(r, f"Fixed level: {task} acc >= {level}, steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
