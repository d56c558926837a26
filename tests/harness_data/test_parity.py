"""Multitask sparse parity (Michaud et al. 2023): labels, Zipf frequencies, eval sets."""

from __future__ import annotations

import numpy as np
import pytest

from scalelab.errors import DataError
from scalelab.harness.sources import ParitySource, make_source
from scalelab.harness.sources.parity import zipf_probabilities
from scalelab.harness.vocab import decode


def _parse(batch):
    """(subtask, data bits, label) per row, read back from the rendered text."""
    out = []
    for row, mask in zip(batch.tokens, batch.answer_mask, strict=True):
        control, rest = decode(row).split("|")
        data, label = rest.split("=")
        assert control.count("1") == 1 and decode(row[1:][mask]) == label
        out.append((control.index("1"), np.array([int(c) for c in data]), int(label)))
    return out


def test_labels_are_the_parity_of_each_subtasks_own_bits():
    src = ParitySource(n_tasks=5, n_bits=12, k=3, seed=2, eval_size=16)
    assert len({tuple(s) for s in src.subsets.tolist()}) == 5  # distinct subsets
    batch = src.sample(np.random.default_rng(0), 500, src.min_seq_len())
    for task, bits, label in _parse(batch):
        assert label == bits[src.subsets[task]].sum() % 2
    assert {label for _, _, label in _parse(batch)} == {0, 1}


def test_subtask_frequencies_follow_the_zipf_law():
    src = ParitySource(n_tasks=6, n_bits=16, k=2, zipf_exponent=0.4, eval_size=4)
    expected = np.arange(1, 7) ** -1.4
    np.testing.assert_allclose(src.probabilities, expected / expected.sum())
    n = 40_000
    tokens = src.sample(np.random.default_rng(1), n, src.min_seq_len()).tokens
    control = tokens[:, 1:7] == ord("1")  # the one-hot control bits after BOS
    assert np.all(control.sum(axis=1) == 1)
    tasks = control.argmax(axis=1)
    freq = np.bincount(tasks, minlength=6) / n
    stderr = np.sqrt(src.probabilities * (1 - src.probabilities) / n)
    assert np.all(np.abs(freq - src.probabilities) < 5 * stderr)
    np.testing.assert_allclose(zipf_probabilities(4, -1.0), 0.25)  # alpha = -1: uniform


def test_one_eval_set_per_subtask_held_out_from_training():
    # 6 data bits: 64 inputs per subtask, 32 held out, so a leak would show
    src = ParitySource(n_tasks=3, n_bits=6, k=2, zipf_exponent=0.0, seed=5, eval_size=32)
    evals = src.eval_sets(src.min_seq_len())
    assert list(evals) == ["parity/0", "parity/1", "parity/2"]
    held = set()
    for i in range(3):
        rows = _parse(evals[f"parity/{i}"])
        assert len(rows) == 32 and {t for t, _, _ in rows} == {i}
        assert len({b.tobytes() for _, b, _ in rows}) == 32
        held |= {(t, b.tobytes()) for t, b, _ in rows}
    train = _parse(src.sample(np.random.default_rng(0), 3000, src.min_seq_len()))
    assert not {(t, b.tobytes()) for t, b, _ in train} & held


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_tasks": 10, "n_bits": 4, "k": 2, "eval_size": 4}, "distinct 2-bit subsets"),
        ({"k": 0}, "option k"),
        ({"n_bits": 4, "k": 2, "n_tasks": 2, "eval_size": 9}, "eval_size"),
        ({"zipf_exponent": float("nan")}, "zipf_exponent"),
        ({"zipf_exponent": -2}, "zipf_exponent"),
    ],
)
def test_bad_options_raise(options, message):
    with pytest.raises(DataError, match=message):
        make_source("parity", **options)


def test_loss_and_answer_masks_score_exactly_the_label_and_eos():
    # the label is the only learnable target: a mask that also covered the (random) data bits
    # or missed the label would make the task unlearnable or trivially easy
    src = ParitySource(n_tasks=3, n_bits=6, k=2, seed=1, eval_size=8)
    width = src.min_seq_len()
    for batch in (src.sample(np.random.default_rng(3), 64, width + 2), src.eval_sets(width)["parity/2"]):
        targets = batch.tokens[:, 1:]
        label_col = 3 + 1 + 6 + 1  # targets[:, j] is tokens[:, j + 1]: control, '|', bits, '='
        assert np.all(np.isin(targets[:, label_col], [ord("0"), ord("1")]))
        assert np.all(targets[:, label_col + 1] == 258)  # EOS
        expected = np.zeros_like(batch.loss_mask)
        expected[:, [label_col, label_col + 1]] = True
        np.testing.assert_array_equal(batch.loss_mask, expected)
        np.testing.assert_array_equal(batch.answer_mask, expected)


def test_eval_labels_use_the_training_subsets():
    # an eval label computed from another subset than training would pin accuracy at chance
    src = ParitySource(n_tasks=4, n_bits=8, k=2, seed=3, eval_size=32)
    for i, batch in src.eval_sets(src.min_seq_len()).items():
        task = int(i.split("/")[1])
        for t, bits, label in _parse(batch):
            assert t == task and label == int(bits[src.subsets[task]].sum() % 2)
    again = ParitySource(n_tasks=4, n_bits=8, k=2, seed=3, eval_size=32)
    np.testing.assert_array_equal(again.subsets, src.subsets)  # the seed fixes the subsets
