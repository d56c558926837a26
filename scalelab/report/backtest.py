"""Read backtest results (schema ``scalelab.backtest/1``) for the report, checking every field.

The file holds a fit made on part of the runs and its predictions for the held-out runs::

    {"schema": "scalelab.backtest/1", "law": str, "x": {input: column}, "y": str,
     "holdout": str, "n_fit": int, "n_holdout": int, "coverage_level": 0.95,
     "metrics": {"are": float, "mae": float, "max_abs_error": float, "coverage": float},
     "rows": [{"inputs": {input: value}, "y": float, "yhat": float, "lower": float,
               "upper": float, "inside": bool}],
     "fit": <FitResult dict>}
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scalelab.errors import DataError

__all__ = ["BACKTEST_SCHEMA", "Backtest", "BacktestRow", "load_backtest", "parse_backtest"]

BACKTEST_SCHEMA = "scalelab.backtest/1"
_METRICS = ("are", "mae", "max_abs_error", "coverage")


@dataclass(frozen=True)
class BacktestRow:
    """One held-out run: its inputs, the measured value, the prediction and its interval."""

    inputs: Mapping[str, float]
    y: float
    yhat: float
    lower: float
    upper: float
    inside: bool

    @property
    def relative_error(self) -> float:
        """``yhat / y - 1`` (NaN when ``y`` is 0)."""
        return self.yhat / self.y - 1 if self.y != 0 else math.nan


@dataclass(frozen=True)
class Backtest:
    """A backtest read from ``scalelab.backtest/1`` JSON.

    Attributes
    ----------
    source : str
        The file it was read from (or ``"<dict>"``).
    law, y, holdout : str
        The law fitted, the predicted column, and how the held-out runs were chosen.
    x : mapping of str to str
        Law input -> column.
    n_fit, n_holdout : int
    coverage_level : float
        Nominal coverage of the intervals.
    metrics : mapping of str to float
        ``are`` (mean absolute relative error), ``mae``, ``max_abs_error`` and ``coverage``
        (share of held-out values inside their interval).
    rows : tuple of BacktestRow
    fit : FitResult
        The fit on the training part.
    """

    source: str
    law: str
    x: Mapping[str, str]
    y: str
    holdout: str
    n_fit: int
    n_holdout: int
    coverage_level: float
    metrics: Mapping[str, float]
    rows: tuple[BacktestRow, ...]
    fit: Any


def load_backtest(path: str | Path) -> Backtest:
    """Read and check a backtest file.

    Raises
    ------
    DataError
        If the file is missing, not JSON, or does not follow ``scalelab.backtest/1`` (the
        message names the first bad field).
    """
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise DataError(f"backtest file {str(p)!r} not found; check the --backtest path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read backtest file {str(p)!r}: {exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"backtest file {str(p)!r} is not valid JSON (line {exc.lineno}): is it a "
            f"{BACKTEST_SCHEMA} file?"
        ) from None
    return parse_backtest(doc, source=str(p))


def parse_backtest(doc: Any, *, source: str = "<dict>") -> Backtest:
    """Check a decoded ``scalelab.backtest/1`` document and return a :class:`Backtest`."""
    from scalelab.fit import FitResult

    where = f"backtest {source!r}"
    if not isinstance(doc, dict):
        raise DataError(f"{where} is not a JSON object; expected a {BACKTEST_SCHEMA} file")
    if doc.get("schema") != BACKTEST_SCHEMA:
        raise DataError(
            f"{where} has schema {doc.get('schema')!r}, expected {BACKTEST_SCHEMA!r}; pass a "
            "file written by the backtest command"
        )
    law = _text(doc, "law", where)
    y = _text(doc, "y", where)
    holdout = _text(doc, "holdout", where)
    x = _field(doc, "x", dict, where)
    if not x or not all(isinstance(k, str) and isinstance(v, str) for k, v in x.items()):
        raise DataError(f"{where}: 'x' must map each law input to a column name")
    n_fit = _count(doc, "n_fit", where)
    n_holdout = _count(doc, "n_holdout", where)
    level = _number(doc, "coverage_level", where)
    if not 0 < level < 1:
        raise DataError(f"{where}: coverage_level must be between 0 and 1, got {level}")
    raw_metrics = _field(doc, "metrics", dict, where)
    metrics = {name: _number(raw_metrics, name, f"{where} metrics") for name in _METRICS}
    raw_rows = _field(doc, "rows", list, where)
    rows = tuple(_row(r, i, x, where) for i, r in enumerate(raw_rows))
    raw_fit = _field(doc, "fit", dict, where)
    try:
        fit = FitResult.from_dict(raw_fit)
    except DataError as exc:
        raise DataError(f"{where}: its 'fit' is not a scalelab fit ({exc})") from None
    return Backtest(source, law, dict(x), y, holdout, n_fit, n_holdout, level, metrics, rows, fit)


def _field(doc: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in doc:
        raise DataError(f"{where} has no {key!r} field; expected a {BACKTEST_SCHEMA} file")
    value = doc[key]
    if not isinstance(value, kind):
        raise DataError(f"{where}: {key!r} must be a JSON {_kind_name(kind)}, got {value!r:.60}")
    return value


def _kind_name(kind: type) -> str:
    names: dict[type, str] = {dict: "object", list: "array", str: "string"}
    return names.get(kind, kind.__name__)


def _text(doc: Mapping[str, Any], key: str, where: str) -> str:
    value = _field(doc, key, str, where)
    if not value:
        raise DataError(f"{where}: {key!r} is empty")
    return str(value)


def _number(doc: Mapping[str, Any], key: str, where: str) -> float:
    if key not in doc:
        raise DataError(f"{where} has no {key!r} field; expected a {BACKTEST_SCHEMA} file")
    value = doc[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataError(f"{where}: {key!r} must be a finite number, got {value!r}")
    return float(value)


def _count(doc: Mapping[str, Any], key: str, where: str) -> int:
    value = _number(doc, key, where)
    if value < 0 or not value.is_integer():
        raise DataError(f"{where}: {key!r} must be a non-negative whole number, got {doc[key]!r}")
    return int(value)


def _row(raw: Any, i: int, x: Mapping[str, str], where: str) -> BacktestRow:
    here = f"{where} row {i}"
    if not isinstance(raw, dict):
        raise DataError(f"{here} is not a JSON object")
    inputs = _field(raw, "inputs", dict, here)
    missing = [name for name in x if name not in inputs]
    if missing:
        raise DataError(f"{here}: inputs lack {missing}; every row needs the law inputs {list(x)}")
    values = {name: _number(inputs, name, f"{here} inputs") for name in x}
    numbers = {name: _number(raw, name, here) for name in ("y", "yhat")}
    for name in ("lower", "upper"):  # null: the fit gave no interval
        numbers[name] = math.nan if raw.get(name, 0) is None else _number(raw, name, here)
    inside = raw.get("inside")
    if not isinstance(inside, bool):
        raise DataError(f"{here}: 'inside' must be true or false, got {inside!r}")
    return BacktestRow(values, inside=inside, **numbers)
