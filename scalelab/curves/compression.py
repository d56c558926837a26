"""Compression score: the prequential code length of the data under an online-trained model.

A model trained online encodes each batch with the predictions it makes *before* it is
updated on that batch, so the online training loss (in nats per token) is the cost of
transmitting the batch, and the area under the online loss curve over tokens is the code
length of the data seen so far (Rissanen 1984; Blier & Ollivier 2018, "The Description Length
of Deep Learning Models", arXiv:1802.07044). This module turns a logged online loss curve
into that code length in bits, bits per token, bits per byte and a compression ratio, and
compares runs trained on the same data by code length.

Conventions
-----------
* ``tokens[i]`` is the cumulative number of training tokens *after* the batch whose loss is
  ``loss[i]`` (so the batch spans ``(tokens[i] - tokens_per_step, tokens[i]]``).
* Losses are mean cross-entropies per token, in nats (``loss_unit="bits"`` converts).
* When ``tokens_per_step`` is known each logged loss is charged exactly for its own batch and
  only the unlogged gaps between logged batches are interpolated, so a fully logged run gives
  exactly the sum of per-batch code lengths. When it is not known each logged loss is treated
  as the value of the curve at ``tokens[i]``.

Integration rules between logged points (``rule=``):

``"loglog"`` (default)
    the loss is interpolated as a power law between neighbouring points (a straight line in
    log loss against log tokens) and integrated exactly. Exact for a pure power law, and
    within 0.06% of the closed form on saturating power laws ``E + A t^-alpha`` logged at
    4 points per decade (measured in docs/compression.md); needs positive losses.
``"trapezoid"``
    linear in tokens (the trapezoid rule). Accurate for dense, linearly spaced logging but
    biased upwards on log-spaced logging of a convex curve (up to 2.1% on the same curves).
``"step"``
    each logged loss is charged for every token since the previous logged point (a right
    Riemann sum): what a log that averages the loss over each logging interval means.

The stretch before the first logged batch (``head=``) is handled explicitly:
``"uniform"`` charges ``log(vocab)`` nats per token (the code length of a uniform model, i.e.
of an untrained model with no information), ``"first"`` extends the first logged loss back to
token 0, and ``"exclude"`` integrates from the first logged batch only (the result's
``tokens_start`` says where coverage begins).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from scalelab.errors import DataError

__all__ = [
    "HEADS",
    "RULES",
    "CodeLength",
    "Comparison",
    "OnlineLoss",
    "RankedRun",
    "code_length",
    "compare_code_lengths",
    "merge_duplicate_tokens",
]

HEADS = ("uniform", "first", "exclude")
RULES = ("loglog", "trapezoid", "step")
_LN2 = math.log(2.0)


@dataclass(frozen=True)
class CodeLength:
    """The prequential code length of one run's data, with what it covers.

    Attributes
    ----------
    bits : float
        Code length of the covered tokens, in bits (area under the online loss / ln 2).
    tokens : float
        Number of tokens covered, ``tokens_end - tokens_start``.
    tokens_start, tokens_end : float
        The covered token range: from 0 (or the first logged batch with ``head="exclude"``,
        or ``start``) to the last logged token (or ``stop``).
    bits_per_token : float
        ``bits / tokens``.
    bits_per_byte : float or None
        ``bits_per_token / bytes_per_token`` when bytes per token are known.
    raw_bits_per_token : float or None
        The raw encoding: ``8 * bytes_per_token`` when known, else ``log2(vocab)`` when the
        vocabulary is known, else None.
    compression_ratio : float or None
        Raw bits over code bits (``raw_bits_per_token / bits_per_token``); above 1 means the
        model compresses the data better than the raw encoding.
    head : str
        How tokens before the first logged batch were charged (``uniform``, ``first``,
        ``exclude``).
    head_tokens, head_bits : float
        Tokens before the first logged batch inside the covered range, and the bits charged
        for them (0 with ``head="exclude"``).
    rule : str
        Integration rule between logged points (``loglog``, ``trapezoid``, ``step``).
    tokens_per_step : float or None
        Batch size in tokens, when known (each logged loss is then charged for its batch).
    n_points : int
        Number of logged points used.
    vocab, bytes_per_token : float or None
        The vocabulary size and bytes per token given, if any.
    """

    bits: float
    tokens: float
    tokens_start: float
    tokens_end: float
    bits_per_token: float
    bits_per_byte: float | None
    raw_bits_per_token: float | None
    compression_ratio: float | None
    head: str
    head_tokens: float
    head_bits: float
    rule: str
    tokens_per_step: float | None
    n_points: int
    vocab: float | None = None
    bytes_per_token: float | None = None

    @property
    def nats(self) -> float:
        """The code length in nats (``bits * ln 2``)."""
        return self.bits * _LN2

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-ready dict."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True, init=False)
class OnlineLoss:
    """One run's online training loss: the input to :func:`compare_code_lengths`.

    Parameters
    ----------
    tokens : array_like
        Cumulative tokens after each logged batch (positive, strictly increasing).
    loss : array_like
        The batch's loss measured before the update on it.
    tokens_per_step : float, optional
        Tokens per batch, when known.
    """

    tokens: np.ndarray
    loss: np.ndarray
    tokens_per_step: float | None

    def __init__(
        self, tokens: ArrayLike, loss: ArrayLike, tokens_per_step: float | None = None
    ) -> None:
        object.__setattr__(self, "tokens", np.asarray(tokens, dtype=float))
        object.__setattr__(self, "loss", np.asarray(loss, dtype=float))
        object.__setattr__(self, "tokens_per_step", tokens_per_step)


@dataclass(frozen=True)
class RankedRun:
    """One run in a :class:`Comparison`: its rank (1 = shortest code) and gap to the best."""

    run: str
    rank: int
    code: CodeLength
    bits_minus_best: float
    ratio_to_best: float

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-ready dict."""
        return {
            "run": self.run,
            "rank": self.rank,
            "bits_minus_best": self.bits_minus_best,
            "ratio_to_best": self.ratio_to_best,
            **self.code.to_dict(),
        }


@dataclass(frozen=True)
class Comparison:
    """Runs ranked by code length over the same token range (shortest code first).

    Attributes
    ----------
    runs : tuple of RankedRun
        Best first; ``bits_minus_best`` is the extra code length in bits and
        ``ratio_to_best`` the code-length ratio to the best run.
    tokens_start, tokens_end : float
        The token range every run was scored on.
    truncated : bool
        Whether runs were cut to their common token range.
    """

    runs: tuple[RankedRun, ...]
    tokens_start: float
    tokens_end: float
    truncated: bool = False
    notes: tuple[str, ...] = field(default=())

    @property
    def best(self) -> RankedRun:
        """The run with the shortest code."""
        return self.runs[0]

    def to_dict(self) -> dict[str, Any]:
        """Return the comparison as a JSON-ready dict."""
        return {
            "tokens_start": self.tokens_start,
            "tokens_end": self.tokens_end,
            "truncated": self.truncated,
            "runs": [r.to_dict() for r in self.runs],
        }


# ----------------------------------------------------------------------------- validation
def _positive_option(value: float | None, name: str, minimum: float = 0.0) -> float | None:
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value) or value <= minimum:
        raise DataError(f"{name} must be a finite number > {minimum:g}, got {value!r}")
    return value


def _check_curve(tokens: ArrayLike, loss: ArrayLike, what: str) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(tokens, dtype=float)
    y = np.asarray(loss, dtype=float)
    if t.ndim != 1 or y.ndim != 1 or t.shape != y.shape:
        raise DataError(
            f"{what}: tokens and loss must be 1-D arrays of equal length, got shapes "
            f"{t.shape} and {y.shape}"
        )
    if t.size < 2:
        raise DataError(
            f"{what}: {t.size} logged point(s); a code length needs at least 2 logged points"
        )
    if not np.all(np.isfinite(t)) or np.any(t <= 0):
        i = int(np.flatnonzero(~np.isfinite(t) | (t <= 0))[0])
        raise DataError(
            f"{what}: tokens must be finite and > 0 (cumulative tokens after the batch); "
            f"point {i} has {t[i]!r}"
        )
    if not np.all(np.isfinite(y)) or np.any(y < 0):
        i = int(np.flatnonzero(~np.isfinite(y) | (y < 0))[0])
        raise DataError(
            f"{what}: losses must be finite and >= 0 (cross-entropy in nats); point {i} has "
            f"{y[i]!r}; drop or fix that point"
        )
    steps = np.diff(t)
    if np.any(steps <= 0):
        i = int(np.flatnonzero(steps <= 0)[0])
        kind = "repeated" if steps[i] == 0 else "decreasing"
        raise DataError(
            f"{what}: tokens must be strictly increasing, but {t[i + 1]!r} after {t[i]!r} is "
            f"{kind}; sort the points, or merge repeated tokens (merge_duplicate_tokens)"
        )
    return t, y


def merge_duplicate_tokens(
    tokens: ArrayLike, loss: ArrayLike
) -> tuple[np.ndarray, np.ndarray, int]:
    """Sort points by tokens and average the losses of points logged at the same tokens.

    Useful for curves digitised from figures, where several pixels share one x position.

    Parameters
    ----------
    tokens, loss : array_like
        Logged points, in any order.

    Returns
    -------
    tokens : numpy.ndarray
        The distinct token values, increasing.
    loss : numpy.ndarray
        The mean loss at each distinct token value.
    n_merged : int
        How many points were merged away (``len(input) - len(output)``).

    Examples
    --------
    >>> t, y, n = merge_duplicate_tokens([2.0, 1.0, 2.0], [3.0, 5.0, 4.0])
    >>> t.tolist(), y.tolist(), n
    ([1.0, 2.0], [5.0, 3.5], 1)
    """
    t = np.asarray(tokens, dtype=float)
    y = np.asarray(loss, dtype=float)
    if t.shape != y.shape or t.ndim != 1:
        raise DataError("tokens and loss must be 1-D arrays of equal length")
    unique, inverse, counts = np.unique(t, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=y, minlength=unique.size)
    return unique, sums / counts, int(t.size - unique.size)


# ----------------------------------------------------------------------------- integration
def _integrate_gaps(
    lo: np.ndarray,
    hi: np.ndarray,
    x0: np.ndarray,
    y0: np.ndarray,
    x1: np.ndarray,
    y1: np.ndarray,
    rule: str,
) -> np.ndarray:
    """Integrate the interpolant through ``(x0, y0)``, ``(x1, y1)`` over ``[lo, hi]``.

    ``[lo, hi]`` lies inside ``[x0, x1]``; the result is one integral per gap, in nats.
    """
    width = hi - lo
    if rule == "step":
        return width * y1
    if rule == "trapezoid":
        slope = (y1 - y0) / (x1 - x0)
        f_lo = y0 + slope * (lo - x0)
        f_hi = y0 + slope * (hi - x0)
        return width * 0.5 * (f_lo + f_hi)
    # loglog: y = y0 (x / x0)^(-k); integral = y0 x0 [(hi/x0)^g - (lo/x0)^g] / g, g = 1 - k.
    g = 1.0 + np.log(y1 / y0) / np.log(x1 / x0)
    u = np.log(lo / x0)
    d = np.log(hi / lo)
    z = g * d
    small = np.abs(z) < 1e-8
    safe = np.where(small, 1.0, z)
    expm1_over_z = np.where(small, 1.0 + 0.5 * z, np.expm1(safe) / safe)
    return y0 * x0 * np.exp(g * u) * d * expm1_over_z


def code_length(
    tokens: ArrayLike,
    loss: ArrayLike,
    *,
    tokens_per_step: float | None = None,
    head: str = "uniform",
    rule: str = "loglog",
    vocab: float | None = None,
    bytes_per_token: float | None = None,
    loss_unit: str = "nats",
    start: float | None = None,
    stop: float | None = None,
    name: str = "run",
) -> CodeLength:
    """Prequential code length of the tokens a run was trained on, from its online loss.

    ``bits = (1 / ln 2) * integral of loss(t) dt`` over the covered tokens, with the loss
    interpolated between logged points by ``rule`` and the tokens before the first logged
    batch charged by ``head`` (see the module docstring for both).

    Parameters
    ----------
    tokens : array_like
        Cumulative training tokens after each logged batch; positive, strictly increasing.
    loss : array_like
        Each logged batch's loss measured before the update on it (mean per token).
    tokens_per_step : float, optional
        Tokens per batch. When given, each logged loss is charged for exactly its batch
        ``(tokens[i] - tokens_per_step, tokens[i]]`` and only the unlogged gaps are
        interpolated (between the batches' midpoints), so a run logged at every step gives
        exactly ``sum(loss) * tokens_per_step / ln 2``.
    head : {"uniform", "first", "exclude"}
        Charge for the tokens before the first logged batch: ``log(vocab)`` nats per token,
        the first logged loss, or nothing (coverage then starts at the first logged batch).
    rule : {"loglog", "trapezoid", "step"}
        Interpolation between logged points: power law (exact for power laws), linear in
        tokens, or each loss charged for the tokens since the previous logged point.
    vocab : float, optional
        Vocabulary size: needed by ``head="uniform"``; gives the raw encoding ``log2(vocab)``
        bits per token when ``bytes_per_token`` is not given.
    bytes_per_token : float, optional
        Mean bytes of raw text per token: gives bits per byte and a ratio against 8 bits per
        byte (preferred over the vocabulary when both are given).
    loss_unit : {"nats", "bits"}
        Unit of ``loss``.
    start, stop : float, optional
        Score only the token range ``[start, stop]`` (inside the covered range); used to
        compare runs on their common range.
    name : str
        Label used in error messages.

    Returns
    -------
    CodeLength

    Raises
    ------
    DataError
        On fewer than 2 points, non-positive or non-increasing tokens, negative or non-finite
        losses, batches that overlap, an unknown ``head`` or ``rule``, ``head="uniform"``
        without ``vocab``, or a ``start``/``stop`` outside the covered range.

    Examples
    --------
    A run logged at every one of its 4 steps of 100 tokens:

    >>> res = code_length([100, 200, 300, 400], [2.0, 1.5, 1.2, 1.0], tokens_per_step=100,
    ...                   head="first")
    >>> round(res.bits, 6) == round((2.0 + 1.5 + 1.2 + 1.0) * 100 / math.log(2), 6)
    True
    """
    if head not in HEADS:
        raise DataError(f"unknown head {head!r}; use one of {', '.join(HEADS)}")
    if rule not in RULES:
        raise DataError(f"unknown integration rule {rule!r}; use one of {', '.join(RULES)}")
    if loss_unit not in ("nats", "bits"):
        raise DataError(f"unknown loss unit {loss_unit!r}; use 'nats' or 'bits'")
    t, y = _check_curve(tokens, loss, name)
    if loss_unit == "bits":
        y = y * _LN2
    vocab = _positive_option(vocab, "vocab", minimum=1.0)
    bytes_per_token = _positive_option(bytes_per_token, "bytes_per_token")
    batch = _positive_option(tokens_per_step, "tokens_per_step") or 0.0
    if head == "uniform" and vocab is None:
        raise DataError(
            "head='uniform' charges log(vocab) nats per token before the first logged step: "
            "give the vocabulary size (--vocab), or use head 'first' or 'exclude'"
        )
    if rule == "loglog" and np.any(y <= 0):
        raise DataError(
            f"{name}: rule 'loglog' interpolates log loss and needs losses > 0; "
            "use rule 'trapezoid' for curves that reach 0"
        )

    starts = t - batch  # where each logged batch begins
    if batch:
        slack = 1e-9 * t
        if starts[0] < -slack[0]:
            raise DataError(
                f"{name}: the first logged point is at {t[0]:g} tokens, fewer than one batch of "
                f"{batch:g}; tokens must count the batch itself (tokens after the step)"
            )
        overlap = starts[1:] < t[:-1] - slack[1:]
        if np.any(overlap):
            i = int(np.flatnonzero(overlap)[0])
            raise DataError(
                f"{name}: points at {t[i]:g} and {t[i + 1]:g} tokens are closer than one batch "
                f"of {batch:g} tokens; check tokens_per_step"
            )
        starts = np.maximum(starts, np.concatenate([[0.0], t[:-1]]))
    first = float(starts[0])
    cover_lo = first if head == "exclude" else 0.0
    cover_hi = float(t[-1])
    lo_bound = cover_lo if start is None else float(start)
    hi_bound = cover_hi if stop is None else float(stop)
    tol = 1e-9 * cover_hi
    if not (cover_lo - tol <= lo_bound < hi_bound <= cover_hi + tol):
        raise DataError(
            f"{name}: cannot score tokens [{lo_bound:g}, {hi_bound:g}]: the run covers "
            f"[{cover_lo:g}, {cover_hi:g}] (head={head!r})"
        )
    lo_bound, hi_bound = max(lo_bound, cover_lo), min(hi_bound, cover_hi)

    def clip(a: np.ndarray | float, b: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        a_c = np.clip(a, lo_bound, hi_bound)
        b_c = np.clip(b, lo_bound, hi_bound)
        return np.asarray(a_c, dtype=float), np.asarray(np.maximum(b_c, a_c), dtype=float)

    nats = 0.0
    # Head: tokens before the first logged batch.
    h_lo, h_hi = clip(0.0, first)
    head_tokens = float(h_hi - h_lo) if head != "exclude" else 0.0
    head_rate = math.log(vocab) if head == "uniform" and vocab else float(y[0])
    head_nats = head_tokens * head_rate
    nats += head_nats
    # Logged batches, charged exactly (empty when the batch size is unknown).
    if batch:
        b_lo, b_hi = clip(starts, t)
        nats += float(np.sum((b_hi - b_lo) * y))
    # Unlogged gaps between logged batches, interpolated between batch midpoints.
    mid = t - batch / 2.0
    g_lo, g_hi = clip(t[:-1], starts[1:])
    open_gap = g_hi > g_lo
    if np.any(open_gap):
        nats += float(
            np.sum(
                _integrate_gaps(
                    g_lo[open_gap],
                    g_hi[open_gap],
                    mid[:-1][open_gap],
                    y[:-1][open_gap],
                    mid[1:][open_gap],
                    y[1:][open_gap],
                    rule,
                )
            )
        )

    covered = hi_bound - lo_bound
    bits = nats / _LN2
    bpt = bits / covered
    if bytes_per_token is not None:
        raw: float | None = 8.0 * bytes_per_token
    elif vocab is not None:
        raw = math.log2(vocab)
    else:
        raw = None
    return CodeLength(
        bits=bits,
        tokens=covered,
        tokens_start=lo_bound,
        tokens_end=hi_bound,
        bits_per_token=bpt,
        bits_per_byte=None if bytes_per_token is None else bpt / bytes_per_token,
        raw_bits_per_token=raw,
        compression_ratio=None if raw is None else raw / bpt,
        head=head,
        head_tokens=head_tokens,
        head_bits=head_nats / _LN2,
        rule=rule,
        tokens_per_step=batch or None,
        n_points=int(t.size),
        vocab=vocab,
        bytes_per_token=bytes_per_token,
    )


# ----------------------------------------------------------------------------- comparison
def compare_code_lengths(
    runs: Mapping[str, OnlineLoss],
    *,
    truncate: bool = False,
    head: str = "uniform",
    rule: str = "loglog",
    vocab: float | None = None,
    bytes_per_token: float | None = None,
    loss_unit: str = "nats",
    rtol: float = 1e-6,
) -> Comparison:
    """Rank runs trained on the same data by the code length of the tokens they saw.

    The shorter code is the better learner on that data (it compressed it more, counting the
    cost of learning). Code lengths are comparable only over the same tokens, so runs must
    cover the same token range; with ``truncate=True`` every run is scored on the range all
    of them cover (from the latest coverage start to the earliest end). That the runs saw
    the same data in the same order is the caller's responsibility.

    Parameters
    ----------
    runs : mapping of run name -> OnlineLoss
        At least one run.
    truncate : bool
        Score every run on the common token range instead of refusing unequal coverage.
    head, rule, vocab, bytes_per_token, loss_unit
        As in :func:`code_length`, applied to every run.
    rtol : float
        Relative tolerance for "same coverage".

    Returns
    -------
    Comparison
        Runs ranked by bits (shortest first), with the difference in bits and the ratio to
        the best run.

    Raises
    ------
    DataError
        If runs cover different token ranges and ``truncate`` is False, if the common range
        is empty, or if a run's curve is invalid.

    Examples
    --------
    >>> a = OnlineLoss([100, 200, 300], [2.0, 1.5, 1.2])
    >>> b = OnlineLoss([100, 200, 300], [2.0, 1.8, 1.6])
    >>> cmp = compare_code_lengths({"a": a, "b": b}, head="first")
    >>> [r.run for r in cmp.runs], cmp.runs[1].ratio_to_best > 1
    (['a', 'b'], True)
    """
    if not runs:
        raise DataError("no runs to compare; give at least one run")
    options: dict[str, Any] = {
        "head": head,
        "rule": rule,
        "vocab": vocab,
        "bytes_per_token": bytes_per_token,
        "loss_unit": loss_unit,
    }
    codes = {
        str(name): code_length(
            run.tokens, run.loss, tokens_per_step=run.tokens_per_step, name=str(name), **options
        )
        for name, run in runs.items()
    }
    lo = max(c.tokens_start for c in codes.values())
    hi = min(c.tokens_end for c in codes.values())
    tol = rtol * max(c.tokens_end for c in codes.values())
    same = all(
        abs(c.tokens_start - lo) <= tol and abs(c.tokens_end - hi) <= tol for c in codes.values()
    )
    notes: list[str] = []
    if not same:
        ranges = "; ".join(
            f"{name} [{c.tokens_start:.4g}, {c.tokens_end:.4g}]" for name, c in codes.items()
        )
        if not truncate:
            raise DataError(
                f"runs cover different tokens ({ranges}); code lengths compare only over the "
                "same tokens: truncate to the common range (--truncate / truncate=True)"
            )
        if not lo < hi:
            raise DataError(f"runs share no token range ({ranges}); nothing to compare")
        codes = {
            str(name): code_length(
                run.tokens,
                run.loss,
                tokens_per_step=run.tokens_per_step,
                name=str(name),
                start=lo,
                stop=hi,
                **options,
            )
            for name, run in runs.items()
        }
        notes.append(f"truncated every run to tokens [{lo:.6g}, {hi:.6g}]")
    order = sorted(codes, key=lambda n: codes[n].bits)
    best = codes[order[0]].bits
    ranked = tuple(
        RankedRun(
            run=name,
            rank=i + 1,
            code=codes[name],
            bits_minus_best=codes[name].bits - best,
            ratio_to_best=codes[name].bits / best if best > 0 else math.inf,
        )
        for i, name in enumerate(order)
    )
    first = codes[order[0]]
    return Comparison(
        runs=ranked,
        tokens_start=first.tokens_start,
        tokens_end=first.tokens_end,
        truncated=not same,
        notes=tuple(notes),
    )
