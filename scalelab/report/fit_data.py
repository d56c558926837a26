"""A saved fit with the points it was fitted to, and the target the report extrapolates to.

A ``scalelab.fit/1`` file records where its data came from (``data.source``, the ``where``
filter and a SHA-256 fingerprint of the filtered table) but not the points themselves. The
report reads them back from that source when it can (a bundled dataset, a file still in
place) and checks the fingerprint; ``--data TABLE`` names the table otherwise. Without
points the figures draw the law alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scalelab.errors import DataError
from scalelab.fit import FitResult

__all__ = [
    "FitInput",
    "FitPoints",
    "Target",
    "has_compute_view",
    "load_fit",
    "parse_target",
    "resolve_target",
]

#: default extrapolation: this many times the largest fitted value (of compute for N, D laws)
DEFAULT_REACH = 10.0
_FLOPS_PER_PARAM_TOKEN = 6.0


@dataclass(frozen=True)
class FitPoints:
    """The data points of a fit.

    Attributes
    ----------
    inputs : mapping of str to numpy.ndarray
        Each law input's values.
    y : numpy.ndarray
        The fitted values.
    source : str
        The table they were read from.
    exact : bool
        Whether the table's fingerprint equals the fit's (the very points it was fitted to).
    """

    inputs: Mapping[str, np.ndarray]
    y: np.ndarray
    source: str
    exact: bool

    @property
    def compute(self) -> np.ndarray | None:
        """``6 N D`` per point, for laws with inputs N and D."""
        if "N" in self.inputs and "D" in self.inputs:
            return _FLOPS_PER_PARAM_TOKEN * self.inputs["N"] * self.inputs["D"]
        return None


@dataclass(frozen=True)
class FitInput:
    """A fit to report on.

    Attributes
    ----------
    path : str
        The fit file (or ``"<FitResult>"``).
    key : str
        Short unique name used in figure file names (``fit1``).
    result : FitResult
    points : FitPoints or None
    notes : tuple of str
        How the points were found (or why they were not).
    """

    path: str
    key: str
    result: FitResult
    points: FitPoints | None
    notes: tuple[str, ...] = field(default=())


def load_fit(
    fit: str | Path | FitResult, *, key: str, data: Any = None
) -> FitInput:
    """Read a fit and find its data points.

    Parameters
    ----------
    fit : path or FitResult
        A ``scalelab fit --json`` file or a result in memory.
    key : str
        Short unique name for figure files.
    data : path, dataset name or Table, optional
        Where the fitted points are, when the fit's own source cannot be read. The fit's
        ``where`` filter is applied to it when its columns allow.

    Raises
    ------
    DataError
        If the fit file is missing or malformed, or ``data`` lacks the fit's columns.
    """
    result = fit if isinstance(fit, FitResult) else FitResult.load(fit)
    path = "<FitResult>" if isinstance(fit, FitResult) else str(fit)
    points, notes = _points(result, data)
    return FitInput(path, key, result, points, tuple(notes))


def _points(result: FitResult, data: Any) -> tuple[FitPoints | None, list[str]]:
    from scalelab.store import read_table

    source = result.data.get("source")
    where = result.options.get("where")
    if data is None:
        try:
            table = read_table(source)
        except DataError:
            return None, [
                f"the fit file holds no data points and its source {source!r} cannot be read "
                "here: the figures show the law alone (pass --data TABLE to draw the points)"
            ]
        if where:
            try:
                table = table.where(where)
            except DataError as exc:
                return None, [f"the fit's filter does not apply to its source any more ({exc})"]
    else:
        table = read_table(data)
        if where:
            try:
                table = table.where(where)
            except DataError as exc:
                return _columns(result, table, []), [
                    f"the fit's filter ({where}) does not apply to --data ({exc}); all its "
                    "rows are drawn"
                ]
    notes: list[str] = []
    exact = table.fingerprint() == result.data.get("fingerprint")
    if not exact:
        notes.append(
            f"the points drawn ({table.source}) differ from those the fit was made on "
            "(fingerprint mismatch)"
        )
    return _columns(result, table, notes, exact=exact), notes


def _columns(result: FitResult, table: Any, notes: list[str], *, exact: bool = False) -> FitPoints:
    inputs = {name: table.numeric(col) for name, col in result.inputs.items()}
    y = table.numeric(result.y)
    keep = np.isfinite(y)
    for values in inputs.values():
        keep &= np.isfinite(values)
    if not keep.all():
        notes.append(f"{int((~keep).sum())} row(s) with missing values are not drawn")
    return FitPoints({k: v[keep] for k, v in inputs.items()}, y[keep], table.source, exact)


# ------------------------------------------------------------------------------- targets
@dataclass(frozen=True)
class Target:
    """Where the extrapolation figure ends.

    Attributes
    ----------
    inputs : mapping of str to float or None
        Every law input's value at the target (``None`` for a compute target).
    compute : float or None
        A training budget ``C = 6 N D`` (N, D laws): the path follows the compute-optimal
        frontier. With ``inputs`` it is their ``6 N D``.
    default : bool
        Chosen by the report (``DEFAULT_REACH`` times the data), not by the user.
    """

    inputs: Mapping[str, float] | None
    compute: float | None
    default: bool

    def describe(self) -> str:
        """``N=7e+10, D=1.4e+12`` or ``C=5.76e+23 FLOPs (compute-optimal)``."""
        text = (
            ", ".join(f"{k}={v:.4g}" for k, v in self.inputs.items())
            if self.inputs is not None
            else f"C={self.compute:.4g} FLOPs, compute-optimal N and D"
        )
        return text + (f" (default: {DEFAULT_REACH:g}x the fitted range)" if self.default else "")


def parse_target(text: str) -> dict[str, float]:
    """``"N=70e9,D=1.4e12"`` -> ``{"N": 7e10, "D": 1.4e12}``.

    Raises
    ------
    DataError
        For an item that is not ``NAME=NUMBER`` or a value that is not positive and finite.
    """
    out: dict[str, float] = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise DataError(f"--target {text!r}: expected INPUT=VALUE[,INPUT=VALUE...], e.g. N=70e9,D=1.4e12")
        try:
            number = float(value)
        except ValueError:
            raise DataError(f"--target {name.strip()}={value.strip()!r} is not a number") from None
        if not (math.isfinite(number) and number > 0):
            raise DataError(f"--target {name.strip()} must be a positive finite number, got {value.strip()}")
        out[name.strip()] = number
    return out


def has_compute_view(result: FitResult) -> bool:
    """Whether the law takes exactly N and D and has a compute-optimal allocation."""
    from scalelab.errors import LawError

    if tuple(sorted(result.law.inputs)) != ("D", "N"):
        return False
    try:
        result.law.compute_optimal(result.theta[None], 1e20)
    except LawError:
        return False
    return True


def resolve_target(
    fit: FitInput,
    *,
    inputs: Mapping[str, float] | None = None,
    compute: float | None = None,
) -> tuple[Target | None, str]:
    """The extrapolation target of a fit, or ``(None, why not)``.

    Laws with one input extrapolate along it; laws with N and D along the compute-optimal
    frontier (``compute``) or at a fixed ``D/N`` (``inputs``). Without either the target is
    ``DEFAULT_REACH`` times the largest fitted value (of ``6 N D`` for N, D laws).

    Raises
    ------
    DataError
        If ``inputs`` names inputs the law lacks or misses some, or ``compute`` is given for
        a law without a compute-optimal allocation.
    """
    law = fit.result.law
    names = tuple(law.inputs)
    if inputs is not None and compute is not None:
        raise DataError("give either --target or --target-compute, not both")
    if inputs is not None:
        unknown = [k for k in inputs if k not in names]
        missing = [k for k in names if k not in inputs]
        if unknown or missing:
            problem = f"unknown input(s) {unknown}" if unknown else f"no value for {missing}"
            raise DataError(
                f"--target for law {law.name!r} (inputs {', '.join(names)}): {problem}; "
                f"give --target {','.join(f'{k}=VALUE' for k in names)}"
            )
        if len(names) > 1 and not {"N", "D"} <= set(names):
            return None, f"no extrapolation view for law {law.name!r} (inputs {', '.join(names)})"
        c = (_FLOPS_PER_PARAM_TOKEN * inputs["N"] * inputs["D"]) if "N" in inputs and "D" in inputs else None
        return Target(dict(inputs), c, default=False), ""
    if compute is not None:
        if not has_compute_view(fit.result):
            raise DataError(
                f"--target-compute needs a law of N and D with a compute-optimal allocation; "
                f"law {law.name!r} has inputs {', '.join(names)}: use --target "
                + ",".join(f"{k}=VALUE" for k in names)
            )
        if not (math.isfinite(compute) and compute > 0):
            raise DataError(f"--target-compute must be a positive number of FLOPs, got {compute}")
        return Target(None, float(compute), default=False), ""
    ranges = fit.result.data.get("ranges", {})
    if len(names) == 1:
        top = _largest(fit, names[0], ranges)
        if top is None:
            return None, f"the fit records no range of {names[0]}: give --target {names[0]}=VALUE"
        return Target({names[0]: DEFAULT_REACH * top}, None, default=True), ""
    if has_compute_view(fit.result):
        c_max = _largest_compute(fit, ranges)
        if c_max is None:
            return None, "the fit records no range of N and D: give --target-compute C"
        return Target(None, DEFAULT_REACH * c_max, default=True), ""
    return None, (
        f"no default extrapolation for law {law.name!r} (inputs {', '.join(names)}): give "
        "--target " + ",".join(f"{k}=VALUE" for k in names)
    )


def _largest(fit: FitInput, name: str, ranges: Mapping[str, Any]) -> float | None:
    if fit.points is not None:
        return float(np.max(fit.points.inputs[name]))
    rng = ranges.get(name)
    return float(rng[1]) if rng else None


def _largest_compute(fit: FitInput, ranges: Mapping[str, Any]) -> float | None:
    if fit.points is not None and fit.points.compute is not None:
        return float(np.max(fit.points.compute))
    if "N" in ranges and "D" in ranges:  # no points: the corner of the box, an upper bound
        return _FLOPS_PER_PARAM_TOKEN * float(ranges["N"][1]) * float(ranges["D"][1])
    return None
