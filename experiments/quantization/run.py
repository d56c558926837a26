"""Experiment 5 of issue #7: the quantization model (Michaud et al. 2023).

Multitask sparse parity with Zipf-distributed subtasks (subtask i drawn with probability
p_i ∝ (i + 1)^-(alpha + 1)), k = 3 bits per subtask as in the paper, learned by the harness's
causal MLP (``model.kind = "mlp"``, Michaud et al.'s model family). Per subtask: its learning
time, the first step at which its held-out accuracy reaches 0.9, against its frequency; the
quantization model predicts a slope near -1 on log-log (a subtask is learned after a fixed
number of its own examples). Mean loss (the frequency-weighted held-out loss, i.e. the loss on
the training distribution) against step: a power law L = E + A t^-a whose exponent the model
predicts as a = alpha / (alpha + 1), fitted while subtasks are still being learned. See
:func:`grid_spec` for why the MLP and not the GPT.

    python experiments/quantization/run.py [--quick] [--out DIR] [--workers 2]
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common as C

NAME = "quantization"
LEARNED = 0.9


def grid_spec(quick: bool) -> dict[str, Any]:
    """One parity source, Zipf subtasks, the causal MLP; seeds are the only axis (the subtasks'
    bits stay fixed).

    ``k = 3`` of 12 bits with a one-hidden-layer MLP of width 128: a scratch probe (16 subtasks,
    batch 256, lr 3e-3, 1 thread) learned subtasks 0-4 by step 3,000 after about 2-4 x 10^4 of
    their own examples each (docs/experiments/quantization.md). The harness's GPT stayed at
    chance on k = 2 for up to 6,000 steps even with one subtask, which is why the committed run
    before the MLP used k = 1. 16 subtasks span a factor 48 in frequency (1.7 decades); at about
    2-3 x 10^4 own examples per subtask (the quick mode's 20-27k after the first), 10,000 steps
    of 256 rows reach the rarest one (frequency 0.009).
    """
    if quick:
        tasks, steps, seeds, evals = 8, 2000, [0, 1], 24
    else:
        tasks, steps, seeds, evals = 16, 10000, [0, 1, 2], 40
    bits, k, batch, eval_size = 12, 3, 256, 128
    return {
        "name": "qmq" if quick else "qm",
        "base": {
            "steps": steps, "device": "cpu", "checkpoint_every": 0 if quick else 2000,
            "model": {"kind": "mlp", "n_layer": 1, "d_model": 128},
            "optim": {"lr": 3e-3, "weight_decay": 0.0, "warmup_steps": 0, "min_lr_ratio": 1.0},
            "data": {"seq_len": tasks + bits + 5, "batch_size": batch, "sources": {"parity": {
                "kind": "parity",
                "options": {"n_tasks": tasks, "n_bits": bits, "k": k, "zipf_exponent": 0.4,
                            "eval_size": eval_size, "seed": 0}}}},
            "eval": {"count": evals, "max_examples": eval_size},
        },
        "axis": [{"name": "seed", "paths": ["init_seed", "data_seed"], "values": seeds}],
    }


def model_text(config: Mapping[str, Any]) -> str:
    """``MLP 1 x 128 (33,411 non-emb. params)`` or ``GPT tiny (21,720 ...)`` for a run config."""
    m = config["model"]
    dims = f"{m.get('n_layer')} x {m.get('d_model')}"
    shape = f"MLP {dims}" if m.get("kind") == "mlp" else f"GPT {m.get('size') or dims}"
    return f"{shape} ({C.n_params(config):,} non-emb. params)"


def frequencies(config: Mapping[str, Any]) -> np.ndarray:
    """The subtask frequencies of a run's parity source."""
    from scalelab.harness.sources.parity import zipf_probabilities

    opts = config["data"]["sources"]["parity"]["options"]
    return zipf_probabilities(int(opts["n_tasks"]), float(opts["zipf_exponent"]))


def learning_times(acc: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (run, subtask): its frequency and the step its accuracy reached LEARNED."""
    rows = []
    for rid, rec in acc.items():
        p = frequencies(rec["config"])
        for i in range(p.size):
            hit = C.first_reach(*rec["curves"][f"parity/{i}"], LEARNED)
            rows.append({"run": rid, "seed": int(rec["labels"]["seed"]), "subtask": i,
                         "frequency": float(p[i]), "step": hit.step, "learned": hit.reached})
    return rows


def time_slope(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Slope of log learning time on log frequency over the learned (run, subtask) pairs."""
    ok = [r for r in rows if r["learned"] and r["step"] > 0]
    out: dict[str, Any] = {"learned": len(ok), "total": len(rows)}
    if len({r["subtask"] for r in ok}) < 3:
        out["note"] = f"only {len({r['subtask'] for r in ok})} subtasks learned; no slope"
        return out
    out.update(C.loglog_slope([r["frequency"] for r in ok], [r["step"] for r in ok]))
    return out


def mean_loss(loss: Mapping[str, Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Frequency-weighted held-out loss against step, averaged over runs (shared eval steps)."""
    curves = []
    steps = None
    for rec in loss.values():
        p = frequencies(rec["config"])
        s = rec["curves"]["parity/0"][0]
        total = sum(p[i] * rec["curves"][f"parity/{i}"][1] for i in range(p.size))
        if steps is not None and not np.array_equal(s, steps):
            raise C.DataError("runs have different eval steps; rerun them with one grid")
        steps = s
        curves.append(total)
    if steps is None:
        raise C.DataError("no runs with parity loss curves; run the experiment first")
    return steps, np.mean(curves, axis=0)


def chance_loss(config: Mapping[str, Any]) -> float:
    """Mean loss per loss token of a model that has learned the format but no parity: ln 2 on the
    label, 0 on the other loss tokens (EOS)."""
    from scalelab.harness.sources import make_source

    opts = dict(config["data"]["sources"]["parity"]["options"])
    src = make_source("parity", **opts)
    batch = src.eval_sets(src.min_seq_len())["parity/0"]
    return float(np.log(2.0) / batch.loss_mask.sum(axis=1).mean())


def last_learning_step(rows: Sequence[Mapping[str, Any]]) -> float | None:
    """The step at which the last (run, subtask) was learned; None if any was never learned."""
    if not rows or not all(r["learned"] for r in rows):
        return None
    return float(max(r["step"] for r in rows))


def loss_power_law(steps: np.ndarray, loss: np.ndarray, alpha: float, chance: float,
                   until: float | None = None) -> dict[str, Any]:
    """Fit L = E + A t^-a to the mean loss where it is below chance; compare a with alpha/(alpha+1).

    Above ``chance`` the loss falls because the model learns the format (and the EOS token), not
    subtasks, so those evaluations are left out. After ``until`` (the step at which the last
    subtask was learned, :func:`last_learning_step`) every subtask is learned and the loss sits at
    its numerical floor: the Zipf tail the power law comes from is used up (the quantization
    model's law needs unlearned subtasks left), so those evaluations are left out too. With fewer
    than 5 evaluations left there is nothing to fit and the result says so.
    """
    from scalelab.curves.aggregation import fit_aggregate_power_law, quantization_exponent
    from scalelab.errors import ScalelabError

    keep = (steps > 0) & (loss < 0.95 * chance)
    if until is not None:
        keep &= steps <= until
    out: dict[str, Any] = {"predicted_exponent": quantization_exponent(alpha), "zipf_alpha": alpha,
                           "chance": chance, "points": int(keep.sum()), "min_loss": float(loss.min()),
                           "fit_until_step": until}
    if keep.sum() < 5:
        upto = "" if until is None else f" up to step {until:g}, when the last subtask was learned,"
        out["note"] = (f"the mean loss was below 95% of chance ({chance:.3f} nats, ln 2 on the label){upto} at "
                       f"{int(keep.sum())} eval steps (minimum {loss.min():.3f}); too few points of a subtask "
                       "learning curve to fit a power law to")
        return out
    out["fit_from_step"] = float(steps[keep][0])
    try:
        res = fit_aggregate_power_law(steps[keep], loss[keep], bootstrap=200, seed=0)
    except ScalelabError as exc:
        out["note"] = f"power-law fit failed: {exc}"
        return out
    out.update(res.to_dict())
    out["amplitude"] = float(res.fit.params["A"].value)
    return out


def own_examples(rows: Sequence[Mapping[str, Any]], batch: int) -> float | None:
    """Median over learned (run, subtask) pairs of learning step x frequency x batch: the
    subtask's own training examples when it was learned (None if none was learned)."""
    own = [r["step"] * r["frequency"] * batch for r in rows if r["learned"]]
    return float(np.median(own)) if own else None


def finite_model_fit(steps: np.ndarray, p: np.ndarray, own: float, batch: int, alpha: float,
                     chance: float) -> dict[str, Any]:
    """The quantization model's own mean loss for *these* subtasks, fitted like the measured one.

    Subtask i leaves chance around step ``own / (p_i batch)`` (slope -1; logistic in log step
    with width 0.3, i.e. over a factor ~2 in steps, as the measured subtasks do), and the loss is
    chance times the frequency of the subtasks not yet learned, plus a floor of chance / 1000.
    The evaluations below 95% of chance, up to the step the last subtask is learned, are fitted
    with ``L = E + A t^-a`` as in :func:`loss_power_law`, except that ``E`` is fixed at the
    known floor (exactly known for this synthetic curve).
    alpha / (alpha + 1) is the exponent of an infinite Zipf tail; with few subtasks the tail runs
    out within the fitted range and the fitted exponent is steeper. This is the exponent the
    quantization model predicts for the experiment as run.
    """
    from scalelab.curves.aggregation import fit_aggregate_power_law, quantization_exponent
    from scalelab.errors import ScalelabError

    learn_at = own / (np.asarray(p, float) * batch)  # (n,)
    s = np.asarray(steps, float)  # (E,)
    unlearned = 1.0 / (1.0 + np.exp((np.log(s[:, None] + 1.0) - np.log(learn_at)) / 0.3))  # (E, n)
    floor = chance / 1000
    ideal = chance * (unlearned @ p) + floor  # (E,)
    keep = (s > 0) & (ideal < 0.95 * chance) & (s <= learn_at.max())
    out: dict[str, Any] = {"predicted_exponent": quantization_exponent(alpha), "own_examples": own,
                           "floor": floor, "points": int(keep.sum()),
                           "fit_until_step": float(learn_at.max())}
    if keep.sum() < 5:
        out["note"] = f"only {int(keep.sum())} evaluations below 95% of chance; nothing to fit"
        return out
    out["fit_from_step"] = float(s[keep][0])
    try:
        res = fit_aggregate_power_law(s[keep], ideal[keep], bootstrap=200, seed=0, fixed={"E": floor})
    except ScalelabError as exc:
        out["note"] = f"power-law fit failed: {exc}"
        return out
    d = res.to_dict()
    out["exponent"], out["exponent_ci"] = d["exponent"], d["exponent_ci"]
    return out


def figure(acc: Mapping[str, Mapping[str, Any]], rows: Sequence[Mapping[str, Any]],
           steps: np.ndarray, loss: np.ndarray, fitd: Mapping[str, Any], slope: Mapping[str, Any],
           path: Path, title: str) -> Path:
    """Left: per-subtask accuracy; middle: learning time vs frequency; right: mean loss."""
    import matplotlib
    from matplotlib.ticker import NullFormatter

    fig, ax = C.new_figure(3, width=4.3)
    rec = acc[sorted(acc)[0]]
    p = frequencies(rec["config"])
    cmap = matplotlib.colormaps["viridis"]
    for i in range(p.size):
        s, v = rec["curves"][f"parity/{i}"]
        ax[0][0].plot(s + 1, v, color=cmap(i / max(p.size - 1, 1)), lw=1)
    ax[0][0].set(xscale="log", xlabel="step + 1", ylabel="held-out accuracy",
                 title=f"subtasks (dark = frequent), seed {rec['labels']['seed']}")
    ok = [r for r in rows if r["learned"] and r["step"] > 0]
    ax[0][1].scatter([r["frequency"] for r in ok], [r["step"] for r in ok], s=14)
    if "slope" in slope:
        f = np.array([r["frequency"] for r in ok])
        t = np.array([r["step"] for r in ok])
        b = np.mean(np.log(t)) - slope["slope"] * np.mean(np.log(f))
        xs = np.geomspace(f.min(), f.max(), 20)
        ax[0][1].plot(xs, np.exp(b) * xs ** slope["slope"], "k-", lw=0.8,
                      label=f"slope {slope['slope']:.2f} [{slope['low']:.2f}, {slope['high']:.2f}]")
        ax[0][1].legend(fontsize=8)
    if ok:
        ax[0][1].set(xscale="log", yscale="log")
        ax[0][1].xaxis.set_minor_formatter(NullFormatter())
    else:
        ax[0][1].text(0.5, 0.5, f"no subtask reached acc {LEARNED}", ha="center", transform=ax[0][1].transAxes)
    ax[0][1].set(xlabel="subtask frequency", ylabel=f"step to acc {LEARNED}")
    ax[0][1].set_title(title, fontsize=8)
    ax[0][2].plot(steps + 1, loss, "o-", ms=3, lw=1, label="mean loss")
    ax[0][2].axhline(fitd["chance"], color="grey", lw=0.6, ls=":", label="chance (ln 2 on the label)")
    if "exponent" in fitd:
        end = fitd["fit_until_step"] if fitd["fit_until_step"] is not None else steps[-1]
        t = steps[(steps >= fitd["fit_from_step"]) & (steps <= end)]
        ax[0][2].plot(t + 1, fitd["floor"] + fitd["amplitude"] * t ** -fitd["exponent"], "k--", lw=0.8,
                      label="E + A t^-a")
        ax[0][2].set_title(f"fit exponent {fitd['exponent']:.2f}; predicted {fitd['predicted_exponent']:.2f}",
                           fontsize=9)
    ax[0][2].set(xscale="log", yscale="log", xlabel="step + 1", ylabel="frequency-weighted loss (nats)")
    ax[0][2].legend(fontsize=8)
    return C.save_figure(fig, path)


def fmt_own(own: float | None) -> str:
    """Own examples at learning, rounded, or ``-``."""
    return "-" if own is None else f"{own:,.0f}"


def finite_text(finite: Mapping[str, Any]) -> str:
    """``exponent [low, high]`` of :func:`finite_model_fit`, or its note."""
    if "exponent" not in finite:
        return str(finite.get("note", "no fit"))
    lo, hi = finite["exponent_ci"]
    return f"exponent {finite['exponent']:.3f} [{lo:.3f}, {hi:.3f}] ({finite['points']} evaluations)"


def body(argv: Sequence[str] | None) -> int:
    args = C.parse_args(__doc__.splitlines()[0], argv, "results/quantization")
    spec = grid_spec(args.quick)
    wall = C.run_cells(spec, args.out, workers=args.workers)
    acc = C.eval_curves(args.out / "store", "acc")
    lossc = C.eval_curves(args.out / "store", "loss")
    rows = learning_times(acc)
    slope = time_slope(rows)
    steps, loss = mean_loss(lossc)
    alpha = float(spec["base"]["data"]["sources"]["parity"]["options"]["zipf_exponent"])
    chance = chance_loss(spec["base"])
    fitd = loss_power_law(steps, loss, alpha, chance, last_learning_step(rows))
    base = spec["base"]
    own_median = own_examples(rows, base["data"]["batch_size"])
    finite = (finite_model_fit(steps, frequencies(base), own_median, base["data"]["batch_size"], alpha, chance)
              if own_median is not None else {"note": "no subtask learned"})
    opts = base["data"]["sources"]["parity"]["options"]
    title = (f"{opts['n_tasks']} subtasks, {opts['n_bits']} bits, k={opts['k']}, alpha={alpha:g}; "
             f"{model_text(base)}, batch {base['data']['batch_size']}")
    figure(acc, rows, steps, loss, fitd, slope, args.out / f"{NAME}{'_quick' if args.quick else ''}.png", title)
    by_task = []
    for i in sorted({r["subtask"] for r in rows}):
        rs = [r for r in rows if r["subtask"] == i]
        b = C.bootstrap_median([r["step"] for r in rs], [r["learned"] for r in rs])
        own = "-" if b["median"] is None else round(b["median"] * rs[0]["frequency"] * base["data"]["batch_size"])
        by_task.append([i, rs[0]["frequency"], C.interval_text(b, 4), own])
    slope_text = (f"{slope['slope']:.3f} [{slope['low']:.3f}, {slope['high']:.3f}] (90% pairs bootstrap, "
                  f"{slope['learned']}/{slope['total']} subtask-runs learned)" if "slope" in slope
                  else slope.get("note", "no slope"))
    until = fitd["fit_until_step"]
    fit_text = (f"{fitd['exponent']:.3f} [{fitd['exponent_ci'][0]:.3f}, {fitd['exponent_ci'][1]:.3f}] "
                f"(floor {fitd['floor']:.3g}, fitted to {fitd['points']} evaluations from step "
                f"{fitd['fit_from_step']:g}{'' if until is None else f' to {until:g}'}); predicted "
                f"alpha/(alpha+1) = {fitd['predicted_exponent']:.3f}; "
                + (f"implied Zipf alpha {fitd['zipf_alpha']:.3g}" if np.isfinite(fitd["zipf_alpha"])
                   else "no Zipf alpha implies an exponent >= 1") if "exponent" in fitd else fitd.get("note", "no fit"))
    md = [f"# Quantization model ({'quick' if args.quick else 'full'} mode)", "", title, "",
          f"Step at which each subtask's held-out accuracy first reaches {LEARNED} "
          "(median over seeds [90% bootstrap interval] (seeds reached / seeds)):", "",
          C.markdown_table(["subtask", "frequency", "learning step", "own examples by then"], by_task),
          "", "(own examples: median learning step x frequency x batch size, the subtask's expected "
          "training examples when it was learned; the quantization model predicts them equal)", "",
          f"* slope of log learning step on log frequency: {slope_text}; the quantization model "
          "predicts -1",
          f"* mean-loss power-law exponent: {fit_text}",
          "* the same fit to the quantization model's own loss for these subtasks (each learned "
          f"after the measured median of {fmt_own(own_median)} own examples, slope -1): " + finite_text(finite)]
    C.write_results(args.out, NAME, args, {"grid": spec, "learning_times": rows, "slope": slope,
                                           "mean_loss": {"steps": steps, "loss": loss}, "loss_fit": fitd,
                                           "finite_model_fit": finite},
                    "\n".join(md), wall_seconds=wall)
    print("\n".join(md))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return C.main_wrapper(body, argv)


if __name__ == "__main__":
    sys.exit(main())
