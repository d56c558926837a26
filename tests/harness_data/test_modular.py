"""Modular arithmetic (Power et al. 2022): split, answers, eval sets, options."""

from __future__ import annotations

import numpy as np
import pytest

from scalelab.errors import DataError
from scalelab.harness.sources import ModularSource, make_source
from scalelab.harness.vocab import EOS, FIRST_SYMBOL, VOCAB_SIZE, decode


def _parse(batch):
    """(a, op, b, answer) of every row, read back from the rendered text."""
    out = []
    for row, mask in zip(batch.tokens, batch.answer_mask, strict=True):
        prompt, answer = decode(row).split("=")
        op = next(c for c in "+-*/" if c in prompt)
        a, b = prompt.split(op)
        assert decode(row[1:][mask]) == answer
        out.append((int(a), op, int(b), int(answer)))
    return out


@pytest.mark.parametrize("op", ["+", "-", "*", "/"])
def test_answers_are_correct_for_every_operation(op):
    p = 13
    src = ModularSource(p=p, op=op, train_fraction=0.5, seed=1)
    rows = _parse(src.sample(np.random.default_rng(0), 200, seq_len=src.min_seq_len()))
    rows += _parse(src.eval_sets(src.min_seq_len())[src.name])
    for a, got_op, b, c in rows:
        assert got_op == op and 0 <= a < p and 0 <= b < p and 0 <= c < p
        if op == "+":
            assert c == (a + b) % p
        elif op == "-":
            assert c == (a - b) % p
        elif op == "*":
            assert c == (a * b) % p
        else:
            assert b != 0 and (c * b) % p == a  # c is a / b: c * b == a (mod p)


def test_split_is_a_seeded_partition_and_training_never_sees_held_out_pairs():
    src = ModularSource(p=11, train_fraction=0.3, seed=4)
    train = {tuple(x) for x in src.pairs("train").tolist()}
    held = {tuple(x) for x in src.pairs("heldout").tolist()}
    assert not train & held and len(train | held) == 121 and len(train) == round(0.3 * 121)
    sampled = {(a, b) for a, _, b, _ in _parse(src.sample(np.random.default_rng(0), 2000, 12))}
    assert sampled <= train and len(sampled) > 0.9 * len(train)
    evals = src.eval_sets(12)
    assert {(a, b) for a, _, b, _ in _parse(evals["modadd"])} == held
    assert {(a, b) for a, _, b, _ in _parse(evals["modadd/train"])} <= train
    other = ModularSource(p=11, train_fraction=0.3, seed=5)
    assert {tuple(x) for x in other.pairs("train").tolist()} != train


def test_eval_size_caps_the_held_out_set_and_names_follow_the_operation():
    src = make_source("modular", p=97, op="*", eval_size=100, train_eval_size=50)
    evals = src.eval_sets(seq_len=12)
    assert src.name == "modmul" and set(evals) == {"modmul", "modmul/train"}
    assert len(evals["modmul"]) == 100 and len(evals["modmul/train"]) == 50
    np.testing.assert_array_equal(evals["modmul"].tokens, src.eval_sets(12)["modmul"].tokens)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"p": 91}, "must be a prime"),
        ({"p": 1}, "option p"),
        ({"op": "^"}, "option op"),
        ({"train_fraction": 0.0}, "train_fraction"),
        ({"train_fraction": 1.0, "p": 5}, "keeps some pairs on both sides"),
        ({"eval_size": 0}, "eval_size"),
        ({"seed": -1}, "seed"),
        ({"p": 97.0}, "must be an integer"),
    ],
)
def test_bad_options_raise_one_line_errors(options, message):
    with pytest.raises(DataError, match=message):
        make_source("modular", **options)


def test_symbol_encoding_renders_each_residue_as_one_token_with_the_same_split():
    dec = ModularSource(p=13, op="-", train_fraction=0.4, seed=2)
    sym = ModularSource(p=13, op="-", train_fraction=0.4, seed=2, encoding="symbols")
    assert sym.vocab_size == FIRST_SYMBOL + 13 and dec.vocab_size == VOCAB_SIZE
    assert sym.min_seq_len() == 7  # BOS <a> - <b> = <c> EOS
    np.testing.assert_array_equal(sym.pairs("train"), dec.pairs("train"))
    batch = sym.eval_sets(seq_len=7)["modsub"]
    for row, mask in zip(batch.tokens, batch.answer_mask, strict=True):
        a, op, b, eq, c = (int(t) for t in row[1:6])
        assert (op, eq) == (ord("-"), ord("=")) and row[6] == EOS
        assert (c - FIRST_SYMBOL) == (a - b) % 13 and a >= FIRST_SYMBOL and b >= FIRST_SYMBOL
        assert row[1:][mask].tolist() == [c, EOS]  # loss and accuracy on the answer and EOS
    assert make_source(**sym.config()).config() == sym.config()
    with pytest.raises(DataError, match="encoding"):
        ModularSource(p=13, encoding="unary")


def test_a_stream_with_symbol_tokens_sizes_the_model_vocabulary():
    from scalelab.harness.mixture import DataStream, Mixture

    sources = {"modadd": ModularSource(p=11, encoding="symbols"),
               "code": make_source("text", domain="python_code", name="code")}
    stream = DataStream(sources, Mixture({"modadd": 1.0, "code": 1.0}), data_seed=0)
    assert stream.vocab_size == FIRST_SYMBOL + 11
    batch, _ = stream.batch(0, 8, 16)
    assert batch.tokens.max() < stream.vocab_size
