"""Multitask sparse parity: the quantization-model testbed.

Michaud, Liu, Girit & Tegmark (2023), "The Quantization Model of Neural Scaling",
arXiv:2303.13506, Sec. 3. There are ``n_tasks`` subtasks; subtask ``i`` has its own random set
of ``k`` bit positions out of ``n_bits`` data bits, and its label is the parity (sum mod 2) of
those bits. The input starts with ``n_tasks`` control bits that one-hot encode the subtask.
Subtask ``i`` (0-based) is drawn with probability ``p_i ∝ (i + 1)^-(alpha + 1)``
(``alpha = zipf_exponent``; the paper uses 0.4), so frequent subtasks are learned first and
the loss follows a power law in model size and data. ``zipf_exponent = -1`` gives uniform
subtask frequencies.

Rendering (control bits, ``|``, data bits, ``=``, the label)::

    BOS "0100|10110110=" "1" EOS        (n_tasks = 4, n_bits = 8; subtask 1)

Skills: one eval set per subtask, ``<name>/0`` .. ``<name>/<n_tasks - 1>``, each with
``eval_size`` distinct inputs fixed by the seed; those inputs never appear in training.
"""

from __future__ import annotations

import math

import numpy as np

from scalelab.errors import DataError
from scalelab.harness.sources.base import (
    BaseSource,
    Batch,
    ExampleTable,
    RowSet,
    check_count,
    distinct_rows,
    opt_float,
    opt_int,
    opt_name,
    opt_seed,
    rng_for,
)

__all__ = ["ParitySource", "zipf_probabilities"]

_ZERO, _ONE = ord("0"), ord("1")


def zipf_probabilities(n_tasks: int, zipf_exponent: float) -> np.ndarray:
    """Subtask frequencies ``p_i ∝ (i + 1)^-(zipf_exponent + 1)``, ``i = 0 .. n_tasks - 1``."""
    weights = np.arange(1, n_tasks + 1, dtype=np.float64) ** -(zipf_exponent + 1.0)
    return weights / weights.sum()


class ParitySource(BaseSource):
    """Multitask sparse parity with Zipf-distributed subtasks (Michaud et al. 2023).

    Parameters
    ----------
    n_tasks : int
        Number of subtasks (control bits).
    n_bits : int
        Number of data bits.
    k : int
        Bits per subtask's parity.
    zipf_exponent : float
        ``alpha`` in ``p_i ∝ (i + 1)^-(alpha + 1)``; -1 is uniform.
    seed : int
        Fixes the subtasks' bit sets and the eval sets.
    eval_size : int
        Held-out inputs per subtask (at most half of the ``2**n_bits`` inputs).
    name : str, optional
        Source name and eval-set prefix (default ``"parity"``).

    Examples
    --------
    >>> src = ParitySource(n_tasks=3, n_bits=8, k=2, eval_size=4)
    >>> sorted(src.eval_sets(seq_len=src.min_seq_len()))
    ['parity/0', 'parity/1', 'parity/2']
    """

    registry_kind = "parity"
    kind = "task"

    def __init__(
        self,
        *,
        n_tasks: int = 16,
        n_bits: int = 32,
        k: int = 3,
        zipf_exponent: float = 0.4,
        seed: int = 0,
        eval_size: int = 256,
        name: str | None = None,
    ) -> None:
        self.name = opt_name("parity", name)
        self.n_tasks = opt_int(self.name, "n_tasks", n_tasks, low=1, high=4096)
        self.n_bits = opt_int(self.name, "n_bits", n_bits, low=1, high=1024)
        self.k = opt_int(self.name, "k", k, low=1, high=self.n_bits)
        self.zipf_exponent = opt_float(self.name, "zipf_exponent", zipf_exponent, -1.0, 100.0)
        self.seed = opt_seed(self.name, seed)
        self.eval_size = opt_int(self.name, "eval_size", eval_size, low=1, high=2 ** (self.n_bits - 1))
        if math.comb(self.n_bits, self.k) < self.n_tasks:
            raise DataError(
                f"source {self.name!r}: {self.n_tasks} subtasks need distinct {self.k}-bit subsets but "
                f"only {math.comb(self.n_bits, self.k)} exist; raise n_bits or lower n_tasks"
            )
        self._set_options(
            n_tasks=self.n_tasks, n_bits=self.n_bits, k=self.k, zipf_exponent=self.zipf_exponent,
            seed=self.seed, eval_size=self.eval_size, name=self.name,
        )
        self.probabilities = zipf_probabilities(self.n_tasks, self.zipf_exponent)
        self.subsets = self._draw_subsets()
        self._eval_bits = [self._draw_eval_bits(i) for i in range(self.n_tasks)]
        self._eval_rows = RowSet(
            np.concatenate([self._key_rows(np.full(len(b), i), b) for i, b in enumerate(self._eval_bits)])
        )

    def _draw_subsets(self) -> np.ndarray:
        rng = rng_for(self.seed, 0)
        seen: set[tuple[int, ...]] = set()
        subsets: list[tuple[int, ...]] = []
        while len(subsets) < self.n_tasks:
            s = tuple(sorted(rng.choice(self.n_bits, size=self.k, replace=False).tolist()))
            if s not in seen:
                seen.add(s)
                subsets.append(s)
        return np.array(subsets, dtype=np.int64)

    def _draw_eval_bits(self, task: int) -> np.ndarray:
        rng = rng_for(self.seed, 1, task)
        return distinct_rows(lambda k: rng.integers(0, 2, size=(k, self.n_bits), dtype=np.uint8), self.eval_size)

    @staticmethod
    def _key_rows(tasks: np.ndarray, bits: np.ndarray) -> np.ndarray:
        """Rows identifying an example: the subtask as 2 bytes, then the data bits."""
        task_bytes = np.asarray(tasks, dtype="<u2").view(np.uint8).reshape(len(bits), 2)
        return np.concatenate([task_bytes, bits.astype(np.uint8)], axis=1)

    def labels(self, tasks: np.ndarray, bits: np.ndarray) -> np.ndarray:
        """Parity of each row's subtask bits: ``bits[i, subsets[tasks[i]]].sum() % 2``."""
        chosen = np.take_along_axis(bits, self.subsets[tasks], axis=1)
        return (chosen.sum(axis=1) % 2).astype(np.int64)

    def _table(self, tasks: np.ndarray, bits: np.ndarray) -> ExampleTable:
        n = len(tasks)
        control = np.full((n, self.n_tasks), _ZERO, dtype=np.uint8)
        control[np.arange(n), tasks] = _ONE
        rows = np.concatenate(
            [
                control,
                np.full((n, 1), ord("|"), dtype=np.uint8),
                bits.astype(np.uint8) + _ZERO,
                np.full((n, 1), ord("="), dtype=np.uint8),
                (self.labels(tasks, bits).astype(np.uint8) + _ZERO)[:, None],
            ],
            axis=1,
        )
        return ExampleTable.from_matrix(rows, prompt_len=self.n_tasks + self.n_bits + 2)

    def min_seq_len(self) -> int:
        """Every example has ``n_tasks + n_bits + 3`` bytes, plus BOS and EOS."""
        return self.n_tasks + self.n_bits + 5

    def sample(self, rng: np.random.Generator, n: int, seq_len: int) -> Batch:
        """``n`` rows: subtasks drawn from the Zipf frequencies, data bits uniform."""
        seq_len = self._fit(seq_len)
        n = check_count(n, self.name)
        tasks = rng.choice(self.n_tasks, size=n, p=self.probabilities)
        bits = rng.integers(0, 2, size=(n, self.n_bits), dtype=np.uint8)
        held = self._eval_rows.contains(self._key_rows(tasks, bits))
        while held.any():  # redraw the (rare) rows that are held-out examples
            bits[held] = rng.integers(0, 2, size=(int(held.sum()), self.n_bits), dtype=np.uint8)
            held = self._eval_rows.contains(self._key_rows(tasks, bits))
        return self._table(tasks, bits).take(np.arange(n), seq_len, self.name)

    def eval_sets(self, seq_len: int) -> dict[str, Batch]:
        """``{name/i: held-out inputs of subtask i}`` for every subtask."""
        seq_len = self._fit(seq_len)
        out = {}
        for i, bits in enumerate(self._eval_bits):
            tasks = np.full(len(bits), i, dtype=np.int64)
            out[f"{self.name}/{i}"] = self._table(tasks, bits).take(np.arange(len(bits)), seq_len, self.name)
        return out
