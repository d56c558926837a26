"""Chained variable resolution (LEGO): the curriculum testbed, where skill k builds on skill k-1.

Zhang, Backurs, Bubeck, Eldan, Gunasekar & Wagner (2022), "Unveiling Transformers with LEGO: a
synthetic reasoning task", arXiv:2206.04301, and its use as a skill hierarchy in Chen, Roberts,
Bhatia, Wang, Zhang, Sala & Ré (2023), "Skill-it! A data-driven skills framework for
understanding and training language models", arXiv:2307.14430 (Sec. 2, LEGO skills).

Every example holds one chain of ``max_depth`` variables (distinct letters): the first is set
to ``+1`` or ``-1``, each next one to ``+`` or ``-`` the previous one. The clauses are shuffled
(as in LEGO) and one variable is queried; its depth ``k`` (1-based position in the chain) is the
skill: resolving it needs ``k - 1`` steps, each the skill below it::

    BOS "b=-a;c=+b;a=+1;c?" "-1" EOS       (max_depth = 3, query depth 3: a=+1, b=-1, c=-1)

Every example has the same length whatever its depth, so a curriculum over depths changes only
what is asked. Depth weights: ``depths`` lists the depths to train on, ``depth_weights`` their
frequencies (default uniform). To give a mixture or curriculum one weight per depth, use one
source per depth: ``make_source("compositional", depths=[k])`` is named ``lego/k``.

Skills: ``lego/<k>`` for each depth in ``eval_depths`` (default ``depths``): ``eval_size``
distinct examples fixed by ``seed``, ``max_depth`` and ``shuffle`` only, so single-depth sources
built with the same seed share their eval sets; those examples never appear in training.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from scalelab.errors import DataError
from scalelab.harness.sources.base import (
    BaseSource,
    Batch,
    ExampleTable,
    RowSet,
    check_count,
    distinct_rows,
    opt_int,
    opt_name,
    opt_seed,
    rng_for,
)

__all__ = ["CompositionalSource"]

_LETTERS = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", dtype=np.uint8)
_SIGN = np.array([ord("+"), ord("-")], dtype=np.uint8)


def _depth_list(source: str, option: str, value: Any, max_depth: int) -> list[int]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
        raise DataError(f"source {source!r}: option {option} must be a non-empty list of depths, got {value!r}")
    depths = [opt_int(source, option, d, low=1, high=max_depth) for d in value]
    if len(set(depths)) != len(depths):
        raise DataError(f"source {source!r}: option {option} lists a depth twice: {depths}")
    return depths


class CompositionalSource(BaseSource):
    """LEGO chains of ``max_depth`` variables; the skill is the depth of the queried variable.

    Parameters
    ----------
    max_depth : int
        Chain length (1 to 26 variables).
    depths : list of int, optional
        Depths to train on (default every depth ``1 .. max_depth``).
    depth_weights : list of float, optional
        Relative frequency of each entry of ``depths`` (default uniform).
    eval_depths : list of int, optional
        Depths with an eval set ``lego/<k>`` (default ``depths``).
    shuffle : bool
        Shuffle the clauses (LEGO); False keeps them in chain order.
    seed : int
        Fixes the eval sets.
    eval_size : int
        Held-out examples per depth.
    name : str, optional
        Default ``"lego"``, or ``"lego/<k>"`` for a single training depth.

    Examples
    --------
    >>> src = CompositionalSource(max_depth=3, depths=[2], eval_size=8)
    >>> src.name, sorted(src.eval_sets(seq_len=src.min_seq_len()))
    ('lego/2', ['lego/2'])
    """

    registry_kind = "compositional"
    kind = "task"

    def __init__(
        self,
        *,
        max_depth: int = 4,
        depths: Sequence[int] | None = None,
        depth_weights: Sequence[float] | None = None,
        eval_depths: Sequence[int] | None = None,
        shuffle: bool = True,
        seed: int = 0,
        eval_size: int = 256,
        name: str | None = None,
    ) -> None:
        label = name if isinstance(name, str) else "lego"
        self.max_depth = opt_int(label, "max_depth", max_depth, low=1, high=len(_LETTERS))
        self.depths = _depth_list(label, "depths", list(range(1, self.max_depth + 1)) if depths is None else depths, self.max_depth)
        self.name = opt_name("lego" if len(self.depths) > 1 else f"lego/{self.depths[0]}", name)
        self.eval_depths = self.depths if eval_depths is None else _depth_list(self.name, "eval_depths", eval_depths, self.max_depth)
        self.depth_weights = self._weights(depth_weights)
        if not isinstance(shuffle, bool):
            raise DataError(f"source {self.name!r}: option shuffle must be true or false, got {shuffle!r}")
        self.shuffle = shuffle
        self.seed = opt_seed(self.name, seed)
        m = self.max_depth
        space = math.perm(len(_LETTERS), m) * 2**m * (math.factorial(m) if shuffle else 1)
        self.eval_size = opt_int(self.name, "eval_size", eval_size, low=1, high=space // 2)
        self._set_options(
            max_depth=m, depths=list(self.depths), depth_weights=list(self.depth_weights),
            eval_depths=list(self.eval_depths), shuffle=shuffle, seed=self.seed,
            eval_size=self.eval_size, name=self.name,
        )
        self._probs = np.asarray(self.depth_weights) / sum(self.depth_weights)
        self._eval = {k: self._draw_eval(k) for k in self.eval_depths}
        self._eval_rows = RowSet(np.concatenate(list(self._eval.values())))

    def _weights(self, weights: Sequence[float] | None) -> list[float]:
        if weights is None:
            return [1.0] * len(self.depths)
        if isinstance(weights, (str, bytes)) or not isinstance(weights, Sequence) or len(weights) != len(self.depths):
            raise DataError(
                f"source {self.name!r}: depth_weights must list one weight per depth in {self.depths}, got {weights!r}"
            )
        out = []
        for w in weights:
            if isinstance(w, bool) or not isinstance(w, (int, float, np.integer, np.floating)) or not math.isfinite(w) or w < 0:
                raise DataError(f"source {self.name!r}: depth_weights must be finite and >= 0, got {weights!r}")
            out.append(float(w))
        if sum(out) <= 0:
            raise DataError(f"source {self.name!r}: depth_weights sum to 0; give some depth a positive weight")
        return out

    def _render(self, rng: np.random.Generator, query: np.ndarray) -> np.ndarray:
        """``(n, 5 * max_depth + 4)`` example bytes for 1-based query depths ``query``."""
        n, m = len(query), self.max_depth
        letters = _LETTERS[np.argsort(rng.random((n, len(_LETTERS))), axis=1)[:, :m]]  # (n, m) distinct
        signs = rng.integers(0, 2, size=(n, m))  # 0: '+', 1: '-'
        values = np.cumsum(signs, axis=1) % 2  # 0: +1, 1: -1 (product of the signs so far)
        clauses = np.empty((n, m, 5), dtype=np.uint8)  # "x=+y;" or "a=+1;"
        clauses[:, :, 0] = letters
        clauses[:, :, 1] = ord("=")
        clauses[:, :, 2] = _SIGN[signs]
        clauses[:, 0, 3] = ord("1")
        clauses[:, 1:, 3] = letters[:, :-1]
        clauses[:, :, 4] = ord(";")
        if self.shuffle:
            order = np.argsort(rng.random((n, m)), axis=1)
            clauses = clauses[np.arange(n)[:, None], order]
        rows = np.arange(n)
        tail = np.stack(
            [letters[rows, query - 1], np.full(n, ord("?")), _SIGN[values[rows, query - 1]], np.full(n, ord("1"))],
            axis=1,
        ).astype(np.uint8)
        return np.concatenate([clauses.reshape(n, 5 * m), tail], axis=1)

    def _draw_eval(self, depth: int) -> np.ndarray:
        rng = rng_for(self.seed, 1, depth)
        return distinct_rows(lambda k: self._render(rng, np.full(k, depth)), self.eval_size)

    def _table(self, rows: np.ndarray) -> ExampleTable:
        return ExampleTable.from_matrix(rows, prompt_len=5 * self.max_depth + 2)

    def min_seq_len(self) -> int:
        """Every example has ``5 * max_depth + 4`` bytes, plus BOS and EOS."""
        return 5 * self.max_depth + 6

    def sample(self, rng: np.random.Generator, n: int, seq_len: int) -> Batch:
        """``n`` rows with query depths drawn from ``depths`` / ``depth_weights``."""
        seq_len = self._fit(seq_len)
        n = check_count(n, self.name)
        query = np.asarray(self.depths)[rng.choice(len(self.depths), size=n, p=self._probs)]
        rows = self._render(rng, query)
        held = self._eval_rows.contains(rows)
        while held.any():  # redraw the (rare) rows that are held-out examples
            rows[held] = self._render(rng, query[held])
            held = self._eval_rows.contains(rows)
        return self._table(rows).take(np.arange(n), seq_len, self.name)

    def eval_sets(self, seq_len: int) -> dict[str, Batch]:
        """``{lego/k: held-out examples of depth k}`` for every depth in ``eval_depths``."""
        seq_len = self._fit(seq_len)
        return {f"lego/{k}": self._table(rows).take(np.arange(len(rows)), seq_len, self.name) for k, rows in self._eval.items()}

    @staticmethod
    def resolve(prompt: str) -> int:
        """Reference solver: the value (+1 or -1) of the queried variable in a rendered prompt."""
        body, query = prompt.rstrip("?").rsplit(";", 1)
        rules = dict(clause.split("=") for clause in body.split(";"))
        value, var, steps = 1, query, 0
        while True:
            rhs = rules[var]
            value *= -1 if rhs[0] == "-" else 1
            if rhs[1:] == "1":
                return value
            var, steps = rhs[1:], steps + 1
            if steps > len(rules):
                raise DataError(f"the chain in {prompt!r} has a cycle")
