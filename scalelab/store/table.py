"""An immutable, numpy-backed columnar table: what every scalelab fit reads its data from.

Columns hold one of three kinds of value:

* ``numeric`` -- ``float64`` (integers are stored as floats; missing values are NaN);
* ``bool`` -- ``bool`` (only when every value is a boolean and none is missing);
* ``text`` -- ``object`` arrays of :class:`str` (missing values are ``""``).

Tables never change after construction: every operation returns a new table and every
column array is read-only. Row numbers in error messages count the data rows of the original
source from 0 (the header is not a row), so they still point at the right row after a filter.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import numbers
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, NoReturn

import numpy as np

from scalelab.errors import DataError
from scalelab.store import where as _where

__all__ = ["Table", "column_from_values"]

_MISSING_TYPE_NAMES = frozenset({"NAType", "NaTType"})
_MAX_LISTED = 12


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, np.floating) and np.isnan(value):
        return True
    return type(value).__name__ in _MISSING_TYPE_NAMES


def column_from_values(values: Sequence[Any]) -> np.ndarray:
    """Build a column array from Python scalars, inferring its kind.

    Parameters
    ----------
    values : Sequence
        Scalars: numbers, booleans, strings, or missing markers (``None``, NaN, pandas NA).

    Returns
    -------
    numpy.ndarray
        ``bool`` when every value is a boolean and none is missing; ``float64`` when every
        present value is a number or boolean (missing -> NaN); otherwise an ``object`` array
        of ``str`` (missing -> ``""``, other values -> ``str(value)``).
    """
    n_missing = 0
    all_bool = True
    all_number = True
    for value in values:
        if _is_missing(value):
            n_missing += 1
            continue
        if isinstance(value, (bool, np.bool_)):
            continue
        all_bool = False
        if not isinstance(value, numbers.Real):
            all_number = False
            break
    n = len(values)
    if n_missing == n:
        return np.full(n, np.nan)
    if all_bool and n_missing == 0:
        return np.array([bool(v) for v in values], dtype=bool)
    if all_number:
        return np.array(
            [math.nan if _is_missing(v) else float(v) for v in values], dtype=np.float64
        )
    out = np.empty(n, dtype=object)
    for i, value in enumerate(values):
        if _is_missing(value):
            out[i] = ""
        elif isinstance(value, str):
            out[i] = value
        elif isinstance(value, bytes):
            out[i] = value.decode("utf-8", errors="replace")
        else:
            out[i] = str(value)
    return out


def _as_column(name: str, values: Any) -> np.ndarray:
    """Convert one column's values to a fresh array of a supported kind."""
    if isinstance(values, (str, bytes)) or not (
        isinstance(values, np.ndarray) or hasattr(values, "__len__") or hasattr(values, "__iter__")
    ):
        raise DataError(
            f"column {name!r} holds a single {type(values).__name__}, not a sequence of values; "
            "pass a list or array per column"
        )
    if not isinstance(values, np.ndarray) and hasattr(values, "to_numpy"):
        values = values.to_numpy()
    if not isinstance(values, np.ndarray):
        values = list(values)
        if any(isinstance(v, (list, tuple, dict, set, np.ndarray)) for v in values):
            raise DataError(
                f"column {name!r} holds nested sequences; each cell must be a single value"
            )
        return column_from_values(values)
    if values.ndim != 1:
        raise DataError(
            f"column {name!r} has shape {values.shape}; each column must be one-dimensional"
        )
    kind = values.dtype.kind
    if kind == "b":
        return values.astype(bool, copy=True)
    if kind in "iuf":
        return values.astype(np.float64, copy=True)
    if kind == "U":
        out = np.empty(len(values), dtype=object)
        out[:] = [str(v) for v in values]
        return out
    if kind == "S":
        return column_from_values([bytes(v) for v in values])
    if kind in "Mm":
        out = np.empty(len(values), dtype=object)
        out[:] = ["" if np.isnat(v) else str(v) for v in values]
        return out
    if kind == "O":
        return column_from_values(values.tolist())
    raise DataError(
        f"column {name!r} has unsupported type {values.dtype}; use numbers, booleans or text"
    )


def _kind(array: np.ndarray) -> str:
    if array.dtype == np.bool_:
        return "bool"
    if array.dtype.kind == "f":
        return "numeric"
    return "text"


def _format_value(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return str(value)


class Table:
    """An immutable columnar table of float, bool and text columns.

    Build one with :meth:`Table.from_columns` or :func:`scalelab.store.read_table`.

    Parameters
    ----------
    columns : Mapping[str, array_like]
        Column arrays of equal length, converted as in :meth:`from_columns` (which also
        checks names and is the preferred constructor). Arrays are copied.
    source : str
        Where the data came from (a path, a dataset name); used in messages and provenance.
    row_numbers : numpy.ndarray, optional
        For each row, its 0-based data-row number in the original source. Defaults to
        ``0..n-1``.
    """

    __slots__ = ("_columns", "_n", "_rows", "_source")

    _columns: dict[str, np.ndarray]
    _n: int
    _rows: np.ndarray
    _source: str

    def __init__(
        self,
        columns: Mapping[str, Any],
        source: str = "table",
        row_numbers: np.ndarray | None = None,
    ) -> None:
        converted: dict[str, np.ndarray] = {}
        for name, array in columns.items():
            if (
                isinstance(array, np.ndarray)
                and array.ndim == 1
                and (array.dtype == np.float64 or array.dtype == np.bool_)
            ):
                converted[str(name)] = array.copy()
            else:
                converted[str(name)] = _as_column(str(name), array)
        self._init(converted, str(source), row_numbers)

    def _init(
        self, columns: dict[str, np.ndarray], source: str, row_numbers: np.ndarray | None
    ) -> None:
        """Take ownership of converted, unshared arrays and freeze them."""
        lengths = {len(array) for array in columns.values()}
        if len(lengths) > 1:
            detail = ", ".join(f"{name}={len(array)}" for name, array in columns.items())
            raise DataError(
                f"columns of {source} have different lengths ({detail}); "
                "give every column one value per row"
            )
        n = lengths.pop() if lengths else 0
        for array in columns.values():
            array.flags.writeable = False
        if row_numbers is None:
            rows = np.arange(n, dtype=np.int64)
        else:
            rows = np.array(row_numbers, dtype=np.int64)
            if rows.shape != (n,):
                raise DataError(f"row numbers of {source} do not match its {n} rows")
        rows.flags.writeable = False
        object.__setattr__(self, "_columns", columns)
        object.__setattr__(self, "_n", n)
        object.__setattr__(self, "_rows", rows)
        object.__setattr__(self, "_source", source)

    @classmethod
    def _owned(
        cls, columns: dict[str, np.ndarray], source: str, row_numbers: np.ndarray | None = None
    ) -> Table:
        table = object.__new__(cls)
        table._init(columns, source, row_numbers)
        return table

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_columns(cls, mapping: Mapping[str, Any], source: str = "table") -> Table:
        """Build a table from a mapping of column name to values.

        Parameters
        ----------
        mapping : Mapping[str, Sequence]
            Column name -> sequence, numpy array, or Series-like object with ``to_numpy()``.
            Integers become ``float64``; all-boolean columns stay ``bool``; anything else that
            is not a number becomes text.
        source : str, optional
            Where the data came from, for messages and provenance.

        Returns
        -------
        Table

        Raises
        ------
        DataError
            If a column is not a one-dimensional sequence, column lengths differ, or a column
            name is empty or repeated.
        """
        if not isinstance(mapping, Mapping):
            raise DataError(
                f"Table.from_columns needs a mapping of column name -> values, "
                f"not {type(mapping).__name__}"
            )
        columns: dict[str, np.ndarray] = {}
        for raw_name, values in mapping.items():
            name = str(raw_name).strip()
            if not name:
                raise DataError(f"{source} has a column with an empty name; name every column")
            if name in columns:
                raise DataError(
                    f"{source} has two columns named {name!r}; rename one so names are unique"
                )
            columns[name] = _as_column(name, values)
        return cls._owned(columns, str(source))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Table is immutable; use filter/where/select to derive a new one")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Table is immutable")

    def _derive(self, columns: dict[str, np.ndarray], rows: np.ndarray) -> Table:
        # Arrays here are either already frozen (select) or fresh copies (filter).
        return Table._owned(columns, self._source, rows)

    # -- basic protocol -------------------------------------------------------------------
    @property
    def columns(self) -> tuple[str, ...]:
        """Column names, in order."""
        return tuple(self._columns)

    @property
    def source(self) -> str:
        """Where the data came from: a path, a dataset name, or a label."""
        return self._source

    @property
    def row_numbers(self) -> np.ndarray:
        """0-based data-row number in the original source of each row (read-only)."""
        return self._rows

    def __len__(self) -> int:
        return self._n

    def __contains__(self, name: object) -> bool:
        return name in self._columns

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.column(name)

    def __repr__(self) -> str:
        names = list(self._columns)
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        return f"Table(source={self._source!r}, rows={self._n}, columns=[{shown}])"

    def kind(self, name: str) -> str:
        """Return the kind of a column: ``"numeric"``, ``"bool"`` or ``"text"``.

        Parameters
        ----------
        name : str
            Column name.

        Returns
        -------
        str
        """
        return _kind(self.column(name))

    def _unknown(self, name: object) -> DataError:
        available = ", ".join(self._columns) or "(no columns)"
        close = difflib.get_close_matches(str(name), list(self._columns), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return DataError(
            f"unknown column {str(name)!r} in {self._source}{hint}; available: {available}"
        )

    def column(self, name: str) -> np.ndarray:
        """Return a column as a read-only array.

        Parameters
        ----------
        name : str
            Column name.

        Returns
        -------
        numpy.ndarray
            ``float64``, ``bool`` or ``object`` (str) array of length ``len(self)``.

        Raises
        ------
        DataError
            If there is no such column; the message lists the available ones.
        """
        try:
            return self._columns[name]
        except (KeyError, TypeError):
            raise self._unknown(name) from None

    # -- derived tables -------------------------------------------------------------------
    def select(self, names: Iterable[str]) -> Table:
        """Return a table with only the given columns, in the given order.

        Parameters
        ----------
        names : Iterable[str]
            Column names; a single string selects one column.

        Returns
        -------
        Table

        Raises
        ------
        DataError
            If a name is unknown.
        """
        if isinstance(names, str):
            names = [names]
        chosen: dict[str, np.ndarray] = {}
        for name in names:
            chosen[name] = self.column(name)
        return self._derive(chosen, self._rows)

    def filter(self, mask: Any) -> Table:
        """Return the rows where ``mask`` is true.

        Parameters
        ----------
        mask : array_like of bool
            One boolean per row.

        Returns
        -------
        Table
            Possibly empty.

        Raises
        ------
        DataError
            If the mask is not boolean or has the wrong length.
        """
        array = np.asarray(mask)
        if array.dtype != np.bool_:
            raise DataError(
                f"a row filter must be true/false values, not {array.dtype}; "
                "build it with a comparison such as table['loss'] < 3"
            )
        if array.shape != (self._n,):
            raise DataError(
                f"a row filter has shape {array.shape} but {self._source} has {self._n} rows; "
                "give one true/false per row"
            )
        columns = {name: col[array] for name, col in self._columns.items()}
        return self._derive(columns, self._rows[array])

    def mask(self, expression: str) -> np.ndarray:
        """Evaluate a ``--where`` condition to a boolean row mask.

        Parameters
        ----------
        expression : str
            Condition in the grammar of :mod:`scalelab.store.where`.

        Returns
        -------
        numpy.ndarray
            Boolean array of length ``len(self)``.
        """
        return _where.evaluate_mask(expression, self._columns, self._n, source=self._source)

    def where(self, expression: str) -> Table:
        """Return the rows satisfying a condition such as ``"params_N > 1e8 and loss < 3"``.

        Parameters
        ----------
        expression : str
            Condition in the grammar of :mod:`scalelab.store.where`.

        Returns
        -------
        Table
            The matching rows (at least one).

        Raises
        ------
        DataError
            If the condition is invalid or matches no row.
        """
        selected = self.mask(expression)
        if not selected.any():
            raise DataError(
                f'--where "{expression}" matched none of the {self._n} rows of {self._source}'
            )
        return self.filter(selected)

    # -- values ---------------------------------------------------------------------------
    def numeric(self, name: str, *, positive: bool = False) -> np.ndarray:
        """Return a column as finite ``float64`` values, or explain which rows are bad.

        Parameters
        ----------
        name : str
            Column name.
        positive : bool, optional
            Also require every value to be > 0 (needed before taking logs).

        Returns
        -------
        numpy.ndarray
            A new, writable ``float64`` array.

        Raises
        ------
        DataError
            If the column is unknown, or has text, NaN/missing, infinite or (with
            ``positive``) non-positive values. The message names the column, counts the bad
            rows and shows the first one.
        """
        col = self.column(name)
        if col.dtype.kind == "O":
            values = np.full(self._n, np.nan)
            text_bad = np.zeros(self._n, dtype=bool)
            for i, item in enumerate(col):
                try:
                    values[i] = float(item) if item.strip() else math.nan
                except ValueError:
                    text_bad[i] = True
            if text_bad.any():
                self._raise_bad(
                    name,
                    col,
                    text_bad,
                    "non-numeric",
                    "pick a numeric column or filter the rows with --where",
                )
        else:
            values = col.astype(np.float64, copy=True)
        missing = np.isnan(values)
        if missing.any():
            self._raise_bad(
                name,
                col,
                missing,
                "missing or NaN",
                f'drop them with --where "not isnan({_ref(name)})"',
            )
        infinite = np.isinf(values)
        if infinite.any():
            self._raise_bad(
                name,
                col,
                infinite,
                "infinite",
                f'drop them with --where "isfinite({_ref(name)})"',
            )
        if positive:
            bad = values <= 0
            if bad.any():
                self._raise_bad(
                    name,
                    col,
                    bad,
                    "non-positive",
                    f'log residuals need values > 0: filter them with --where "{_ref(name)} > 0"',
                )
        return values

    def _raise_bad(
        self, name: str, col: np.ndarray, bad: np.ndarray, what: str, fix: str
    ) -> NoReturn:
        index = int(np.flatnonzero(bad)[0])
        value = col[index]
        shown = "empty" if isinstance(value, str) and not value.strip() else _format_value(value)
        raise DataError(
            f"column {name!r} has {int(bad.sum())} {what} value(s) "
            f"(first at row {int(self._rows[index])}: {shown}); {fix}"
        )

    def to_dict(self) -> dict[str, np.ndarray]:
        """Return the columns as a dict of fresh, writable arrays.

        Returns
        -------
        dict[str, numpy.ndarray]
        """
        return {name: col.copy() for name, col in self._columns.items()}

    def fingerprint(self) -> str:
        """Return a SHA-256 hex digest of the table's content.

        The digest covers column names, order, kinds and values (NaNs are canonicalised and
        ``-0.0`` equals ``0.0``); it ignores :attr:`source` and row numbers, so the same data
        read from CSV, JSON Lines, Parquet or a DataFrame has the same fingerprint.

        Returns
        -------
        str
            64 hexadecimal characters.
        """
        digest = hashlib.sha256(b"scalelab.table.v1\n")
        digest.update(f"{len(self._columns)} {self._n}\n".encode())
        for name, col in self._columns.items():
            kind = _kind(col)
            encoded_name = name.encode("utf-8")
            digest.update(f"{kind} {len(encoded_name)}\n".encode())
            digest.update(encoded_name)
            if kind == "numeric":
                values = np.where(np.isnan(col), np.nan, col + 0.0)
                digest.update(values.astype("<f8").tobytes())
            elif kind == "bool":
                digest.update(col.astype(np.uint8).tobytes())
            else:
                for item in col:
                    data = str(item).encode("utf-8")
                    digest.update(len(data).to_bytes(8, "little"))
                    digest.update(data)
        return digest.hexdigest()


def _ref(name: str) -> str:
    """How to write a column name inside a --where condition."""
    return name if name.isidentifier() else f"`{name}`"
