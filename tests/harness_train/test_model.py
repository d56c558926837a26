"""The GPT model: shapes, causal masking, weight tying and parameter counts."""

from __future__ import annotations

import pytest
import torch

from scalelab.errors import DataError
from scalelab.harness.model import GPT, SIZE_LADDER, GPTConfig, count_params, non_embedding_params


def make(n_layer: int = 2, n_head: int = 2, d_model: int = 16, vocab: int = 11, block: int = 8, seed: int = 0) -> GPT:
    return GPT(GPTConfig(n_layer, n_head, d_model, vocab, block), generator=torch.Generator().manual_seed(seed))


def test_logits_shape() -> None:
    model = make()
    idx = torch.randint(0, 11, (3, 8), generator=torch.Generator().manual_seed(1))
    assert model(idx).shape == (3, 8, 11)
    assert model(idx[:, :5]).shape == (3, 5, 11)


def test_changing_a_future_token_leaves_earlier_logits_unchanged() -> None:
    model = make(n_layer=3).eval()
    idx = torch.randint(0, 11, (2, 8), generator=torch.Generator().manual_seed(2))
    changed = idx.clone()
    changed[:, 5] = (changed[:, 5] + 1) % 11
    a, b = model(idx), model(changed)
    assert torch.equal(a[:, :5], b[:, :5])
    assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_hand_count_of_a_small_config() -> None:
    # d=16, 2 layers, vocab 11, block 8.
    d, L, V, T = 16, 2, 11, 8
    per_block = (2 * d) + (3 * d * d + 3 * d) + (d * d + d) + (2 * d) + (4 * d * d + 4 * d) + (4 * d * d + d)
    non_embedding = L * per_block + 2 * d  # blocks + final LayerNorm
    total = non_embedding + V * d + T * d  # token table (tied with the head) + positions
    assert count_params(make()) == (total, non_embedding)
    assert non_embedding_params(L, d) == non_embedding


def test_head_is_tied_to_token_embedding() -> None:
    model = make()
    assert model.lm_head.weight is model.wte.weight


def test_ladder_spans_20k_to_5m_non_embedding_params() -> None:
    counts = [non_embedding_params(s.n_layer, s.d_model) for s in SIZE_LADDER.values()]
    assert counts == sorted(counts)
    assert 15_000 <= counts[0] <= 25_000
    assert 4_000_000 <= counts[-1] <= 5_500_000
    for s in SIZE_LADDER.values():
        assert s.d_model % s.n_head == 0


def test_init_is_a_function_of_the_generator_seed() -> None:
    a, b, c = make(seed=3), make(seed=3), make(seed=4)
    for (name, pa), pb, pc in zip(a.named_parameters(), b.parameters(), c.parameters(), strict=True):
        assert torch.equal(pa, pb), name
        if pa.dim() >= 2:
            assert not torch.equal(pa, pc), name


def test_bad_shapes_raise_data_errors() -> None:
    with pytest.raises(DataError, match="not divisible by n_head"):
        GPTConfig(1, 3, 16, 11, 8)
    with pytest.raises(DataError, match="longer than block_size"):
        make()(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(DataError, match="unknown model size"):
        GPTConfig.from_size("huge", vocab_size=11, block_size=8)
