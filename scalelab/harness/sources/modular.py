"""Modular arithmetic ``a op b mod p``: the grokking testbed.

Power, Burda, Edwards, Babuschkin & Misra (2022), "Grokking: Generalization beyond
overfitting on small algorithmic datasets", arXiv:2201.02177. Every pair ``(a, b)`` with
``0 <= a, b < p`` (``b != 0`` for division) is one example; a fraction of all pairs, fixed by
the seed, is the training set and the rest is held out. A small transformer first fits the
training pairs and, much later, generalises to the held-out ones.

Two renderings of the same pairs (``encoding``); BOS and EOS delimit the example::

    decimal:  BOS "23+71=" "94" EOS          numbers as decimal bytes, no padding
    symbols:  BOS <23> "+" <71> "=" <94> EOS  one token per residue, as in Power et al.

(p = 97; the loss and the accuracy cover the answer and EOS.) With ``symbols`` residue ``r`` is
token ``FIRST_SYMBOL + r`` and the source needs ``vocab_size = FIRST_SYMBOL + p`` embedding rows
(the trainer sizes the model from its data). Each residue is then an atom the model must learn
an embedding for, which is the setting in which grokking was reported; in decimal the digits
share structure across numbers and the task is partly learnable digit by digit.

Skills (eval sets): ``<name>`` holds the held-out pairs (all of them, or the first
``eval_size`` of a seeded shuffle) and ``<name>/train`` up to ``train_eval_size`` training
pairs, for the grokking delay. The default name follows the operation: ``modadd``,
``modsub``, ``modmul``, ``moddiv``.
"""

from __future__ import annotations

import numpy as np

from scalelab.errors import DataError
from scalelab.harness.sources.base import (
    BaseSource,
    Batch,
    ExampleTable,
    check_count,
    opt_choice,
    opt_float,
    opt_int,
    opt_name,
    opt_seed,
    rng_for,
)
from scalelab.harness.vocab import FIRST_SYMBOL, VOCAB_SIZE

__all__ = ["ModularSource"]

_OP_NAMES = {"+": "add", "-": "sub", "*": "mul", "/": "div"}
_MAX_P = 1000  # p**2 examples are rendered up front


def _is_prime(p: int) -> bool:
    if p < 2:
        return False
    return all(p % d for d in range(2, int(p**0.5) + 1))


class ModularSource(BaseSource):
    """``a op b mod p`` with a seeded train/held-out split of all pairs (Power et al. 2022).

    Parameters
    ----------
    p : int
        The modulus, a prime (default 97, as in the paper).
    op : {"+", "-", "*", "/"}
        The operation; ``/`` is multiplication by the modular inverse of ``b`` (``b != 0``).
    train_fraction : float
        Fraction of all pairs used for training, in ``(0, 1)``; the rest is held out.
    seed : int
        Fixes the split and the eval sets.
    encoding : {"decimal", "symbols"}
        Numbers as decimal bytes (default) or one token per residue.
    eval_size : int or None
        Cap on the held-out eval set (None: every held-out pair).
    train_eval_size : int
        Cap on the ``<name>/train`` eval set of training pairs.
    name : str, optional
        Source name (default ``"mod" + add|sub|mul|div``).

    Examples
    --------
    >>> src = ModularSource(p=7, op="+", train_fraction=0.5, seed=0)
    >>> sorted(src.eval_sets(seq_len=8))
    ['modadd', 'modadd/train']
    """

    registry_kind = "modular"
    kind = "task"

    def __init__(
        self,
        *,
        p: int = 97,
        op: str = "+",
        train_fraction: float = 0.5,
        seed: int = 0,
        encoding: str = "decimal",
        eval_size: int | None = None,
        train_eval_size: int = 1024,
        name: str | None = None,
    ) -> None:
        op = opt_choice("modular", "op", op, list(_OP_NAMES))
        self.name = opt_name(f"mod{_OP_NAMES[op]}", name)
        p = opt_int(self.name, "p", p, low=2, high=_MAX_P)
        if not _is_prime(p):
            raise DataError(f"source {self.name!r}: option p must be a prime (e.g. 97), got {p}")
        train_fraction = opt_float(self.name, "train_fraction", train_fraction, 0.0, 1.0, open_low=True)
        seed = opt_seed(self.name, seed)
        encoding = opt_choice(self.name, "encoding", encoding, ["decimal", "symbols"])
        if eval_size is not None:
            eval_size = opt_int(self.name, "eval_size", eval_size, low=1)
        train_eval_size = opt_int(self.name, "train_eval_size", train_eval_size, low=1)
        self.p, self.op, self.seed = p, op, seed
        self._set_options(
            p=p, op=op, train_fraction=train_fraction, seed=seed, encoding=encoding, eval_size=eval_size,
            train_eval_size=train_eval_size, name=self.name,
        )

        a, b = np.divmod(np.arange(p * p, dtype=np.int64), p)
        if op == "/":
            keep = b != 0
            a, b = a[keep], b[keep]
        self._a, self._b = a, b
        self._c = self._apply(a, b)
        n_pairs = len(a)
        n_train = round(train_fraction * n_pairs)
        if not 1 <= n_train < n_pairs:
            raise DataError(
                f"source {self.name!r}: train_fraction={train_fraction} leaves {n_train} of {n_pairs} "
                "pairs for training; choose a fraction that keeps some pairs on both sides"
            )
        order = rng_for(seed, 0).permutation(n_pairs)
        self._train = np.sort(order[:n_train])
        held = order[n_train:]
        self._heldout_eval = held if eval_size is None else held[:eval_size]
        self._train_eval = order[: min(train_eval_size, n_train)]
        self._heldout = np.sort(held)
        self.encoding = encoding
        if encoding == "symbols":
            rows = np.stack([FIRST_SYMBOL + a, np.full_like(a, ord(op)), FIRST_SYMBOL + b,
                             np.full_like(a, ord("=")), FIRST_SYMBOL + self._c], axis=1)
            self._table = ExampleTable.from_matrix(rows, prompt_len=4)
        else:
            ops = [f"{x}{op}{y}=" for x, y in zip(a.tolist(), b.tolist(), strict=True)]
            self._table = ExampleTable.from_texts(ops, [str(c) for c in self._c.tolist()])

    @property
    def vocab_size(self) -> int:
        """Embedding rows this source needs: the byte vocabulary, plus ``p`` residue symbols."""
        return FIRST_SYMBOL + self.p if self.encoding == "symbols" else VOCAB_SIZE

    def _apply(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        p = self.p
        if self.op == "+":
            return (a + b) % p
        if self.op == "-":
            return (a - b) % p
        if self.op == "*":
            return (a * b) % p
        inverse = np.array([0] + [pow(int(x), -1, p) for x in range(1, p)], dtype=np.int64)
        return (a * inverse[b]) % p

    def pairs(self, split: str) -> np.ndarray:
        """The ``(n, 2)`` pairs ``(a, b)`` of ``split``: ``"train"`` or ``"heldout"``."""
        idx = {"train": self._train, "heldout": self._heldout}[opt_choice(self.name, "split", split, ["train", "heldout"])]
        return np.stack([self._a[idx], self._b[idx]], axis=1)

    def min_seq_len(self) -> int:
        """The smallest ``seq_len`` that fits every example."""
        return self._table.min_seq_len()

    def sample(self, rng: np.random.Generator, n: int, seq_len: int) -> Batch:
        """``n`` training pairs drawn uniformly with replacement."""
        seq_len = self._fit(seq_len)
        n = check_count(n, self.name)
        idx = self._train[rng.integers(0, len(self._train), size=n)]
        return self._table.take(idx, seq_len, self.name)

    def eval_sets(self, seq_len: int) -> dict[str, Batch]:
        """``{name: held-out pairs, name/train: training pairs}``."""
        seq_len = self._fit(seq_len)
        return {
            self.name: self._table.take(self._heldout_eval, seq_len, self.name),
            f"{self.name}/train": self._table.take(self._train_eval, seq_len, self.name),
        }
