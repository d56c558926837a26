"""Experiment 3 of issue #7: curriculum (Chen et al. 2023, "Skill-it!", arXiv:2307.14430).

Multi-digit addition (reversed result, operands zero-padded; Lee et al. 2023, arXiv:2307.03381):
the target skill is ``T``-digit addition (source ``add/T``); its prerequisites are the fewer-digit
additions ``add/1 .. add/T-1``. They are sub-skills: a ``T``-digit sum is computed column by
column, each column the 1-digit skill (two digits and a carry in, one digit out and a carry out),
and a ``k``-digit sum is the first ``k`` columns of that algorithm with the carry passed from
column to column. In the reversed format the result is written least-significant digit first,
the order in which the columns are computed. Each source has its own seed-fixed held-out pairs
(never trained on), so every run is scored on the same examples. Three conditions, same steps and
batch:

* ``own``: only the target's data (the baseline);
* ``mixed``: uniform mixing of the target with its prerequisites;
* ``ordered``: prerequisites first, one phase per digit count in increasing order, then the
  target alone (Skill-it's ordered curriculum over the skill graph).

Per run: the step at which the target's held-out exact match first reaches 0.9 (interpolated in
log step) and the target examples seen by then (the schedule's expected count, batch x the
target's weight summed over the steps taken). Per (size, condition): the median over seeds with a
bootstrap interval, censoring handled. Per size: the speedup of ``mixed`` and ``ordered`` over
``own`` (``own`` / treatment, > 1 means the treatment learns the target sooner), in steps and per
target example, with a bootstrap interval over seeds; also emitted as the ``effects`` list that
experiment 6 (the scale caveat) reads.

An earlier version of this experiment (LEGO depth 2 after depth 1, git commit 5c16b8e) is
described in docs/experiments/curriculum.md: there the target alone never left chance, so every
speedup was censored.

    python experiments/curriculum/run.py [--quick] [--out DIR] [--workers 2]
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common as C

from scalelab.errors import DataError

NAME = "curriculum"
THRESHOLD = 0.9
COVERAGE = 0.9
BASELINE = "own"
#: condition -> what it trains on (the baseline first)
CONDITIONS: dict[str, str] = {
    "own": "target only",
    "mixed": "uniform mix of the target and its prerequisites",
    "ordered": "prerequisites first (1 digit, 2 digits, ...), then the target",
}
TREATMENTS = ("mixed", "ordered")
UNITS = {"steps": "training steps", "examples": "target examples seen"}
#: the addition format of every source (``reverse``: the sum least-significant digit first)
FORMAT = "reverse"
#: held-out pairs per source: 1-digit addition has only 100 pairs, so it holds out few
EVAL_SIZES = {1: 20, 2: 100}
TARGET_EVAL = 200


# ----------------------------------------------------------------------------- the grid
def source_name(digits: int) -> str:
    """The addition source of one operand length (``add/<digits>``)."""
    return f"add/{digits}"


def digits_of(name: str) -> int:
    """The operand length of a source name from :func:`source_name` (``add/3`` -> 3)."""
    kind, _, k = name.partition("/")
    if kind != "add" or not k.isdigit():
        raise DataError(f"source {name!r} is not an addition source of this experiment; "
                        "name sources add/<digits> (see source_name)")
    return int(k)


def addition_sources(target: int, *, fmt: str = FORMAT, seed: int = 0) -> dict[str, dict[str, Any]]:
    """One padded addition source per operand length ``1 .. target`` (the last is the target).

    Several sources of the same kind can share a run: each is named by its key (the harness passes
    it as the source's name, which is also its eval-set name), and all share the byte vocabulary
    and one ``seq_len``, which must fit the longest (the target's) examples.
    """
    if not 2 <= target <= 9:
        raise DataError(f"the target must be 2- to 9-digit addition (it needs a fewer-digit "
                        f"prerequisite and the source allows 9 digits), got {target} digits")
    return {source_name(k): {"kind": "addition", "options": {
        "digits": k, "format": fmt, "pad_operands": True, "seed": seed,
        "eval_size": TARGET_EVAL if k == target else EVAL_SIZES.get(k, TARGET_EVAL)}}
        for k in range(1, target + 1)}


@functools.lru_cache(maxsize=8)
def seq_len_for(target: int, fmt: str = FORMAT) -> int:
    """The smallest ``seq_len`` that fits every source of :func:`addition_sources` (the target's)."""
    from scalelab.harness.sources import make_source

    return max(make_source(**{"kind": s["kind"], **s["options"]}, name=n).min_seq_len()
               for n, s in addition_sources(target, fmt=fmt).items())


def schedule(condition: str, target: int, prereq_fraction: float) -> dict[str, Any]:
    """The ``data.schedule`` of a condition.

    ``ordered`` gives each prerequisite ``prereq_fraction`` of the run, in increasing operand
    length, then the target alone for the rest of the run.
    """
    if condition == "own":
        return {"mixture": {source_name(target): 1.0}}
    if condition == "mixed":
        return {"mixture": {source_name(k): 1.0 for k in range(1, target + 1)}}
    if condition == "ordered":
        if not 0 < prereq_fraction * (target - 1) < 1:
            raise DataError(f"prereq_fraction {prereq_fraction} x {target - 1} prerequisite(s) must "
                            "leave part of the run for the target; give a smaller fraction")
        phases: list[dict[str, Any]] = [{"weights": {source_name(k): 1.0}, "fraction": prereq_fraction}
                                        for k in range(1, target)]
        return {"curriculum": [*phases, {"weights": {source_name(target): 1.0}}]}
    raise DataError(f"unknown condition {condition!r}; choose one of {', '.join(CONDITIONS)}")


#: the settings of the two modes (chosen by the probes described in docs/experiments/curriculum.md).
#: Quick mode is the full mode's `tiny` cells for seeds 0 and 1 (same configs), so it checks them.
SETTINGS: dict[bool, dict[str, Any]] = {
    True: {"target": 3, "sizes": ["tiny"], "seeds": [0, 1], "steps": 3500, "batch": 64, "lr": 5e-3,
           "warmup": 100, "prereq_fraction": 0.1, "eval_count": 32},
    False: {"target": 3, "sizes": ["tiny", "mini", "small"], "seeds": [0, 1, 2], "steps": 3500,
            "batch": 64, "lr": 5e-3, "warmup": 100, "prereq_fraction": 0.1, "eval_count": 32},
}


def grid_spec(quick: bool) -> dict[str, Any]:
    """Conditions x model sizes x seeds; every cell trains the same steps and batch."""
    s = SETTINGS[quick]
    k = s["target"]
    return {
        "name": "curraddq" if quick else "curradd",
        "base": {
            "steps": s["steps"], "device": "cpu", "checkpoint_every": 0,
            "model": {"size": s["sizes"][0]},
            "optim": {"lr": s["lr"], "weight_decay": 0.1, "warmup_steps": s["warmup"],
                      "min_lr_ratio": 0.1},
            "data": {"seq_len": seq_len_for(k), "batch_size": s["batch"],
                     "sources": addition_sources(k),
                     "schedule": schedule(BASELINE, k, s["prereq_fraction"])},
            "eval": {"count": s["eval_count"], "max_examples": TARGET_EVAL},
        },
        "axis": [
            {"name": "condition", "path": "data.schedule", "labels": list(CONDITIONS),
             "values": [schedule(c, k, s["prereq_fraction"]) for c in CONDITIONS]},
            {"name": "size", "path": "model.size", "values": s["sizes"]},
            {"name": "seed", "paths": ["init_seed", "data_seed"], "values": s["seeds"]},
        ],
    }


# ----------------------------------------------------------------------------- analysis
def target_examples_curve(schedule_cfg: Mapping[str, Any], target_source: str, total_steps: int,
                          batch_size: int) -> np.ndarray:
    """Expected target examples seen after each step ``0 .. total_steps`` (length ``total_steps + 1``).

    Step ``s`` has trained on the batches of steps ``0 .. s-1``; each row comes from the target
    with the schedule's weight at that step, so the expected count is ``batch x sum of weights``.

    Examples
    --------
    >>> target_examples_curve({"mixture": {"add/1": 1, "add/2": 1}}, "add/2", 4, 10).tolist()
    [0.0, 5.0, 10.0, 15.0, 20.0]
    """
    from scalelab.harness.mixture import schedule_from_config

    sched = schedule_from_config(dict(schedule_cfg))
    w = np.array([sched.weights_at(u, total_steps).get(target_source, 0.0) for u in range(total_steps)])
    return batch_size * np.concatenate([[0.0], np.cumsum(w)])


def examples_at(curve: np.ndarray, step: float) -> float:
    """``curve`` (from :func:`target_examples_curve`) at a fractional step, linearly interpolated."""
    return float(np.interp(step, np.arange(curve.size, dtype=float), curve))


def first_data_step(examples_curve: np.ndarray) -> int:
    """The first step whose batch holds target rows (0 unless a curriculum starts without it)."""
    grew = np.flatnonzero(np.diff(examples_curve) > 0)
    return int(grew[0]) if grew.size else int(examples_curve.size - 1)


def crossing(steps: np.ndarray, acc: np.ndarray, start: int) -> tuple[C.Crossing, list[float] | None]:
    """:func:`_common.first_reach`, without interpolating back past the target's first data.

    When the evaluations that bracket the crossing straddle ``start`` (the first step with target
    data), the log-step interpolation would place the crossing in the prerequisite phase, where
    the target was never trained. The crossing is then only known to lie in ``(start, s]`` for the
    first evaluation ``s`` at or above the threshold; it is reported at ``s`` (an upper bound, so
    the speedup it gives is conservative) with ``bracket = [start, s]``.

    Examples
    --------
    >>> crossing(np.array([0, 100, 200]), np.array([0.5, 0.5, 1.0]), start=150)
    (Crossing(step=200.0, reached=True), [150.0, 200.0])
    >>> crossing(np.array([0, 100, 200]), np.array([0.5, 0.5, 1.0]), start=0)[1] is None
    True
    """
    hit = C.first_reach(steps, acc, THRESHOLD)
    if not hit.reached or start <= 0:
        return hit, None
    i = int(np.flatnonzero(np.asarray(acc) >= THRESHOLD)[0])
    if i > 0 and steps[i - 1] < start <= steps[i]:
        return C.Crossing(float(steps[i]), True), [float(start), float(steps[i])]
    return hit, None


def per_run(curves: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Steps and target examples until the target's held-out accuracy reaches the threshold."""
    rows = []
    cache: dict[str, np.ndarray] = {}
    for rid, rec in curves.items():
        lab, cfg = rec["labels"], rec["config"]
        target = max(digits_of(s) for s in cfg["data"]["sources"])
        tname = source_name(target)
        steps, acc = rec["curves"][tname]
        key = f"{lab['condition']}/{cfg['steps']}/{cfg['data']['batch_size']}"
        if key not in cache:
            cache[key] = target_examples_curve(cfg["data"]["schedule"], tname, int(cfg["steps"]),
                                               int(cfg["data"]["batch_size"]))
        hit, bracket = crossing(steps, acc, first_data_step(cache[key]))
        pre = {s: v for s, v in rec["curves"].items() if s != tname}
        prereq = {s: float(v[1][-1]) for s, v in pre.items()}
        pre_hit = {s: C.first_reach(v[0], v[1], THRESHOLD) for s, v in pre.items()}
        rows.append({
            "run": rid, "condition": lab["condition"], "size": lab["size"], "seed": int(lab["seed"]),
            "n_params": C.n_params(cfg), "target": tname, "reached": hit.reached,
            "steps": hit.step, "examples": examples_at(cache[key], hit.step), "bracket": bracket,
            "final_acc": float(acc[-1]), "last_step": float(steps[-1]),
            "final_prereq_acc": prereq,
            "prereq_max_acc": {s: float(np.max(v[1])) for s, v in pre.items()},
            "prereq_first_reach": {s: h.step if h.reached else None for s, h in pre_hit.items()},
        })
    order = list(CONDITIONS)
    return sorted(rows, key=lambda r: (r["n_params"], order.index(r["condition"]), r["seed"]))


def per_cell(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Median steps and target examples over seeds with bootstrap intervals, per (size, condition)."""
    cells = []
    for size in C.sizes_of(rows):
        for cond in CONDITIONS:
            rs = [r for r in rows if r["size"] == size and r["condition"] == cond]
            if not rs:
                continue
            ok = [r["reached"] for r in rs]
            cells.append({
                "size": size, "n_params": rs[0]["n_params"], "condition": cond, "seeds": len(rs),
                "last_step": max(r["last_step"] for r in rs),
                "steps": C.bootstrap_median([r["steps"] for r in rs], ok, coverage=COVERAGE),
                "examples": C.bootstrap_median([r["examples"] for r in rs], ok, coverage=COVERAGE),
                "final_acc": float(np.median([r["final_acc"] for r in rs])),
            })
    return cells


def speedups(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Speedup of each treatment over the baseline per size, in steps and per target example."""
    out = []
    for size in C.sizes_of(rows):
        base = [r for r in rows if r["size"] == size and r["condition"] == BASELINE]
        for cond in TREATMENTS:
            treat = [r for r in rows if r["size"] == size and r["condition"] == cond]
            if not base or not treat:
                continue
            for unit in UNITS:
                r = C.bootstrap_ratio([x[unit] for x in base], [x["reached"] for x in base],
                                    [x[unit] for x in treat], [x["reached"] for x in treat])
                out.append({"size": size, "n_params": base[0]["n_params"], "treatment": cond,
                            "unit": unit, **r})
    return out


def effects(speeds: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The rows experiment 6 reads: one per (speedup, size), > 1 meaning the treatment helps."""
    out = []
    for s in speeds:
        what = f"{s['treatment']} ({CONDITIONS[s['treatment']]}) over {BASELINE} (target only)"
        note = ""
        if s["value"] is None:
            who = [f"{c} ({s[k]}/{s[n]} seeds reached)" for c, k, n in
                   ((BASELINE, "n_base_reached", "n_base"), (s["treatment"], "n_treat_reached", "n_treat"))
                   if 2 * s[k] < s[n] + 1 and s[k] < s[n]]
            note = (f"censored: the median run of {' and '.join(who)} did not reach target acc "
                    f"{THRESHOLD} within the budget; "
                    + (f"speedup {s['bound']}; lower/upper are conservative (censored runs at their "
                       "last step on the unfavourable side)" if s["bound"] else "ratio undefined"))
        # a conservative end that depends on a censored draw is unbounded: 0 below, +inf above;
        # both are null in the contract (experiment 6 takes ratios' ends as positive numbers)
        lower = s["lower"] if s["lower"] is not None and s["lower"] > 0 else None
        if s["value"] is not None and (lower is None or s["upper"] is None):
            note = ("interval unbounded " + " and ".join(
                side for side, end in (("below", lower), ("above", s["upper"])) if end is None)
                + ": some bootstrap draw of a median is censored (a run that did not reach "
                f"{THRESHOLD} within the budget)")
        out.append({
            "effect": f"{NAME}:{s['treatment']}_speedup_{s['unit']}",
            "description": f"speedup of {what} in {UNITS[s['unit']]} to held-out target acc "
                           f"{THRESHOLD}: ratio of medians over seeds, bootstrap interval over seeds",
            "kind": "ratio", "size": s["size"], "n_params": int(s["n_params"]), "value": s["value"],
            "lower": lower, "upper": s["upper"], "coverage": s["coverage"], "neutral": 1.0,
            "note": note,
        })
    return out


def verdict(speeds: Sequence[Mapping[str, Any]], treatment: str = "ordered", unit: str = "steps") -> str:
    """Does ``treatment`` learn the target sooner than the baseline, at every size?

    ``faster``/``slower`` need the interval to exclude 1 (or a censored side that settles it);
    otherwise the size is ``unresolved``.
    """
    calls = {}
    for s in speeds:
        if s["treatment"] != treatment or s["unit"] != unit:
            continue
        lo, hi = s["lower"], s["upper"]
        if lo is not None and lo > 1:
            calls[s["size"]] = "faster"
        elif hi is not None and hi < 1:
            calls[s["size"]] = "slower"
        else:
            calls[s["size"]] = "unresolved"
    if not calls:
        raise DataError(f"no {treatment} speedups in {unit} to judge; run the grid first")
    text = ", ".join(f"{k}: {v}" for k, v in calls.items())
    if all(v == "faster" for v in calls.values()):
        return f"replicates at every size ({text})"
    if any(v == "slower" for v in calls.values()) and not any(v == "faster" for v in calls.values()):
        return f"does not replicate; the opposite at some sizes ({text})"
    if all(v == "unresolved" for v in calls.values()):
        return f"not resolved at any size ({text})"
    return f"mixed across sizes ({text})"


def step_text(r: Mapping[str, Any]) -> str:
    """A run's steps to the threshold, its bracket when it could not be interpolated, or censoring."""
    if not r["reached"]:
        return f"not by {C.fmt(r['last_step'])}"
    if r["bracket"]:
        return f"<= {C.fmt(r['steps'])} (in ({C.fmt(r['bracket'][0])}, {C.fmt(r['bracket'][1])}])"
    return C.fmt(r["steps"])


def prereq_text(r: Mapping[str, Any]) -> str:
    """Each prerequisite's first step at the threshold (``-``: never), max and final accuracy."""
    return "; ".join(f"{k} {C.fmt(r['prereq_first_reach'][k]) if r['prereq_first_reach'][k] is not None else '-'}"
                     f" / {r['prereq_max_acc'][k]:.2f} / {v:.2f}" for k, v in r["final_prereq_acc"].items())


def speed_text(s: Mapping[str, Any]) -> str:
    """``value [lower, upper]`` of a speedup, with censoring spelled out."""
    lo = C.fmt(s["lower"]) if s["lower"] is not None else "0"
    hi = C.fmt(s["upper"]) if s["upper"] is not None else "inf"
    val = C.fmt(s["value"]) if s["value"] is not None else (s["bound"] or "undefined")
    return f"{val} [{lo}, {hi}]"


# ----------------------------------------------------------------------------- output
COLORS = {"own": "tab:gray", "mixed": "tab:blue", "ordered": "tab:red"}


def figure(curves: Mapping[str, Mapping[str, Any]], rows: Sequence[Mapping[str, Any]],
           cells: Sequence[Mapping[str, Any]], path: Path, title: str, prereq_steps: float) -> Path:
    """Target accuracy per run (one panel per size), then steps and examples to threshold vs size."""
    sizes = C.sizes_of(rows)
    fig, ax = C.new_figure(len(sizes) + 2, width=4.0, height=3.8)
    from matplotlib.ticker import NullLocator

    by_run = {r["run"]: r for r in rows}
    for rid, rec in curves.items():
        r = by_run[rid]
        a = ax[0][sizes.index(r["size"])]
        s, v = rec["curves"][r["target"]]
        a.plot(s + 1, v, color=COLORS[r["condition"]], lw=1, alpha=0.8)
    for i, size in enumerate(sizes):
        a = ax[0][i]
        a.axhline(THRESHOLD, color="k", lw=0.5, ls=":")
        a.axvline(prereq_steps + 1, color=COLORS["ordered"], lw=0.6, ls="--")
        n = next(r["n_params"] for r in rows if r["size"] == size)
        a.set(xscale="log", xlabel="step + 1", ylabel="target held-out accuracy", ylim=(-0.02, 1.02),
              title=f"{size} ({n:,} params)")
    for c, col in COLORS.items():
        ax[0][0].plot([], [], color=col, label=c)
    ax[0][0].plot([], [], color=COLORS["ordered"], lw=0.6, ls="--", label="ordered: target starts")
    ax[0][0].legend(fontsize=7, loc="upper left")
    n_of = {c["size"]: c["n_params"] for c in cells}
    for j, unit in enumerate(UNITS):
        a = ax[0][len(sizes) + j]
        for k, cond in enumerate(CONDITIONS):
            for c in (c for c in cells if c["condition"] == cond):
                m = c[unit]
                x = c["n_params"] * (1 + 0.08 * (k - 1))
                if m["censored"]:  # not reached: a marker at the end of the budget
                    last = c["last_step"] if unit == "steps" else max(
                        r["examples"] for r in rows if r["size"] == c["size"] and r["condition"] == cond)
                    a.scatter([x], [last], marker="^", color=COLORS[cond], s=30)
                    continue
                hi = m["high"] if m["high"] is not None else m["median"] * 1.5
                a.errorbar([x], [m["median"]], yerr=[[m["median"] - m["low"]], [hi - m["median"]]],
                           fmt="o", color=COLORS[cond], capsize=3, ms=4)
        a.set(xscale="log", yscale="log", xlabel="model (non-embedding parameters)",
              title=f"{UNITS[unit]} to target acc {THRESHOLD}")
        a.set_xticks([n_of[z] for z in sizes], labels=[f"{z}\n{n_of[z]:,}" for z in sizes], fontsize=7)
        a.xaxis.set_minor_locator(NullLocator())
        a.set_xlim(min(n_of.values()) / 1.5, max(n_of.values()) * 1.5)
    fig.suptitle(f"{title}\nright: median over seeds with 90% bootstrap interval; ^ = median not reached "
                 "(at the end of the budget)", fontsize=8)
    return C.save_figure(fig, path)


def body(argv: Sequence[str] | None) -> int:
    args = C.parse_args(__doc__.splitlines()[0], argv, f"results/{NAME}")
    spec = grid_spec(args.quick)
    s = SETTINGS[args.quick]
    wall = C.run_cells(spec, args.out, workers=args.workers)
    curves = C.eval_curves(args.out / "store")
    rows = per_run(curves)
    cells = per_cell(rows)
    speeds = speedups(rows)
    verdicts = {f"{t}_{u}": verdict(speeds, t, u) for t in TREATMENTS for u in UNITS}
    title = (f"{s['target']}-digit addition ({FORMAT}, padded) after 1..{s['target'] - 1}-digit, batch "
             f"{s['batch']}, {s['steps']} steps, lr {s['lr']:g}; ordered: {s['prereq_fraction']:g} of "
             "the run per prerequisite")
    figure(curves, rows, cells, args.out / f"{NAME}{'_quick' if args.quick else ''}.png", title,
           prereq_steps=s["prereq_fraction"] * (s["target"] - 1) * s["steps"])
    md = [f"# Curriculum ({'quick' if args.quick else 'full'} mode)", "", title, "",
          f"Per run: steps and target examples seen when the target's held-out accuracy first reaches "
          f"{THRESHOLD} (interpolated in log step; `<= s (in (a, s])`: the evaluations bracketing the "
          "crossing straddle the target's first data at step a, so only the bracket is known):", "",
          C.markdown_table(
              ["size", "condition", "seed", "steps", "target examples", "final target acc",
               "prerequisites: step at 0.9 / max / final acc"],
              [[r["size"], r["condition"], r["seed"],
                step_text(r),
                C.fmt(r["examples"]) if r["reached"] else f"not by {C.fmt(r['examples'])}",
                r["final_acc"], prereq_text(r)]
               for r in rows]),
          "", f"Per cell (median over seeds [{COVERAGE:.0%} bootstrap interval] (seeds reached / seeds)):", "",
          C.markdown_table(["size", "non-emb. params", "condition", "steps", "target examples",
                            "median final acc"],
                           [[c["size"], c["n_params"], c["condition"], C.interval_text(c["steps"], 4),
                             C.interval_text(c["examples"], 4), c["final_acc"]] for c in cells]),
          "", f"Speedup over `{BASELINE}` (ratio of medians [{COVERAGE:.0%} bootstrap interval]; > 1: "
              "the treatment reaches the threshold sooner):", "",
          C.markdown_table(["size", "treatment", "in steps", "per target example"],
                           [[sz, t] + [speed_text(next(x for x in speeds if x["size"] == sz and
                                                        x["treatment"] == t and x["unit"] == u))
                                       for u in UNITS]
                            for sz in C.sizes_of(rows) for t in TREATMENTS]),
          "", *[f"* {k}: {v}" for k, v in verdicts.items()]]
    results = {"grid": spec, "settings": s, "threshold": THRESHOLD, "conditions": CONDITIONS,
               "runs": rows, "cells": cells, "speedups": speeds, "verdicts": verdicts}
    C.write_results(args.out, NAME, args, results, "\n".join(md), wall_seconds=wall,
                    effects=effects(speeds))
    print("\n".join(md))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return C.main_wrapper(body, argv)


if __name__ == "__main__":
    sys.exit(main())
