"""Read W&B offline runs back into the store, without a server.

An offline run (``WANDB_MODE=offline``) is a folder ``offline-run-<time>-<id>/`` holding
``run-<id>.wandb``: the run's records in wandb's transaction log (the LevelDB log format: 32 KiB
blocks of chunks with a CRC-32 and a type, after a 7-byte ``:W&B`` header), each record a
``wandb.proto.wandb_internal_pb2.Record``. wandb 0.31 no longer ships a Python reader for it
(the old ``wandb.sdk.internal.datastore`` is gone; ``wandb sync`` is now Go), so
:func:`read_log` reads the format itself and wandb's own protobuf classes decode the records.

The run's config is its ``run`` record's config plus later ``config`` updates; its history is
the ``history`` records (one row each, ``_step`` included), and ``exit`` gives the exit code.
Several folders of the same run id (a run resumed offline) are merged step by step, the later
session winning. The same folders can still be uploaded with ``wandb sync DIR``.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalelab.errors import DataError
from scalelab.store.runs import RunStore
from scalelab.tracking import _wandb
from scalelab.tracking.records import RowKeys, merge_rows, records_from_row
from scalelab.tracking.store_io import from_wandb_config, store_run_id, write_run

__all__ = ["ImportSummary", "OfflineRun", "find_offline_runs", "import_offline", "read_log", "read_offline_run"]

_BLOCK = 32768
_HEADER = 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4
_IDENT, _MAGIC = b":W&B", 0xBEE1
_CRC = {kind: zlib.crc32(bytes([kind])) for kind in (_FULL, _FIRST, _MIDDLE, _LAST)}


def read_log(path: str | Path) -> Iterator[bytes]:
    """Yield the records of a W&B transaction log (``.wandb`` file) as bytes.

    A torn last record (the writer was killed mid-write) ends the scan quietly; a checksum
    mismatch anywhere else raises.

    Raises
    ------
    DataError
        If the file is missing, not a W&B log, of an unknown version, or corrupt.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read W&B log {str(p)!r} ({exc.strerror or exc}); pass an offline run folder") from None
    if len(data) < _HEADER or data[:4] != _IDENT:
        raise DataError(f"{str(p)!r} is not a W&B run log (no ':W&B' header); pass a run-*.wandb file or its folder")
    _, magic, version = struct.unpack("<4sHB", data[:_HEADER])
    if magic != _MAGIC or version != 0:
        raise DataError(f"{str(p)!r} is a W&B log of an unknown version ({magic:#x}, {version}); "
                        "upgrade scalelab or upload it with `wandb sync`")
    pos, pending = _HEADER, b""
    while pos < len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _HEADER:  # block trailer padding
            pos += left
            continue
        if pos + _HEADER > len(data):
            return
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + _HEADER])
        chunk = data[pos + _HEADER : pos + _HEADER + length]
        pos += _HEADER + length
        if kind == 0 and crc == 0 and length == 0:  # zero-filled tail of a preallocated block
            continue
        if len(chunk) < length:
            return  # torn final write
        if kind not in _CRC or zlib.crc32(chunk, _CRC[kind]) != crc:
            if pos >= len(data):
                return
            raise DataError(f"{str(p)!r} is corrupt at byte {pos - length - _HEADER} (bad checksum); "
                            "the records before it are intact, try `wandb sync` for the rest")
        if kind == _FULL:
            yield chunk
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        else:
            yield pending + chunk
            pending = b""


def _item_key(item: Any) -> str:
    return "/".join(item.nested_key) if len(item.nested_key) else item.key


def _set_nested(target: dict[str, Any], item: Any, value: Any) -> None:
    keys = list(item.nested_key) if len(item.nested_key) else [item.key]
    node = target
    for k in keys[:-1]:
        child = node.get(k)
        if not isinstance(child, dict):
            child = node[k] = {}
        node = child
    node[keys[-1]] = value


@dataclass(frozen=True)
class OfflineRun:
    """One W&B run read from offline folders.

    Attributes
    ----------
    wandb_id, project, entity : str
        As given to ``wandb.init`` (entity may be empty).
    config : dict
        The W&B config (plain values, ``_wandb`` included).
    history : list of dict
        One row per logged step, ``_step`` included, in step order.
    summary : dict
        The last summary values.
    exit_code : int or None
        None when the run never finished (crashed, or still running).
    paths : tuple of Path
        The ``.wandb`` files read.
    """

    wandb_id: str
    project: str
    entity: str
    config: dict[str, Any]
    history: list[dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    paths: tuple[Path, ...] = ()


def _read_session(path: Path) -> OfflineRun:
    from wandb.proto import wandb_internal_pb2 as pb

    run_info: dict[str, str] = {"run_id": "", "project": "", "entity": ""}
    config: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    history: list[dict[str, Any]] = []
    exit_code: int | None = None
    for raw in read_log(path):
        rec = pb.Record()  # type: ignore[attr-defined]  # generated protobuf module
        try:
            rec.ParseFromString(raw)
        except Exception:  # protobuf raises DecodeError, a private class
            raise DataError(f"{str(path)!r} holds a record wandb cannot decode; upload it with `wandb sync`") from None
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            run_info = {"run_id": rec.run.run_id, "project": rec.run.project, "entity": rec.run.entity}
            for item in rec.run.config.update:
                _set_nested(config, item, json.loads(item.value_json))
        elif kind == "config":
            for item in rec.config.update:
                _set_nested(config, item, json.loads(item.value_json))
            for item in rec.config.remove:
                config.pop(_item_key(item), None)
        elif kind == "history":
            row = {_item_key(item): json.loads(item.value_json) for item in rec.history.item}
            if "_step" not in row and rec.history.HasField("step"):
                row["_step"] = rec.history.step.num
            history.append(row)
        elif kind == "summary":
            for item in rec.summary.update:
                _set_nested(summary, item, json.loads(item.value_json))
        elif kind == "exit":
            exit_code = rec.exit.exit_code
    if not run_info["run_id"]:
        raise DataError(f"{str(path)!r} has no run record (the run never started); nothing to import")
    return OfflineRun(run_info["run_id"], run_info["project"], run_info["entity"], config, history,
                      summary, exit_code, (path,))


def find_offline_runs(paths: Sequence[str | Path]) -> list[Path]:
    """The ``run-*.wandb`` files under ``paths`` (files, run folders, or W&B dirs), sorted by
    folder name (which starts with the session's start time).

    Raises
    ------
    DataError
        If a path does not exist or holds no W&B run log.
    """
    found: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_file():
            found.append(p)
            continue
        if not p.is_dir():
            raise DataError(f"{str(p)!r} does not exist; pass an offline run folder or the W&B dir holding them")
        files = sorted(p.glob("*.wandb")) or sorted(p.glob("*run-*/*.wandb")) or sorted(p.glob("wandb/*run-*/*.wandb"))
        if not files:
            raise DataError(f"no W&B run logs (run-*.wandb) in {str(p)!r}; pass an offline-run-* folder or "
                            "the directory WANDB_DIR pointed to")
        found.extend(files)
    return sorted(dict.fromkeys(found), key=lambda f: (f.parent.name, f.name))


def read_offline_run(paths: str | Path | Sequence[str | Path]) -> OfflineRun:
    """Read one run from its offline folder(s) (several sessions of one resumed run are merged).

    Raises
    ------
    DataError
        If the folders hold several different runs, or cannot be read.
    """
    runs = _read_all([paths] if isinstance(paths, (str, Path)) else list(paths))
    if len(runs) != 1:
        ids = ", ".join(sorted(r.wandb_id for r in runs))
        raise DataError(f"the folders hold {len(runs)} different runs ({ids}); read them one at a time "
                        "or use import_offline")
    return runs[0]


def _read_all(paths: Sequence[str | Path]) -> list[OfflineRun]:
    _wandb.import_wandb()  # its protobuf classes decode the records
    sessions: dict[str, list[OfflineRun]] = {}
    for f in find_offline_runs(paths):
        s = _read_session(f)
        sessions.setdefault(s.wandb_id, []).append(s)
    out = []
    for parts in sessions.values():
        config: dict[str, Any] = {}
        summary: dict[str, Any] = {}
        for s in parts:
            config.update(s.config)
            summary.update(s.summary)
        last = parts[-1]
        out.append(OfflineRun(last.wandb_id, last.project, last.entity, config,
                              merge_rows([s.history for s in parts]), summary, last.exit_code,
                              tuple(p for s in parts for p in s.paths)))
    return out


@dataclass(frozen=True)
class ImportSummary:
    """What :func:`import_offline` wrote: ``(store run id, W&B id, records appended)`` per run."""

    runs: tuple[tuple[str, str, int], ...]


def _status(run: OfflineRun) -> str:
    ours = run.summary.get("scalelab/status")
    if ours == "finished" or (ours is None and run.exit_code == 0):
        return "finished"
    if ours == "failed" or (run.exit_code not in (None, 0)):
        return "failed"
    return "running"  # paused or cut off: the store reports it as interrupted (resumable)


def import_offline(paths: Sequence[str | Path], root: str | Path, *, keys: RowKeys | None = None) -> ImportSummary:
    """Write every offline run under ``paths`` into the store at ``root``.

    A run logged by scalelab keeps its store run id, config, provenance and parameter counts;
    another tool's run is stored under its W&B id with its W&B config. Importing again appends
    only steps past those already stored.

    Raises
    ------
    DataError
        For unreadable folders, or a run id that exists in the store with a different config.
    """
    store = RunStore(root)
    out = []
    for run in _read_all(list(paths)):
        cfg = from_wandb_config(run.config)
        run_id = cfg.run_id or store_run_id(run.wandb_id)
        source = {"wandb": {"id": run.wandb_id, "project": run.project, "entity": run.entity or None,
                            "offline": [str(p.parent) for p in run.paths]}}
        records = [r for row in run.history for r in records_from_row(row, keys)]
        status = _status(run)
        info: dict[str, Any] = {**cfg.facts, "source": "wandb-offline"}
        if status == "failed":
            info["error"] = f"W&B run exited with code {run.exit_code}"
        n = write_run(store, run_id, config=cfg.config, provenance={**cfg.provenance, **source},
                      records=records, status=status, info=info)
        out.append((run_id, run.wandb_id, n))
    return ImportSummary(tuple(out))
