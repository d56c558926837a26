"""What every data source of the harness shares: :class:`Batch`, the :class:`Source` protocol,
:class:`EvalSet`, vectorised row packing (:class:`ExampleTable`) and option checks.

Row layout (see ``docs/design/harness.md``): one example per row, ``BOS`` + prompt + target +
``EOS``, right-padded with ``PAD`` to ``seq_len``. The model reads ``tokens[:, :-1]`` and
predicts ``tokens[:, 1:]``; the masks are aligned with those targets, so ``loss_mask[i, j]``
says whether predicting ``tokens[i, j + 1]`` counts. For a task the loss covers every target
token and the ``EOS`` (the model must also learn to stop); ``answer_mask`` covers the final
result and the ``EOS`` only, and accuracy is "every answer token is the argmax". For most tasks
the two masks are equal; they differ for addition with a scratchpad (Lee et al. 2023), whose
loss covers the scratchpad but whose accuracy is the exact match of the final sum.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from scalelab.errors import DataError
from scalelab.harness.vocab import BOS, EOS, PAD

__all__ = [
    "BaseSource",
    "Batch",
    "EvalSet",
    "ExampleTable",
    "Source",
    "check_seq_len",
]


@dataclass(frozen=True)
class Batch:
    """Rows of token ids with the masks that say which predictions count.

    Attributes
    ----------
    tokens : numpy.ndarray
        ``(B, T)`` int64. The model input is ``tokens[:, :-1]``, the targets ``tokens[:, 1:]``.
    loss_mask : numpy.ndarray
        ``(B, T-1)`` bool, aligned with the targets: True where the loss counts (answer tokens
        of a task, every real token of text; never ``PAD``).
    answer_mask : numpy.ndarray, optional
        ``(B, T-1)`` bool, a subset of ``loss_mask``: the tokens that must all be the argmax for
        an example to count as correct. Defaults to ``loss_mask``.
    """

    tokens: np.ndarray
    loss_mask: np.ndarray
    answer_mask: np.ndarray = None  # type: ignore[assignment]  # None -> loss_mask

    def __post_init__(self) -> None:
        tokens, loss = self.tokens, self.loss_mask
        if tokens.ndim != 2 or tokens.dtype != np.int64:
            raise DataError(f"Batch.tokens must be a 2-D int64 array, got {tokens.dtype} {tokens.shape}")
        expected = (tokens.shape[0], tokens.shape[1] - 1)
        if loss.shape != expected or loss.dtype != np.bool_:
            raise DataError(f"Batch.loss_mask must be bool of shape {expected}, got {loss.dtype} {loss.shape}")
        if self.answer_mask is None:
            object.__setattr__(self, "answer_mask", loss)
        answer = self.answer_mask
        if answer.shape != expected or answer.dtype != np.bool_:
            raise DataError(f"Batch.answer_mask must be bool of shape {expected}, got {answer.dtype} {answer.shape}")
        if answer is not loss and np.any(answer & ~loss):
            raise DataError("Batch.answer_mask marks tokens outside loss_mask; answers must be scored tokens")

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def seq_len(self) -> int:
        """Row width ``T`` (the model sees ``T - 1`` positions)."""
        return int(self.tokens.shape[1])


@runtime_checkable
class Source(Protocol):
    """A skill task or text domain the :class:`~scalelab.harness.mixture.DataStream` draws rows from."""

    name: str
    kind: str

    def sample(self, rng: np.random.Generator, n: int, seq_len: int) -> Batch:
        """``n`` training rows drawn with ``rng`` (never a held-out example)."""
        ...

    def eval_sets(self, seq_len: int) -> dict[str, Batch]:
        """Skill name -> held-out rows, fixed by the source's own seed."""
        ...

    def config(self) -> dict[str, Any]:
        """JSON-able options; ``make_source(**source.config())`` rebuilds the source."""
        ...


@dataclass(frozen=True)
class EvalSet:
    """One held-out set of a run: its skill name, the source it comes from and its rows."""

    skill: str
    source: str
    kind: str
    batch: Batch


def check_seq_len(seq_len: object, source: str) -> int:
    """Validate a row width: an integer >= 2 (BOS plus one predicted token)."""
    if isinstance(seq_len, bool) or not isinstance(seq_len, (int, np.integer)) or seq_len < 2:
        raise DataError(f"source {source!r}: seq_len must be an integer >= 2, got {seq_len!r}")
    return int(seq_len)


def check_count(n: object, source: str) -> int:
    """Validate a number of rows to sample: an integer >= 0."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise DataError(f"source {source!r}: the number of rows must be an integer >= 0, got {n!r}")
    return int(n)


@dataclass(frozen=True)
class ExampleTable:
    """Rendered examples stored ragged (one flat byte array), packed into rows without loops.

    Example ``i`` is ``data[start[i] : start[i] + length[i]]``: its first ``prompt_len[i]``
    bytes are the prompt, the rest the target; the answer (for accuracy) starts at byte
    ``result_start[i]`` of the example.
    """

    data: np.ndarray
    start: np.ndarray
    length: np.ndarray
    prompt_len: np.ndarray
    result_start: np.ndarray

    @classmethod
    def from_texts(
        cls,
        prompts: Sequence[str],
        targets: Sequence[str],
        results: Sequence[str] | None = None,
    ) -> ExampleTable:
        """Encode examples given as text.

        ``results[i]``, if given, must be a suffix of ``targets[i]``: the part scored for
        accuracy (default: the whole target).
        """
        enc_p = [p.encode("utf-8") for p in prompts]
        enc_t = [t.encode("utf-8") for t in targets]
        plen = np.fromiter((len(b) for b in enc_p), dtype=np.int64, count=len(enc_p))
        tlen = np.fromiter((len(b) for b in enc_t), dtype=np.int64, count=len(enc_t))
        if results is None:
            rlen = tlen
        else:
            rlen = np.fromiter((len(r.encode("utf-8")) for r in results), dtype=np.int64, count=len(enc_t))
        length = plen + tlen
        start = np.zeros(len(length), dtype=np.int64)
        np.cumsum(length[:-1], out=start[1:])
        joined = b"".join(p + t for p, t in zip(enc_p, enc_t, strict=True))
        data = np.frombuffer(joined, dtype=np.uint8)
        return cls(data, start, length, plen, length - rlen)

    @classmethod
    def from_matrix(cls, rows: np.ndarray, prompt_len: int) -> ExampleTable:
        """Examples of equal length given as a ``(n, L)`` matrix; the target is ``[prompt_len:]``.

        ``rows`` holds bytes (``uint8``) or token ids (any integer dtype, e.g. source-defined
        symbols ``>= FIRST_SYMBOL``); ids are kept as they are.
        """
        n, width = rows.shape
        length = np.full(n, width, dtype=np.int64)
        start = np.arange(n, dtype=np.int64) * width
        plen = np.full(n, prompt_len, dtype=np.int64)
        dtype = np.uint8 if rows.dtype == np.uint8 else np.int64
        return cls(np.ascontiguousarray(rows, dtype=dtype).ravel(), start, length, plen, plen.copy())

    def __len__(self) -> int:
        return int(self.length.shape[0])

    def min_seq_len(self) -> int:
        """The smallest row width that fits every example (BOS + example + EOS)."""
        return int(self.length.max()) + 2 if len(self) else 2

    def take(self, index: np.ndarray | Sequence[int], seq_len: int, source: str) -> Batch:
        """Pack the examples at ``index`` into a :class:`Batch` of width ``seq_len``.

        Raises
        ------
        DataError
            If an example does not fit: it needs ``seq_len >= length + 2``.
        """
        seq_len = check_seq_len(seq_len, source)
        idx = np.asarray(index, dtype=np.int64)
        length = self.length[idx]
        if idx.size and int(length.max()) + 2 > seq_len:
            raise DataError(
                f"source {source!r}: an example needs seq_len >= {int(length.max()) + 2} "
                f"(BOS + example + EOS) but seq_len is {seq_len}; raise seq_len"
            )
        pos = np.arange(seq_len, dtype=np.int64)[None, :]  # (1, T)
        ln = length[:, None]  # (B, 1)
        inside = (pos >= 1) & (pos <= ln)  # (B, T): example bytes
        gather = np.where(inside, self.start[idx][:, None] + pos - 1, 0)
        data = self.data if self.data.size else np.zeros(1, dtype=np.uint8)
        tokens = np.where(inside, data[gather].astype(np.int64), PAD)
        tokens[:, 0] = BOS
        tokens[pos == ln + 1] = EOS
        tgt = pos[:, :-1]  # (1, T-1): mask column j scores tokens[:, j + 1]
        loss_mask = (tgt >= self.prompt_len[idx][:, None]) & (tgt <= ln)
        answer_mask = (tgt >= self.result_start[idx][:, None]) & (tgt <= ln)
        return Batch(tokens, loss_mask, answer_mask)


class BaseSource(ABC):
    """Shared plumbing of the built-in sources: name, kind, resolved options and ``config()``.

    Subclasses set ``registry_kind`` (the :func:`~scalelab.harness.sources.make_source` key),
    ``kind`` (``"task"`` or ``"text"``) and call :meth:`_set_options` with every resolved
    option, so ``config()`` rebuilds an identical source.
    """

    registry_kind: ClassVar[str] = ""
    kind: str = "task"
    name: str = ""

    def _set_options(self, **options: Any) -> None:
        self._options = dict(options)

    def config(self) -> dict[str, Any]:
        """JSON-able options, ``{"kind": <registry kind>, ...}``: ``make_source(**config)`` rebuilds."""
        return {"kind": self.registry_kind, **{k: _jsonable(v) for k, v in self._options.items()}}

    def _fit(self, seq_len: int) -> int:
        """Validate ``seq_len`` against the longest example, whatever a draw would contain."""
        seq_len = check_seq_len(seq_len, self.name)
        need = self.min_seq_len()
        if seq_len < need:
            raise DataError(
                f"source {self.name!r}: its longest example needs seq_len >= {need} "
                f"(BOS + example + EOS) but seq_len is {seq_len}; raise seq_len"
            )
        return seq_len

    @abstractmethod
    def sample(self, rng: np.random.Generator, n: int, seq_len: int) -> Batch:
        """``n`` training rows drawn with ``rng``."""

    @abstractmethod
    def eval_sets(self, seq_len: int) -> dict[str, Batch]:
        """Skill name -> held-out rows, fixed by the source's seed."""

    @abstractmethod
    def min_seq_len(self) -> int:
        """The smallest ``seq_len`` that fits every example of this source."""

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self._options.items())
        return f"{type(self).__name__}({opts})"


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


# ---- option checks shared by the sources (one-line DataErrors naming the option and the fix)


def opt_int(source: str, option: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """An integer option within ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise DataError(f"source {source!r}: option {option} must be an integer, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"in {low}..{high}" if low is not None else f"<= {high}"
        raise DataError(f"source {source!r}: option {option} must be {bounds}, got {value}")
    return int(value)


def opt_float(
    source: str, option: str, value: Any, low: float, high: float, *, open_low: bool = False
) -> float:
    """A finite real option within ``[low, high]`` (``(low, high]`` with ``open_low``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise DataError(f"source {source!r}: option {option} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v > high or v < low or (open_low and v == low):
        left = "(" if open_low else "["
        raise DataError(f"source {source!r}: option {option} must be in {left}{low}, {high}], got {value}")
    return v


def opt_choice(source: str, option: str, value: Any, choices: Sequence[str]) -> str:
    """A string option from a fixed list."""
    if value not in choices:
        raise DataError(
            f"source {source!r}: option {option} must be one of {', '.join(map(repr, choices))}, got {value!r}"
        )
    return str(value)


def opt_name(default: str, value: Any) -> str:
    """The source name: a non-empty string without whitespace (default ``default``)."""
    if value is None:
        return default
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        raise DataError(f"source name must be a non-empty string without spaces, got {value!r}")
    return value


def opt_seed(source: str, value: Any) -> int:
    """A seed: an integer >= 0."""
    return opt_int(source, "seed", value, low=0)


class RowSet:
    """A set of equal-width byte rows with vectorised membership (sorted keys + binary search)."""

    def __init__(self, rows: np.ndarray) -> None:
        self._keys = np.sort(_row_keys(rows))

    def __len__(self) -> int:
        return len(self._keys)

    def contains(self, rows: np.ndarray) -> np.ndarray:
        """Bool per row of ``rows`` (same width): is it in the set?"""
        keys = _row_keys(rows)
        if not len(self._keys):
            return np.zeros(len(keys), dtype=bool)
        pos = np.minimum(np.searchsorted(self._keys, keys), len(self._keys) - 1)
        return self._keys[pos] == keys


def distinct_rows(draw: Callable[[int], np.ndarray], n: int) -> np.ndarray:
    """``n`` distinct rows, in draw order, from repeated calls ``draw(k)`` returning ``(k, w)`` bytes."""
    rows = draw(n)
    while True:
        _, first = np.unique(_row_keys(rows), return_index=True)
        rows = rows[np.sort(first)]
        if len(rows) >= n:
            return rows[:n]
        rows = np.concatenate([rows, draw(n - len(rows))])


def _row_keys(rows: np.ndarray) -> np.ndarray:
    rows = np.ascontiguousarray(rows, dtype=np.uint8)
    return rows.view(np.dtype((np.void, rows.shape[1]))).ravel()


def rng_for(seed: int, *stream: int) -> np.random.Generator:
    """A generator for one named stream of a source (``stream`` ids keep streams independent)."""
    return np.random.default_rng([seed, *stream])
