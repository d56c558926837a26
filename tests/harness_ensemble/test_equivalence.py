"""The ensemble equals sequential training member by member: forward pass, AdamW, records,
final parameters and checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from scalelab.harness._batched_adamw import BatchedAdamW, MemberHyper, clip_grad_norms
from scalelab.harness._stacked_gpt import StackedGPT
from scalelab.harness.ensemble import train_ensemble
from scalelab.harness.trainer import build_data, build_model, train
from scalelab.store.runs import RunStore

from .helpers import assert_close_records, make_config, members


def test_stacked_forward_is_the_gpt_forward_bit_for_bit() -> None:
    cfgs = [make_config(init_seed=s, data_seed=s) for s in range(3)]
    stream = build_data(cfgs[0])
    models = [build_model(c, stream.vocab_size) for c in cfgs]
    stack = StackedGPT(models)
    tokens = torch.stack([torch.from_numpy(build_data(c).batch(0, 16, 12)[0].tokens) for c in cfgs])  # (3, 16, 12)
    logits = stack.forward(stack.params, tokens[:, :, :-1])
    assert logits.shape == (3, 16, 11, stream.vocab_size)
    for k, model in enumerate(models):
        assert torch.equal(logits[k], model(tokens[k, :, :-1]))
    # a subset (as evaluation uses) is the same computation for those members
    sub = stack.forward(stack.subset([2, 0]), tokens[[2, 0], :, :-1])
    assert torch.equal(sub[0], logits[2]) and torch.equal(sub[1], logits[0])


def test_batched_adamw_and_clipping_match_torch_per_member() -> None:
    gen = torch.Generator().manual_seed(0)
    hyper = [MemberHyper((0.9, 0.95), 1e-8, 0.1), MemberHyper((0.8, 0.99), 1e-6, 0.0),
             MemberHyper((0.9, 0.95), 1e-8, 0.3)]
    clips = [1.0, 0.0, 5.0]
    flat = torch.randn(3, 23, generator=gen)  # (K, P): a 5x4 matrix, then a 3-vector
    adam = BatchedAdamW(flat, 20, hyper)
    refs = []
    for k, h in enumerate(hyper):
        w = torch.nn.Parameter(flat[k, :20].clone().view(5, 4))
        b = torch.nn.Parameter(flat[k, 20:].clone())
        opt = torch.optim.AdamW([{"params": [w], "weight_decay": h.weight_decay}, {"params": [b], "weight_decay": 0.0}],
                                lr=1.0, betas=h.betas, eps=h.eps)
        refs.append((w, b, opt))
    for t in range(25):
        grad = torch.randn(3, 23, generator=gen) * (t + 1)
        lrs = [1e-3 * (t + 1), 2e-3, 5e-3 / (t + 1)]
        clipped = grad.clone()
        norms = clip_grad_norms(clipped, clips)
        adam.step(clipped, lrs)
        for k, (w, b, opt) in enumerate(refs):
            w.grad, b.grad = grad[k, :20].clone().view(5, 4), grad[k, 20:].clone()
            if clips[k] > 0:
                total = torch.nn.utils.clip_grad_norm_([w, b], clips[k])
                assert norms[k].item() == pytest.approx(total.item(), rel=1e-6)
            for group in opt.param_groups:
                group["lr"] = lrs[k]
            opt.step()
    for k, (w, b, opt) in enumerate(refs):
        torch.testing.assert_close(flat[k], torch.cat([w.detach().reshape(-1), b.detach()]), rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(adam.exp_avg_sq[k, :20], opt.state[w]["exp_avg_sq"].reshape(-1), rtol=1e-6, atol=0)
    # member 1 has no clipping: the same float operations as torch.optim.AdamW, bit for bit
    assert torch.equal(flat[1], torch.cat([refs[1][0].detach().reshape(-1), refs[1][1].detach()]))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunStore, RunStore, list[Any]]:
    """The four members trained one after another, and as one ensemble (with both summaries)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("equivalence")
    seq, ens = RunStore(root / "sequential"), RunStore(root / "ensemble")
    cfgs = members()
    expected = [train(c, seq.run(f"m{i}")) for i, c in enumerate(cfgs)]
    summaries = train_ensemble(cfgs, [ens.run(f"m{i}") for i in range(len(cfgs))])
    return seq, ens, list(zip(summaries, expected, strict=True))


def test_every_member_writes_the_sequential_records_to_float_tolerance(trained) -> None:
    seq, ens, pairs = trained
    worst = 0.0
    for i in range(4):
        got, expected = ens.run(f"m{i}").read_metrics(), seq.run(f"m{i}").read_metrics()
        assert {r["metric"] for r in got} == {"online_loss", "loss", "acc", "lr", "tokens_per_s"}
        worst = max(worst, assert_close_records(got, expected, rel=1e-5))
    assert worst > 0  # really two computations (batched products sum in another order)
    for got, want in pairs:
        assert (got.step, got.finished, got.resumed_from, got.tokens, got.flops, got.params) == (
            want.step, want.finished, want.resumed_from, want.tokens, want.flops, want.params)
        assert got.final_eval.keys() == want.final_eval.keys()
        for skill, metrics in want.final_eval.items():
            assert got.final_eval[skill] == pytest.approx(metrics, rel=1e-5)


def test_members_end_with_the_sequential_parameters_and_checkpoint_format(trained) -> None:
    seq, ens, _ = trained
    for i in range(4):
        a, b = seq.run(f"m{i}").load_checkpoint(), ens.run(f"m{i}").load_checkpoint()
        assert a is not None and b is not None
        assert a.keys() == b.keys()
        for key in ("format", "step", "data_cursor", "config", "scheduler"):
            assert a[key] == b[key], key
        assert a["optimizer"]["param_groups"] == b["optimizer"]["param_groups"]
        assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
        assert a["model"].keys() == b["model"].keys()
        flat_a = torch.cat([v.reshape(-1) for v in a["model"].values()])
        flat_b = torch.cat([v.reshape(-1) for v in b["model"].values()])
        # Adam turns float noise in near-zero gradients (e.g. the key bias, whose true gradient
        # is 0) into O(lr) steps, so single tensors drift more; the model as a whole stays close.
        assert ((flat_a - flat_b).norm() / flat_a.norm()).item() < 1e-5  # measured: up to 9e-7
        state_a, state_b = a["optimizer"]["state"], b["optimizer"]["state"]
        assert state_a.keys() == state_b.keys()
        for j in state_a:
            assert torch.equal(state_a[j]["step"], state_b[j]["step"])
            assert state_a[j]["exp_avg"].shape == state_b[j]["exp_avg"].shape


def test_members_are_ordinary_runs_of_the_store(trained, tmp_path: Path) -> None:
    seq, ens, _ = trained
    infos = {i.run_id: i for i in ens.runs()}
    assert {i.status for i in infos.values()} == {"finished"}
    status = ens.run("m1").read_status()
    assert status["ensemble"] == {"members": 4, "runs": ["m0", "m1", "m2", "m3"], "index": 1}
    assert status["n_params_nonembedding"] == seq.run("m1").read_status()["n_params_nonembedding"]
    assert ens.run("m1").provenance()["ensemble"]["members"] == 4
    a, b = seq.export(), ens.export()
    assert a.columns == b.columns
    assert len(a) == len(b)
    for name in ("run", "step", "tokens", "flops", "split", "source", "metric", "init_seed", "n_params_nonembedding"):
        assert list(a[name]) == list(b[name]), name

