"""Vocabulary round trips and the row layout every source shares (ExampleTable, Batch)."""

from __future__ import annotations

import numpy as np
import pytest

from scalelab.errors import DataError
from scalelab.harness.sources.base import Batch, ExampleTable, RowSet, distinct_rows
from scalelab.harness.vocab import BOS, EOS, FIRST_SYMBOL, PAD, VOCAB_SIZE, decode, encode


def test_vocab_constants_match_the_design():
    assert (PAD, BOS, EOS, VOCAB_SIZE) == (256, 257, 258, 259)


def test_encode_decode_round_trip_utf8_and_drops_specials():
    text = "def f(x):\n    return x + 1  # café ✓"
    ids = encode(text)
    assert ids.dtype == np.int64 and ids.max() < 256
    assert decode(np.concatenate([[BOS], ids, [EOS, PAD, PAD]])) == text


def test_decode_shows_source_symbols_and_rejects_negative_ids():
    assert decode([BOS, 104, FIRST_SYMBOL + 41, 105, EOS]) == "h<41>i"
    assert decode([0xC3, PAD, 0xA9]) == "é"  # specials do not split a multi-byte character
    with pytest.raises(DataError, match="negative"):
        decode([1, 2, -3])


def test_example_table_packs_bos_prompt_target_eos_pad_and_aligned_masks():
    table = ExampleTable.from_texts(["12+3=", "1+1="], ["15", "2"])
    batch = table.take([0, 1], seq_len=10, source="t")
    assert batch.tokens[0].tolist() == [BOS, *encode("12+3=15").tolist(), EOS, PAD]
    assert batch.tokens[1].tolist() == [BOS, *encode("1+1=2").tolist(), EOS, PAD, PAD, PAD]
    targets = batch.tokens[:, 1:]
    # the loss covers exactly the answer and the EOS, aligned with the targets
    assert decode(targets[0][batch.loss_mask[0]]) == "15"
    assert targets[0][batch.loss_mask[0]][-1] == EOS
    assert targets[1][batch.loss_mask[1]].tolist() == [ord("2"), EOS]
    assert not np.any(batch.loss_mask & (targets == PAD))
    np.testing.assert_array_equal(batch.answer_mask, batch.loss_mask)


def test_example_table_answer_mask_covers_only_the_result_suffix():
    table = ExampleTable.from_texts(["Q:"], ["work;42"], results=["42"])
    batch = table.take([0], seq_len=12, source="t")
    targets = batch.tokens[0, 1:]
    assert decode(targets[batch.loss_mask[0]]) == "work;42"
    assert decode(targets[batch.answer_mask[0]]) == "42"
    assert targets[batch.answer_mask[0]][-1] == EOS


def test_an_example_longer_than_seq_len_raises_naming_the_needed_length():
    table = ExampleTable.from_texts(["123+456="], ["579"])
    table.take([0], seq_len=13, source="addition")  # 11 bytes + BOS + EOS fits exactly
    with pytest.raises(DataError, match=r"source 'addition'.*seq_len >= 13.*is 12"):
        table.take([0], seq_len=12, source="addition")


def test_batch_validates_shapes_and_defaults_answer_mask():
    tokens = np.zeros((2, 5), dtype=np.int64)
    mask = np.ones((2, 4), dtype=bool)
    assert Batch(tokens, mask).answer_mask is mask
    with pytest.raises(DataError, match="loss_mask"):
        Batch(tokens, np.ones((2, 5), dtype=bool))
    with pytest.raises(DataError, match="tokens"):
        Batch(tokens.astype(np.int32), mask)
    with pytest.raises(DataError, match="outside loss_mask"):
        Batch(tokens, np.zeros((2, 4), dtype=bool), mask)


def test_row_set_membership_and_distinct_rows():
    rng = np.random.default_rng(0)
    rows = distinct_rows(lambda k: rng.integers(0, 2, size=(k, 3), dtype=np.uint8), 8)
    assert len({r.tobytes() for r in rows}) == 8  # all 2**3 rows, each once
    held = RowSet(rows[:3])
    np.testing.assert_array_equal(held.contains(rows), [True] * 3 + [False] * 5)
