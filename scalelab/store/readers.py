"""Read tables from files, bundled datasets, DataFrames and mappings.

:func:`read_table` is the single entry point. It needs only numpy and the standard library;
Parquet support imports :mod:`pyarrow` lazily, and pandas (or polars) DataFrames are accepted
by duck typing without importing either library.

Every problem with the input is reported as a one-line :class:`~scalelab.errors.DataError`
that names the problem and the fix; no parser exception escapes.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np

from scalelab.errors import DataError
from scalelab.store.table import Table, column_from_values

__all__ = ["SUPPORTED_EXTENSIONS", "TableSource", "parse_delimited", "read_table"]

#: File extensions understood by :func:`read_table`, mapped to their format.
SUPPORTED_EXTENSIONS: Mapping[str, str] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
}

#: Anything :func:`read_table` accepts.
TableSource = Union[str, "os.PathLike[str]", Table, Mapping[str, Any], Any]

# Cell values that count as missing in an otherwise numeric CSV column (case-insensitive).
_NA_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none"})
_BOOL_TOKENS = {"true": True, "false": False}
_SNIFF_BYTES = 8192
_FORMATS_HINT = "use .csv, .tsv, .jsonl, .json or .parquet"


def read_table(source: TableSource, *, label: str | None = None) -> Table:
    """Read a table from a file, a bundled dataset, a DataFrame or a mapping.

    Parameters
    ----------
    source : str, os.PathLike, Table, Mapping or DataFrame
        * a path to a ``.csv``, ``.tsv``, ``.jsonl``/``.ndjson`` (one JSON object per line),
          ``.json`` (a list of records, or an object of column -> list) or
          ``.parquet``/``.pq`` file (needs ``pyarrow``);
        * the name of a bundled dataset (see :func:`scalelab.datasets.available`), used only
          when no file of that name exists;
        * a :class:`Table`, returned unchanged;
        * a pandas- or polars-like DataFrame (anything with ``.columns`` whose items have
          ``to_numpy()``);
        * a mapping of column name -> sequence of values.
    label : str, optional
        Name for the data in messages and provenance (:attr:`Table.source`). Defaults to the
        path as given, the dataset name, ``"the DataFrame"`` or ``"the mapping"``.

    Returns
    -------
    Table

    Raises
    ------
    DataError
        If the file is missing, unreadable, of an unknown type, or malformed.
    """
    if isinstance(source, Table):
        return source
    if isinstance(source, (str, os.PathLike)):
        return _read_path(source, label)
    if isinstance(source, Mapping):
        return Table.from_columns(source, source=label or "the mapping")
    if _is_dataframe(source):
        return _from_dataframe(source, label or "the DataFrame")
    raise DataError(
        f"cannot read a table from a {type(source).__name__}; pass a file path, a bundled "
        f"dataset name ({', '.join(_dataset_names()) or 'none'}), a DataFrame or a mapping "
        "of column -> values"
    )


# -- paths --------------------------------------------------------------------------------


def _dataset_names() -> list[str]:
    from scalelab import datasets

    return datasets.available()


def _read_path(source: str | os.PathLike[str], label: str | None) -> Table:
    text = os.fspath(source)
    if not isinstance(text, str):
        raise DataError("file paths must be text, not bytes; decode the path first")
    if not text.strip():
        raise DataError("no data given: the path is empty; pass a file path or a dataset name")
    path = Path(text).expanduser()
    try:
        is_file = path.is_file()
        is_dir = path.is_dir()
    except (OSError, ValueError):
        is_file = is_dir = False
    name = label or text
    if is_dir:
        raise DataError(
            f"{text} is a directory, not a data file; pass a .csv, .tsv, .jsonl, .json or "
            ".parquet file inside it"
        )
    if not is_file:
        names = _dataset_names()
        if isinstance(source, str) and text in names:
            from scalelab import datasets

            table = datasets.load(text)
            return (
                table
                if label is None
                else Table._owned(dict(table._columns), label, table.row_numbers)
            )
        close = difflib.get_close_matches(text, names, n=1)
        hint = f"did you mean the bundled dataset '{close[0]}'? " if close else ""
        raise DataError(
            f"file not found: {text}; {hint}check the path, or use a bundled dataset: "
            f"{', '.join(names) or '(none)'}"
        )
    suffix = path.suffix.lower()
    kind = SUPPORTED_EXTENSIONS.get(suffix)
    if kind is None:
        what = f"unknown file type '{path.suffix}'" if suffix else "no file extension"
        raise DataError(f"{text} has {what}; {_FORMATS_HINT} (rename or convert the file)")
    if kind == "parquet":
        return _read_parquet(path, name)
    raw = _read_bytes(path, text)
    content = _decode(raw, text, kind)
    if kind in ("csv", "tsv"):
        return parse_delimited(content, name, delimiter="," if kind == "csv" else "\t")
    if kind == "jsonl":
        return _parse_jsonl(content, name)
    return _parse_json(content, name)


def _read_bytes(path: Path, shown: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise DataError(f"cannot read {shown} ({reason}); check the file's permissions") from None


def _decode(raw: bytes, shown: str, kind: str) -> str:
    head = raw[:_SNIFF_BYTES]
    if head.startswith(b"PAR1"):
        raise DataError(
            f"{shown} is a Parquet file, not {kind.upper()} text; rename it to .parquet"
        )
    if b"\x00" in head:
        raise DataError(
            f"{shown} looks like a binary file, not {kind.upper()} text; "
            f"export it as text ({_FORMATS_HINT})"
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{shown} is not UTF-8 text (undecodable byte at offset {exc.start}); "
            "re-save it with UTF-8 encoding"
        ) from None


# -- delimited text -----------------------------------------------------------------------


def parse_delimited(text: str, source: str, *, delimiter: str = ",") -> Table:
    """Parse CSV/TSV text with a header row into a :class:`Table`.

    A column is numeric when every non-missing cell parses as a float (missing cells --
    empty, ``NA``, ``null``, ... -- become NaN); boolean when every cell is ``true`` or
    ``false`` (any case); text otherwise, with cells kept verbatim.

    Parameters
    ----------
    text : str
        The file's content.
    source : str
        Name of the data, for messages and :attr:`Table.source`.
    delimiter : str, optional
        Field separator, ``","`` or ``"\\t"``.

    Returns
    -------
    Table

    Raises
    ------
    DataError
        If the text is empty, has only a header, has an empty or repeated column name, or a
        line whose field count differs from the header's (the message names the line).
    """
    sep = "tab" if delimiter == "\t" else repr(delimiter)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False)
    header: list[str] | None = None
    cells: list[list[str]] = []
    try:
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            if header is None:
                header = [name.strip() for name in row]
                _check_header(header, source)
                cells = [[] for _ in header]
                continue
            if len(row) != len(header):
                raise DataError(
                    f"{source}: line {reader.line_num} has {len(row)} fields but the header "
                    f"has {len(header)}; fix that line (quote values that contain {sep})"
                )
            for column, value in zip(cells, row, strict=True):
                column.append(value)
    except csv.Error as exc:
        raise DataError(
            f"{source}: line {reader.line_num} cannot be parsed ({exc}); fix its quoting"
        ) from None
    if header is None:
        raise DataError(f"{source} is empty; it needs a header row and at least one data row")
    if not cells[0]:
        raise DataError(f"{source} has a header but no data rows; add rows below the header")
    columns = {name: _infer_column(values) for name, values in zip(header, cells, strict=True)}
    return Table._owned(columns, source)


def _check_header(header: list[str], source: str) -> None:
    seen: set[str] = set()
    for i, name in enumerate(header, 1):
        if not name:
            raise DataError(f"{source}: column {i} of the header has no name; name every column")
        if name in seen:
            raise DataError(
                f"{source}: the header names column {name!r} twice; make column names unique"
            )
        seen.add(name)


def _infer_column(values: list[str]) -> np.ndarray:
    """Turn one column of CSV cells into a float, bool or text array."""
    stripped = [v.strip() for v in values]
    try:
        return np.array(stripped, dtype=np.float64)
    except ValueError:
        pass
    lowered = [v.lower() for v in stripped]
    if all(v in _BOOL_TOKENS for v in lowered):
        return np.array([_BOOL_TOKENS[v] for v in lowered], dtype=bool)
    numbers = np.empty(len(values), dtype=np.float64)
    for i, (cell, low) in enumerate(zip(stripped, lowered, strict=True)):
        if low in _NA_TOKENS:
            numbers[i] = math.nan
            continue
        try:
            numbers[i] = float(cell)
        except ValueError:
            out = np.empty(len(values), dtype=object)
            out[:] = values
            return out
    return numbers


# -- JSON -------------------------------------------------------------------------------


def _parse_jsonl(text: str, source: str) -> Table:
    records: list[Mapping[str, Any]] = []
    where: list[str] = []
    for lineno, line in enumerate(text.split("\n"), 1):
        line = line.strip()
        if not line:
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{source}: line {lineno} is not valid JSON ({exc.msg} at column {exc.colno}); "
                'each line must be one JSON object such as {"params_N": 1e8, "loss": 3.2}'
            ) from None
        except RecursionError:
            raise DataError(f"{source}: line {lineno} is nested too deeply") from None
        if not isinstance(record, dict):
            raise DataError(
                f"{source}: line {lineno} holds a JSON {_json_type(record)}, not an object; "
                'each line must be one JSON object such as {"params_N": 1e8, "loss": 3.2}'
            )
        records.append(record)
        where.append(f"line {lineno}")
    if not records:
        raise DataError(f"{source} is empty; it needs one JSON object per line")
    return _records_to_table(records, where, source)


def _parse_json(text: str, source: str) -> Table:
    if not text.strip():
        raise DataError(f"{source} is empty; it needs a JSON list of records")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        hint = (
            "; if it holds one object per line, rename it to .jsonl"
            if exc.msg == "Extra data"
            else "; fix the JSON syntax"
        )
        raise DataError(
            f"{source} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}){hint}"
        ) from None
    except RecursionError:
        raise DataError(f"{source} is nested too deeply to be a table") from None
    if isinstance(data, list):
        if not data:
            raise DataError(f"{source} holds an empty list; add at least one record")
        for i, record in enumerate(data):
            if not isinstance(record, dict):
                raise DataError(
                    f"{source}: record {i} is a JSON {_json_type(record)}, not an object; "
                    'use a list of objects such as [{"params_N": 1e8, "loss": 3.2}]'
                )
        return _records_to_table(data, [f"record {i}" for i in range(len(data))], source)
    if isinstance(data, dict) and data and all(isinstance(v, (list, dict)) for v in data.values()):
        columns: dict[str, list[Any]] = {}
        for name, values in data.items():
            items = list(values.values()) if isinstance(values, dict) else values
            for i, value in enumerate(items):
                if isinstance(value, (list, dict)):
                    raise DataError(
                        f"{source}: value {i} of column {name!r} is a JSON "
                        f"{_json_type(value)}; each cell must be a number, text, true/false "
                        "or null"
                    )
            columns[name] = items
        return Table.from_columns(columns, source=source)
    raise DataError(
        f"{source} holds a JSON {_json_type(data)}; expected a list of records such as "
        '[{"params_N": 1e8, "loss": 3.2}] or an object of column -> list'
    )


def _json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


def _records_to_table(
    records: Sequence[Mapping[str, Any]], where: Sequence[str], source: str
) -> Table:
    names: dict[str, None] = {}
    for record in records:
        for key in record:
            names.setdefault(key, None)
    columns: dict[str, np.ndarray] = {}
    for name in names:
        values = []
        for record, place in zip(records, where, strict=True):
            value = record.get(name)
            if isinstance(value, (list, dict)):
                raise DataError(
                    f"{source}: {place} field {name!r} holds a JSON {_json_type(value)}; each "
                    "field must be a number, text, true/false or null"
                )
            values.append(value)
        if not name.strip():
            raise DataError(f"{source} has a field with an empty name; name every field")
        columns[name] = column_from_values(values)
    return Table._owned(columns, source)


# -- Parquet ------------------------------------------------------------------------------


def _read_parquet(path: Path, source: str) -> Table:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(
            f"reading Parquet ({source}) needs pyarrow: pip install 'scalelab[parquet]', "
            "or convert the file to CSV"
        ) from None
    try:
        arrow_table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises many types (ArrowInvalid, OSError, ...)
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"cannot read Parquet file {source} ({detail}); check that it is a complete, "
            "valid Parquet file"
        ) from None
    names = [str(n) for n in arrow_table.column_names]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise DataError(
            f"{source} has repeated column names ({', '.join(dupes)}); make them unique"
        )
    if not names:
        raise DataError(f"{source} has no columns; write the table with its columns")
    columns: dict[str, np.ndarray] = {}
    try:
        for name, col in zip(names, arrow_table.columns, strict=True):
            kind = col.type
            if pa.types.is_integer(kind) or pa.types.is_floating(kind):
                array = col.cast(pa.float64()).to_numpy()
                columns[name] = np.array(array, dtype=np.float64)
            elif pa.types.is_boolean(kind) and col.null_count == 0:
                columns[name] = np.array(col.to_numpy(zero_copy_only=False), dtype=bool)
            else:
                columns[name] = column_from_values(col.to_pylist())
    except Exception as exc:
        raise DataError(
            f"cannot convert Parquet file {source} ({type(exc).__name__}: {exc}); "
            "use number, boolean or text columns"
        ) from None
    if arrow_table.num_rows == 0:
        raise DataError(f"{source} has no rows; write at least one row")
    return Table._owned(columns, source)


# -- DataFrames ---------------------------------------------------------------------------


def _is_dataframe(obj: Any) -> bool:
    return (
        hasattr(obj, "columns")
        and hasattr(obj, "__getitem__")
        and not isinstance(obj, (str, bytes, Sequence))
    )


def _from_dataframe(frame: Any, source: str) -> Table:
    try:
        keys = list(frame.columns)
    except TypeError:
        raise DataError(
            f"{source} has a 'columns' attribute that is not a list of names; pass a "
            "DataFrame or a mapping of column -> values"
        ) from None
    names = [str(k) for k in keys]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise DataError(
            f"{source} has repeated column names ({', '.join(dupes)}); make them unique"
        )
    columns: dict[str, Any] = {}
    for key, name in zip(keys, names, strict=True):
        series = frame[key]
        to_numpy = getattr(series, "to_numpy", None)
        columns[name] = to_numpy() if callable(to_numpy) else np.asarray(series)
    return Table.from_columns(columns, source=source)
