"""Tabular data and the run store: an immutable numpy-backed :class:`Table`, its readers,
and :class:`RunStore`, the embedded (serverless) store of training runs.

Only numpy and the standard library are imported here; Parquet support loads ``pyarrow``
on first use and DataFrames (pandas, polars) are accepted by duck typing.

Examples
--------
>>> from scalelab.store import read_table
>>> table = read_table("chinchilla").where("excluded_by_epoch == 0")
>>> len(table)
240
"""

from __future__ import annotations

from scalelab.store.readers import read_table
from scalelab.store.runs import RunBusyError, RunHandle, RunInfo, RunStore
from scalelab.store.table import Table

__all__ = ["RunBusyError", "RunHandle", "RunInfo", "RunStore", "Table", "read_table"]
