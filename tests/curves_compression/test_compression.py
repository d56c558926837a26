"""Compression score: prequential code length from online loss curves."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scalelab.curves.compression import (
    OnlineLoss,
    code_length,
    compare_code_lengths,
    merge_duplicate_tokens,
)
from scalelab.errors import DataError

LN2 = math.log(2.0)
VOCAB = 50257


def power_law_closed_form(E: float, A: float, alpha: float, t0: float, t1: float) -> float:
    """Exact integral of E + A t^-alpha over [t0, t1], in nats (alpha != 1)."""
    return E * (t1 - t0) + A * (t1 ** (1 - alpha) - t0 ** (1 - alpha)) / (1 - alpha)


# ----------------------------------------------------------------------------- exactness
@pytest.mark.parametrize("rule", ["loglog", "trapezoid", "step"])
@pytest.mark.parametrize("head", ["uniform", "first", "exclude"])
def test_every_step_logged_equals_sum_of_batch_code_lengths(rule: str, head: str) -> None:
    rng = np.random.default_rng(0)
    batch, n = 4096, 700
    steps = np.arange(1, n + 1)
    loss = 10.8 * np.exp(-steps / 150) + 2.0 + 0.3 * rng.standard_normal(n) ** 2
    res = code_length(steps * batch, loss, tokens_per_step=batch, head=head, rule=rule,
                      vocab=VOCAB)
    expected = float(np.sum(loss * batch)) / LN2
    assert res.bits == pytest.approx(expected, rel=1e-12)
    assert res.tokens == n * batch and res.tokens_start == 0.0 and res.head_tokens == 0.0
    assert res.bits_per_token == pytest.approx(float(np.mean(loss)) / LN2, rel=1e-12)


def test_sparse_logging_charges_each_logged_batch_exactly() -> None:
    # Steps 10, 20, ..., 100 logged with batch 100: batch 10 covers tokens (900, 1000].
    batch = 100.0
    t = np.arange(10, 101, 10) * batch
    y = np.linspace(4.0, 2.0, t.size)
    full = code_length(t, y, tokens_per_step=batch, head="first", rule="step")
    # With rule "step" every token since the previous logged point costs that point's loss.
    expected = (t[0] * y[0] + np.sum(np.diff(t) * y[1:])) / LN2
    assert full.bits == pytest.approx(expected, rel=1e-13)
    # Only the last logged batch, scored through start/stop: exactly its loss times its size.
    last = code_length(t, y, tokens_per_step=batch, head="first", start=t[-1] - batch)
    assert last.bits == pytest.approx(y[-1] * batch / LN2, rel=1e-13)


def test_without_batch_size_rules_are_the_classic_sums() -> None:
    t = np.array([1.0, 3.0, 4.0, 8.0])
    y = np.array([5.0, 3.0, 2.5, 2.0])
    trap = code_length(t, y, head="exclude", rule="trapezoid")
    assert trap.bits * LN2 == pytest.approx(float(np.sum(np.diff(t) * (y[1:] + y[:-1]) / 2)))
    step = code_length(t, y, head="exclude", rule="step")
    assert step.bits * LN2 == pytest.approx(float(np.sum(np.diff(t) * y[1:])))
    assert trap.tokens_start == 1.0 and trap.tokens == 7.0 and trap.head_bits == 0.0


# ----------------------------------------------------------------------------- analytic curves
@pytest.mark.parametrize(
    ("E", "A", "alpha"),
    [(1.7, 400.0, 0.3), (1.0, 50.0, 0.5), (2.0, 1e3, 0.7), (0.0, 10.0, 0.5)],
)
def test_loglog_rule_matches_closed_form_on_log_spaced_logging(E: float, A: float, alpha: float) -> None:
    t = np.logspace(3, 9, 25)  # 4 points per decade
    y = E + A * t**-alpha
    res = code_length(t, y, head="exclude")  # default rule: loglog
    exact = power_law_closed_form(E, A, alpha, t[0], t[-1]) / LN2
    assert res.rule == "loglog"
    assert abs(res.bits / exact - 1) < 1e-3
    if E == 0.0:  # a pure power law is integrated exactly
        assert res.bits == pytest.approx(exact, rel=1e-10)


def test_trapezoid_is_not_accurate_enough_on_log_spaced_logging() -> None:
    # Why loglog is the default: the same curve, trapezoid in tokens, is 0.43% too high.
    t = np.logspace(3, 9, 25)
    y = 1.7 + 400.0 * t**-0.3
    exact = power_law_closed_form(1.7, 400.0, 0.3, t[0], t[-1]) / LN2
    trap = code_length(t, y, head="exclude", rule="trapezoid").bits / exact - 1
    loglog = code_length(t, y, head="exclude", rule="loglog").bits / exact - 1
    assert trap == pytest.approx(0.00433, abs=5e-5)
    assert 0 < loglog < 0.001 and loglog < trap / 5


def test_closed_form_from_token_zero_with_head_first_on_fine_grid() -> None:
    # A curve flat up to t1 then a power law: head="first" is then exact up to the rule error.
    t = np.logspace(2, 8, 61)
    y = 2.0 + 30.0 * t**-0.4
    res = code_length(t, y, head="first")
    exact = (t[0] * y[0] + power_law_closed_form(2.0, 30.0, 0.4, t[0], t[-1])) / LN2
    assert abs(res.bits / exact - 1) < 1e-4
    assert res.head_tokens == t[0] and res.head_bits == pytest.approx(t[0] * y[0] / LN2)


@pytest.mark.parametrize("rule", ["loglog", "trapezoid", "step"])
@pytest.mark.parametrize("batch", [None, 64.0])
def test_code_length_is_additive_over_token_ranges(rule: str, batch: float | None) -> None:
    rng = np.random.default_rng(3)
    t = np.cumsum(rng.integers(1, 40, 30)) * 64.0 + 64.0
    y = 2.0 + rng.random(30)
    whole = code_length(t, y, tokens_per_step=batch, rule=rule, vocab=VOCAB)
    cut = float(rng.uniform(0, t[-1]))
    left = code_length(t, y, tokens_per_step=batch, rule=rule, vocab=VOCAB, stop=cut)
    right = code_length(t, y, tokens_per_step=batch, rule=rule, vocab=VOCAB, start=cut)
    assert left.bits + right.bits == pytest.approx(whole.bits, rel=1e-12)
    assert left.tokens + right.tokens == pytest.approx(whole.tokens)


# ----------------------------------------------------------------------------- head and units
def test_uniform_model_has_ratio_one_against_log2_vocab() -> None:
    t = np.array([1e3, 1e4, 1e5])
    res = code_length(t, np.full(3, math.log(VOCAB)), head="uniform", vocab=VOCAB)
    assert res.bits_per_token == pytest.approx(math.log2(VOCAB))
    assert res.compression_ratio == pytest.approx(1.0)
    assert res.head_tokens == 1e3 and res.head_bits == pytest.approx(1e3 * math.log2(VOCAB))


def test_head_options_differ_only_before_the_first_logged_point() -> None:
    t = np.array([100.0, 200.0, 400.0])
    y = np.array([3.0, 2.5, 2.0])
    uni = code_length(t, y, head="uniform", vocab=256)
    first = code_length(t, y, head="first")
    excl = code_length(t, y, head="exclude")
    assert uni.bits - excl.bits == pytest.approx(100 * math.log2(256))
    assert first.bits - excl.bits == pytest.approx(100 * 3.0 / LN2)
    assert (uni.tokens, first.tokens, excl.tokens) == (400.0, 400.0, 300.0)
    assert excl.tokens_start == 100.0 and excl.head == "exclude"


def test_bits_per_byte_and_ratio_against_raw_bytes() -> None:
    t = np.array([10.0, 20.0, 30.0])
    res = code_length(t, np.full(3, 2.0), head="first", bytes_per_token=4.0, vocab=VOCAB)
    bpt = 2.0 / LN2
    assert res.bits_per_token == pytest.approx(bpt)
    assert res.bits_per_byte == pytest.approx(bpt / 4.0)
    assert res.raw_bits_per_token == 32.0  # bytes win over the vocabulary when both are known
    assert res.compression_ratio == pytest.approx(32.0 / bpt)
    bare = code_length(t, np.full(3, 2.0), head="first")
    assert bare.bits_per_byte is None and bare.compression_ratio is None


def test_loss_in_bits() -> None:
    t = np.array([10.0, 20.0])
    nats = code_length(t, [2.0, 1.0], head="first")
    bits = code_length(t, [2.0 / LN2, 1.0 / LN2], head="first", loss_unit="bits")
    assert bits.bits == pytest.approx(nats.bits)
    assert nats.nats == pytest.approx(nats.bits * LN2)


def test_to_dict_round_trips_fields() -> None:
    res = code_length([1.0, 2.0], [1.0, 1.0], head="first")
    d = res.to_dict()
    assert d["bits"] == res.bits and d["head"] == "first" and d["rule"] == "loglog"


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("tokens", "loss", "kwargs", "fragment"),
    [
        ([10.0], [2.0], {}, "at least 2 logged points"),
        ([10.0, 5.0, 20.0], [2.0, 2.0, 2.0], {}, "decreasing"),
        ([10.0, 10.0, 20.0], [2.0, 2.0, 2.0], {}, "repeated"),
        ([10.0, 20.0], [2.0, math.nan], {}, "losses must be finite"),
        ([10.0, 20.0], [2.0, -1.0], {}, "losses must be finite and >= 0"),
        ([0.0, 20.0], [2.0, 1.0], {}, "tokens must be finite and > 0"),
        ([10.0, 20.0], [2.0, 1.0], {"head": "uniform", "vocab": None}, "give the vocabulary"),
        ([10.0, 20.0], [2.0, 1.0], {"head": "zero"}, "unknown head"),
        ([10.0, 20.0], [2.0, 1.0], {"rule": "simpson"}, "unknown integration rule"),
        ([10.0, 20.0], [2.0, 0.0], {}, "needs losses > 0"),
        ([10.0, 20.0], [2.0, 1.0], {"tokens_per_step": 20.0}, "fewer than one batch"),
        ([40.0, 50.0], [2.0, 1.0], {"tokens_per_step": 20.0}, "closer than one batch"),
        ([10.0, 20.0], [2.0, 1.0], {"stop": 30.0}, "cannot score tokens"),
        ([10.0, 20.0], [2.0, 1.0], {"head": "exclude", "start": 5.0}, "cannot score tokens"),
        ([10.0, 20.0], [2.0, 1.0], {"vocab": 1.0}, "vocab must be"),
        ([10.0, 20.0], [2.0, 1.0], {"loss_unit": "bytes"}, "unknown loss unit"),
        ([[10.0, 20.0]], [[2.0, 1.0]], {}, "1-D arrays"),
    ],
)
def test_bad_input_raises_data_error(tokens, loss, kwargs, fragment) -> None:
    options = {"head": "first", **kwargs}
    with pytest.raises(DataError, match=fragment):
        code_length(tokens, loss, **options)


def test_merge_duplicate_tokens_averages_and_sorts() -> None:
    t, y, n = merge_duplicate_tokens([3.0, 1.0, 3.0, 2.0, 3.0], [1.0, 5.0, 2.0, 4.0, 3.0])
    assert t.tolist() == [1.0, 2.0, 3.0] and y.tolist() == [5.0, 4.0, 2.0] and n == 2


# ----------------------------------------------------------------------------- comparison
def _curves() -> dict[str, OnlineLoss]:
    t = np.logspace(3, 7, 17)
    return {
        "small": OnlineLoss(t, 2.5 + 40 * t**-0.3),
        "large": OnlineLoss(t, 2.0 + 40 * t**-0.3),
        "medium": OnlineLoss(t, 2.2 + 40 * t**-0.3),
    }


def test_compare_ranks_by_code_length_with_difference_and_ratio() -> None:
    curves = _curves()
    cmp = compare_code_lengths(curves, vocab=VOCAB)
    assert [r.run for r in cmp.runs] == ["large", "medium", "small"]
    assert [r.rank for r in cmp.runs] == [1, 2, 3]
    best = code_length(curves["large"].tokens, curves["large"].loss, vocab=VOCAB).bits
    small = code_length(curves["small"].tokens, curves["small"].loss, vocab=VOCAB).bits
    assert cmp.best.bits_minus_best == 0 and cmp.best.ratio_to_best == 1
    assert cmp.runs[2].bits_minus_best == pytest.approx(small - best)
    assert cmp.runs[2].ratio_to_best == pytest.approx(small / best)
    # A constant offset of 0.5 nats/token after the first logged point (the uniform head is
    # the same for both); trapezoid is linear in the loss, so there the difference is exact.
    t_end = curves["small"].tokens[-1]
    t_first = curves["small"].tokens[0]
    trap = compare_code_lengths(curves, vocab=VOCAB, rule="trapezoid")
    assert trap.runs[2].bits_minus_best == pytest.approx(0.5 * (t_end - t_first) / LN2, rel=1e-12)
    assert small - best == pytest.approx(0.5 * (t_end - t_first) / LN2, rel=1e-4)
    assert not cmp.truncated and cmp.tokens_end == t_end
    assert cmp.to_dict()["runs"][0]["run"] == "large"


def test_compare_refuses_different_coverage_unless_truncated() -> None:
    curves = _curves()
    t = curves["small"].tokens
    curves["short"] = OnlineLoss(t[:-3], 1.0 + 40 * t[:-3] ** -0.3)
    with pytest.raises(DataError, match="cover different tokens"):
        compare_code_lengths(curves, vocab=VOCAB)
    cmp = compare_code_lengths(curves, vocab=VOCAB, truncate=True)
    assert cmp.truncated and cmp.tokens_end == t[-4]
    assert cmp.best.run == "short"
    small = code_length(curves["small"].tokens, curves["small"].loss, vocab=VOCAB, stop=t[-4])
    got = {r.run: r.code.bits for r in cmp.runs}
    assert got["small"] == pytest.approx(small.bits, rel=1e-13)


def test_compare_with_exclude_uses_the_common_range() -> None:
    a = OnlineLoss([10.0, 20.0, 40.0], [3.0, 2.0, 1.5])
    b = OnlineLoss([15.0, 30.0, 60.0], [3.0, 2.0, 1.5])
    cmp = compare_code_lengths({"a": a, "b": b}, head="exclude", truncate=True)
    assert (cmp.tokens_start, cmp.tokens_end) == (15.0, 40.0)
    for r in cmp.runs:
        assert r.code.tokens == 25.0
    c = OnlineLoss([50.0, 60.0], [1.0, 1.0])
    with pytest.raises(DataError, match="share no token range"):
        compare_code_lengths({"a": a, "c": c}, head="exclude", truncate=True)
    with pytest.raises(DataError, match="no runs"):
        compare_code_lengths({})
