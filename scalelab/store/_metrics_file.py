"""The metrics file of a run: JSON Lines, one record per line, appended as records are produced.

A record is a flat JSON object with at least ``step`` (a non-negative integer), ``metric``
(text) and ``value`` (a number or null); the trainer also writes ``examples``, ``tokens``,
``flops``, ``split`` and ``source`` (see docs/design/harness.md, "Metrics records").

Crash safety. Each append is one ``write`` of whole lines followed by ``fsync``, so a crash
can leave at most the *last* line incomplete. Reading drops an unparsable last line and says
so; an unparsable line anywhere else is corruption and is reported with its line number.
Appending first repairs an incomplete tail, so it never becomes a corrupt middle line.
"""

from __future__ import annotations

import json
import numbers
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scalelab._io import atomic_write_text
from scalelab.errors import DataError

__all__ = [
    "RECORD_FIELDS",
    "Metrics",
    "MetricsScan",
    "append",
    "check_record",
    "encode",
    "last_step",
    "rewrite",
    "scan",
]

#: The fields of a metrics record, in export order (see docs/design/harness.md).
RECORD_FIELDS = ("step", "examples", "tokens", "flops", "split", "source", "metric", "value")

_TAIL_CHUNK = 4096


class Metrics(list[dict[str, Any]]):
    """The records of one run, oldest first, plus what reading had to drop.

    A plain ``list`` of record dicts (it compares equal to one) with one extra attribute.

    Attributes
    ----------
    problems : tuple of str
        Messages about data dropped while reading (an incomplete last line after a crash).
    """

    problems: tuple[str, ...]

    def __init__(self, records: Iterable[dict[str, Any]] = (), problems: Iterable[str] = ()):
        super().__init__(records)
        self.problems = tuple(problems)


@dataclass(frozen=True)
class MetricsScan:
    """Everything read from a metrics file.

    Attributes
    ----------
    records : list of dict
        The valid records, in file order.
    tail : str or None
        Why the last line was dropped (incomplete or unparsable), or ``None``.
    corrupt : tuple of (int, str)
        1-based line numbers of invalid lines before the last one, with the reason.
    """

    records: list[dict[str, Any]]
    tail: str | None
    corrupt: tuple[tuple[int, str], ...]


def _check_value(value: Any) -> str | None:
    """Why ``value`` cannot be a record field (``None`` if it can)."""
    if value is None or isinstance(value, (str, bool)):
        return None
    if isinstance(value, numbers.Real):
        return None
    return f"holds a {type(value).__name__}; fields must be numbers, text, booleans or null"


def check_record(record: Any) -> str | None:
    """Return why ``record`` is not a valid metrics record, or ``None`` if it is."""
    if not isinstance(record, Mapping):
        return f"is a {type(record).__name__}, not a JSON object"
    step = record.get("step")
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
        return f"has step {step!r}; every record needs a non-negative integer 'step'"
    metric = record.get("metric")
    if not isinstance(metric, str) or not metric:
        return f"has metric {metric!r}; every record needs a 'metric' name"
    if "value" not in record:
        return "has no 'value'; every record needs a number (or null) in 'value'"
    value = record["value"]
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
        return f"has value {value!r}; 'value' must be a number or null"
    for key, item in record.items():
        if not isinstance(key, str) or not key:
            return f"has a field named {key!r}; field names must be non-empty text"
        reason = _check_value(item)
        if reason:
            return f"field {key!r} {reason}"
    return None


def _plain(value: Any) -> Any:
    """Convert numpy/torch scalars to the Python scalar JSON writes."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    return float(value)


def encode(records: Iterable[Mapping[str, Any]] | Mapping[str, Any], label: str) -> str:
    """Validate records and return them as JSON Lines text (each line ends with a newline).

    Parameters
    ----------
    records : iterable of mapping, or one mapping
        Metrics records.
    label : str
        What they belong to, for messages (e.g. ``"run grid-a-s0"``).

    Returns
    -------
    str

    Raises
    ------
    DataError
        If a record is invalid; the message names the record's position and the field.
    """
    if isinstance(records, Mapping):
        records = [records]
    lines = []
    for i, record in enumerate(records):
        reason = check_record(record)
        if reason:
            raise DataError(f"{label}: metrics record {i} {reason}")
        plain = {str(k): _plain(v) for k, v in record.items()}
        lines.append(json.dumps(plain, separators=(",", ":")) + "\n")
    return "".join(lines)


def _parse(line: bytes) -> tuple[dict[str, Any] | None, str]:
    """Parse one line; return ``(record, "")`` or ``(None, reason)``."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"is not UTF-8 text (undecodable byte at column {exc.start + 1})"
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"is not valid JSON ({exc.msg}; column {exc.colno})"
    except RecursionError:
        return None, "is nested too deeply"
    reason = check_record(record)
    if reason:
        return None, reason
    return record, ""


def scan(path: Path) -> MetricsScan:
    """Read a metrics file; a missing file has no records.

    Parameters
    ----------
    path : pathlib.Path
        The ``metrics.jsonl`` file.

    Returns
    -------
    MetricsScan

    Raises
    ------
    DataError
        If the file exists but cannot be read.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return MetricsScan([], None, ())
    except OSError as exc:
        raise DataError(
            f"cannot read {str(path)!r} ({exc.strerror or exc}); check its permissions"
        ) from None
    lines = data.split(b"\n")
    complete = data.endswith(b"\n")
    if complete:
        lines.pop()  # the empty string after the final newline
    numbered = [(i, line) for i, line in enumerate(lines, 1) if line.strip()]
    records: list[dict[str, Any]] = []
    corrupt: list[tuple[int, str]] = []
    tail: str | None = None
    for k, (lineno, line) in enumerate(numbered):
        record, reason = _parse(line)
        if record is not None:
            records.append(record)
        elif k == len(numbered) - 1:
            how = "is incomplete (a crash mid-write?)" if not complete and lineno == len(lines) else "is corrupt"
            tail = f"line {lineno} (the last) {how} and was dropped: it {reason}"
        else:
            corrupt.append((lineno, reason))
    return MetricsScan(records, tail, tuple(corrupt))


def append(path: Path, text: str) -> None:
    """Append whole lines to ``path``, then flush and fsync; repair an incomplete tail first.

    Parameters
    ----------
    path : pathlib.Path
        The ``metrics.jsonl`` file (created if absent).
    text : str
        JSON Lines from :func:`encode`.

    Raises
    ------
    DataError
        If the file cannot be written.
    """
    data = text.encode("utf-8")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise DataError(
            f"cannot open {str(path)!r} for appending ({exc.strerror or exc}); check that the "
            "store folder is writable"
        ) from None
    try:
        _repair_tail(fd)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except OSError as exc:
        raise DataError(
            f"cannot append to {str(path)!r} ({exc.strerror or exc}); free disk space or "
            "check the file system"
        ) from None
    finally:
        os.close(fd)


def _repair_tail(fd: int) -> None:
    """End the file with a newline: finish a valid last line, or cut an incomplete one."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    start = size
    tail = b""
    while start > 0:
        begin = max(0, start - _TAIL_CHUNK)
        tail = os.pread(fd, start - begin, begin) + tail
        start = begin
        cut = tail.rfind(b"\n")
        if cut >= 0:
            start += cut + 1
            tail = tail[cut + 1 :]
            break
    record, _ = _parse(tail)
    if record is not None:
        os.write(fd, b"\n")
    else:
        os.ftruncate(fd, start)


def rewrite(path: Path, records: Iterable[Mapping[str, Any]], label: str) -> None:
    """Replace the file's content with ``records`` atomically (temporary file + rename)."""
    atomic_write_text(path, encode(list(records), label))


def last_step(records: Iterable[Mapping[str, Any]]) -> int | None:
    """The largest ``step`` among ``records``, or ``None`` when there are none."""
    steps = [int(r["step"]) for r in records]
    return max(steps) if steps else None
