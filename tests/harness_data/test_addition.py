"""Addition in four formats (Lee et al. 2023): formats, answers, split, options."""

from __future__ import annotations

import numpy as np
import pytest

from scalelab.errors import DataError
from scalelab.harness.sources import AdditionSource, make_source
from scalelab.harness.sources.addition import FORMATS, render_addition
from scalelab.harness.vocab import decode


def test_formats_render_the_papers_examples():
    assert render_addition(128, 367, "plain") == ("128+367=", "495", "495")
    assert render_addition(128, 367, "reverse") == ("128+367=", "594", "594")
    prompt, target, result = render_addition(128, 367, "simple_scratchpad")
    assert prompt == "Input:\n128+367\nTarget:\n"
    assert target == "A->5 , C->1\nA->9 , C->0\nA->4 , C->0.\n495" and result == "495"
    _, target, result = render_addition(128, 367, "detailed_scratchpad")
    assert target.splitlines() == [
        "<scratch>",
        "[1,2,8] has 3 digits.",
        "[3,6,7] has 3 digits.",
        "[1,2,8] + [3,6,7] , A=[] , C=0 , 8+7+0=15 , A->5 , C->1",
        "[1,2] + [3,6] , A=[5] , C=1 , 2+6+1=9 , A->9 , C->0",
        "[1] + [3] , A=[9,5] , C=0 , 1+3+0=4 , A->4 , C->0",
        "[] + [] , A=[4,9,5] C=0 , END",
        "</scratch>",
        "4 9 5",
    ]
    assert render_addition(999, 1, "detailed_scratchpad")[2] == "1 0 0 0"


def _operands(text: str) -> tuple[int, int]:
    line = text.split("\n")[1] if text.startswith("Input:") else text.split("=")[0]
    a, b = line.split("+")
    return int(a), int(b.split("=")[0])


def _rows(src: AdditionSource, batch):
    """(a, b, decoded sum) per row: the answer-mask tokens parsed in the source's format."""
    out = []
    for row, mask in zip(batch.tokens, batch.answer_mask, strict=True):
        a, b = _operands(decode(row))
        out.append((a, b, src.parse_result(decode(row[1:][mask]))))
    return out


def test_the_four_formats_encode_the_same_pairs_and_their_answers_decode_to_the_sum():
    contents = {}
    for fmt in FORMATS:
        src = AdditionSource(digits=3, format=fmt, seed=2, eval_size=50)
        seq_len = src.min_seq_len()
        train = _rows(src, src.sample(np.random.default_rng(7), 64, seq_len))
        held = _rows(src, src.eval_sets(seq_len)["addition"])
        for a, b, total in train + held:
            assert total == a + b
        contents[fmt] = ([(a, b) for a, b, _ in train], [(a, b) for a, b, _ in held])
    first = contents["plain"]
    assert all(pairs == first for pairs in contents.values())


def test_loss_covers_the_scratchpad_and_accuracy_only_the_final_sum():
    src = AdditionSource(digits=2, format="simple_scratchpad", eval_size=5)
    batch = src.eval_sets(src.min_seq_len())["addition"]
    row, loss, answer = batch.tokens[0], batch.loss_mask[0], batch.answer_mask[0]
    a, b = _operands(decode(row))
    assert decode(row[1:][loss]).startswith("A->") and decode(row[1:][answer]) == str(a + b)
    assert answer.sum() < loss.sum() and not np.any(answer & ~loss)


@pytest.mark.parametrize("train_size", [None, 30])
def test_held_out_pairs_never_appear_in_training(train_size):
    # 1-digit addition has only 100 pairs; half are held out, so any leak would show
    src = AdditionSource(digits=1, eval_size=50, seed=3, train_size=train_size)
    held = {tuple(x) for x in src.pairs("heldout").tolist()}
    assert len(held) == 50
    seen = {(a, b) for a, b, _ in _rows(src, src.sample(np.random.default_rng(0), 2000, 8))}
    assert not seen & held
    assert len(seen) == (30 if train_size else 50)
    if train_size:
        assert seen == {tuple(x) for x in src.pairs("train").tolist()}


def test_min_seq_len_fits_the_longest_example_and_shorter_rows_raise():
    src = AdditionSource(digits=3, format="detailed_scratchpad", eval_size=10)
    src.sample(np.random.default_rng(0), 256, src.min_seq_len())
    src.eval_sets(src.min_seq_len())
    with pytest.raises(DataError, match=r"needs seq_len >= \d+"):
        src.eval_sets(src.min_seq_len() - 20)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"format": "scratch"}, "option format"),
        ({"digits": 0}, "option digits"),
        ({"digits": 10}, "option digits"),
        ({"digits": 1, "eval_size": 51}, "eval_size"),
        ({"digits": 1, "eval_size": 50, "train_size": 51}, "train_size"),
    ],
)
def test_bad_options_raise(options, message):
    with pytest.raises(DataError, match=message):
        make_source("addition", **options)


def test_pairs_of_the_train_split_need_a_fixed_pool():
    with pytest.raises(DataError, match="train_size"):
        AdditionSource(digits=2, eval_size=10).pairs("train")


def test_padded_operands_sit_at_fixed_positions() -> None:
    assert render_addition(5, 37, "plain", width=3) == ("005+037=", "42", "42")
    assert render_addition(5, 37, "reverse", width=3) == ("005+037=", "24", "24")
    detailed = render_addition(5, 37, "detailed_scratchpad", width=3)[1]
    assert "[0,0,5] has 3 digits." in detailed and detailed.endswith("4 2")
    for fmt in FORMATS:  # padding changes nothing for operands that already have every digit
        assert render_addition(128, 367, fmt, width=3) == render_addition(128, 367, fmt)
    src = make_source("addition", digits=3, format="reverse", pad_operands=True, eval_size=200)
    batch = src.eval_sets(src.min_seq_len())["addition"]
    prompts = [decode(row).split("=")[0] for row in batch.tokens]
    assert all(len(p) == 7 and p[3] == "+" for p in prompts), prompts[:5]
    assert src.config()["pad_operands"] is True
    assert "pad_operands" not in make_source("addition", digits=3).config()
    for bad in ("yes", 2, 10):  # a width below digits (3) or above 9
        with pytest.raises(DataError, match=r"pad_operands must be true, false or a width from digits \(3\) to 9"):
            make_source("addition", digits=3, pad_operands=bad)


def test_operands_padded_to_a_wider_width_share_the_wider_sources_columns() -> None:
    # 1-digit pairs written in 3-digit columns, e.g. as the prerequisite of 3-digit addition
    one = make_source("addition", digits=1, format="reverse", pad_operands=3, eval_size=20, name="add1")
    three = make_source("addition", digits=3, format="reverse", pad_operands=True, eval_size=20, name="add3")
    assert one.config()["pad_operands"] == 3
    assert make_source(**one.config()).config() == one.config()  # rebuilds from its config
    seq = max(one.min_seq_len(), three.min_seq_len())
    for src in (one, three):
        prompts = [decode(row).split("=")[0] for row in src.eval_sets(seq)[src.name].tokens]
        assert all(len(p) == 7 and p[3] == "+" for p in prompts), prompts[:5]
    a, b = one.pairs("heldout")[0]
    assert decode(one.eval_sets(seq)["add1"].tokens[0]).startswith(f"00{a}+00{b}=")
    # the scratchpads walk all 3 columns (leading zeros included)
    assert "[0,0,3] has 3 digits." in render_addition(3, 5, "detailed_scratchpad", width=3)[1]
