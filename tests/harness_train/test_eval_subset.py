"""An eval set larger than ``eval.max_examples`` is cut to rows spread over it, not its first
rows: sources keep held-out examples in key order, so the first rows are a biased sample."""

from __future__ import annotations

import numpy as np
import torch

from scalelab.harness.evaluation import prepare_eval_sets, spread_rows
from scalelab.harness.sources import make_source
from scalelab.harness.sources.base import EvalSet


def test_spread_rows_keeps_all_or_an_even_spread() -> None:
    assert spread_rows(10, 10) == slice(None)
    assert spread_rows(10, 512) == slice(None)
    rows = spread_rows(1000, 5)
    assert isinstance(rows, np.ndarray)
    assert rows.tolist() == [0, 250, 500, 749, 999]
    assert len(spread_rows(1000, 512)) == 512 and len(set(spread_rows(1000, 512).tolist())) == 512


def test_addition_eval_subset_covers_every_first_operand() -> None:
    # the held-out pairs are stored sorted by key (first operand first); keeping the first 100
    # of 1,000 would only test first operands below ~100
    src = make_source("addition", digits=3, format="plain", eval_size=1000)
    seq_len = src.min_seq_len()
    sets = src.eval_sets(seq_len)
    (name, batch), = sets.items()
    data = prepare_eval_sets({name: EvalSet(name, name, "task", batch)}, 100, torch.device("cpu"))[0]
    assert data.tokens.shape[0] == 100
    text = [bytes(int(t) for t in row if 32 <= int(t) < 127).decode() for row in data.tokens]
    first = np.array([int(t.split("+")[0]) for t in text])
    assert first.min() < 50 and first.max() > 900
    assert 350 < first.mean() < 650
