"""Mixture recommendation from a data-mixing law per target, on synthetic runs with a known law."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scalelab.errors import DataError
from scalelab.predict.mixture import _evaluate, _minimise, recommend_mixture

DOMAINS = ["w_code", "w_text", "w_math"]
# true laws L = c + k exp(t . r): code loss helped by code, text loss helped by text
TRUTH = np.array([[1.0, 1.2, -2.0, 0.0, 0.3], [1.5, 1.0, 0.2, -2.5, 0.0]])
HALF = np.array([0.5, 0.5])


def runs(seed: int, n: int = 16, noise: float = 0.01) -> dict[str, list]:
    """``n`` runs with Dirichlet(2, 2, 2) mixtures and log-normal noise on each loss."""
    rng = np.random.default_rng(seed)
    W = rng.dirichlet(np.full(3, 2.0), size=n)
    out: dict[str, list] = {"run": [f"mix{i}" for i in range(n)]}
    out.update({d: W[:, j].tolist() for j, d in enumerate(DOMAINS)})
    for name, theta in zip(("loss_code", "loss_text"), TRUTH, strict=True):
        loss = theta[0] + theta[1] * np.exp(W @ theta[2:])
        out[name] = (loss * np.exp(noise * rng.standard_normal(n))).tolist()
    return out


def proportions(data: dict[str, list]) -> np.ndarray:
    return np.array([data[d] for d in DOMAINS]).T


def true_optimum(data: dict[str, list]) -> np.ndarray:
    W = proportions(data)
    return _minimise(TRUTH, HALF, W.min(axis=0), W.max(axis=0), [W.mean(axis=0)])


def test_recommended_mixture_and_gain_cover_the_true_law() -> None:
    data = runs(0)
    res = recommend_mixture(
        data, domains=DOMAINS, targets=["loss_code", "loss_text"], run_col="run", seed=0
    )
    truth = true_optimum(data)  # [0.452, 0.431, 0.117]: math at its smallest observed share
    for j, d in enumerate(DOMAINS):
        assert res.weights_low[d] - 1e-9 <= truth[j] <= res.weights_high[d] + 1e-9, d
        assert res.weights[d] == pytest.approx(truth[j], abs=0.02), d
    assert sum(res.weights.values()) == pytest.approx(1.0)
    r = np.array([res.weights[d] for d in DOMAINS])
    true_gain = float(_evaluate(TRUTH, HALF, np.full(3, 1 / 3)) - _evaluate(TRUTH, HALF, r))
    assert res.gain_low <= true_gain <= res.gain_high
    assert res.gain == pytest.approx(true_gain, rel=0.05)  # 0.135 in loss
    assert res.gain_low > 0 and res.relative_gain > 0.04
    assert res.reference == "uniform" and res.reference_weights["w_code"] == pytest.approx(1 / 3)
    # objective = the mean of the two targets' predictions
    code, text = res.targets
    assert res.objective == pytest.approx(0.5 * code.recommended + 0.5 * text.recommended)
    assert code.rmse < 0.05 and text.rmse < 0.05
    assert res.at_edge == ("w_math",) and any("edge" in n for n in res.notes)
    assert res.n_runs == 16 and res.n_resamples == 200 and res.n_failed == 0
    d = res.to_dict()
    assert d["schema"] == "scalelab.mixture/1" and d["weights"]["w_code"] == res.weights["w_code"]


def test_one_target_goes_to_the_corner_of_its_most_helpful_domain() -> None:
    data = runs(1)
    res = recommend_mixture(data, domains=DOMAINS, targets="loss_code", bootstrap=50)
    W = proportions(data)
    assert res.weights["w_code"] == pytest.approx(W[:, 0].max(), abs=1e-6)
    assert any("corner" in n for n in res.notes)
    assert res.targets[0].params["t1"] < res.targets[0].params["t2"]  # code helps code


def test_references_best_observed_and_given_proportions() -> None:
    data = runs(2)
    best = recommend_mixture(
        data,
        domains=DOMAINS,
        targets=["loss_code", "loss_text"],
        reference="best",
        run_col="run",
        bootstrap=50,
    )
    measured = 0.5 * np.array(data["loss_code"]) + 0.5 * np.array(data["loss_text"])
    i = int(np.argmin(measured))
    assert best.reference_run == f"mix{i}"
    assert best.reference_measured == pytest.approx(measured[i])
    assert best.reference_weights["w_text"] == pytest.approx(data["w_text"][i])
    assert best.gain >= 0  # the optimum of the fitted law is at least as good
    given = recommend_mixture(
        data,
        domains=DOMAINS,
        targets={"loss_code": 3, "loss_text": 1},
        reference={"w_code": 0.5, "w_text": 0.5},
        bootstrap=50,
    )
    assert given.reference == "given" and given.reference_weights["w_math"] == 0.0
    assert [t.weight for t in given.targets] == [0.75, 0.25]
    assert given.weights["w_code"] > best.weights["w_code"]  # code loss weighs 3x more


def test_amounts_are_rescaled_with_normalize_and_runs_resampled_whole() -> None:
    data = runs(3, n=10)
    amounts = {**data, **{d: [7.0 * v for v in data[d]] for d in DOMAINS}}
    a = recommend_mixture(data, domains=DOMAINS, targets=["loss_code", "loss_text"], bootstrap=50)
    b = recommend_mixture(
        amounts, domains=DOMAINS, targets=["loss_code", "loss_text"], normalize=True, bootstrap=50
    )
    assert b.weights == pytest.approx(a.weights, abs=1e-6)
    assert b.gain == pytest.approx(a.gain, rel=1e-6)
    # every run evaluated twice (two seeds of one mixture): resampling by run keeps pairs
    twice = {k: v + v for k, v in data.items()}
    c = recommend_mixture(
        twice, domains=DOMAINS, targets=["loss_code", "loss_text"], run_col="run", bootstrap=50
    )
    assert c.n_runs == 20 and c.weights == pytest.approx(a.weights, abs=1e-3)


def test_simplex_region_can_leave_the_observed_shares() -> None:
    data = runs(4)
    res = recommend_mixture(
        data, domains=DOMAINS, targets=["loss_code", "loss_text"], region="simplex", bootstrap=50
    )
    assert res.bounds["w_math"] == (0.0, 1.0)
    assert res.weights["w_math"] < min(data["w_math"])  # math helps neither target: drop it


def test_bad_input_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    data = runs(5, n=8)
    off = {**data, "w_math": [v + 0.1 for v in data["w_math"]]}
    with pytest.raises(DataError, match=r"row 0 sum to 1\.1, not 1 \(8 row\(s\).*--normalize"):
        recommend_mixture(off, domains=DOMAINS, targets="loss_code")
    neg = {**data, "w_code": [-0.1, *data["w_code"][1:]]}
    with pytest.raises(DataError, match="negative proportion at row 0"):
        recommend_mixture(neg, domains=DOMAINS, targets="loss_code", normalize=True)
    zero = {**data, **{d: [0.0, *data[d][1:]] for d in DOMAINS}}
    with pytest.raises(DataError, match=r"row 0 sum to 0.*positive total"):
        recommend_mixture(zero, domains=DOMAINS, targets="loss_code", normalize=True)
    few = {k: v[:5] for k, v in data.items()}
    with pytest.raises(DataError, match=r"5 run\(s\) for 3 domains.*at least 6 runs"):
        recommend_mixture(few, domains=DOMAINS, targets="loss_code")
    with pytest.raises(DataError, match=r"unknown column 'loss_cod'.*did you mean 'loss_code'"):
        recommend_mixture(data, domains=DOMAINS, targets="loss_cod")
    with pytest.raises(DataError, match="at least 2 domain columns"):
        recommend_mixture(data, domains=["w_code"], targets="loss_code")
    bad_loss = {**data, "loss_code": [0.0, *data["loss_code"][1:]]}
    with pytest.raises(DataError, match="'loss_code' has 1 non-positive"):
        recommend_mixture(bad_loss, domains=DOMAINS, targets="loss_code")
    with pytest.raises(DataError, match=r"3 proportion\(s\)|2 proportion"):
        recommend_mixture(data, domains=DOMAINS, targets="loss_code", reference=[0.5, 0.5])
    with pytest.raises(DataError, match="reference must be 'uniform', 'best'"):
        recommend_mixture(data, domains=DOMAINS, targets="loss_code", reference="equal")
    with pytest.raises(DataError, match="at least 20 resamples"):
        recommend_mixture(data, domains=DOMAINS, targets="loss_code", bootstrap=5)
    with pytest.raises(DataError, match="region must be"):
        recommend_mixture(data, domains=DOMAINS, targets="loss_code", region="box")
    with pytest.raises(DataError, match="target weights must be positive"):
        recommend_mixture(data, domains=DOMAINS, targets={"loss_code": 0})
    path = tmp_path / "mix.csv"
    path.write_text("run,w_code,w_text,loss\n" + "".join(f"r{i},0.5,0.5,3\n" for i in range(6)))
    with pytest.raises(DataError, match="matched none"):
        recommend_mixture(path, domains=["w_code", "w_text"], targets="loss", where="loss > 5")


@pytest.mark.slow
def test_gain_interval_covers_the_true_gain_at_about_the_nominal_rate() -> None:
    """40 synthetic studies (16 runs, 1% noise, 100 resamples each): measured 0.95 and 0.95.

    The gain interval should cover the true gain of the recommended mixture over uniform, and
    the re-optimised share intervals the true optimum (all three domains at once).
    """
    inside = inside_weights = 0
    for seed in range(40):
        data = runs(100 + seed)
        res = recommend_mixture(
            data, domains=DOMAINS, targets=["loss_code", "loss_text"], bootstrap=100, seed=seed
        )
        r = np.array([res.weights[d] for d in DOMAINS])
        true_gain = float(_evaluate(TRUTH, HALF, np.full(3, 1 / 3)) - _evaluate(TRUTH, HALF, r))
        inside += res.gain_low <= true_gain <= res.gain_high
        truth = true_optimum(data)
        inside_weights += all(
            res.weights_low[d] - 1e-9 <= truth[j] <= res.weights_high[d] + 1e-9
            for j, d in enumerate(DOMAINS)
        )
    print(f"coverage: gain {inside / 40:.3f}, optimum shares {inside_weights / 40:.3f}")
    assert inside >= 34  # 85%: a binomial(40, 0.95) falls below this with probability < 1%
    assert inside_weights >= 34
