"""Plot grokking curves: train vs held-out accuracy against step (log x), one panel per weight decay.

Reads a runs table exported by ``scalelab runs ROOT --export runs.csv`` (through
:func:`scalelab.store.read_table`), keeps the ``eval``/``acc`` records of the modular source
(skills ``modadd`` = held-out pairs and ``modadd/train`` = training pairs) and draws one panel
per weight decay, one line style per seed. It also prints, per run, the first evaluated step at
which train accuracy reaches 0.99 and held-out accuracy reaches 0.9 (or "not reached"), and the
grokking delay between the two (a lower bound, "> n", when held-out never reaches 0.9).

    python experiments/grokking/plot.py grokking.csv --out docs/figures/grokking_weight_decay.png

Needs matplotlib (``pip install matplotlib``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from scalelab.errors import DataError
from scalelab.store import read_table

TRAIN_THRESHOLD = 0.99
HELDOUT_THRESHOLD = 0.9


def _column(table, *names: str) -> str | None:
    for name in names:
        if name in table.columns:
            return name
    return None


def first_step(steps: np.ndarray, values: np.ndarray, threshold: float) -> int | None:
    """The first evaluated step whose value is at least ``threshold`` (None if none is)."""
    hit = np.nonzero(values >= threshold)[0]
    return int(steps[hit[0]]) if len(hit) else None


def load_curves(path: str, skill: str = "modadd") -> list[dict]:
    """Per run: weight decay, seed, and the (steps, acc) curves of ``skill`` and ``skill/train``."""
    table = read_table(path)
    table = table.filter((table["split"] == "eval") & (table["metric"] == "acc"))
    wd_col = _column(table, "optim.weight_decay", "config.optim.weight_decay")
    seed_col = _column(table, "init_seed", "config.init_seed", "seed")
    runs = []
    for run in sorted(set(table["run"].tolist())):
        rows = table.filter(table["run"] == run)
        curves = {}
        for which, source in (("heldout", skill), ("train", f"{skill}/train")):
            sub = rows.filter(rows["source"] == source)
            order = np.argsort(sub["step"], kind="stable")
            curves[which] = (sub["step"][order].astype(int), sub["value"][order].astype(float))
        if len(curves["heldout"][0]) == 0:
            continue
        wd = float(rows[wd_col][0]) if wd_col else float("nan")
        seed = int(rows[seed_col][0]) if seed_col else 0
        runs.append({"run": run, "wd": wd, "seed": seed, **curves})
    if not runs:
        raise DataError(f"{path}: no eval/acc records of skill {skill!r}; is this a grokking export?")
    return runs


def summarise(runs: list[dict]) -> list[str]:
    lines = [f"{'run':32s} {'wd':>5s} {'seed':>4s}  train>=0.99  held-out>=0.9  delay (steps)"
             "  final train  final held-out"]
    for r in sorted(runs, key=lambda r: (r["wd"], r["seed"])):
        t = first_step(*r["train"], TRAIN_THRESHOLD)
        h = first_step(*r["heldout"], HELDOUT_THRESHOLD)
        if t is None:
            delay = "-"
        elif h is None:
            delay = f"> {int(r['heldout'][0][-1]) - t}"  # censored at the last evaluated step
        else:
            delay = str(h - t)
        lines.append(
            f"{r['run']:32s} {r['wd']:5g} {r['seed']:4d}  {str(t) if t is not None else 'not reached':>11s}"
            f"  {str(h) if h is not None else 'not reached':>13s}  {delay:>13s}"
            f"  {r['train'][1][-1]:11.3f}  {r['heldout'][1][-1]:13.3f}"
        )
    return lines


def plot(runs: list[dict], out: Path, title: str | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wds = sorted({r["wd"] for r in runs})
    fig, axes = plt.subplots(1, len(wds), figsize=(5.2 * len(wds), 3.8), sharey=True, squeeze=False)
    styles = ["-", "--", ":", "-."]
    for ax, wd in zip(axes[0], wds, strict=True):
        for r in sorted((r for r in runs if r["wd"] == wd), key=lambda r: r["seed"]):
            ls = styles[r["seed"] % len(styles)]
            suffix = f" (seed {r['seed']})" if len({x["seed"] for x in runs}) > 1 else ""
            for which, color, label in (("train", "tab:blue", "train"), ("heldout", "tab:red", "held-out")):
                steps, acc = r[which]
                keep = steps > 0  # log x: step 0 cannot be drawn
                ax.plot(steps[keep], acc[keep], ls, color=color, marker="o", ms=3, label=label + suffix)
        ax.set_xscale("log")
        ax.set_ylim(-0.03, 1.03)
        ax.axhline(TRAIN_THRESHOLD, color="0.8", lw=0.8, zorder=0)
        ax.axhline(HELDOUT_THRESHOLD, color="0.8", lw=0.8, ls="--", zorder=0)
        ax.set_title(f"weight decay {wd:g}")
        ax.set_xlabel("step")
        ax.grid(True, which="major", alpha=0.3)
    axes[0][0].set_ylabel("exact-match accuracy")
    axes[0][-1].legend(loc="upper left", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("table", help="runs table exported by `scalelab runs ROOT --export FILE`")
    ap.add_argument("--out", default="docs/figures/grokking_weight_decay.png", help="PNG to write")
    ap.add_argument("--skill", default="modadd", help="held-out skill name (train skill is SKILL/train)")
    ap.add_argument("--title", default=None)
    args = ap.parse_args(argv)
    try:
        runs = load_curves(args.table, args.skill)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(summarise(runs)))
    plot(runs, Path(args.out), args.title)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
