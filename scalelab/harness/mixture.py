"""Mixtures, curricula and the deterministic data stream of a run.

A schedule says, at each training step, how often each source is drawn:

* :class:`Mixture` -- fixed weights for the whole run (one source: ``Mixture({name: 1})``);
  the data-mixing setting of Ye et al. (2024), "Data Mixing Laws", arXiv:2403.16952.
* :class:`Curriculum` -- ordered :class:`Phase` s, each with its own weights and a length in
  steps or as a fraction of the run (the last phase may leave its length open: it runs to the
  end); staged training as in Chen et al. (2023), "Skill-it!", arXiv:2307.14430.

:class:`DataStream` turns a schedule and sources into batches. ``batch(step, ...)`` is a pure
function of ``(data_seed, step)``: it seeds ``np.random.default_rng([data_seed, step])``, draws
each row's source from the step's weights, then one seed per source, and asks each drawn
source for its rows. Resuming therefore needs only the step, and a resumed run sees exactly the
batches an uninterrupted run would.

Examples
--------
>>> from scalelab.harness.sources import make_source
>>> stream = DataStream({"modadd": make_source("modular", p=11)}, Mixture({"modadd": 1.0}), data_seed=0)
>>> batch, source_ids = stream.batch(step=0, batch_size=4, seq_len=10)
>>> batch.tokens.shape, source_ids.tolist()
((4, 10), [0, 0, 0, 0])
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from scalelab.errors import DataError
from scalelab.harness.sources.base import Batch, EvalSet, Source, check_seq_len
from scalelab.harness.vocab import PAD, VOCAB_SIZE

__all__ = ["Curriculum", "DataStream", "Mixture", "Phase", "Schedule", "schedule_from_config"]


def _check_weights(weights: Any, where: str) -> dict[str, float]:
    """Non-empty ``{source name: weight}``, every weight finite and >= 0, positive sum."""
    if not isinstance(weights, Mapping) or not weights:
        raise DataError(f"{where} is empty; give at least one source a positive weight, e.g. {{'modadd': 1.0}}")
    out: dict[str, float] = {}
    for name, w in weights.items():
        if not isinstance(name, str) or not name:
            raise DataError(f"{where}: source names must be non-empty strings, got {name!r}")
        if isinstance(w, bool) or not isinstance(w, (int, float, np.integer, np.floating)) or not math.isfinite(w):
            raise DataError(f"{where}: the weight of {name!r} must be a finite number, got {w!r}")
        if w < 0:
            raise DataError(f"{where}: the weight of {name!r} is negative ({w}); weights must be >= 0")
        out[name] = float(w)
    if sum(out.values()) <= 0:
        raise DataError(f"{where}: the weights sum to 0, so there is no data; give some source a positive weight")
    return out


def _normalised(weights: Mapping[str, float]) -> dict[str, float]:
    total = sum(weights.values())
    return {k: v / total for k, v in weights.items()}


def _check_step(step: Any) -> int:
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
        raise DataError(f"step must be an integer >= 0, got {step!r}")
    return int(step)


def _check_total(total_steps: Any) -> int:
    if isinstance(total_steps, bool) or not isinstance(total_steps, (int, np.integer)) or total_steps < 1:
        raise DataError(f"total_steps must be an integer >= 1, got {total_steps!r}")
    return int(total_steps)


@dataclass(frozen=True)
class Mixture:
    """Fixed source weights for the whole run (normalised to sum to 1 when used).

    Parameters
    ----------
    weights : dict of str to float
        Source name -> non-negative weight; the weights must have a positive sum.
    """

    weights: Mapping[str, float]

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", _check_weights(self.weights, "mixture"))

    def source_names(self) -> list[str]:
        """Every source the schedule names (with any weight)."""
        return list(self.weights)

    def check(self, total_steps: int | None = None) -> None:
        """Nothing to check: a mixture covers any run length."""

    def weights_at(self, step: int, total_steps: int | None = None) -> dict[str, float]:
        """Normalised weights at ``step`` (the same at every step)."""
        _check_step(step)
        return _normalised(self.weights)

    def config(self) -> dict[str, Any]:
        """``{"mixture": weights}``; :func:`schedule_from_config` rebuilds it."""
        return {"mixture": dict(self.weights)}


@dataclass(frozen=True)
class Phase:
    """One stage of a :class:`Curriculum`: weights for ``steps`` steps or a ``fraction`` of the run.

    Give exactly one of ``steps`` and ``fraction``; only a curriculum's last phase may give
    neither, meaning "until the end of the run".
    """

    weights: Mapping[str, float]
    steps: int | None = None
    fraction: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", _check_weights(self.weights, "curriculum phase"))
        if self.steps is not None and self.fraction is not None:
            raise DataError("a curriculum phase gives both steps and fraction; give one of them")
        if self.steps is not None and (
            isinstance(self.steps, bool) or not isinstance(self.steps, (int, np.integer)) or self.steps < 1
        ):
            raise DataError(f"a curriculum phase has steps={self.steps!r}, so no data; give an integer >= 1")
        if self.fraction is not None and (
            isinstance(self.fraction, bool)
            or not isinstance(self.fraction, (int, float, np.integer, np.floating))
            or not 0 < self.fraction <= 1
        ):
            raise DataError(f"a curriculum phase has fraction={self.fraction!r}; give a number in (0, 1]")

    @property
    def open_ended(self) -> bool:
        """True when the phase gives no length (it runs to the end)."""
        return self.steps is None and self.fraction is None


@dataclass(frozen=True)
class Curriculum:
    """Ordered phases, each with its own weights (e.g. text, then code).

    Parameters
    ----------
    phases : list of Phase
        At least one; lengths in steps or fractions of the run, which must cover the run.
    """

    phases: Sequence[Phase]

    def __post_init__(self) -> None:
        phases = tuple(self.phases)
        if not phases:
            raise DataError("the curriculum has no phases; give at least one Phase(weights, steps=...)")
        for i, ph in enumerate(phases):
            if not isinstance(ph, Phase):
                raise DataError(f"curriculum phase {i} is {type(ph).__name__}, not a Phase")
            if ph.open_ended and i < len(phases) - 1:
                raise DataError(f"curriculum phase {i} gives neither steps nor fraction; only the last phase may")
        object.__setattr__(self, "phases", phases)

    def source_names(self) -> list[str]:
        """Every source named by some phase."""
        return list(dict.fromkeys(name for ph in self.phases for name in ph.weights))

    def boundaries(self, total_steps: int | None = None) -> list[int]:
        """The step at which each phase ends (exclusive), validated against ``total_steps``.

        Raises
        ------
        DataError
            A phase given as a fraction without ``total_steps``; a phase that gets no steps;
            phases that end before ``total_steps``.
        """
        if total_steps is not None:
            total_steps = _check_total(total_steps)
        ends: list[int] = []
        steps_so_far, fraction_so_far = 0, 0.0
        for i, ph in enumerate(self.phases):
            if ph.open_ended:
                end = total_steps if total_steps is not None else math.inf
            else:
                if ph.steps is not None:
                    steps_so_far += int(ph.steps)
                else:
                    if total_steps is None:
                        raise DataError(f"curriculum phase {i} is a fraction of the run; give total_steps")
                    fraction_so_far += float(ph.fraction)  # type: ignore[arg-type]
                end = steps_so_far + (math.floor(fraction_so_far * total_steps + 0.5) if total_steps else 0)
            begin = ends[-1] if ends else 0
            if end <= begin or (total_steps is not None and begin >= total_steps):
                raise DataError(
                    f"curriculum phase {i} gets no steps (it would run from step {begin} to {end}"
                    + (f" of a {total_steps}-step run" if total_steps is not None else "")
                    + "); shorten the earlier phases or drop it"
                )
            ends.append(end)  # type: ignore[arg-type]
        if total_steps is not None and ends[-1] < total_steps:
            raise DataError(
                f"the curriculum's phases cover {ends[-1]} steps but the run has {total_steps}; "
                "lengthen them or leave the last phase open (no steps or fraction)"
            )
        return ends

    def check(self, total_steps: int | None = None) -> None:
        """Validate the phase lengths against the run length (see :meth:`boundaries`)."""
        self.boundaries(total_steps)

    def phase_at(self, step: int, total_steps: int | None = None) -> int:
        """Index of the phase that ``step`` falls in."""
        step = _check_step(step)
        ends = self.boundaries(total_steps)
        for i, end in enumerate(ends):
            if step < end:
                return i
        raise DataError(f"step {step} is past the curriculum's end at step {ends[-1]}")

    def weights_at(self, step: int, total_steps: int | None = None) -> dict[str, float]:
        """Normalised weights of the phase ``step`` falls in."""
        return _normalised(self.phases[self.phase_at(step, total_steps)].weights)

    def config(self) -> dict[str, Any]:
        """``{"curriculum": [{"weights": ..., "steps"|"fraction": ...}, ...]}``."""
        out = []
        for ph in self.phases:
            entry: dict[str, Any] = {"weights": dict(ph.weights)}
            if ph.steps is not None:
                entry["steps"] = int(ph.steps)
            if ph.fraction is not None:
                entry["fraction"] = float(ph.fraction)
            out.append(entry)
        return {"curriculum": out}


Schedule = Mixture | Curriculum


def schedule_from_config(config: Mapping[str, Any]) -> Schedule:
    """Build a schedule from its config form.

    Accepts ``{"mixture": {name: weight}}``, ``{"source": name}`` (one source) or
    ``{"curriculum": [{"weights": {...}, "steps": n} | {"weights": ..., "fraction": f} | ...]}``.

    Examples
    --------
    >>> schedule_from_config({"curriculum": [{"weights": {"a": 1}, "steps": 10}, {"weights": {"b": 1}}]}).boundaries(30)
    [10, 30]
    """
    if not isinstance(config, Mapping) or len(config) != 1:
        raise DataError(
            f"a schedule needs exactly one of mixture, source or curriculum, got {config!r}"
        )
    (key, value), = config.items()
    if key == "mixture":
        return Mixture(value)
    if key == "source":
        if not isinstance(value, str):
            raise DataError(f"schedule source must be a source name, got {value!r}")
        return Mixture({value: 1.0})
    if key == "curriculum":
        if not isinstance(value, Sequence) or isinstance(value, str):
            raise DataError("schedule curriculum must be a list of phases")
        phases = []
        for i, entry in enumerate(value):
            if not isinstance(entry, Mapping) or "weights" not in entry or set(entry) - {"weights", "steps", "fraction"}:
                raise DataError(
                    f"curriculum phase {i} must be a table with weights and steps or fraction, got {entry!r}"
                )
            phases.append(Phase(entry["weights"], steps=entry.get("steps"), fraction=entry.get("fraction")))
        return Curriculum(phases)
    raise DataError(f"unknown schedule {key!r}; use mixture, source or curriculum")


class DataStream:
    """Deterministic batches from named sources under a schedule.

    Parameters
    ----------
    sources : dict of str to Source
        Source name -> source; each key must equal the source's ``name``. Sources that the
        schedule never weights are allowed (their eval sets still count).
    schedule : Mixture or Curriculum
        The weights over time; every name it uses must be in ``sources``.
    data_seed : int
        Seed of the data order (separate from the model's init seed and the sources' seeds).
    total_steps : int, optional
        Run length: needed for phases given as fractions; when given, the schedule is checked
        against it here, before any run starts.

    Attributes
    ----------
    names : tuple of str
        Source names in sorted order; ``source_ids`` returned by :meth:`batch` index into it.
    """

    def __init__(
        self,
        sources: Mapping[str, Source],
        schedule: Schedule,
        data_seed: int,
        *,
        total_steps: int | None = None,
    ) -> None:
        if not isinstance(sources, Mapping) or not sources:
            raise DataError("the data stream has no sources; give at least one, e.g. {'modadd': make_source('modular')}")
        for key, src in sources.items():
            if not isinstance(src, Source):
                raise DataError(f"source {key!r} is a {type(src).__name__}, not a Source (see make_source)")
            if src.name != key:
                raise DataError(f"sources key {key!r} differs from the source's name {src.name!r}; build it with name={key!r}")
        if not isinstance(schedule, (Mixture, Curriculum)):
            raise DataError(f"schedule must be a Mixture or Curriculum, got {type(schedule).__name__}")
        unknown = [n for n in schedule.source_names() if n not in sources]
        if unknown:
            raise DataError(
                f"the schedule weights unknown source(s) {', '.join(map(repr, unknown))}; "
                f"known sources: {', '.join(sorted(sources))}"
            )
        if isinstance(data_seed, bool) or not isinstance(data_seed, (int, np.integer)) or data_seed < 0:
            raise DataError(f"data_seed must be an integer >= 0, got {data_seed!r}")
        self.sources = dict(sources)
        self.schedule = schedule
        self.data_seed = int(data_seed)
        self.total_steps = None if total_steps is None else _check_total(total_steps)
        self.names = tuple(sorted(self.sources))
        schedule.check(self.total_steps)

    def weights_at(self, step: int, total_steps: int | None = None) -> dict[str, float]:
        """Normalised weight of every source (0 for unweighted ones) at ``step``."""
        total = self.total_steps if total_steps is None else total_steps
        w = self.schedule.weights_at(step, total)
        return {name: w.get(name, 0.0) for name in self.names}

    def batch(self, step: int, batch_size: int, seq_len: int) -> tuple[Batch, np.ndarray]:
        """The batch of ``step``: a pure function of ``(data_seed, step)`` and the arguments.

        Returns
        -------
        batch : Batch
            ``batch_size`` rows of width ``seq_len``.
        source_ids : numpy.ndarray
            ``(batch_size,)`` int64: row ``i`` comes from source ``names[source_ids[i]]``.
        """
        step = _check_step(step)
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise DataError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        seq_len = check_seq_len(seq_len, "data stream")
        weights = self.weights_at(step)
        p = np.array([weights[n] for n in self.names])
        rng = np.random.default_rng([self.data_seed, step])
        source_ids = rng.choice(len(self.names), size=int(batch_size), p=p / p.sum()).astype(np.int64)
        seeds = rng.integers(0, 2**63 - 1, size=len(self.names))
        tokens = np.full((batch_size, seq_len), PAD, dtype=np.int64)
        loss_mask = np.zeros((batch_size, seq_len - 1), dtype=bool)
        answer_mask = np.zeros((batch_size, seq_len - 1), dtype=bool)
        for i, name in enumerate(self.names):
            rows = np.flatnonzero(source_ids == i)
            if rows.size == 0:
                continue
            part = self.sources[name].sample(np.random.default_rng(seeds[i]), int(rows.size), seq_len)
            if part.tokens.shape != (rows.size, seq_len):
                raise DataError(f"source {name!r} returned rows of shape {part.tokens.shape}, expected {(rows.size, seq_len)}")
            tokens[rows] = part.tokens
            loss_mask[rows] = part.loss_mask
            answer_mask[rows] = part.answer_mask
        return Batch(tokens, loss_mask, answer_mask), source_ids

    def eval_sets(self, seq_len: int) -> dict[str, EvalSet]:
        """Every source's eval sets by skill name (identical duplicates are merged).

        Raises
        ------
        DataError
            If two sources give different examples under the same skill name.
        """
        out: dict[str, EvalSet] = {}
        for name in self.names:
            src = self.sources[name]
            for skill, batch in src.eval_sets(seq_len).items():
                if skill in out:
                    if np.array_equal(out[skill].batch.tokens, batch.tokens):
                        continue
                    raise DataError(
                        f"sources {out[skill].source!r} and {name!r} both define eval set {skill!r} with "
                        "different examples; give them the same seed and options or different names"
                    )
                out[skill] = EvalSet(skill=skill, source=name, kind=src.kind, batch=batch)
        return out

    @property
    def vocab_size(self) -> int:
        """Embedding rows the model needs: the largest ``vocab_size`` of any source.

        Byte-level sources use :data:`~scalelab.harness.vocab.VOCAB_SIZE`; a source with
        tokens of its own (one token per residue of the modular task) declares more.
        """
        return max(int(getattr(src, "vocab_size", VOCAB_SIZE)) for src in self.sources.values())

    def min_seq_len(self) -> int:
        """The smallest ``seq_len`` every source fits (sources without ``min_seq_len`` count as 2)."""
        return max(int(getattr(src, "min_seq_len", lambda: 2)()) for src in self.sources.values())
