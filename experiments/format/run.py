"""Experiment 2 of issue #7: data format (Lee et al. 2023, "Teaching Arithmetic to Small Transformers").

Addition in the plain, reversed, simplified-scratchpad and detailed-scratchpad formats of the same
pairs, at three model sizes (two in quick mode), over seeds. Every training row is a fresh pair,
so the examples seen when held-out exact-match accuracy first reaches 0.9 is the number of
examples needed; tokens needed is that times the format's mean example length (BOS and EOS
included, no padding). Lee et al. report detailed < simplified < reverse < plain in examples
needed; the run says whether that order replicates here, and whether it also holds per token.

Each format has its own step budget (a scratchpad example costs 5-20x the compute of a plain
one), so the formats run as separate grids into one store. Per model size, the speedup of each
format over plain (plain's examples needed / the format's, and the same per token) is written
as the "effects" list that experiment 6 (the scale caveat) reads.

Those speedups are censored when a format never reaches 0.9 in the budget. The speed of learning
itself is not: plain and reverse have the same answers (same pairs, same answer tokens), so
their prequential (online) code lengths of the training answers over the whole run compare
directly. Per size, ``format:reverse_code_length`` = plain's code length / reverse's (> 1:
reverse learned faster), the median of per-seed ratios with an order-statistic interval, is
added to the effects list.

    python experiments/format/run.py [--quick] [--out DIR] [--workers 2]
"""

from __future__ import annotations

import functools
import json
import math
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common as C

from scalelab.errors import DataError

NAME = "format"
TARGET = 0.9
#: Lee et al.'s order, fewest examples needed first.
PAPER_ORDER = ("detailed_scratchpad", "simple_scratchpad", "reverse", "plain")
#: the format every other one is compared with in the effects list
BASELINE = "plain"
COVERAGE = 0.9
N_BOOT = 2000
#: formats with the same tokens per example (the same answers), whose code lengths compare directly
CODE_FORMATS = ("plain", "reverse")


@dataclass(frozen=True)
class Plan:
    """The grid of one mode: task, sizes, optimiser, and each format's step budget and seeds."""

    digits: int
    sizes: tuple[str, ...]
    batch: int
    lr: float
    warmup: int
    n_eval: int
    eval_count: int
    steps: Mapping[str, int]  # format -> training steps (its examples budget / batch)
    seeds: Mapping[str, tuple[int, ...]]  # format -> seeds


def plan(quick: bool) -> Plan:
    """The quick (CI) or full grid.

    Budgets are set in *tokens* (about the same compute per token): plain and reverse get
    ``plain_steps``; a scratchpad format gets as many steps as give ``SCRATCH_SHARE[format]``
    times plain's tokens (its examples are 5-21x longer). A format that needs fewer examples
    than plain but more tokens than its budget is censored by that. The detailed scratchpad gets
    twice plain's tokens in the full mode: at equal tokens it has only 190 steps, and in a probe
    (mini, seed 0, 600 steps) its accuracy was 0.015 at step 168 and 0.97 at step 317, so an
    equal-token budget would censor it at the edge of its jump and leave its examples needed
    unknown. Operands are zero-padded to ``digits`` (``pad_operands``): unpadded, the 19% of
    3-digit pairs with a shorter operand were never learned by these models and capped every
    format below 0.9 (docs/experiments/format.md). Every format gets the same seeds.
    """
    if quick:
        digits, sizes, batch, lr, warmup, n_eval, count, plain_steps = 2, ("tiny", "mini"), 64, 3e-3, 50, 100, 10, 400
        seeds, share = (0, 1), {"simple_scratchpad": 1.0, "detailed_scratchpad": 1.0}
    else:
        digits, sizes, batch, lr, warmup, n_eval, count, plain_steps = 3, ("tiny", "mini", "small"), 64, 5e-3, 100, 200, 16, 4000
        seeds, share = (0, 1, 2), {"simple_scratchpad": 1.0, "detailed_scratchpad": 2.0}
    base = tokens_per_example(BASELINE, digits)
    steps, seed_of = {}, {}
    for f in PAPER_ORDER:
        steps[f] = max(10, round(plain_steps * share.get(f, 1.0) * base / tokens_per_example(f, digits)))
        seed_of[f] = seeds
    return Plan(digits=digits, sizes=sizes, batch=batch, lr=lr, warmup=warmup, n_eval=n_eval,
                eval_count=count, steps=steps, seeds=seed_of)


@functools.lru_cache(maxsize=64)
def tokens_per_example(fmt: str, digits: int, n: int = 4000, seed: int = 0) -> float:
    """Mean tokens of one example in format ``fmt`` (one token per byte, plus BOS and EOS).

    Operands are zero-padded to ``digits`` (the experiment's ``pad_operands``).
    """
    from scalelab.harness.sources.addition import render_addition

    rng = np.random.default_rng(seed)
    ab = rng.integers(0, 10**digits, size=(n, 2))
    return float(np.mean([sum(map(len, render_addition(int(a), int(b), fmt, digits)[:2])) + 2
                          for a, b in ab]))


def _data(fmt: str, p: Plan) -> dict[str, Any]:
    from scalelab.harness.sources import make_source

    opts = {"digits": p.digits, "format": fmt, "eval_size": p.n_eval, "pad_operands": True}
    src = make_source("addition", **opts)
    return {"seq_len": src.min_seq_len(), "batch_size": p.batch,
            "sources": {"addition": {"kind": "addition", "options": opts}}}


def grid_specs(quick: bool) -> list[dict[str, Any]]:
    """One grid per step budget: its formats x model sizes x seeds (the formats share a store)."""
    p = plan(quick)
    budgets = sorted({(p.steps[f], p.seeds[f]) for f in PAPER_ORDER}, reverse=True)  # plain first
    specs = []
    for steps, seeds in budgets:
        fmts = [f for f in PAPER_ORDER if (p.steps[f], p.seeds[f]) == (steps, seeds)]
        data = [_data(f, p) for f in fmts]
        specs.append({
            "name": f"{'fmtq' if quick else 'fmt'}{steps}",
            "base": {
                "steps": steps, "device": "cpu", "checkpoint_every": 0,
                "model": {"size": p.sizes[0]},
                "optim": {"lr": p.lr, "weight_decay": 0.1, "warmup_steps": min(p.warmup, steps // 5),
                          "min_lr_ratio": 0.1},
                "data": data[0],
                "eval": {"count": p.eval_count, "max_examples": p.n_eval},
            },
            "axis": [
                {"name": "format", "path": "data", "values": data, "labels": fmts},
                {"name": "size", "path": "model.size", "values": list(p.sizes)},
                {"name": "seed", "paths": ["init_seed", "data_seed"], "values": list(seeds)},
            ],
        })
    return specs


def own_runs(curves: Mapping[str, Any], specs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The curves of this grid's runs only (a reused ``--out`` may hold runs of other grids)."""
    from scalelab.harness.grid import parse_grid

    ids = {r.run_id for spec in specs for r in parse_grid(dict(spec)).runs()}
    missing = sorted(ids - set(curves))
    if missing:
        raise DataError(f"{len(missing)} run(s) of the grid have no metrics, first {missing[0]}; "
                        "rerun the experiment to finish them")
    return {k: v for k, v in curves.items() if k in ids}


# ----------------------------------------------------------------------------- analysis
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
            "n_params": C.n_params(rec["config"]),
            "tokens_per_example": cache[key], "reached": hit.reached,
            "examples": hit.step * batch, "tokens": hit.step * batch * cache[key],
            "final_acc": float(acc[-1]), "last_examples": float(steps[-1]) * batch,
        })
    return sorted(rows, key=lambda r: (r["n_params"], PAPER_ORDER.index(r["format"]), r["seed"]))


def per_cell(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Median examples and tokens needed over seeds, with bootstrap intervals, per (size, format)."""
    cells = []
    for size in C.sizes_of(rows):
        for fmt in PAPER_ORDER:
            rs = [r for r in rows if r["size"] == size and r["format"] == fmt]
            if not rs:
                continue
            ok = [r["reached"] for r in rs]
            cell = {
                "size": size, "n_params": rs[0]["n_params"], "format": fmt, "seeds": len(rs),
                "tokens_per_example": rs[0]["tokens_per_example"],
                "budget_examples": max(r["last_examples"] for r in rs),
                "examples": C.bootstrap_median([r["examples"] for r in rs], ok, coverage=COVERAGE),
                "tokens": C.bootstrap_median([r["tokens"] for r in rs], ok, coverage=COVERAGE),
                "final_acc": float(np.median([r["final_acc"] for r in rs])),
            }
            full = [r["final_full_target_acc"] for r in rs if r.get("final_full_target_acc") is not None]
            cell["final_full_target_acc"] = float(np.median(full)) if full else None
            cells.append(cell)
    return cells


def speedup(baseline: Sequence[float], baseline_reached: Sequence[bool], treated: Sequence[float],
            treated_reached: Sequence[bool], *, n_boot: int = N_BOOT, coverage: float = COVERAGE,
            seed: int = 0) -> dict[str, Any]:
    """Median baseline / median treated, with :func:`_common.bootstrap_ratio`'s interval.

    A run that never reached the target enters at its budget with ``reached=False``; each
    interval end takes the conservative side of censoring. If either median is censored the
    speedup is ``None`` with a note giving the bound the medians still imply; an interval end
    that censoring leaves open (a lower end of 0, an upper end of infinity) is ``None``.

    Examples
    --------
    >>> r = speedup([100.0, 120.0, 140.0], [True] * 3, [10.0, 12.0, 14.0], [True] * 3, n_boot=200)
    >>> round(r["value"], 6), r["note"]
    (10.0, '')
    """
    r = C.bootstrap_ratio(baseline, baseline_reached, treated, treated_reached, n_boot=n_boot,
                          coverage=coverage, seed=seed)
    out: dict[str, Any] = {"value": r["value"], "lower": r["lower"] if r["lower"] > 0 else None,
                           "upper": r["upper"], "coverage": coverage, "note": ""}
    if r["value"] is None:
        which = " and ".join(w for w, n, k in (("the baseline", r["n_base_reached"], r["n_base"]),
                                               ("the treatment", r["n_treat_reached"], r["n_treat"]))
                             if 2 * n <= k and n < k)
        out["lower"] = out["upper"] = None
        out["note"] = (f"censored: {which} did not reach {TARGET} within the budget in at least "
                       f"half the seeds, so the ratio is unknown"
                       + (f" (the medians imply {r['bound']})" if r["bound"] else ""))
    elif out["lower"] is None or out["upper"] is None:
        out["note"] = "an interval end is unbounded: censored runs could need any budget"
    return out


def effects(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The effects list (issue #7 contract): per size, each format's speedup over plain.

    Two effects per format: in examples needed and in tokens needed (ratio, > 1 means the
    format needs less than plain). The per-token speedup is the per-example one times
    plain's tokens per example over the format's (an exact rescaling, interval included).
    """
    out = []
    for size in C.sizes_of(rows):
        rs = [r for r in rows if r["size"] == size]
        base = [r for r in rs if r["format"] == BASELINE]
        if not base:
            continue
        for fmt in PAPER_ORDER:
            if fmt == BASELINE:
                continue
            tr = [r for r in rs if r["format"] == fmt]
            if not tr:
                continue
            sp = speedup([r["examples"] for r in base], [r["reached"] for r in base],
                         [r["examples"] for r in tr], [r["reached"] for r in tr])
            scale = base[0]["tokens_per_example"] / tr[0]["tokens_per_example"]
            for unit, k in (("examples", 1.0), ("tokens", scale)):
                out.append({
                    "effect": f"{NAME}:{fmt}_vs_{BASELINE}_{unit}",
                    "description": (f"{BASELINE} {unit} needed / {fmt} {unit} needed to reach {TARGET} "
                                    f"held-out exact match (median over {len(tr)} seeds)"),
                    "kind": "ratio", "size": size, "n_params": int(rs[0]["n_params"]),
                    "value": None if sp["value"] is None else sp["value"] * k,
                    "lower": None if sp["lower"] is None else sp["lower"] * k,
                    "upper": None if sp["upper"] is None else sp["upper"] * k,
                    "coverage": sp["coverage"], "neutral": 1.0, "note": sp["note"],
                })
    return out


def order_of(cells: Sequence[Mapping[str, Any]], what: str) -> list[str]:
    """Formats sorted by median ``what`` needed (censored last, by final accuracy, descending)."""
    def key(c: Mapping[str, Any]) -> tuple[int, float]:
        m = c[what]["median"]
        return (0, m) if m is not None else (1, -c["final_acc"])
    return [c["format"] for c in sorted(cells, key=key)]


def order_determined(cells: Sequence[Mapping[str, Any]], what: str) -> bool:
    """Whether the order of the cells by median ``what`` needed ("examples" or "tokens") is known.

    Known when every median reached the target, or when exactly one did not and its budget
    (every seed ran it in full, so its median need is above the budget) is at least every
    other cell's median need: that cell is then last whatever it would have needed. Two
    censored cells cannot be ordered against each other.
    """
    censored = [c for c in cells if c[what]["censored"]]
    if not censored:
        return True
    if len(censored) > 1:
        return False
    c = censored[0]
    budget = c["budget_examples"] * (c["tokens_per_example"] if what == "tokens" else 1.0)
    return all(budget >= d[what]["median"] for d in cells if not d[what]["censored"])


def verdicts(cells: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per size: the measured order per example and per token, and whether each matches the paper.

    A verdict is ``None`` (undetermined) unless :func:`order_determined` says the order is known.
    """
    out = {}
    order = list(dict.fromkeys(c["size"] for c in sorted(cells, key=lambda c: c.get("n_params", 0))))
    for size in order:
        cs = [c for c in cells if c["size"] == size]
        reached = [c["format"] for c in cs if not c["examples"]["censored"]]
        per_ex, per_tok = order_of(cs, "examples"), order_of(cs, "tokens")
        paper = [f for f in PAPER_ORDER if f in per_ex]
        out[size] = {
            "reached": reached,
            "order_examples": per_ex, "order_tokens": per_tok,
            "order_examples_determined": order_determined(cs, "examples"),
            "order_tokens_determined": order_determined(cs, "tokens"),
            # None: undetermined (censored formats whose rank the budgets do not fix)
            "paper_order_examples_replicates": per_ex == paper if order_determined(cs, "examples") else None,
            "paper_order_holds_per_token": per_tok == paper if order_determined(cs, "tokens") else None,
        }
    return out


def verdict_lines(v: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One line per size and measure (examples, tokens) stating the order and the verdict."""
    lines = []
    for size, d in v.items():
        n = len(d["order_examples"])
        missing = "" if len(d["reached"]) == n else (
            f" (only {len(d['reached'])}/{n} formats reached {TARGET} in the budget: "
            f"{', '.join(d['reached']) or 'none'}; ")
        for unit, key, yes, no in (("example", "paper_order_examples_replicates", "replicates",
                                    "does not replicate"),
                                   ("token", "paper_order_holds_per_token", "holds", "does not hold")):
            verdict = d[key]
            note = ""
            if missing:
                note = missing + ("the rest ranked last, as their budgets exceed every other "
                                  "format's need)" if verdict is not None else
                                  "the rest are ordered by final accuracy, so the comparison is "
                                  "incomplete)")
            order = d["order_examples"] if unit == "example" else d["order_tokens"]
            lines.append(f"{size}: per {unit} {' < '.join(order)}; paper's order "
                         f"{'undetermined' if verdict is None else yes if verdict else no}"
                         + (" per token" if unit == "token" else "") + note)
    return lines


# ----------------------------------------------------------------------------- speed of learning
def answer_tokens_per_step(config: Mapping[str, Any]) -> np.ndarray:
    """Scored (answer) tokens in the training batch of each step 1..steps of a run.

    Step ``k`` trains on batch ``k - 1`` of the run's data stream (a pure function of the data
    seed and the step), and its ``train/online_loss`` is the mean loss over that batch's
    loss-masked tokens: the result digits and EOS. Rebuilding the batches gives those counts
    exactly, so the code length is the exact sum of per-batch code lengths.
    """
    key = json.dumps({k: config[k] for k in ("data", "data_seed", "steps")}, sort_keys=True)
    return _answer_tokens_cached(key).copy()


@functools.lru_cache(maxsize=32)
def _answer_tokens_cached(key: str) -> np.ndarray:
    from scalelab.harness.config import RunConfig
    from scalelab.harness.trainer import build_data

    cfg = RunConfig.from_dict(json.loads(key))
    stream = build_data(cfg)
    return np.array([stream.batch(k, cfg.data.batch_size, cfg.data.seq_len)[0].loss_mask.sum()
                     for k in range(cfg.steps)], dtype=float)


def online_records(store: Path, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per run: the online training loss of every step and the held-out loss at the last eval.

    Returns ``{run_id: {"steps": array, "online_loss": array, "final_eval_loss": float}}``
    (``online_loss`` is the ``train/online_loss`` of source ``all``, nats per answer token).
    """
    from scalelab.store.runs import RunStore

    table = RunStore(store, create=False).export()
    run = np.asarray(table["run"]).astype(str)
    split, met = np.asarray(table["split"]).astype(str), np.asarray(table["metric"]).astype(str)
    source = np.asarray(table["source"]).astype(str)
    step, value = np.asarray(table["step"], dtype=float), np.asarray(table["value"], dtype=float)
    out = {}
    for rid in run_ids:
        on = (run == rid) & (split == "train") & (met == "online_loss") & (source == "all")
        ev = (run == rid) & (split == "eval") & (met == "loss") & (source == "addition")
        if not on.any() or not ev.any():
            raise DataError(f"run {rid} has no train/online_loss or eval/loss records in {store}; "
                            "rerun the experiment to finish it")
        o = np.argsort(step[on], kind="stable")
        last = int(np.argmax(step[ev]))
        out[rid] = {"steps": step[on][o], "online_loss": value[on][o],
                    "final_eval_loss": float(value[ev][last])}
    return out


def run_code_length(steps: Sequence[float], online_loss: Sequence[float], answer_tokens: Sequence[float],
                    examples_per_step: float) -> dict[str, float]:
    """Prequential code length of one run's training answers, from its online loss.

    Each step's online loss (nats per answer token, measured before the update) is charged for
    exactly that batch's answer tokens (:func:`scalelab.curves.compression.code_length` with the
    ``step`` rule on cumulative answer tokens), so the total is ``sum_k loss_k x tokens_k``.
    The prompt tokens are not scored, so this is the code length of the answers given the
    prompts.

    Returns
    -------
    dict
        ``nats`` (whole run), ``nats_per_example``, ``nats_per_answer_token``, ``examples``.
    """
    from scalelab.curves.compression import code_length

    s = np.asarray(steps, dtype=float)
    y = np.asarray(online_loss, dtype=float)
    n = np.asarray(answer_tokens, dtype=float)
    if s.size == 0 or s.shape != y.shape or not np.array_equal(s, np.arange(1, s.size + 1)):
        raise DataError(f"the online loss must be logged at every step 1..n, got {s.size} records "
                        f"ending at step {s[-1] if s.size else '-'}; rerun the run to finish it")
    if n.shape != y.shape:
        raise DataError(f"{n.size} answer-token counts for {y.size} online losses; the run's config "
                        "does not match its records")
    res = code_length(np.cumsum(n), y, rule="step", head="first")
    examples = float(s.size * examples_per_step)
    return {"nats": res.nats, "nats_per_example": res.nats / examples,
            "nats_per_answer_token": res.nats / res.tokens, "examples": examples}


def median_interval(values: Sequence[float], coverage: float = COVERAGE) -> tuple[float | None, float | None, float]:
    """Distribution-free interval for the median from order statistics, and its exact coverage.

    ``[x_(k), x_(n+1-k)]`` covers the population median of independent draws with probability
    ``1 - 2 P(Binomial(n, 1/2) <= k - 1)``; the largest ``k`` reaching ``coverage`` is used, else
    ``k = 1`` (the range) with its lower coverage: 0.75 for 3 seeds. (A percentile bootstrap of
    the median over 3 seeds gives the same two ends but labels them 90%.) ``(None, None, 0.0)``
    for fewer than 2 values.

    Examples
    --------
    >>> median_interval([3.0, 1.0, 2.0])
    (1.0, 3.0, 0.75)
    """
    x = np.sort(np.asarray(values, dtype=float))
    n = x.size
    if n < 2:
        return None, None, 0.0
    cdf = np.cumsum([math.comb(n, j) for j in range(n + 1)]) / 2.0**n  # P(Bin <= j)
    best_k, best_cov = 1, 1 - 2 * cdf[0]
    for k in range(1, n // 2 + 1):
        cov = 1 - 2 * cdf[k - 1]
        if cov >= coverage:
            best_k, best_cov = k, cov
    return float(x[best_k - 1]), float(x[n - best_k]), round(float(best_cov), 6)


def paired_ratio(numerator: Mapping[int, float], denominator: Mapping[int, float],
                 coverage: float = COVERAGE) -> dict[str, Any]:
    """Median over seeds of ``numerator[seed] / denominator[seed]``, with :func:`median_interval`.

    The arms are paired by seed (same initialisation seed and the same training pairs in the
    same order), so the ratio is formed per seed before the median.
    """
    seeds = sorted(set(numerator) & set(denominator))
    if not seeds:
        raise DataError("a paired ratio needs runs with the same seeds in both arms, got seeds "
                        f"{sorted(numerator)} and {sorted(denominator)}")
    r = np.array([numerator[s] / denominator[s] for s in seeds], dtype=float)
    if not np.all(np.isfinite(r) & (r > 0)):
        raise DataError(f"per-seed ratios must be finite and positive, got {r.tolist()}")
    lo, hi, cov = median_interval(r, coverage)
    return {"value": float(np.median(r)), "lower": lo, "upper": hi, "coverage": cov,
            "per_seed": dict(zip(seeds, r.tolist(), strict=True)),
            "note": "" if lo is not None else "one seed: no interval"}


def speed_rows(curves: Mapping[str, Mapping[str, Any]], online: Mapping[str, Mapping[str, Any]],
               answer_tokens: Callable[[Mapping[str, Any]], np.ndarray] = answer_tokens_per_step,
               ) -> list[dict[str, Any]]:
    """Code length and final held-out loss of every plain and reverse run, smallest model first.

    ``answer_tokens(config)`` gives the answer tokens of each step's batch (by default rebuilt
    from the run's data stream, :func:`answer_tokens_per_step`).
    """
    rows = []
    for rid, rec in curves.items():
        fmt = rec["labels"]["format"]
        if fmt not in CODE_FORMATS:
            continue
        cfg = rec["config"]
        o = online[rid]
        cl = run_code_length(o["steps"], o["online_loss"], answer_tokens(cfg),
                             float(cfg["data"]["batch_size"]))
        rows.append({"run": rid, "format": fmt, "size": rec["labels"]["size"], "seed": int(rec["labels"]["seed"]),
                     "n_params": C.n_params(cfg), **cl, "final_eval_loss": o["final_eval_loss"]})
    return sorted(rows, key=lambda r: (r["n_params"], CODE_FORMATS.index(r["format"]), r["seed"]))


def speed_effects(rows: Sequence[Mapping[str, Any]], coverage: float = COVERAGE) -> list[dict[str, Any]]:
    """Effects rows (issue #7 contract), per size: plain / reverse online code length.

    ``format:reverse_code_length``: plain's online code length of its training answers over
    the whole run / reverse's (> 1: reverse is learned faster), the median over seeds of
    per-seed (paired) ratios, with :func:`median_interval`. Uncensored: every run has one.
    The final held-out losses are not turned into an effect: once both formats are learned they
    are near 0 (1e-5 to 1e-2 nats here), and their ratio measures how close to 0, not a speed.
    """
    out = []
    for size in C.sizes_of(rows):
        rs = [r for r in rows if r["size"] == size]
        arm = {f: [r for r in rs if r["format"] == f] for f in CODE_FORMATS}
        if not all(arm.values()):
            continue
        for name, key, what in (
                ("reverse_code_length", "nats_per_example",
                 "online code length of the training answers over the whole run (nats per example; "
                 "the same ratio per answer token)"),):
            pr = paired_ratio({r["seed"]: r[key] for r in arm["plain"]},
                              {r["seed"]: r[key] for r in arm["reverse"]}, coverage)
            n = len(pr["per_seed"])
            out.append({
                "effect": f"{NAME}:{name}",
                "description": f"plain / reverse {what}; median of {n} paired seeds, > 1: reverse better",
                "kind": "ratio", "size": size, "n_params": int(rs[0]["n_params"]),
                "value": pr["value"], "lower": pr["lower"], "upper": pr["upper"],
                "coverage": pr["coverage"], "neutral": 1.0, "note": pr["note"],
            })
    return out


# ----------------------------------------------------------------------------- full-target check
def full_target_accuracy(store: Path, run_id: str) -> dict[str, float]:
    """Held-out exact match of the *whole* target (scratchpad, result, EOS) at the run's last step.

    The source scores only the result, under teacher forcing, so for a scratchpad format the
    reported accuracy is that of copying the result out of a correct scratchpad. Every target
    token being the argmax under teacher forcing is exactly "greedy decoding writes the whole
    scratchpad and result correctly", which this computes from the final checkpoint.
    For plain and reverse the target is the result, so both measures agree.

    Returns
    -------
    dict
        ``{"whole_target_acc": float, "loss": float}``; ``loss`` is the mean cross-entropy
        over the target tokens, the harness's own eval loss (a check that the model and eval
        set were rebuilt exactly).
    """
    import torch
    import torch.nn.functional as F

    from scalelab.harness.config import RunConfig
    from scalelab.harness.evaluation import spread_rows
    from scalelab.harness.trainer import build_data, build_model
    from scalelab.store.runs import RunStore

    handle = RunStore(store, create=False).run(run_id)
    state = handle.load_checkpoint(map_location="cpu") if handle.exists else None
    if state is None:
        raise DataError(f"run {run_id} has no checkpoint in {store}; rerun the experiment to finish it")
    cfg = RunConfig.from_dict({k: v for k, v in handle.config().items() if k != "grid"})
    stream = build_data(cfg)
    model = build_model(cfg, stream.vocab_size)
    model.load_state_dict(state["model"])
    model.eval()
    batch = stream.eval_sets(cfg.data.seq_len)["addition"].batch
    rows = spread_rows(len(batch.tokens), cfg.eval.max_examples)  # the rows the harness evaluates
    tokens = torch.from_numpy(np.ascontiguousarray(batch.tokens[rows], dtype=np.int64))  # (n, T)
    mask = torch.from_numpy(np.ascontiguousarray(batch.loss_mask[rows], dtype=bool))  # (n, T-1)
    n = len(tokens)
    right, loss_sum = [], 0.0
    with torch.no_grad():
        for lo in range(0, n, 100):
            x, y, m = tokens[lo:lo + 100, :-1], tokens[lo:lo + 100, 1:], mask[lo:lo + 100]  # (b, T-1)
            logits = model(x)  # (b, T-1, V)
            right.append(((logits.argmax(dim=-1) == y) | ~m).all(dim=1))
            ce = F.cross_entropy(logits.transpose(1, 2), y, reduction="none")  # (b, T-1)
            loss_sum += float((ce.double() * m).sum())
    return {"whole_target_acc": round(float(torch.cat(right).float().mean()), 6),
            "loss": loss_sum / max(int(mask.sum()), 1)}


# ----------------------------------------------------------------------------- output
def figure(curves: Mapping[str, Mapping[str, Any]], rows: Sequence[Mapping[str, Any]], path: Path,
           title: str, speed: Sequence[Mapping[str, Any]] = ()) -> Path:
    """Held-out accuracy against examples seen (left) and tokens seen (middle); code length vs size.

    The right panel shows each plain and reverse run's online code length (nats per example,
    over the whole run) against non-embedding parameters, with the median over seeds as a line.
    """
    fig, ax = C.new_figure(3, height=3.9)
    colors = dict(zip(PAPER_ORDER, ["tab:green", "tab:blue", "tab:orange", "tab:red"], strict=True))
    sizes = C.sizes_of(rows)
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
    for a, xl in zip(ax[0][:2], ["examples seen", "tokens seen"], strict=True):
        a.axhline(TARGET, color="grey", lw=0.6)
        a.set(xscale="log", xlabel=xl, ylabel="held-out exact-match accuracy (result)")
    for fmt in CODE_FORMATS:
        rs = [r for r in speed if r["format"] == fmt]
        if not rs:
            continue
        ax[0][2].plot([r["n_params"] for r in rs], [r["nats_per_example"] for r in rs], "o",
                      color=colors[fmt], ms=3, alpha=0.6)
        ns = sorted({r["n_params"] for r in rs})
        med = [float(np.median([r["nats_per_example"] for r in rs if r["n_params"] == n])) for n in ns]
        ax[0][2].plot(ns, med, "-", color=colors[fmt], label=f"{fmt} (median of seeds)")
    ax[0][2].set(xscale="log", xlabel="model size (non-embedding parameters)",
                 ylabel="online code length, nats / example")
    ax[0][2].set_title("speed of learning: code length of the training answers", fontsize=8)
    if speed:
        from matplotlib.ticker import NullFormatter

        n_of = {r["size"]: r["n_params"] for r in speed}
        ax[0][2].set_xticks([n_of[s] for s in C.sizes_of(speed)],
                            [f"{s}\n{n_of[s]:,}" for s in C.sizes_of(speed)], fontsize=7)
        ax[0][2].xaxis.set_minor_formatter(NullFormatter())
        ax[0][2].legend(fontsize=7)
    fig.suptitle(textwrap.fill(title, 160), fontsize=8)
    ax[0][0].legend(fontsize=7)
    return C.save_figure(fig, path)


def effect_text(e: Mapping[str, Any]) -> str:
    """``value [lower, upper]``, or why there is no value."""
    if e["value"] is None:
        return "- (censored)"
    lo = C.fmt(e["lower"]) if e["lower"] is not None else "unbounded"
    hi = C.fmt(e["upper"]) if e["upper"] is not None else "unbounded"
    return f"{C.fmt(e['value'])} [{lo}, {hi}]"


def speed_table(speed: Sequence[Mapping[str, Any]], effs: Sequence[Mapping[str, Any]]) -> str:
    """Markdown: per size, median code length and final held-out loss per format, and the ratio."""
    rows = []
    for size in C.sizes_of(speed):
        rs = [r for r in speed if r["size"] == size]

        def med(fmt: str, key: str, rs: Sequence[Mapping[str, Any]] = rs) -> float | None:
            v = [r[key] for r in rs if r["format"] == fmt]
            return float(np.median(v)) if v else None

        cl = next((e for e in effs if e["size"] == size and e["effect"] == f"{NAME}:reverse_code_length"), None)
        rows.append([size, med("plain", "nats_per_example"), med("reverse", "nats_per_example"),
                     effect_text(cl) if cl else "-", med("plain", "final_eval_loss"),
                     med("reverse", "final_eval_loss")])
    cov = sorted({e["coverage"] for e in effs if e["effect"] == f"{NAME}:reverse_code_length"})
    return "\n".join([
        "Speed of learning (uncensored): online code length of the training answers over the whole "
        "run, nats per example (median over seeds), the plain / reverse ratio (median of per-seed "
        f"ratios [order-statistic interval, coverage {', '.join(f'{c:g}' for c in cov) or '-'}]; "
        "> 1: reverse better), and the held-out loss at the last step (nats per answer token, "
        "median over seeds):", "",
        C.markdown_table(["size", "plain nats / example", "reverse nats / example",
                          "code length plain / reverse", "plain final loss", "reverse final loss"], rows)])


def summary(p: Plan, cells: Sequence[Mapping[str, Any]], effs: Sequence[Mapping[str, Any]],
            lines: Sequence[str], title: str, quick: bool) -> str:
    """The markdown summary: cells, speedups over plain and verdicts."""
    md = [f"# Data format ({'quick' if quick else 'full'} mode)", "", title, "",
          f"Examples and tokens seen when held-out exact-match accuracy (result, teacher forced) "
          f"first reaches {TARGET} (median over seeds [{COVERAGE:.0%} bootstrap interval] "
          "(seeds reached / seeds)); last column: exact match of the whole target (scratchpad "
          "included, i.e. greedy decoding) at the last step:", "",
          C.markdown_table(["size", "format", "tokens / example", "budget (examples)", "examples needed",
                            "tokens needed", "final acc", "final whole-target acc"],
                           [[c["size"], c["format"], c["tokens_per_example"], c["budget_examples"],
                             C.interval_text(c["examples"]), C.interval_text(c["tokens"]), c["final_acc"],
                             c["final_full_target_acc"]] for c in cells]),
          "", f"Speedup over {BASELINE} ({BASELINE}'s need / the format's; > 1: the format needs less; "
          f"{COVERAGE:.0%} bootstrap interval over seeds):", ""]
    rows = []
    for e in effs:
        if e["effect"].endswith("_examples"):
            fmt = e["effect"].split(":")[1].split("_vs_")[0]
            tok = next(x for x in effs if x["size"] == e["size"] and x["effect"] == e["effect"][:-8] + "tokens")
            rows.append([e["size"], fmt, effect_text(e), effect_text(tok)])
    md += [C.markdown_table(["size", "format", "speedup per example", "speedup per token"], rows), "",
           *[f"* {x}" for x in lines]]
    return "\n".join(md)


def body(argv: Sequence[str] | None) -> int:
    args = C.parse_args(__doc__.splitlines()[0], argv, "results/format")
    p = plan(args.quick)
    specs = grid_specs(args.quick)
    wall = 0.0
    for spec in specs:
        wall += C.run_cells(spec, args.out, workers=args.workers)
    (args.out / "grid.json").write_text(json.dumps(specs, indent=1, sort_keys=True) + "\n")
    curves = own_runs(C.eval_curves(args.out / "store"), specs)
    rows = per_run(curves)
    for r in rows:
        r["final_full_target_acc"] = full_target_accuracy(args.out / "store", r["run"])["whole_target_acc"]
    cells = per_cell(rows)
    speed = speed_rows(curves, online_records(args.out / "store", sorted(curves)))
    speed_effs = speed_effects(speed)
    effs = effects(rows) + speed_effs
    v = verdicts(cells)
    lines = verdict_lines(v)
    budget = ", ".join(f"{f} {p.steps[f] * p.batch:,}" for f in PAPER_ORDER)
    title = (f"{p.digits}-digit addition, batch {p.batch}, AdamW lr {p.lr:g}; fresh examples per run: "
             f"{budget}; sizes {', '.join(p.sizes)}; seeds: "
             + ", ".join(f"{f} {len(p.seeds[f])}" for f in PAPER_ORDER))
    figure(curves, rows, args.out / f"{NAME}{'_quick' if args.quick else ''}.png", title, speed)
    md = summary(p, cells, effs, lines, title, args.quick) + "\n\n" + speed_table(speed, speed_effs)
    C.write_results(args.out, NAME, args, {"grid": specs, "runs": rows, "cells": cells, "verdicts": v,
                                           "speed_of_learning": speed}, md, wall_seconds=wall,
                    effects=effs)
    print(md)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return C.main_wrapper(body, argv)


if __name__ == "__main__":
    sys.exit(main())
