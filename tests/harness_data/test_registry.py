"""The source registry and one conformance check run over every registered source kind."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import numpy as np
import pytest

from scalelab.errors import DataError
from scalelab.harness.sources import Source, available_sources, make_source, source_options
from scalelab.harness.vocab import BOS, EOS, PAD

# small but valid options for every kind; the check below fails if a kind is missing
SMALL = {
    "modular": {"p": 11, "train_fraction": 0.4, "seed": 3},
    "addition": {"digits": 2, "format": "detailed_scratchpad", "eval_size": 20, "seed": 3},
    "parity": {"n_tasks": 4, "n_bits": 10, "k": 3, "eval_size": 8, "seed": 3},
    "compositional": {"max_depth": 3, "eval_size": 16, "seed": 3},
    "text": {"domain": "python_prose", "eval_size": 8, "seed": 3},
}


def test_every_kind_is_registered():
    assert available_sources() == sorted(SMALL)


@pytest.fixture(scope="module", params=sorted(SMALL))
def source(request) -> Source:
    return make_source(request.param, **SMALL[request.param])


def _seq_len(src) -> int:
    return max(src.min_seq_len(), 24)


def test_source_protocol_and_config_round_trip(source):
    assert isinstance(source, Source) and source.kind in {"task", "text"}
    config = source.config()
    assert json.loads(json.dumps(config)) == config
    rebuilt = make_source(**config)
    assert rebuilt.config() == config and rebuilt.name == source.name


def test_sampling_is_a_function_of_the_generator(source):
    seq_len = _seq_len(source)
    a = source.sample(np.random.default_rng(5), 16, seq_len)
    b = source.sample(np.random.default_rng(5), 16, seq_len)
    c = source.sample(np.random.default_rng(6), 16, seq_len)
    np.testing.assert_array_equal(a.tokens, b.tokens)
    np.testing.assert_array_equal(a.loss_mask, b.loss_mask)
    assert not np.array_equal(a.tokens, c.tokens)


def test_eval_sets_are_fixed_by_the_sources_own_seed(source):
    seq_len = _seq_len(source)
    first = source.eval_sets(seq_len)
    again = make_source(**source.config()).eval_sets(seq_len)
    assert first and list(first) == list(again)
    for skill in first:
        np.testing.assert_array_equal(first[skill].tokens, again[skill].tokens)
    other = make_source(**{**source.config(), "seed": 4}).eval_sets(seq_len)
    assert any(not np.array_equal(first[s].tokens, other[s].tokens) for s in first)


def test_rows_follow_the_layout_and_masks_never_cover_pad(source):
    seq_len = _seq_len(source)
    batches = [source.sample(np.random.default_rng(0), 32, seq_len), *source.eval_sets(seq_len).values()]
    for batch in batches:
        tokens, targets = batch.tokens, batch.tokens[:, 1:]
        assert tokens.dtype == np.int64 and tokens.shape[1] == seq_len
        assert np.all(tokens[:, 0] == BOS) and np.all(tokens[:, 1:] != BOS)
        assert not np.any(batch.loss_mask & (targets == PAD))
        assert not np.any(batch.answer_mask & ~batch.loss_mask)
        assert np.all(batch.loss_mask.sum(axis=1) > 0)
        if source.kind == "task":
            # one example per row: EOS ends it, PAD follows, and the answer ends with the EOS
            eos = np.argmax(targets == EOS, axis=1)
            assert np.all((targets == EOS).sum(axis=1) == 1)
            after = np.arange(targets.shape[1])[None, :] > eos[:, None]
            assert np.all(targets[after] == PAD)
            assert np.all(batch.answer_mask[np.arange(len(eos)), eos])


def test_rows_too_short_for_an_example_raise(source):
    # checked against the longest example, not only the drawn ones, so a run fails at once
    too_short = source.min_seq_len() - 1
    with pytest.raises(DataError, match=r"seq_len >= \d+|seq_len must be an integer >= 2"):
        source.sample(np.random.default_rng(0), 1, too_short)
    with pytest.raises(DataError, match=r"seq_len"):
        source.eval_sets(too_short)


def test_unknown_kind_unknown_option_and_missing_option_raise():
    with pytest.raises(DataError, match="unknown source kind 'lego'; choose one of"):
        make_source("lego")
    with pytest.raises(DataError, match=r"unknown option\(s\) prime for source kind 'modular'"):
        make_source("modular", prime=97)
    with pytest.raises(DataError, match="needs option"):
        make_source("text")
    assert source_options("text")["domain"] is inspect.Parameter.empty
    assert source_options("modular")["p"] == 97


def test_the_data_side_imports_without_torch():
    code = "import sys, scalelab.harness; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
