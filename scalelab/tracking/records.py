"""Store metrics records <-> W&B history rows (pure Python, no wandb import).

A store record is one value: ``{step, examples, tokens, flops, split, source, metric, value}``.
A W&B history row holds every value of one step. scalelab logs step ``k`` as the row with W&B
``_step = k``, the counters as the shared axes ``examples``, ``tokens`` and ``flops``, and each
value under the key ``split/source/metric`` (``eval/modadd/acc``, ``train/all/online_loss``).

Reading a row back inverts that exactly. Rows written by other tools are read with the same
rule: keys starting with ``_`` (``_step``, ``_runtime``, ``_timestamp``) and the axis keys are
not metrics; a key ``a/b/.../z`` with three or more parts is split ``a``, source ``b/...`` and
metric ``z``; ``a/z`` is split ``a`` and metric ``z``; a key without ``/`` is a metric alone.
Values that are not numbers (text, images, tables) are skipped. A store value of ``None`` is
logged as NaN, since a null in W&B history means "not logged at this step".

Examples
--------
>>> recs = [{"step": 2, "examples": 8, "tokens": 88, "flops": 1e6, "split": "eval",
...          "source": "modadd", "metric": "acc", "value": 0.5}]
>>> rows = rows_from_records(recs)
>>> rows
[(2, {'examples': 8, 'tokens': 88, 'flops': 1000000.0, 'eval/modadd/acc': 0.5})]
>>> records_from_row({"_step": 2, **rows[0][1]}) == recs
True
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

__all__ = ["AXES", "RowKeys", "merge_rows", "metric_key", "records_from_row", "rows_from_records", "split_key"]

#: The counters every record carries, logged as W&B axes (``define_metric``).
AXES = ("examples", "tokens", "flops")


@dataclass(frozen=True)
class RowKeys:
    """Which history keys hold the step and the axes when reading W&B rows.

    The defaults read what scalelab logs; other tools' runs may name them differently
    (``--step-key trainer/global_step --tokens-key num_tokens``).
    """

    step: str = "_step"
    examples: str = "examples"
    tokens: str = "tokens"
    flops: str = "flops"

    def axes(self) -> dict[str, str]:
        """Record field -> history key, for the axes."""
        return {"examples": self.examples, "tokens": self.tokens, "flops": self.flops}


def metric_key(record: Mapping[str, Any]) -> str:
    """The history key of a record: ``split/source/metric`` (parts that are absent left out)."""
    parts = [record.get("split"), record.get("source"), record.get("metric")]
    return "/".join(str(p) for p in parts if p not in (None, ""))


def split_key(key: str) -> dict[str, str]:
    """The record fields a history key stands for (inverse of :func:`metric_key`).

    Examples
    --------
    >>> split_key("eval/text/python_code/loss")
    {'split': 'eval', 'source': 'text/python_code', 'metric': 'loss'}
    >>> split_key("val/loss"), split_key("loss")
    ({'split': 'val', 'metric': 'loss'}, {'metric': 'loss'})
    """
    parts = key.split("/")
    if len(parts) >= 3:
        return {"split": parts[0], "source": "/".join(parts[1:-1]), "metric": parts[-1]}
    if len(parts) == 2:
        return {"split": parts[0], "metric": parts[1]}
    return {"metric": key}


def rows_from_records(records: Iterable[Mapping[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """Group records into one W&B row per step, in step order: ``[(step, row), ...]``.

    A row holds the step's axes (from its first record that has them) and one key per value.
    """
    rows: dict[int, dict[str, Any]] = {}
    for rec in records:
        step = int(rec["step"])
        row = rows.setdefault(step, {})
        for axis in AXES:
            if axis not in row and rec.get(axis) is not None:
                row[axis] = rec[axis]
        value = rec.get("value")
        row[metric_key(rec)] = math.nan if value is None else value  # null would read as "not logged"
    return sorted(rows.items())


def _number(value: Any) -> TypeGuard[float]:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def records_from_row(row: Mapping[str, Any], keys: RowKeys | None = None) -> list[dict[str, Any]]:
    """The store records of one W&B history row (empty if it has no usable step).

    A null is a key the step did not log (W&B's Parquet history cannot tell the two apart) and
    gives no record; NaN and infinities (how scalelab logs a missing value) give a record with
    value ``None``, as the store keeps them.
    """
    keys = keys or RowKeys()
    step = row.get(keys.step)
    if not _number(step) or step < 0 or float(step) != int(step):
        return []
    base: dict[str, Any] = {"step": int(step)}
    axis_keys = keys.axes()
    for field, key in axis_keys.items():
        value = row.get(key)
        if _number(value):
            base[field] = int(value) if field != "flops" and float(value).is_integer() else value
    skip = {keys.step, *axis_keys.values()}
    out = []
    for key, value in sorted(row.items()):  # W&B does not keep the logged key order
        if key in skip or key.startswith("_") or not _number(value):
            continue
        v = value if math.isfinite(value) else None
        out.append({**base, **split_key(key), "value": v})
    return out


def merge_rows(sessions: Sequence[Iterable[Mapping[str, Any]]], step_key: str = "_step") -> list[dict[str, Any]]:
    """Merge the history rows of several sessions of one run (resumed runs log some steps
    twice); a later session's row replaces an earlier one of the same step."""
    by_step: dict[Any, dict[str, Any]] = {}
    for rows in sessions:
        for row in rows:
            by_step[row.get(step_key)] = dict(row)
    return [by_step[s] for s in sorted(by_step, key=lambda s: (s is None, s if _number(s) else 0))]
