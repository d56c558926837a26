"""LEGO chained variable resolution (Zhang et al. 2022; Skill-it!): answers, depths, eval sets."""

from __future__ import annotations

import numpy as np
import pytest

from scalelab.errors import DataError
from scalelab.harness.sources import CompositionalSource, make_source
from scalelab.harness.vocab import decode


def _depth(prompt: str) -> int:
    """How many clauses the queried variable is from the literal (1 = the literal itself)."""
    body, query = prompt.rstrip("?").rsplit(";", 1)
    rules = dict(c.split("=") for c in body.split(";"))
    depth = 1
    while rules[query][1:] != "1":
        query, depth = rules[query][1:], depth + 1
    return depth


def _parse(batch):
    out = []
    for row, mask in zip(batch.tokens, batch.answer_mask, strict=True):
        text = decode(row)
        prompt, answer = text[: text.index("?") + 1], text[text.index("?") + 1 :]
        assert decode(row[1:][mask]) == answer
        out.append((prompt, answer))
    return out


def test_answers_are_correct_at_every_depth():
    src = CompositionalSource(max_depth=5, seed=3, eval_size=40)
    evals = src.eval_sets(src.min_seq_len())
    assert list(evals) == [f"lego/{k}" for k in range(1, 6)]
    for k in range(1, 6):
        for prompt, answer in _parse(evals[f"lego/{k}"]):
            assert _depth(prompt) == k
            assert int(answer) == CompositionalSource.resolve(prompt)
            assert len(prompt.split(";")) == 6  # always the full chain: 5 clauses + query
    rows = _parse(src.sample(np.random.default_rng(0), 300, src.min_seq_len()))
    assert {_depth(p) for p, _ in rows} == set(range(1, 6))
    assert all(int(a) == CompositionalSource.resolve(p) for p, a in rows)
    assert {a for _, a in rows} == {"+1", "-1"}


def test_resolve_is_an_independent_check():
    assert CompositionalSource.resolve("b=-a;c=+b;a=+1;c?") == -1
    assert CompositionalSource.resolve("a=-1;b=-a;b?") == 1


def test_depth_weights_and_single_depth_sources_for_curricula():
    src = CompositionalSource(max_depth=3, depths=[1, 3], depth_weights=[3.0, 1.0], eval_size=8)
    depths = [_depth(p) for p, _ in _parse(src.sample(np.random.default_rng(0), 4000, 24))]
    assert set(depths) == {1, 3}
    assert abs(depths.count(1) / 4000 - 0.75) < 0.03
    assert src.name == "lego" and set(src.eval_sets(24)) == {"lego/1", "lego/3"}
    one = make_source("compositional", max_depth=3, depths=[3], eval_size=8)
    assert one.name == "lego/3" and list(one.eval_sets(24)) == ["lego/3"]
    # eval sets depend on seed and chain length only, so per-depth sources share them
    np.testing.assert_array_equal(one.eval_sets(24)["lego/3"].tokens, src.eval_sets(24)["lego/3"].tokens)
    wide = CompositionalSource(max_depth=3, depths=[1], eval_depths=[1, 2, 3], eval_size=8)
    assert set(wide.eval_sets(24)) == {"lego/1", "lego/2", "lego/3"}


def test_held_out_examples_never_appear_in_training():
    # 2-variable chains in order: 26 * 25 * 4 = 2600 examples per depth; 1300 held out
    src = CompositionalSource(max_depth=2, shuffle=False, eval_size=1300, seed=1)
    held = {p + a for b in src.eval_sets(16).values() for p, a in _parse(b)}
    train = {p + a for p, a in _parse(src.sample(np.random.default_rng(2), 3000, 16))}
    assert len(held) == 2600 and not train & held


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_depth": 27}, "max_depth"),
        ({"max_depth": 3, "depths": [4]}, "depths"),
        ({"depths": []}, "non-empty list"),
        ({"depths": [1, 1]}, "twice"),
        ({"depths": [1, 2], "depth_weights": [1.0]}, "one weight per depth"),
        ({"depths": [1, 2], "depth_weights": [0, 0]}, "sum to 0"),
        ({"depths": [1, 2], "depth_weights": [-1, 2]}, ">= 0"),
        ({"max_depth": 1}, "eval_size"),
        ({"shuffle": "yes"}, "shuffle"),
    ],
)
def test_bad_options_raise(options, message):
    with pytest.raises(DataError, match=message):
        make_source("compositional", **options)
