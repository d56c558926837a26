"""Evaluation: the log-spaced schedule and per-skill loss / exact-match accuracy."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from scalelab.errors import DataError
from scalelab.harness.evaluation import EvalData, eval_steps, evaluate

V = 11


@pytest.mark.parametrize(("steps", "count"), [(1000, 12), (100, 16), (5000, 20), (37, 5), (2, 2)])
def test_eval_steps_are_log_spaced_and_dense_early(steps: int, count: int) -> None:
    s = eval_steps(steps, count)
    assert len(s) == count
    assert s[0] == 0 and s[-1] == steps
    assert all(b > a for a, b in itertools.pairwise(s))
    assert s[1] == (1 if count > 2 else steps)
    gaps = [b - a for a, b in itertools.pairwise(s)]
    assert gaps == sorted(gaps)  # dense early, sparse late


def test_eval_steps_known_values_and_edges() -> None:
    assert eval_steps(1024, 12) == [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
    assert eval_steps(3, 10) == [0, 1, 2, 3]
    with pytest.raises(DataError):
        eval_steps(10, 1)


class NextPlusOne(nn.Module):
    """Predicts token (x + 1) % V with high confidence at every position."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 20.0 * nn.functional.one_hot((x + 1) % V, V).float() + 0 * self.dummy  # (B, T, V)


def test_accuracy_is_exact_match_on_answer_tokens_and_loss_uses_loss_mask() -> None:
    base = torch.arange(6).repeat(4, 1) % V  # (4, 6): rows 0 1 2 3 4 5, targets follow the model
    tokens = base.clone()
    tokens[1, 5] = 9  # row 1: wrong answer token -> incorrect
    tokens[2, 2] = 9  # row 2: wrong token inside loss_mask but outside the answer -> still correct
    tokens[3, 1] = 9  # row 3: wrong token outside both masks -> correct, loss unaffected
    loss_mask = torch.zeros(4, 5, dtype=torch.bool)
    loss_mask[:, 1:] = True  # targets 2..5 count for the loss
    answer = torch.zeros(4, 5, dtype=torch.bool)
    answer[:, 3:] = True  # targets 4..5 are the answer
    # Row 3's change at position 1 also changes the model's prediction for target 2 (input at 1).
    es = EvalData("skill", "task", tokens, loss_mask, answer)
    res = evaluate(NextPlusOne(), [es, EvalData("text/x", "text", tokens, loss_mask, answer)], batch_size=3)
    assert res["skill"]["acc"] == pytest.approx(3 / 4)
    assert set(res["text/x"]) == {"loss"}
    # Hand count of the loss: a right token costs ~0, a wrong one ~20 nats (logit gap 20).
    # Wrong scored targets: row 1 target 4; row 2 targets 1 and 2 (the changed token, then the
    # prediction from it); row 3 target 1 (predicted from the changed input).
    wrong = 1 + 2 + 1
    assert res["skill"]["loss"] == pytest.approx(wrong * 20.0 / loss_mask.sum().item(), rel=1e-3)
    assert res["skill"]["loss"] == res["text/x"]["loss"]


def test_empty_masks_give_nan() -> None:
    tokens = torch.zeros(2, 4, dtype=torch.long)
    none = torch.zeros(2, 3, dtype=torch.bool)
    res = evaluate(NextPlusOne(), [EvalData("s", "task", tokens, none, none)])
    assert math.isnan(res["s"]["loss"]) and math.isnan(res["s"]["acc"])


def test_evaluate_restores_training_mode() -> None:
    model = NextPlusOne().train()
    tokens = torch.zeros(1, 3, dtype=torch.long)
    mask = torch.ones(1, 2, dtype=torch.bool)
    evaluate(model, [EvalData("s", "text", tokens, mask, mask)])
    assert model.training
