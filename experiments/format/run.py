"""Experiment 2 of issue #7: data format (Lee et al. 2023, "Teaching Arithmetic to Small Transformers").

Addition in the plain, reversed, simplified-scratchpad and detailed-scratchpad formats of the same
pairs, at two model sizes, over seeds. Every training row is a fresh pair, so the examples seen
when held-out exact-match accuracy first reaches 0.9 is the number of examples needed; tokens
needed is that times the format's mean example length (BOS and EOS included, no padding).
Lee et al. report detailed < simplified < reverse < plain in examples needed; the run says
whether that order replicates here, and whether it also holds per token.

    python experiments/format/run.py [--quick] [--out DIR] [--workers 2]
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common as C

NAME = "format"
TARGET = 0.9
#: Lee et al.'s order, fewest examples needed first.
PAPER_ORDER = ("detailed_scratchpad", "simple_scratchpad", "reverse", "plain")


def tokens_per_example(fmt: str, digits: int, n: int = 4000, seed: int = 0) -> float:
    """Mean tokens of one example in format ``fmt`` (one token per byte, plus BOS and EOS)."""
    from scalelab.harness.sources.addition import render_addition

    rng = np.random.default_rng(seed)
    ab = rng.integers(0, 10**digits, size=(n, 2))
    return float(np.mean([sum(map(len, render_addition(int(a), int(b), fmt)[:2])) + 2 for a, b in ab]))


def grid_spec(quick: bool) -> dict[str, Any]:
    """Formats (each with its own row width) x model sizes x seeds, same examples budget."""
    from scalelab.harness.sources import make_source

    if quick:
        digits, sizes, seeds, steps, batch, lr, n_eval = 2, ["tiny"], [0, 1], 200, 32, 3e-3, 200
    else:
        digits, sizes, seeds, steps, batch, lr, n_eval = 3, ["tiny", "mini"], [0, 1], 1500, 32, 3e-3, 300
    data_values = []
    for fmt in PAPER_ORDER:
        src = make_source("addition", format=fmt, digits=digits)
        data_values.append({"seq_len": src.min_seq_len(), "batch_size": batch, "sources": {
            "addition": {"kind": "addition", "options": {"digits": digits, "format": fmt, "eval_size": n_eval}}}})
    return {
        "name": "fmtq" if quick else "fmt",
        "base": {
            "steps": steps, "device": "cpu", "checkpoint_every": 0 if quick else 500,
            "model": {"size": "tiny"},
            "optim": {"lr": lr, "weight_decay": 0.1, "warmup_steps": 20, "min_lr_ratio": 0.1},
            "data": data_values[0],
            "eval": {"count": 14 if quick else 24, "max_examples": n_eval},
        },
        "axis": [
            {"name": "format", "path": "data", "values": data_values, "labels": list(PAPER_ORDER)},
            {"name": "size", "path": "model.size", "values": sizes},
            {"name": "seed", "paths": ["init_seed", "data_seed"], "values": seeds},
        ],
    }


def per_run(curves: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Examples and tokens seen when held-out accuracy first reaches the target, one row per run."""
    rows = []
    cache: dict[tuple[str, int], float] = {}
    for rid, rec in curves.items():
        lab = rec["labels"]
        opts = rec["config"]["data"]["sources"]["addition"]["options"]
        key = (lab["format"], int(opts["digits"]))
        if key not in cache:
            cache[key] = tokens_per_example(*key)
        steps, acc = rec["curves"]["addition"]
        hit = C.first_reach(steps, acc, TARGET)
        batch = float(rec["config"]["data"]["batch_size"])
        rows.append({
            "run": rid, "format": lab["format"], "size": lab["size"], "seed": int(lab["seed"]),
            "tokens_per_example": cache[key], "reached": hit.reached,
            "examples": hit.step * batch, "tokens": hit.step * batch * cache[key],
            "final_acc": float(acc[-1]), "last_examples": float(steps[-1]) * batch,
        })
    return sorted(rows, key=lambda r: (r["size"], PAPER_ORDER.index(r["format"]), r["seed"]))


def per_cell(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Median examples and tokens needed over seeds, with bootstrap intervals, per (size, format)."""
    cells = []
    for size in sorted({r["size"] for r in rows}):
        for fmt in PAPER_ORDER:
            rs = [r for r in rows if r["size"] == size and r["format"] == fmt]
            if not rs:
                continue
            ok = [r["reached"] for r in rs]
            cells.append({
                "size": size, "format": fmt, "seeds": len(rs),
                "tokens_per_example": rs[0]["tokens_per_example"],
                "examples": C.bootstrap_median([r["examples"] for r in rs], ok),
                "tokens": C.bootstrap_median([r["tokens"] for r in rs], ok),
                "final_acc": float(np.median([r["final_acc"] for r in rs])),
            })
    return cells


def order_of(cells: Sequence[Mapping[str, Any]], what: str) -> list[str]:
    """Formats sorted by median ``what`` needed (censored last, by final accuracy, descending)."""
    def key(c: Mapping[str, Any]) -> tuple[int, float]:
        m = c[what]["median"]
        return (0, m) if m is not None else (1, -c["final_acc"])
    return [c["format"] for c in sorted(cells, key=key)]


def verdicts(cells: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per size: the measured order per example and per token, and whether each matches the paper."""
    out = {}
    for size in sorted({c["size"] for c in cells}):
        cs = [c for c in cells if c["size"] == size]
        reached = [c["format"] for c in cs if not c["examples"]["censored"]]
        per_ex, per_tok = order_of(cs, "examples"), order_of(cs, "tokens")
        paper = [f for f in PAPER_ORDER if f in per_ex]
        out[size] = {
            "reached": reached,
            "order_examples": per_ex, "order_tokens": per_tok,
            # None: undetermined, some format never reached the target in the budget
            "paper_order_examples_replicates": per_ex == paper if len(reached) == len(paper) else None,
            "paper_order_holds_per_token": per_tok == paper if len(reached) == len(paper) else None,
        }
    return out


def verdict_lines(v: Mapping[str, Mapping[str, Any]]) -> list[str]:
    lines = []
    for size, d in v.items():
        n = len(d["order_examples"])
        note = "" if len(d["reached"]) == n else (
            f" (only {len(d['reached'])}/{n} formats reached {TARGET} in the budget: "
            f"{', '.join(d['reached']) or 'none'}; the rest are ordered by final accuracy, so the "
            "comparison is incomplete)")
        rep, tok = d["paper_order_examples_replicates"], d["paper_order_holds_per_token"]
        lines.append(f"{size}: per example {' < '.join(d['order_examples'])}; paper's order "
                     f"{'undetermined' if rep is None else 'replicates' if rep else 'does not replicate'}{note}")
        lines.append(f"{size}: per token {' < '.join(d['order_tokens'])}; paper's order "
                     f"{'undetermined' if tok is None else 'holds' if tok else 'does not hold'} per token")
    return lines


def figure(curves: Mapping[str, Mapping[str, Any]], rows: Sequence[Mapping[str, Any]], path: Path,
           title: str) -> Path:
    """Held-out accuracy against examples seen (left) and against tokens seen (right)."""
    fig, ax = C.new_figure(2)
    colors = dict(zip(PAPER_ORDER, ["tab:green", "tab:blue", "tab:orange", "tab:red"], strict=True))
    sizes = sorted({r["size"] for r in rows})
    tpe = {(r["format"]): r["tokens_per_example"] for r in rows}
    for rec in curves.values():
        fmt, size = rec["labels"]["format"], rec["labels"]["size"]
        s, v = rec["curves"]["addition"]
        batch = rec["config"]["data"]["batch_size"]
        ls = ["-", "--", ":"][sizes.index(size) % 3]
        ax[0][0].plot((s + 1) * batch, v, color=colors[fmt], ls=ls, lw=1)
        ax[0][1].plot((s + 1) * batch * tpe[fmt], v, color=colors[fmt], ls=ls, lw=1)
    for fmt, c in colors.items():
        ax[0][0].plot([], [], color=c, label=fmt)
    for i, size in enumerate(sizes):
        ax[0][0].plot([], [], color="k", ls=["-", "--", ":"][i % 3], label=size)
    for a, xl in zip(ax[0], ["examples seen", "tokens seen"], strict=True):
        a.axhline(TARGET, color="grey", lw=0.6)
        a.set(xscale="log", xlabel=xl, ylabel="held-out exact-match accuracy")
    ax[0][0].set_title(title, fontsize=9)
    ax[0][0].legend(fontsize=7)
    return C.save_figure(fig, path)


def body(argv: Sequence[str] | None) -> int:
    args = C.parse_args(__doc__.splitlines()[0], argv, "results/format")
    spec = grid_spec(args.quick)
    wall = C.run_cells(spec, args.out, workers=args.workers)
    curves = C.eval_curves(args.out / "store")
    rows = per_run(curves)
    cells = per_cell(rows)
    v = verdicts(cells)
    lines = verdict_lines(v)
    base = spec["base"]
    digits = base["data"]["sources"]["addition"]["options"]["digits"]
    title = (f"{digits}-digit addition, batch {base['data']['batch_size']}, {base['steps']} steps "
             f"({base['steps'] * base['data']['batch_size']:,} fresh examples), AdamW lr {base['optim']['lr']:g}")
    figure(curves, rows, args.out / f"{NAME}{'_quick' if args.quick else ''}.png", title)
    md = [f"# Data format ({'quick' if args.quick else 'full'} mode)", "", title, "",
          f"Examples and tokens seen when held-out exact-match accuracy first reaches {TARGET} "
          "(median over seeds [90% bootstrap interval] (seeds reached / seeds)):", "",
          C.markdown_table(["size", "format", "tokens / example", "examples needed", "tokens needed",
                            "median final acc"],
                           [[c["size"], c["format"], c["tokens_per_example"],
                             C.interval_text(c["examples"]), C.interval_text(c["tokens"]), c["final_acc"]]
                            for c in cells]),
          "", *[f"* {x}" for x in lines]]
    C.write_results(args.out, NAME, args, {"grid": spec, "runs": rows, "cells": cells, "verdicts": v},
                    "\n".join(md), wall_seconds=wall)
    print("\n".join(md))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return C.main_wrapper(body, argv)


if __name__ == "__main__":
    sys.exit(main())
