"""The causal MLP model family (``model.kind = "mlp"``): the model, its config, its parameter
counts, training through the harness, and the batched ensemble's guard."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from scalelab.errors import DataError
from scalelab.harness.config import RunConfig, mlp_params
from scalelab.harness.mlp import CausalMLP, MLPConfig
from scalelab.harness.model import count_params
from scalelab.store.runs import RunStore

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make(n_layer: int = 2, d_model: int = 16, vocab: int = 11, block: int = 8, seed: int = 0) -> CausalMLP:
    return CausalMLP(MLPConfig(n_layer, d_model, vocab, block), generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- the model
def test_logits_shape_and_short_sequences() -> None:
    model = make()
    idx = torch.randint(0, 11, (3, 8), generator=torch.Generator().manual_seed(1))
    assert model(idx).shape == (3, 8, 11)
    assert torch.equal(model(idx[:, :5]), model(idx)[:, :5])  # a prefix gives the prefix's logits


def test_position_t_sees_its_whole_prefix_and_nothing_after_it() -> None:
    model = make(n_layer=3).eval()
    idx = torch.randint(0, 11, (2, 8), generator=torch.Generator().manual_seed(2))
    changed = idx.clone()
    changed[:, 5] = (changed[:, 5] + 1) % 11
    a, b = model(idx), model(changed)
    assert torch.equal(a[:, :5], b[:, :5])
    for t in range(5, 8):  # every later position reads token 5
        assert not torch.allclose(a[:, t], b[:, t])
    first = idx.clone()
    first[:, 0] = (first[:, 0] + 1) % 11
    assert not torch.allclose(model(first)[:, 7], a[:, 7])  # the last position reads the first token


def test_input_layer_is_a_linear_layer_on_the_zero_padded_one_hot_prefix() -> None:
    V, T, d = 11, 8, 16
    model = make(n_layer=2, d_model=d, vocab=V, block=T, seed=5)
    with torch.no_grad():  # non-zero biases, so the position-specific bias is checked too
        model.inp_bias.weight.normal_(generator=torch.Generator().manual_seed(6))
    idx = torch.randint(0, V, (4, T), generator=torch.Generator().manual_seed(7))
    W = model.inp.weight.detach().view(T, V, d).reshape(T * V, d)  # (T V, d)
    onehot = torch.nn.functional.one_hot(idx, V).float()  # (B, T, V)
    out = model(idx)
    for t in range(T):
        x = torch.zeros(4, T, V)
        x[:, : t + 1] = onehot[:, : t + 1]  # the prefix x_0..x_t, zeros after it
        h = torch.relu(x.reshape(4, T * V) @ W + model.inp_bias.weight[t])  # (B, d)
        h = torch.relu(model.hidden[0](h))
        torch.testing.assert_close(out[:, t], model.head(h), rtol=1e-5, atol=1e-5)


def test_parameter_counts_by_hand_and_by_formula() -> None:
    d, L, V, T = 16, 3, 11, 8
    hidden = (L - 1) * (d * d + d)
    head = d * V + V
    total = hidden + head + T * V * d + T * d  # + the input table and its per-position bias
    model = make(n_layer=L, d_model=d, vocab=V, block=T)
    assert count_params(model) == (total, hidden + head)
    assert mlp_params(L, d, vocab_size=V, block_size=T) == (total, hidden + head)
    for n_layer, width, vocab, block in [(1, 64, 259, 20), (4, 32, 300, 45)]:
        m = make(n_layer, width, vocab, block)
        assert count_params(m) == mlp_params(n_layer, width, vocab_size=vocab, block_size=block)


def test_init_is_a_function_of_the_generator_seed() -> None:
    a, b, c = make(seed=3), make(seed=3), make(seed=4)
    assert all(torch.equal(pa, pb) for pa, pb in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(a.inp.weight, c.inp.weight)


def test_bad_inputs_raise_data_errors() -> None:
    model = make(vocab=11, block=8)
    with pytest.raises(DataError, match="longer than block_size 8"):
        model(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(DataError, match=r"token ids must be in \[0, 11\)"):  # would alias another position
        model(torch.full((1, 4), 11, dtype=torch.long))
    with pytest.raises(DataError, match=r"MLPConfig\.d_model must be a positive integer"):
        MLPConfig(1, 0, 11, 8)
    with pytest.raises(DataError, match="dropout"):
        MLPConfig(1, 8, 11, 8, dropout=1.0)


# ----------------------------------------------------------------------------- the run config
PARITY: dict[str, Any] = {
    "steps": 300,
    "device": "cpu",
    "checkpoint_every": 0,
    "model": {"kind": "mlp", "n_layer": 1, "d_model": 64},
    "optim": {"lr": 3e-3, "weight_decay": 0.0, "min_lr_ratio": 1.0},
    "eval": {"count": 6, "max_examples": 64},
    "data": {"seq_len": 12, "batch_size": 64, "sources": {"parity": {
        "kind": "parity", "options": {"n_tasks": 2, "n_bits": 5, "k": 2, "zipf_exponent": -1.0,
                                      "eval_size": 8}}}},
}


def config(**changes: Any) -> RunConfig:
    d = copy.deepcopy(PARITY)
    for key, value in changes.items():
        if key == "model":
            d["model"] = value
        else:
            d[key] = value
    return RunConfig.from_dict(d)


def test_kind_parses_and_the_default_kind_is_left_out_of_the_stored_config() -> None:
    cfg = config()
    assert cfg.model.kind == "mlp" and cfg.model.size is None and cfg.model.n_head is None
    assert cfg.model.dims().n_layer == 1 and cfg.model.dims().d_model == 64
    assert cfg.to_dict()["model"]["kind"] == "mlp"
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    gpt = config(model={"size": "tiny"})
    explicit = config(model={"kind": "gpt", "size": "tiny"})
    assert gpt.model.kind == "gpt" and gpt == explicit
    # GPT configs serialise exactly as before model.kind existed (stored configs, resume checks)
    assert "kind" not in gpt.to_dict()["model"]
    assert gpt.to_dict()["model"] == {"size": "tiny", "dropout": 0.0}
    assert RunConfig.from_dict(gpt.to_dict()) == gpt


def test_grid_run_ids_of_gpt_configs_do_not_change() -> None:
    from scalelab.harness.grid import parse_grid

    base = copy.deepcopy(PARITY)
    base["model"] = {"size": "tiny"}
    spec = {"name": "g", "base": base, "axis": [{"name": "seed", "path": "init_seed", "values": [0]}]}
    (run,) = parse_grid(spec).runs()
    # the id hashes the config as written; pinned with the code before model.kind existed
    assert run.run_id == "g_seed-0_9d3d2ae1"


@pytest.mark.parametrize(("model", "message"), [
    ({"kind": "rnn", "size": "tiny"}, "model.kind must be one of gpt, mlp, got 'rnn'"),
    ({"kind": "mlp", "size": "tiny", "n_layer": 1, "d_model": 8}, "model.size does not apply to kind 'mlp'"),
    ({"kind": "mlp", "n_layer": 1, "n_head": 2, "d_model": 8}, "model.n_head does not apply to kind 'mlp'"),
    ({"kind": "mlp", "n_layer": 1}, "model is missing d_model; kind 'mlp' needs n_layer"),
    ({"kind": "mlp", "n_layer": 0, "d_model": 8}, "model.n_layer must be positive"),
])
def test_bad_mlp_configs_name_the_field(model: dict[str, Any], message: str) -> None:
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config(model=model)


# ----------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, list[dict[str, Any]], Path]:
    """An MLP trained by the harness on 2-bit sparse parity (two subtasks of 5 bits)."""
    from scalelab.harness.trainer import train

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("mlp")
    run = RunStore(root).run("mlp")
    summary = train(config(checkpoint_every=100), run)
    return summary, list(run.read_metrics()), root


def test_the_harness_trains_the_mlp_to_solve_sparse_parity(trained: tuple[Any, list[dict[str, Any]], Path]) -> None:
    summary, records, root = trained
    assert summary.finished
    total, non_embedding = mlp_params(1, 64, vocab_size=259, block_size=12)
    assert (summary.params, summary.non_embedding_params) == (total, non_embedding)
    status = json.loads((root / "mlp" / "status.json").read_text())
    assert status["n_params"] == total and status["n_params_nonembedding"] == non_embedding
    first = [r for r in records if r["split"] == "eval" and r["metric"] == "acc" and r["step"] == 0]
    assert all(r["value"] < 0.9 for r in first)
    assert summary.final_eval["parity/0"]["acc"] == 1.0 and summary.final_eval["parity/1"]["acc"] == 1.0
    for r in records:
        assert r["flops"] == 6.0 * non_embedding * r["tokens"]


def test_a_paused_mlp_run_resumes_to_the_same_records(
        trained: tuple[Any, list[dict[str, Any]], Path], tmp_path: Path) -> None:
    from scalelab.harness.trainer import train

    _, reference, _ = trained
    run = RunStore(tmp_path).run("mlp")
    cfg = config(checkpoint_every=100)
    assert not train(cfg, run, stop_after=150).finished
    assert train(cfg, run).resumed_from == 150

    def same(rs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**r, "value": None} if r["metric"] == "tokens_per_s" else r for r in rs]

    assert same(list(run.read_metrics())) == same(reference)


# ----------------------------------------------------------------------------- ensembles and grids
def test_the_ensemble_never_stacks_mlps(tmp_path: Path) -> None:
    from scalelab.harness.ensemble import ensemble_problem, plan_groups, train_ensemble

    mlps = [config(init_seed=s, steps=3) for s in range(3)]
    gpts = [config(model={"size": "tiny"}, init_seed=s, steps=3) for s in range(2)]
    assert "stacks GPTs only" in (ensemble_problem(mlps[0]) or "")
    assert ensemble_problem(gpts[0]) is None
    assert plan_groups([*mlps, *gpts], 8) == [[0], [1], [2], [3, 4]]  # MLPs alone, GPTs together
    store = RunStore(tmp_path)
    with pytest.raises(DataError, match=r"cannot train in an ensemble: model\.kind is 'mlp'"):
        train_ensemble(mlps[:2], [store.run("a"), store.run("b")])
    assert not store.run("a").exists  # refused before anything was written


def test_a_grid_with_ensembles_trains_mlp_cells_on_their_own(tmp_path: Path) -> None:
    from scalelab.harness.executors import LocalExecutor, run_grid
    from scalelab.harness.grid import parse_grid

    base = copy.deepcopy(PARITY)
    base["steps"] = 4
    spec = {"name": "m", "base": base, "axis": [{"name": "seed", "path": "init_seed", "values": [0, 1]}]}
    runs = parse_grid(spec).runs()
    summary = run_grid(runs, str(tmp_path), LocalExecutor(workers=1, threads=1), ensemble=4)
    assert [o.status for o in summary.outcomes] == ["finished", "finished"]
    store = RunStore(tmp_path)
    for r in runs:
        assert store.run(r.run_id).config()["model"]["kind"] == "mlp"
        assert "ensemble" not in store.run(r.run_id).provenance()  # trained sequentially, not as a batched ensemble


def test_experiments_n_params_counts_mlp_configs() -> None:
    from tests.experiments._loader import load_experiment

    C = load_experiment("_common.py", "_common")
    cfg = copy.deepcopy(PARITY)
    assert C.n_params(cfg) == mlp_params(1, 64, vocab_size=259, block_size=12)[1]
    cfg["model"] = {"kind": "mlp", "n_layer": 2, "d_model": 32, "block_size": 20}
    from scalelab.harness.trainer import build_model

    model = build_model(RunConfig.from_dict(cfg), 259)
    assert C.n_params(cfg) == count_params(model)[1]
    assert C.n_params({"model": {"size": "tiny"}}) == 21_720  # the GPT count is unchanged
