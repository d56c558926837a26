"""Experiment 1 of issue #7: the speed of grokking (Power et al. 2022; Nanda et al. 2023).

Modular addition with one token per residue, trained on a fraction of the pairs, over a grid of
weight decay x train fraction x seeds. Per run: the step at which train accuracy reaches 0.99
(memorised), the step at which held-out accuracy reaches 0.9 (generalised), and the delay
between them; per cell, the median over seeds with a bootstrap interval.

    python experiments/grokking_speed/run.py [--quick] [--out DIR] [--workers 2]
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common as C

NAME = "grokking_speed"
MEMORISED, GENERALISED = 0.99, 0.9


def grid_spec(quick: bool) -> dict[str, Any]:
    """The grid: weight decay x train fraction x seeds (quick: a smaller modulus and model)."""
    if quick:
        p, d, batch, steps, lr = 31, 128, 256, 500, 1e-3
        wds, fracs, seeds = [1.0, 3.0], [0.5], [0, 1]
    else:  # docs/grokking.md's preset that groks (p 97, 1 layer d 128, batch 512, 5,000 steps)
        p, d, batch, steps, lr = 97, 128, 512, 5000, 1e-3
        wds, fracs, seeds = [1.0, 2.0], [0.3, 0.5], [0, 1]
    return {
        "name": "grokq" if quick else "grok",
        "base": {
            "steps": steps, "device": "cpu", "checkpoint_every": 0 if quick else 1000,
            "model": {"n_layer": 1, "n_head": 4, "d_model": d},
            "optim": {"lr": lr, "betas": [0.9, 0.98], "weight_decay": 1.0, "warmup_steps": 10,
                      "min_lr_ratio": 1.0, "grad_clip": 0.0},
            "data": {"seq_len": 7, "batch_size": batch, "sources": {"modadd": {
                "kind": "modular",
                "options": {"p": p, "op": "+", "train_fraction": 0.3, "encoding": "symbols",
                            "eval_size": 1024, "train_eval_size": 1024}}}},
            "eval": {"count": 24 if quick else 40, "max_examples": 1024},
        },
        "axis": [
            {"name": "wd", "path": "optim.weight_decay", "values": wds},
            {"name": "frac", "path": "data.sources.modadd.options.train_fraction", "values": fracs},
            {"name": "seed", "paths": ["init_seed", "data_seed"], "values": seeds},
        ],
    }


def per_run(curves: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Memorisation and generalisation steps and the delay, one row per run."""
    rows = []
    for rid, rec in curves.items():
        train = rec["curves"]["modadd/train"]
        held = rec["curves"]["modadd"]
        mem = C.first_reach(*train, MEMORISED)
        gen = C.first_reach(*held, GENERALISED)
        rows.append({
            "run": rid, "wd": float(rec["labels"]["wd"]), "frac": float(rec["labels"]["frac"]),
            "seed": int(rec["labels"]["seed"]), "memorised_step": mem.step, "memorised": mem.reached,
            "generalised_step": gen.step, "generalised": gen.reached,
            "delay": gen.step - mem.step if (gen.reached and mem.reached) else None,
            "final_train_acc": float(train[1][-1]), "final_heldout_acc": float(held[1][-1]),
            "last_step": float(held[0][-1]),
        })
    return sorted(rows, key=lambda r: (r["frac"], r["wd"], r["seed"]))


def per_cell(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Median over seeds with bootstrap intervals, per (weight decay, train fraction)."""
    cells = []
    for key in sorted({(r["frac"], r["wd"]) for r in rows}):
        rs = [r for r in rows if (r["frac"], r["wd"]) == key]
        delays = [r["delay"] if r["delay"] is not None else 0.0 for r in rs]
        cells.append({
            "frac": key[0], "wd": key[1], "seeds": len(rs), "last_step": max(r["last_step"] for r in rs),
            "memorised": C.bootstrap_median([r["memorised_step"] for r in rs], [r["memorised"] for r in rs]),
            "generalised": C.bootstrap_median([r["generalised_step"] for r in rs], [r["generalised"] for r in rs]),
            "delay": C.bootstrap_median(delays, [r["delay"] is not None for r in rs]),
        })
    return cells


def verdicts(cells: Sequence[Mapping[str, Any]]) -> list[str]:
    """Plain statements: within each train fraction, does more weight decay grok sooner?"""
    out = []
    for frac in sorted({c["frac"] for c in cells}):
        cs = sorted((c for c in cells if c["frac"] == frac), key=lambda c: c["wd"])
        gens = [c["generalised"] for c in cs]
        text = ", ".join(f"wd {c['wd']:g}: {C.interval_text(c['generalised'], 4)}" for c in cs)
        if all(g["censored"] for g in gens):
            verdict = "no weight decay grokked within the budget"
        else:
            meds = [g["median"] if g["median"] is not None else float("inf") for g in gens]
            if meds == sorted(meds, reverse=True) and meds[0] != meds[-1]:
                verdict = "more weight decay grokked sooner"
            elif meds == sorted(meds) and meds[0] != meds[-1]:
                verdict = "more weight decay grokked later (the opposite of Power et al.)"
            else:
                verdict = "weight decay did not order the grokking steps monotonically"
        out.append(f"train fraction {frac:g}: {verdict} (median step to held-out acc {GENERALISED} "
                   f"[90% bootstrap interval] (seeds reached/total): {text})")
    fr = sorted({c["frac"] for c in cells})
    if len(fr) > 1:
        for wd in sorted({c["wd"] for c in cells}):
            g = [next(c for c in cells if c["frac"] == f and c["wd"] == wd)["generalised"] for f in fr]
            if not any(x["censored"] for x in g):
                order = "sooner" if g[-1]["median"] < g[0]["median"] else "not sooner"
                out.append(f"wd {wd:g}: the larger train fraction ({fr[-1]:g}) grokked {order} than "
                           f"{fr[0]:g} ({fmt_step(g[-1])} vs {fmt_step(g[0])})")
    return out


def delay_text(r: Mapping[str, Any]) -> str:
    """The delay, or its lower bound when the run memorised but did not generalise in time."""
    if r["delay"] is not None:
        return C.fmt(r["delay"])
    if r["memorised"]:
        return f"> {C.fmt(r['last_step'] - r['memorised_step'])}"
    return "-"


def fmt_step(r: Mapping[str, Any]) -> str:
    return C.interval_text(r, 4)


def figure(curves: Mapping[str, Mapping[str, Any]], cells: Sequence[Mapping[str, Any]], path: Path,
           title: str) -> Path:
    """Left: train (dashed) and held-out (solid) accuracy per run; right: steps to grok per cell."""
    fig, ax = C.new_figure(2)
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]
    wds = sorted({float(r["labels"]["wd"]) for r in curves.values()})
    fracs = sorted({float(r["labels"]["frac"]) for r in curves.values()})
    for rec in curves.values():
        c = colors[wds.index(float(rec["labels"]["wd"])) % len(colors)]
        alpha = 0.5 + 0.5 * fracs.index(float(rec["labels"]["frac"])) / max(len(fracs) - 1, 1)
        s, v = rec["curves"]["modadd"]
        ax[0][0].plot(s + 1, v, color=c, alpha=alpha, lw=1.2)
        s, v = rec["curves"]["modadd/train"]
        ax[0][0].plot(s + 1, v, color=c, alpha=alpha, lw=0.8, ls="--")
    for i, wd in enumerate(wds):
        ax[0][0].plot([], [], color=colors[i % len(colors)], label=f"wd {wd:g}")
    ax[0][0].set(xscale="log", xlabel="step + 1", ylabel="accuracy (dashed: train)", title=title)
    ax[0][0].legend(fontsize=8)
    for j, frac in enumerate(fracs):
        cs = sorted((c for c in cells if c["frac"] == frac), key=lambda c: c["wd"])
        for k, c in enumerate(cs):
            g = c["generalised"]
            x = c["wd"] * (1 + 0.04 * j)
            if g["censored"]:  # not reached: a marker at the end of the budget
                ax[0][1].scatter([x], [c["last_step"]], marker="^", color=colors[j], s=30,
                                 label=f"frac {frac:g}" if k == 0 else None)
                continue
            hi = g["high"] if g["high"] is not None else g["median"] * 1.5
            ax[0][1].errorbar([x], [g["median"]], yerr=[[g["median"] - g["low"]], [hi - g["median"]]],
                              fmt="o", color=colors[j], capsize=3, label=f"frac {frac:g}" if k == 0 else None)
    ax[0][1].set(xscale="log", yscale="log", xlabel="weight decay",
                 ylabel=f"step to held-out acc {GENERALISED} (median, 90% CI)",
                 title="speed of grokking (^: not reached)")
    ax[0][1].legend(fontsize=8)
    return C.save_figure(fig, path)


def body(argv: Sequence[str] | None) -> int:
    args = C.parse_args(__doc__.splitlines()[0], argv, "results/grokking_speed")
    spec = grid_spec(args.quick)
    wall = C.run_cells(spec, args.out, workers=args.workers)
    curves = C.eval_curves(args.out / "store")
    rows = per_run(curves)
    cells = per_cell(rows)
    lines = verdicts(cells)
    base = spec["base"]
    opts = base["data"]["sources"]["modadd"]["options"]
    title = (f"(a+b) mod {opts['p']}, 1 layer d={base['model']['d_model']}, batch "
             f"{base['data']['batch_size']}, {base['steps']} steps")
    figure(curves, cells, args.out / f"{NAME}{'_quick' if args.quick else ''}.png", title)
    md = [f"# Speed of grokking ({'quick' if args.quick else 'full'} mode)", "", title, "",
          "Per run (steps interpolated in log step between log-spaced evaluations):", "",
          C.markdown_table(
              ["wd", "train frac", "seed", f"train acc >= {MEMORISED}", f"held-out acc >= {GENERALISED}",
               "delay", "final train / held-out acc"],
              [[r["wd"], r["frac"], r["seed"],
                C.fmt(r["memorised_step"]) if r["memorised"] else f"not by {C.fmt(r['last_step'])}",
                C.fmt(r["generalised_step"]) if r["generalised"] else f"not by {C.fmt(r['last_step'])}",
                delay_text(r), f"{r['final_train_acc']:.3f} / {r['final_heldout_acc']:.3f}"] for r in rows]),
          "", "Per cell (median over seeds [90% bootstrap interval] (seeds reached / seeds)):", "",
          C.markdown_table(["wd", "train frac", "memorised", "generalised", "delay"],
                           [[c["wd"], c["frac"], C.interval_text(c["memorised"], 4),
                             C.interval_text(c["generalised"], 4), C.interval_text(c["delay"], 4)]
                            for c in cells]),
          "", *[f"* {v}" for v in lines]]
    C.write_results(args.out, NAME, args, {"grid": spec, "runs": rows, "cells": cells, "verdicts": lines},
                    "\n".join(md), wall_seconds=wall)
    print("\n".join(md))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return C.main_wrapper(body, argv)


if __name__ == "__main__":
    sys.exit(main())
