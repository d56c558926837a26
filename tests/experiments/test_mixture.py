"""Experiment 4 (data mixtures): the design, the two grid stages, and the analysis on synthetic
mixtures whose data-mixing laws are known (no training)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from scalelab.errors import DataError
from tests.experiments._loader import load_experiment

MIX = load_experiment("mixture/run.py", "exp_mixture")
DOM = list(MIX.DOMAINS)

#: known laws: code is helped only by code (strongly); docstrings and prose help each other.
#: The mean loss is minimised inside the region at about (0.505, 0.19, 0.305), 0.047 below uniform.
TRUE = {
    "code": {"c": 1.6, "k": 2.0, "t1": -3.0, "t2": 0.3, "t3": 0.3},
    "docstrings": {"c": 2.0, "k": 0.8, "t1": 0.3, "t2": -2.0, "t3": -1.0},
    "prose": {"c": 1.8, "k": 0.9, "t1": 0.3, "t2": -1.0, "t3": -2.0},
}


def _true_loss(shares: np.ndarray) -> dict[str, np.ndarray]:
    W = np.atleast_2d(shares)
    return {d: p["c"] + p["k"] * np.exp(W @ np.array([p["t1"], p["t2"], p["t3"]])) for d, p in TRUE.items()}


def _synthetic_mix(noise: float = 0.0, seed: int = 0) -> list[dict[str, Any]]:
    """Seed-averaged grid rows of the full design with losses from the known laws."""
    rng = np.random.default_rng(seed)
    rows = []
    for shares in MIX.design(quick=False):
        m: dict[str, Any] = {"mixture": MIX.mixture_label(shares), "seeds": 1}
        truth = _true_loss(np.array(shares))
        for d, s in zip(DOM, shares, strict=True):
            m[f"r_{d}"] = s
        for d in DOM:
            m[f"loss_{d}"] = float(truth[d][0] * math.exp(rng.normal(0, noise)))
        m["objective"] = MIX.objective_of(m)
        m["objective_seeds"] = [m["objective"]]
        rows.append(m)
    return rows


# ----------------------------------------------------------------------------- the design
@pytest.mark.parametrize("quick, n", [(False, 13), (True, 7)])
def test_design_covers_the_simplex_and_identifies_the_law(quick: bool, n: int) -> None:
    mixes = np.array(MIX.design(quick))
    assert mixes.shape == (n, 3)
    np.testing.assert_allclose(mixes.sum(axis=1), 1.0)
    assert mixes.min() == pytest.approx(0.1) and mixes.max() == pytest.approx(0.8)
    assert len({tuple(np.round(m, 6)) for m in mixes}) == n  # distinct
    assert any(np.allclose(m, 1 / 3) for m in mixes)  # the centre (the uniform reference)
    for j in range(3):  # every corner's neighbourhood
        assert any(m[j] == pytest.approx(0.8) for m in mixes)
    # affine rank 2 (spans the simplex) and more runs than K + 3 = 6 for the law with intervals
    assert np.linalg.matrix_rank(mixes - mixes.mean(axis=0)) == 2
    assert n >= 6 + 1


def test_grid_specs_expand_to_valid_runs_with_shared_seeds() -> None:
    from scalelab.harness.config import RunConfig
    from scalelab.harness.grid import parse_grid

    for quick in (False, True):
        s = MIX.settings(quick)
        runs = parse_grid(MIX.grid_spec(quick)).runs()
        assert len(runs) == len(MIX.design(quick)) * len(s["seeds"])
        for r in runs:
            cfg = RunConfig.from_dict(r.config)
            mix = cfg.data.schedule.config()["mixture"]
            assert set(mix) == set(DOM) and sum(mix.values()) == pytest.approx(1.0)
            # held-out windows fixed by the sources' own seed (default 0), not the run seed
            assert all("seed" not in src.options for src in cfg.data.sources.values())
            assert cfg.steps == s["steps"] and cfg.model.size == "tiny"
        shares = MIX.rounded_shares({"code": 0.21234, "docstrings": 0.1, "prose": 0.68766})
        rec = parse_grid(MIX.recommended_spec(quick, shares)).runs()
        assert sorted(int(r.labels["seed"]) for r in rec) == s["seeds"]
        assert {r.labels["mix"] for r in rec} == {"recommended"}
        assert rec[0].config["data"]["schedule"]["mixture"] == dict(zip(DOM, shares, strict=True))
        # identical to stage 1 apart from the schedule: same budget, model, data and seeds
        base1, base2 = MIX.grid_spec(quick)["base"], MIX.recommended_spec(quick, shares)["base"]
        assert {k: v for k, v in base1.items() if k != "data"} == \
            {k: v for k, v in base2.items() if k != "data"}
        assert base1["data"]["sources"] == base2["data"]["sources"]


def test_results_are_strict_json() -> None:
    import json

    doc = MIX.finite_or_none({"loo": [{"objective": float("inf")}, {"objective": 2.5}], "x": (np.float64("nan"), 1)})
    assert doc == {"loo": [{"objective": None}, {"objective": 2.5}], "x": [None, 1]}
    json.dumps(doc, allow_nan=False)


def test_rounded_shares_sum_to_one() -> None:
    r = MIX.rounded_shares({"code": 0.1004, "docstrings": 0.2004, "prose": 0.6992})
    assert sum(r) == pytest.approx(1.0, abs=1e-12) and r == (0.1, 0.2, 0.7)
    assert MIX.mixture_label((0.5, 0.4, 0.1)) == "c50-d40-p10"


# ----------------------------------------------------------------------------- measuring
def _curves(label: str, seed: int, shares: tuple[float, ...], losses: dict[str, float],
            steps: int = 100, last: int | None = None) -> dict[str, Any]:
    last = steps if last is None else last
    return {"labels": {"mix": label, "seed": str(seed)},
            "config": {"steps": steps, "data": {"schedule": {"mixture": dict(zip(DOM, shares, strict=True))}}},
            "curves": {d: (np.array([0.0, 10.0, float(last)]), np.array([5.5, 4.0, v])) for d, v in losses.items()}}


def test_run_rows_take_the_final_loss_and_average_the_domains() -> None:
    curves = {
        "a0": _curves("c80-d10-p10", 0, (4, 0.5, 0.5), {"code": 2.0, "docstrings": 3.0, "prose": 4.0}),
        "a1": _curves("c80-d10-p10", 1, (4, 0.5, 0.5), {"code": 2.2, "docstrings": 3.2, "prose": 4.2}),
        "r0": _curves("recommended", 0, (1, 1, 2), {"code": 1.0, "docstrings": 1.0, "prose": 1.0}),
    }
    rows = MIX.run_rows(curves)
    assert [r["stage"] for r in rows] == ["grid", "grid", "recommended"]
    assert rows[0]["r_code"] == pytest.approx(0.8)  # weights are normalised to shares
    assert rows[2]["r_prose"] == pytest.approx(0.5)
    assert rows[0]["objective"] == pytest.approx(3.0) and rows[1]["objective"] == pytest.approx(3.2)
    mix = MIX.mixture_means(rows[:2])
    assert len(mix) == 1 and mix[0]["objective"] == pytest.approx(3.1) and mix[0]["loss_code"] == pytest.approx(2.1)
    assert MIX.pooled_seed_sd(rows[:2]) == pytest.approx(math.sqrt(0.02))
    assert MIX.pooled_seed_sd(rows[2:]) is None
    assert MIX.seed_residual_sd(rows[:2]) is None  # one mixture: no residual


def test_seed_residual_sd_removes_a_shared_seed_effect() -> None:
    # seed 1 is 0.3 worse for every mixture: a pure seed effect, no residual
    rows = [{"mixture": m, "seed": s, "objective": base + 0.3 * s}
            for m, base in [("a", 2.0), ("b", 2.5), ("c", 2.2)] for s in (0, 1)]
    assert MIX.seed_residual_sd(rows) == pytest.approx(0.0, abs=1e-12)
    assert MIX.pooled_seed_sd(rows) == pytest.approx(0.3 / math.sqrt(2))
    # an interaction -+0.1 on mixture a only: residuals -+0.2/3 (a) and +-0.1/3 (b, c), 2 df
    rows[0]["objective"] -= 0.1
    rows[1]["objective"] += 0.1
    assert MIX.seed_residual_sd(rows) == pytest.approx(0.2 / math.sqrt(6))
    rows.pop()  # mixture c loses a seed: left out, 1 df remains
    assert MIX.seed_residual_sd(rows) == pytest.approx(0.1)
    unfinished = {"x": _curves("c80-d10-p10", 0, (4, 0.5, 0.5), {d: 2.0 for d in DOM}, last=50)}
    with pytest.raises(DataError, match="stopped at step 50 of 100"):
        MIX.run_rows(unfinished)


def test_paired_difference_and_noise_interval() -> None:
    d = MIX.paired_difference({0: 2.0, 1: 2.2, 2: 2.4}, {0: 2.5, 1: 2.5, 5: 9.0}, 0.1)
    assert d["n"] == 2 and d["per_seed"] == pytest.approx({0: -0.5, 1: -0.3})
    assert d["mean"] == pytest.approx(-0.4)
    assert d["high"] - d["mean"] == pytest.approx(MIX.Z * math.sqrt(2) * 0.1 / math.sqrt(2))
    assert MIX.paired_difference({0: 1.0}, {0: 2.0}, None)["low"] is None
    with pytest.raises(DataError, match="no seed in common"):
        MIX.paired_difference({0: 1.0}, {1: 1.0}, 0.1)
    lo, hi = MIX.interval_with_noise(2.0, 2.2, 0.1, 4)
    assert (lo + hi) / 2 == pytest.approx(2.1)
    assert (hi - lo) / 2 == pytest.approx(math.hypot(0.1, MIX.Z * 0.1 / 2))
    assert MIX.interval_with_noise(2.0, 2.2, None, 1) is None


# ----------------------------------------------------------------------------- the law
def test_leave_one_out_recovers_known_laws_when_interpolating() -> None:
    mix = _synthetic_mix(noise=0.0)
    loo = MIX.leave_one_out(mix)
    interp = [(m, p) for m, p in zip(mix, loo, strict=True) if p["interpolated"]]
    # the 3 near-corners are extrapolations; the rest lie inside the others' share ranges
    assert len(interp) == 10
    assert all(not p["interpolated"] for m, p in zip(mix, loo, strict=True) if max(
        m[f"r_{d}"] for d in DOM) == pytest.approx(0.8))
    for m, p in interp:
        assert p["objective"] == pytest.approx(m["objective"], abs=2e-3)
        for d in DOM:
            assert p[d] == pytest.approx(m[f"loss_{d}"], abs=3e-3)


def test_recommendation_and_comparison_on_known_laws() -> None:
    mix = _synthetic_mix(noise=0.003, seed=1)
    rec = MIX.recommend(mix, reference="uniform", bootstrap=40)
    # the true optimum of the mean loss inside the searched region (shares in [0.1, 0.8])
    mesh = MIX._simplex_mesh(200)
    mesh = mesh[np.all((mesh >= 0.1 - 1e-9) & (mesh <= 0.8 + 1e-9), axis=1)]
    truth = _true_loss(mesh)
    obj = sum(w * truth[d] for d, w in MIX.OBJECTIVE.items())
    best = mesh[np.argmin(obj)]
    got = np.array([rec.weights[d] for d in DOM])
    np.testing.assert_allclose(got, best, atol=0.04)
    true_at_rec = float(sum(w * _true_loss(got)[d][0] for d, w in MIX.OBJECTIVE.items()))
    assert rec.objective == pytest.approx(true_at_rec, abs=0.01)
    assert rec.objective_low <= rec.objective <= rec.objective_high

    # the recommended runs "measure" the true law at the trained (rounded) shares
    shares = MIX.rounded_shares(rec.weights)
    t_rec = _true_loss(np.array(shares))
    uniform = MIX.mixture_label((1 / 3, 1 / 3, 1 / 3))
    # seeds: a shared effect (+-0.01, cancels) and an interaction +-0.01 (-1)^(i + s) (noise)
    rows = [{"stage": "grid", "mixture": m["mixture"], "seed": s,
             **{f"loss_{d}": m[f"loss_{d}"] + 0.01 * (2 * s - 1) + 0.01 * (-1) ** (i + s) for d in DOM}}
            for i, m in enumerate(mix) for s in (0, 1)]
    rows += [{"stage": "recommended", "mixture": "recommended", "seed": s,
              **{f"loss_{d}": float(t_rec[d][0]) + 0.01 * (2 * s - 1) for d in DOM}} for s in (0, 1)]
    for r in rows:
        r["objective"] = MIX.objective_of(r)
    loo = MIX.leave_one_out(mix)
    cmp = MIX.compare(rows, mix, rec, loo)
    # residual 0.01 v_s (u_i - mean u) with u, v = +-1: SS = 2e-4 (13 - 1/13) over 12 df
    assert cmp["seed_residual_sd_objective"] == pytest.approx(0.01 * math.sqrt(2 * (13 - 1 / 13) / 12))
    o = cmp["targets"]["objective"]
    assert abs(o["error"]) < 0.01 and o["inside_prediction_interval"]
    assert cmp["uniform_mixture"] == uniform
    # the true optimum beats the uniform mixture by more than seed noise
    assert cmp["vs_uniform"]["beats"] and cmp["vs_uniform"]["resolved"]
    assert cmp["vs_uniform"]["mean"] < -0.02
    g = cmp["gain_vs_uniform"]
    assert g["measured"] == pytest.approx(-cmp["vs_uniform"]["mean"])
    assert g["low"] <= g["predicted"] <= g["high"] and g["predicted"] == pytest.approx(g["measured"], abs=0.01)
    # a recommendation that is measured worse than it was predicted is flagged
    bad = [dict(r, objective=r["objective"] + 0.3) if r["stage"] == "recommended" else r for r in rows]
    cmp_bad = MIX.compare(bad, mix, rec, loo)
    assert not cmp_bad["targets"]["objective"]["inside_prediction_interval"]
    assert not cmp_bad["vs_uniform"]["beats"]
    with pytest.raises(DataError, match="recommended mixture has no runs"):
        MIX.compare([r for r in rows if r["stage"] == "grid"], mix, rec, loo)


# ----------------------------------------------------------------------------- stage 3: across sizes
def test_scale_spec_changes_only_the_model_size() -> None:
    from scalelab.harness.grid import parse_grid

    shares = (0.317, 0.135, 0.548)
    for quick in (False, True):
        s = MIX.settings(quick)
        spec = MIX.scale_spec(quick, shares)
        runs = parse_grid(spec).runs()
        assert len(runs) == len(s["scale_sizes"]) * 2 * len(s["seeds"])
        assert MIX.BASE_SIZE not in s["scale_sizes"]  # tiny comes from stages 1-2
        uniform = MIX.mixture_label(MIX.UNIFORM)
        assert uniform == MIX.mixture_label(MIX.design(quick)[0])  # stage 1's centre
        for r in runs:
            assert r.config["model"]["size"] == r.labels["size"] in s["scale_sizes"]
            mix = r.config["data"]["schedule"]["mixture"]
            want = dict(zip(DOM, shares, strict=True)) if r.labels["mix"] == "recommended" \
                else dict.fromkeys(DOM, 1 / 3)
            assert mix == pytest.approx(want) and r.labels["mix"] in ("recommended", uniform)
            assert r.config["init_seed"] == r.config["data_seed"] == int(r.labels["seed"])
        # same steps, batch, optimiser, data and evaluation as stage 1
        base1, base3 = MIX.grid_spec(quick)["base"], spec["base"]
        assert {k: v for k, v in base1.items() if k != "model"} == {k: v for k, v in base3.items() if k != "model"}


def _arm_rows(size: str, n_params: int, uniform: dict[int, float], rec: dict[int, float]) -> list[dict[str, Any]]:
    return ([{"size": size, "n_params": n_params, "arm": "uniform", "seed": s, "objective": v}
             for s, v in uniform.items()] +
            [{"size": size, "n_params": n_params, "arm": "recommended", "seed": s, "objective": v}
             for s, v in rec.items()])


def test_paired_by_seed_pairs_seeds_not_positions() -> None:
    # recommended listed in the opposite seed order, with an extra unpaired seed 7
    rows = _arm_rows("m", 10, {0: 2.50, 1: 2.40}, {7: 0.0, 1: 2.38, 0: 2.45})
    assert MIX.paired_by_seed(rows, "m") == pytest.approx({0: 0.05, 1: 0.02})
    with pytest.raises(DataError, match="no seed with both"):
        MIX.paired_by_seed(_arm_rows("m", 10, {0: 2.5}, {1: 2.4}), "m")
    with pytest.raises(DataError, match="two uniform runs with seed 0"):
        MIX.paired_by_seed(_arm_rows("m", 10, {0: 2.5}, {0: 2.4}) * 2, "m")


def test_size_effects_pool_the_paired_sd_over_sizes() -> None:
    # differences per seed: tiny (0.03, 0.01), small (0.00, 0.00), mini (0.05, -0.01); listed out of
    # size order, and seed 1's recommended run comes first at mini
    rows = (_arm_rows("small", 200_064, {0: 2.0, 1: 2.1}, {0: 2.0, 1: 2.1})
            + _arm_rows("tiny", 21_720, {0: 2.43, 1: 2.41}, {0: 2.40, 1: 2.40})
            + _arm_rows("mini", 84_912, {1: 2.29, 0: 2.35}, {1: 2.30, 0: 2.30}))
    eff = MIX.size_effects(rows, coverage=0.9)
    assert [e["size"] for e in eff] == ["tiny", "mini", "small"]
    assert [e["value"] for e in eff] == pytest.approx([0.02, 0.02, 0.0])
    # pooled SS = 2e-4 (tiny) + 0 (small) + 1.8e-3 (mini) over 3 df; t_{0.95, 3} = 2.3534
    sd = math.sqrt(2e-3 / 3)
    assert eff[0]["sd_pooled"] == pytest.approx(sd) and eff[0]["df"] == 3
    half = 2.353363434801823 * sd / math.sqrt(2)
    for e in eff:
        assert e["upper"] - e["value"] == pytest.approx(half)
        assert e["value"] - e["lower"] == pytest.approx(half)
        assert e["n"] == 2 and e["coverage"] == 0.9
    # each size's own interval: t_{0.95, 1} = 6.3138 x its own SD / sqrt(2)
    assert eff[1]["own_upper"] - eff[1]["value"] == pytest.approx(6.313751514675 * 0.06 / 2)
    assert eff[2]["own_lower"] == pytest.approx(0.0) and eff[2]["own_upper"] == pytest.approx(0.0)
    # one seed per size: a value, but no interval
    one = MIX.size_effects(_arm_rows("tiny", 21_720, {0: 2.5}, {0: 2.4}))
    assert one[0]["value"] == pytest.approx(0.1) and one[0]["lower"] is None and one[0]["own_upper"] is None
    with pytest.raises(DataError, match="coverage"):
        MIX.size_effects(rows, coverage=1.0)


def test_effects_rows_follow_the_contract_experiment_6_reads() -> None:
    caveat = load_experiment("scale_caveat/run.py", "exp_scale_caveat_for_mixture")
    rows = (_arm_rows("tiny", 21_720, {0: 2.43, 1: 2.41}, {0: 2.40, 1: 2.40})
            + _arm_rows("mini", 84_912, {0: 2.35, 1: 2.29}, {0: 2.30, 1: 2.30})
            + _arm_rows("small", 200_064, {0: 2.21, 1: 2.2}, {0: 2.2, 1: 2.2}))
    effs = MIX.effects(MIX.size_effects(rows), (0.317, 0.135, 0.548))
    checked = caveat.effect_rows({"effects": effs, "_path": "mixture"})
    assert [r["size"] for r in checked] == ["tiny", "mini", "small"]
    assert {r["effect"] for r in checked} == {"mixture:recommended_vs_uniform"}
    assert all(r["kind"] == "difference" and r["neutral"] == 0.0 and r["note"] == "" for r in checked)
    assert [r["value"] for r in checked] == pytest.approx([0.02, 0.02, 0.005])
    assert all(r["lower"] < r["value"] < r["upper"] for r in checked)
    res = caveat.assess(checked)
    assert res["status"] == "assessed" and res["verdict"] in ("persists", "vanishes", "undetermined")
    one = MIX.effects(MIX.size_effects(_arm_rows("tiny", 21_720, {0: 2.5}, {0: 2.4})), (0.2, 0.3, 0.5))
    assert one[0]["lower"] is None and "no interval" in one[0]["note"]


def test_scale_rows_take_the_exactly_uniform_centre_and_the_recommended_runs() -> None:
    def row(mixture: str, shares: tuple[float, ...], stage: str) -> dict[str, Any]:
        return {"run": f"{mixture}-{stage}", "stage": stage, "mixture": mixture, "size": "tiny",
                "n_params": 21_720, "seed": 0, "objective": 2.0,
                **{f"r_{d}": s for d, s in zip(DOM, shares, strict=True)}}

    uniform = MIX.mixture_label(MIX.UNIFORM)
    rows = [row(uniform, MIX.UNIFORM, "grid"), row("c80-d10-p10", (0.8, 0.1, 0.1), "grid"),
            row("recommended", (0.3, 0.2, 0.5), "recommended")]
    got = MIX.scale_rows(rows)
    assert [(r["mixture"], r["arm"]) for r in got] == [(uniform, "uniform"), ("recommended", "recommended")]
    with pytest.raises(DataError, match="not exactly uniform"):
        MIX.scale_rows([row(uniform, (0.33, 0.33, 0.34), "grid")])


def test_run_rows_record_the_model_size() -> None:
    c = _curves("recommended", 1, (1, 1, 2), {d: 2.0 for d in DOM})
    c["config"]["model"] = {"size": "mini"}
    r = MIX.run_rows({"x": c}, stage="scale")[0]
    assert (r["stage"], r["size"], r["n_params"], r["seed"]) == ("scale", "mini", 84_912, 1)
    c["config"]["model"] = {"size": "huge"}
    with pytest.raises(DataError, match="unknown model size 'huge'"):
        MIX.run_rows({"x": c})


def test_size_effects_with_the_grid_seed_noise() -> None:
    rows = (_arm_rows("tiny", 21_720, {0: 2.43, 1: 2.41}, {0: 2.40, 1: 2.40})
            + _arm_rows("mini", 84_912, {0: 2.35, 1: 2.29}, {0: 2.30, 1: 2.30}))
    eff = MIX.size_effects(rows, coverage=0.9, grid_sd=0.01, grid_df=12)
    # t_{0.95, 12} = 1.7823 x sqrt(2) x 0.01 / sqrt(2 seeds)
    for e in eff:
        assert e["grid_upper"] - e["value"] == pytest.approx(1.782287555649159 * 0.01)
        assert e["value"] - e["grid_lower"] == pytest.approx(1.782287555649159 * 0.01)
    assert MIX.size_effects(rows, grid_sd=None)[0]["grid_lower"] is None
