"""Experiment 2 (data format): its analysis on synthetic curves with known answers, the speedup
effects list, the grid, and the whole-target check on a real few-step run."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scalelab.errors import DataError
from tests.experiments._loader import load_experiment

C = load_experiment("_common.py", "_common")
FMT = load_experiment("format/run.py", "exp_format")

STEPS = np.array([0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024], dtype=float)


def _sigmoid_curve(mid: float, width: float = 0.3) -> np.ndarray:
    """Accuracy rising from 0 to 1 around step ``mid`` (logistic in log step)."""
    return 1.0 / (1.0 + np.exp(-(np.log(STEPS + 1) - math.log(mid + 1)) / width))


def _fmt_curves(mids: dict[str, float | None], sizes: tuple[str, ...] = ("tiny",),
                seeds: tuple[int, ...] = (0, 1), spread: float = 0.0) -> dict[str, dict[str, Any]]:
    out = {}
    for size_i, size in enumerate(sizes):
        for fmt, mid in mids.items():
            for seed in seeds:
                m = None if mid is None else mid * (1 + spread * seed) * 2 ** size_i
                acc = np.full(STEPS.size, 0.2) if m is None else _sigmoid_curve(m)
                out[f"{fmt}-{size}-{seed}"] = {
                    "labels": {"format": fmt, "size": size, "seed": str(seed)},
                    "config": {"model": {"size": size},
                               "data": {"batch_size": 10, "sources": {"addition": {"options": {"digits": 2}}}}},
                    "curves": {"addition": (STEPS, acc)},
                }
    return out


def test_tokens_per_example_matches_the_rendering() -> None:
    # operands are zero-padded to 3 digits; the sum (unpadded) has 4 digits about half the time
    # and fewer than 3 about 0.5% of the time; plus "+", "=", BOS and EOS
    assert FMT.tokens_per_example("plain", 3) == pytest.approx(2 * 3 + 3.5 + 4, abs=0.05)
    assert FMT.tokens_per_example("detailed_scratchpad", 3) > 20 * FMT.tokens_per_example("plain", 1)


def test_format_order_per_example_and_per_token() -> None:
    # the paper's order in examples, but the scratchpads are long: per token plain/reverse win
    mids = {"detailed_scratchpad": 20.0, "simple_scratchpad": 40.0, "reverse": 100.0, "plain": 300.0}
    rows = FMT.per_run(_fmt_curves(mids))
    ratios = [r["examples"] / r["tokens"] for r in rows if r["format"] == "plain"]
    assert ratios == pytest.approx([1 / FMT.tokens_per_example("plain", 2)] * 2)
    assert {r["n_params"] for r in rows} == {21_720}
    v = FMT.verdicts(FMT.per_cell(rows))["tiny"]
    assert v["order_examples"] == list(FMT.PAPER_ORDER)
    assert v["paper_order_examples_replicates"]
    # 2-digit examples are ~11 (plain, reverse), ~46 (simple) and ~190 (detailed) tokens long, so
    # per token: reverse ~100 x 11 < simple ~40 x 46 < plain ~300 x 11 < detailed ~20 x 190
    assert v["order_tokens"] == ["reverse", "simple_scratchpad", "plain", "detailed_scratchpad"]
    assert v["paper_order_holds_per_token"] is False


def test_format_censored_formats_do_not_count_as_replication() -> None:
    mids = {"detailed_scratchpad": None, "simple_scratchpad": 40.0, "reverse": 100.0, "plain": 300.0}
    curves = _fmt_curves(mids)
    for rec in curves.values():  # detailed stops at step 64: 640 examples, below plain's ~3,000
        if rec["labels"]["format"] == "detailed_scratchpad":
            s, v = rec["curves"]["addition"]
            rec["curves"]["addition"] = (s[:8], v[:8])
    v = FMT.verdicts(FMT.per_cell(FMT.per_run(curves)))["tiny"]
    assert v["reached"] == ["simple_scratchpad", "reverse", "plain"]
    assert v["order_examples"][-1] == "detailed_scratchpad"
    assert v["paper_order_examples_replicates"] is None  # undetermined, not "does not replicate"
    line = FMT.verdict_lines({"tiny": v})[0]
    assert "undetermined" in line and "only 3/4 formats" in line


def test_a_censored_format_whose_budget_exceeds_every_need_ranks_last() -> None:
    # plain never reaches 0.9 in 1,024 steps (10,240 examples); every other format needs less
    # than that, per example and per token, so plain is last whatever it would have needed
    mids = {"detailed_scratchpad": 20.0, "simple_scratchpad": 40.0, "reverse": 100.0, "plain": None}
    v = FMT.verdicts(FMT.per_cell(FMT.per_run(_fmt_curves(mids))))["tiny"]
    assert v["order_examples"] == list(FMT.PAPER_ORDER) and v["paper_order_examples_replicates"] is True
    # per token: reverse ~100 x 11 < simple ~40 x 46 < detailed ~20 x 190 < plain > 1,024 x 11
    assert v["order_tokens"] == ["reverse", "simple_scratchpad", "detailed_scratchpad", "plain"]
    assert v["paper_order_holds_per_token"] is False
    lines = FMT.verdict_lines({"tiny": v})
    assert "replicates" in lines[0] and "ranked last" in lines[0]
    # two censored formats cannot be ordered against each other
    mids2 = {**mids, "reverse": None}
    v2 = FMT.verdicts(FMT.per_cell(FMT.per_run(_fmt_curves(mids2))))["tiny"]
    assert v2["paper_order_examples_replicates"] is None and v2["paper_order_holds_per_token"] is None


def test_speedup_is_a_ratio_of_medians_with_a_seed_bootstrap() -> None:
    r = FMT.speedup([300.0, 400.0, 500.0], [True] * 3, [100.0, 100.0, 100.0], [True] * 3, n_boot=500)
    assert r["value"] == pytest.approx(4.0) and r["note"] == ""
    # each bootstrap median of the baseline is one of 300, 400, 500; the treatment's is 100
    assert 3.0 <= r["lower"] <= 4.0 <= r["upper"] <= 5.0
    assert r["lower"] < r["upper"]
    # the treatment never reached the target in 2 of 3 seeds: median censored, no value
    r = FMT.speedup([300.0] * 3, [True] * 3, [100.0, 900.0, 900.0], [True, False, False])
    assert r["value"] is None and "the treatment did not reach" in r["note"]
    # baseline censored in one seed: the median is known, the upper end can be unbounded
    r = FMT.speedup([300.0, 400.0, 900.0], [True, True, False], [100.0] * 3, [True] * 3, n_boot=500)
    assert r["value"] == pytest.approx(4.0) and r["upper"] is None and "unbounded" in r["note"]
    with pytest.raises(DataError, match="non-empty values"):
        FMT.speedup([], [], [1.0], [True])


def test_effects_follow_the_contract_per_size_and_unit() -> None:
    # plain needs 8x the steps of detailed at both sizes, 2x those of reverse
    mids = {"detailed_scratchpad": 20.0, "simple_scratchpad": 40.0, "reverse": 80.0, "plain": 160.0}
    rows = FMT.per_run(_fmt_curves(mids, sizes=("tiny", "mini"), seeds=(0, 1, 2), spread=0.05))
    effs = FMT.effects(rows)
    assert len(effs) == 2 * 3 * 2  # sizes x formats other than plain x (examples, tokens)
    keys = {"effect", "description", "kind", "size", "n_params", "value", "lower", "upper", "coverage",
            "neutral", "note"}
    assert all(set(e) == keys and e["kind"] == "ratio" and e["neutral"] == 1.0 for e in effs)
    by = {(e["effect"], e["size"]): e for e in effs}
    assert by[("format:reverse_vs_plain_examples", "mini")]["n_params"] == 84_912
    for size in ("tiny", "mini"):
        ex = by[("format:detailed_scratchpad_vs_plain_examples", size)]
        # log-step interpolation between evals blurs the crossing, so allow the grid's resolution
        assert ex["value"] == pytest.approx((160 * 9**0.3) / (20 * 9**0.3), rel=0.25)
        assert ex["lower"] <= ex["value"] <= ex["upper"]
        tok = by[("format:detailed_scratchpad_vs_plain_tokens", size)]
        scale = FMT.tokens_per_example("plain", 2) / FMT.tokens_per_example("detailed_scratchpad", 2)
        assert tok["value"] == pytest.approx(ex["value"] * scale)
        assert tok["value"] < 1 < ex["value"]  # fewer examples, but many more tokens
    censored = FMT.effects(FMT.per_run(_fmt_curves({**mids, "plain": None})))
    assert all(e["value"] is None and "baseline did not reach" in e["note"] for e in censored)


def test_grid_specs_give_each_format_its_budget_at_three_sizes() -> None:
    from scalelab.harness.config import RunConfig
    from scalelab.harness.grid import parse_grid

    for quick in (True, False):
        p = FMT.plan(quick)
        runs = [r for spec in FMT.grid_specs(quick) for r in parse_grid(spec).runs()]
        assert len(runs) == len(p.sizes) * sum(len(p.seeds[f]) for f in FMT.PAPER_ORDER)
        assert len({r.run_id for r in runs}) == len(runs)
        for r in runs:
            cfg = RunConfig.from_dict(r.config)
            opts = r.config["data"]["sources"]["addition"]["options"]
            assert cfg.steps == p.steps[opts["format"]] and opts["digits"] == p.digits
            assert r.config["data"]["seq_len"] >= FMT.tokens_per_example(opts["format"], p.digits)
        assert {r.labels["size"] for r in runs} == set(p.sizes)
    full = FMT.plan(False)
    assert full.digits == 3 and len(full.sizes) == 3
    assert len(full.seeds["plain"]) >= 3
    assert all(full.seeds[f] == full.seeds["plain"] for f in FMT.PAPER_ORDER)
    # token budgets: a padded detailed example is ~21x a plain one and gets twice plain's tokens,
    # so ~2/21 of plain's steps; the simplified scratchpad gets plain's tokens
    for fmt, share in (("detailed_scratchpad", 2.0), ("simple_scratchpad", 1.0)):
        ratio = FMT.tokens_per_example(fmt, 3) / FMT.tokens_per_example("plain", 3)
        assert full.steps["plain"] / full.steps[fmt] == pytest.approx(ratio / share, rel=0.01)
    # every format's operands are zero-padded (unpadded short operands were never learned)
    assert all(r.config["data"]["sources"]["addition"]["options"]["pad_operands"] for r in runs)
    assert full.steps["plain"] == full.steps["reverse"]


def test_whole_target_accuracy_on_a_real_few_step_run(tmp_path: Path) -> None:
    spec = FMT.grid_specs(True)[0]
    plain = next(v for v, lab in zip(spec["axis"][0]["values"], spec["axis"][0]["labels"], strict=True)
                 if lab == "plain")
    spec = {**spec, "base": {**spec["base"], "steps": 4, "optim": {**spec["base"]["optim"], "warmup_steps": 1},
                             "eval": {"count": 2, "max_examples": 30}},
            "axis": [{"name": "format", "path": "data", "values": [plain], "labels": ["plain"]},
                     {"name": "size", "path": "model.size", "values": ["tiny"]},
                     {"name": "seed", "paths": ["init_seed", "data_seed"], "values": [0]}]}
    C.run_cells(spec, tmp_path, workers=1, quiet=True)
    (rid,) = C.eval_curves(tmp_path / "store")
    got = FMT.full_target_accuracy(tmp_path / "store", rid)
    # the rebuilt model and eval set give exactly the harness's own last eval loss
    last_loss = C.eval_curves(tmp_path / "store", "loss")[rid]["curves"]["addition"][1][-1]
    assert got["loss"] == pytest.approx(last_loss, rel=1e-5)
    assert 0.0 <= got["whole_target_acc"] <= 1.0
    with pytest.raises(DataError, match="no checkpoint"):
        FMT.full_target_accuracy(tmp_path / "store", "no-such-run")


def test_only_this_grids_runs_are_analysed() -> None:
    specs = FMT.grid_specs(True)
    from scalelab.harness.grid import parse_grid

    ids = [r.run_id for spec in specs for r in parse_grid(spec).runs()]
    curves = {rid: {"x": i} for i, rid in enumerate(ids)}
    stale = {**curves, "fmtq_format-plain_size-tiny_seed-0_0000": {"x": -1}}  # an older grid's run
    assert FMT.own_runs(stale, specs) == curves
    with pytest.raises(DataError, match="have no metrics"):
        FMT.own_runs({k: v for k, v in curves.items() if k != ids[0]}, specs)


# ----------------------------------------------------------------------------- speed of learning
def test_run_code_length_charges_each_step_for_its_own_answer_tokens() -> None:
    steps = np.arange(1, 6, dtype=float)
    loss = np.array([5.0, 3.0, 2.0, 1.5, 1.0])
    answers = np.array([280.0, 290.0, 285.0, 300.0, 275.0])
    got = FMT.run_code_length(steps, loss, answers, examples_per_step=64)
    assert got["nats"] == pytest.approx(float(np.sum(loss * answers)), rel=1e-12)
    assert got["nats_per_example"] == pytest.approx(got["nats"] / (5 * 64))
    assert got["nats_per_answer_token"] == pytest.approx(got["nats"] / answers.sum())
    with pytest.raises(DataError, match="every step"):  # a gap in the log: no exact code length
        FMT.run_code_length(steps[[0, 1, 3, 4]], loss[[0, 1, 3, 4]], answers[:4], 64)
    with pytest.raises(DataError, match="answer-token counts"):
        FMT.run_code_length(steps, loss, answers[:4], 64)


def test_median_interval_uses_order_statistics_with_their_exact_coverage() -> None:
    assert FMT.median_interval([3.0, 1.0, 2.0], 0.9) == (1.0, 3.0, 0.75)
    # 10 values: [x_(2), x_(9)] covers the median with 1 - 2 * 11/1024; [x_(3), x_(8)] only 0.891
    lo, hi, cov = FMT.median_interval(np.arange(10.0), 0.9)
    assert (lo, hi) == (1.0, 8.0) and cov == pytest.approx(1 - 22 / 1024, abs=1e-6)
    assert FMT.median_interval([2.0], 0.9) == (None, None, 0.0)
    # the stated coverage is the real one: the range of 3 draws covers the median 75% of the time
    draws = np.random.default_rng(0).standard_normal((20_000, 3))
    covered = (draws.min(axis=1) < 0) & (draws.max(axis=1) > 0)
    assert covered.mean() == pytest.approx(0.75, abs=0.01)


def _speed_records(ratio_by_size: dict[str, float], seeds: tuple[int, ...] = (0, 1, 2)
                   ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Curves and online records: reverse's online loss is plain's / ratio (with per-seed wiggle)."""
    curves, online = {}, {}
    steps = np.arange(1, 51, dtype=float)
    base = 0.5 + 4.5 * np.exp(-steps / 15)
    for size, ratio in ratio_by_size.items():
        for fmt in ("plain", "reverse", "simple_scratchpad"):
            for seed in seeds:
                rid = f"{fmt}-{size}-{seed}"
                wiggle = 1 + 0.02 * (seed - 1)
                loss = base if fmt != "reverse" else base / (ratio * wiggle)
                curves[rid] = {"labels": {"format": fmt, "size": size, "seed": str(seed)},
                               "config": {"model": {"size": size}, "data": {"batch_size": 10}}}
                online[rid] = {"steps": steps, "online_loss": loss,
                               "final_eval_loss": float(loss[-1]) * (1.1 if fmt == "plain" else 1.0)}
    return curves, online


def test_speed_effects_give_the_code_length_ratio_per_size() -> None:
    curves, online = _speed_records({"tiny": 0.9, "mini": 1.2, "small": 1.5})
    rows = FMT.speed_rows(curves, online, answer_tokens=lambda cfg: np.full(50, 45.0))
    assert {r["format"] for r in rows} == {"plain", "reverse"}  # scratchpads: other answers, not compared
    assert rows[0]["nats_per_example"] == pytest.approx(float(np.sum(0.5 + 4.5 * np.exp(-np.arange(1, 51) / 15)))
                                                        * 45 / 500)
    effs = FMT.speed_effects(rows)
    keys = {"effect", "description", "kind", "size", "n_params", "value", "lower", "upper", "coverage",
            "neutral", "note"}
    assert all(set(e) == keys and e["kind"] == "ratio" and e["neutral"] == 1.0 for e in effs)
    by = {(e["effect"], e["size"]): e for e in effs}
    assert len(effs) == 3 and by[("format:reverse_code_length", "mini")]["n_params"] == 84_912
    for size, ratio in (("tiny", 0.9), ("mini", 1.2), ("small", 1.5)):
        e = by[("format:reverse_code_length", size)]
        # per-seed ratios are ratio x (0.98, 1.00, 1.02): median ratio, interval their range
        assert e["value"] == pytest.approx(ratio)
        assert (e["lower"], e["upper"]) == pytest.approx((0.98 * ratio, 1.02 * ratio))
        assert e["coverage"] == 0.75 and e["note"] == ""
    # unpaired seeds cannot be compared
    with pytest.raises(DataError, match="same seeds"):
        FMT.paired_ratio({0: 1.0}, {1: 1.0})


def test_online_records_and_answer_tokens_from_a_real_store(tmp_path: Path) -> None:
    spec = FMT.grid_specs(True)[0]
    data = dict(zip(spec["axis"][0]["labels"], spec["axis"][0]["values"], strict=True))
    spec = {**spec, "base": {**spec["base"], "steps": 6, "optim": {**spec["base"]["optim"], "warmup_steps": 1},
                             "eval": {"count": 2, "max_examples": 30}},
            "axis": [{"name": "format", "path": "data", "values": [data["plain"], data["reverse"]],
                      "labels": ["plain", "reverse"]},
                     {"name": "size", "path": "model.size", "values": ["tiny"]},
                     {"name": "seed", "paths": ["init_seed", "data_seed"], "values": [0]}]}
    C.run_cells(spec, tmp_path, workers=1, quiet=True)
    curves = C.eval_curves(tmp_path / "store")
    online = FMT.online_records(tmp_path / "store", sorted(curves))
    by_fmt = {curves[k]["labels"]["format"]: k for k in curves}
    counts = {f: FMT.answer_tokens_per_step(curves[k]["config"]) for f, k in by_fmt.items()}
    # the same pairs in the same order: reverse scores exactly as many answer tokens as plain
    assert np.array_equal(counts["plain"], counts["reverse"]) and counts["plain"].size == 6
    # 2-digit sums have 1-3 digits, plus EOS: between 2 and 4 answer tokens per example
    batch = curves[by_fmt["plain"]]["config"]["data"]["batch_size"]
    assert np.all((counts["plain"] >= 2 * batch) & (counts["plain"] <= 4 * batch))
    for f, k in by_fmt.items():
        o = online[k]
        assert o["steps"].tolist() == [1, 2, 3, 4, 5, 6]
        # step 1 is coded by the untrained model: about log(vocab) nats per answer token
        assert 3.0 < o["online_loss"][0] < 7.0
        last_eval = C.eval_curves(tmp_path / "store", "loss")[k]["curves"]["addition"][1][-1]
        assert o["final_eval_loss"] == pytest.approx(last_eval)
        cl = FMT.run_code_length(o["steps"], o["online_loss"], counts[f], batch)
        assert cl["nats"] == pytest.approx(float(np.sum(o["online_loss"] * counts[f])), rel=1e-9)
    with pytest.raises(DataError, match="no train/online_loss"):
        FMT.online_records(tmp_path / "store", ["no-such-run"])
