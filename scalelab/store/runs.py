"""The embedded run store: one directory per training run, no server, many writers.

Layout of a store (``ROOT``) and of each run in it::

    ROOT/<run_id>/config.json     resolved config + provenance (written once, atomically)
    ROOT/<run_id>/metrics.jsonl   one metrics record per line, appended + fsynced per call
    ROOT/<run_id>/checkpoint.pt   torch.save through a temporary file + os.replace
    ROOT/<run_id>/status.json     pending | running | finished | failed, pid, host, times, error
    ROOT/<run_id>/run.lock        fcntl lock file: one writer per run across processes

There is no index file: :meth:`RunStore.runs` scans the directories, so worker processes can
write different runs at once without coordinating. Writes to one run take the run's lock
(:meth:`RunHandle.lock`); the kernel releases it when the holder dies, so a run whose
status says ``running`` while its lock is free is reported as ``interrupted`` (it crashed) and
can be resumed. A damaged run is reported (``corrupt``, with the reason) while the rest of the
store still loads. See docs/design/harness.md, "Run store".

Examples
--------
>>> import tempfile
>>> store = RunStore(tempfile.mkdtemp())
>>> run = store.run("tiny-s0")
>>> run.start({"model": {"n_layer": 2}, "seed": 0})
>>> with run.lock():
...     run.append_metrics([{"step": 0, "tokens": 0, "split": "eval", "source": "text",
...                          "metric": "loss", "value": 5.5}])
...     run.set_status("finished", step=0)
>>> [(info.run_id, info.status, info.n_records) for info in store.runs()]
[('tiny-s0', 'finished', 1)]
"""

from __future__ import annotations

import contextlib
import csv
import difflib
import io
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scalelab._io import atomic_write_text
from scalelab.errors import DataError
from scalelab.store import _lock
from scalelab.store import _metrics_file as mfile
from scalelab.store._lock import RunBusyError
from scalelab.store._metrics_file import RECORD_FIELDS, Metrics
from scalelab.store.table import Table

__all__ = [
    "RECORD_FIELDS",
    "REPORTED_STATUSES",
    "STANDARD_CONFIG_KEYS",
    "STATUSES",
    "Metrics",
    "RunBusyError",
    "RunHandle",
    "RunInfo",
    "RunLock",
    "RunStore",
    "check_run_id",
    "collect_provenance",
    "flatten_config",
]

#: Statuses a run can be given with :meth:`RunHandle.set_status`.
STATUSES = ("pending", "running", "finished", "failed")
#: Statuses :meth:`RunStore.runs` can also report: a crashed run, a damaged one.
REPORTED_STATUSES = (*STATUSES, "interrupted", "corrupt")
#: Config leaves exported even when they are the same in every run (matched on the full
#: dotted key or its last part).
STANDARD_CONFIG_KEYS = ("seed", "n_params", "n_params_nonembedding")

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_FILE = "checkpoint.pt"
STATUS_FILE = "status.json"
LOCK_FILE = "run.lock"
_FORMAT = "scalelab.run/1"
_RUN_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,199}\Z")
_RESERVED_STATUS_KEYS = ("status", "pid", "host", "updated_at")
_PROVENANCE_PACKAGES = ("scalelab", "numpy", "scipy", "lmfit", "torch", "pyarrow")
_INTEGER_FIELDS = ("step", "examples", "tokens")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def check_run_id(run_id: str) -> str:
    """Return ``run_id`` if it is a valid run id, else raise :class:`DataError`.

    Valid ids are 1-200 characters from ``[A-Za-z0-9_.-]`` and do not start with ``.``.
    """
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
        raise DataError(
            f"invalid run id {run_id!r}: use 1-200 letters, digits, '_', '.' or '-', "
            "not starting with '.'"
        )
    return run_id


# ----------------------------------------------------------------------------- provenance
def _git_commit(cwd: Path) -> dict[str, Any] | None:
    """The commit and dirtiness of the git repository at ``cwd``; ``None`` without one."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return None
    changes = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(changes) if changes is not None else None}


def _package_versions(names: Sequence[str]) -> dict[str, str]:
    from importlib import metadata

    versions: dict[str, str] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            if name == "scalelab":
                from scalelab._version import __version__

                versions[name] = __version__
    return versions


def collect_provenance(
    *,
    device: str | None = None,
    seeds: Mapping[str, int] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Describe where and with what a run is produced.

    Parameters
    ----------
    device : str, optional
        The training device (``"cpu"``, ``"cuda:0"``).
    seeds : mapping of str to int, optional
        The run's seeds, e.g. ``{"init": 0, "data": 1}``.
    cwd : path, optional
        Folder whose git commit is recorded (default: the current directory).

    Returns
    -------
    dict
        ``created_at`` (UTC, ISO 8601), ``host``, ``python``, ``platform``, ``argv``,
        ``packages`` (installed versions of scalelab, numpy, scipy, lmfit, torch, pyarrow;
        torch is not imported), ``git`` (``{"commit", "dirty"}``, or ``None`` outside a git
        repository or without git), and ``device`` / ``seeds`` when given.
    """
    import platform

    info: dict[str, Any] = {
        "created_at": _now(),
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "argv": list(sys.argv),
        "packages": _package_versions(_PROVENANCE_PACKAGES),
        "git": _git_commit(Path(cwd) if cwd is not None else Path.cwd()),
    }
    if device is not None:
        info["device"] = str(device)
    if seeds is not None:
        info["seeds"] = dict(seeds)
    return info


# ----------------------------------------------------------------------------- JSON files
def _to_json(value: Any, what: str) -> str:
    try:
        return json.dumps(value, indent=1, allow_nan=False, sort_keys=False) + "\n"
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"{what} cannot be saved as JSON ({exc}); use dicts, lists, text, finite numbers, "
            "booleans and None"
        ) from None


def _read_json_object(path: Path, what: str) -> dict[str, Any] | None:
    """Read a JSON object from ``path``; ``None`` if the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise DataError(f"{what} cannot be read ({reason}); check or delete {path}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{what} is not valid JSON ({exc.msg} at line {exc.lineno}); fix or delete {path}"
        ) from None
    if not isinstance(data, dict):
        raise DataError(f"{what} holds a JSON {type(data).__name__}, not an object; fix {path}")
    return data


def _create_exclusive(path: Path, text: str) -> bool:
    """Write ``path`` atomically unless it exists; return whether this call created it."""
    try:
        return _create_exclusive_unchecked(path, text)
    except OSError as exc:
        raise DataError(
            f"cannot write {str(path)!r} ({exc.strerror or exc}); check that the store "
            "folder is writable"
        ) from None


def _create_exclusive_unchecked(path: Path, text: str) -> bool:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # atomic, and fails if the name exists
        except FileExistsError:
            return False
        except OSError:  # no hard links on this file system: exclusive create instead
            try:
                with open(path, "x", encoding="utf-8") as fh:
                    fh.write(text)
            except FileExistsError:
                return False
        return True
    finally:
        Path(tmp).unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def flatten_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts into dotted keys; lists become compact JSON text.

    Parameters
    ----------
    config : Mapping
        A resolved run config.
    prefix : str, optional
        Prepended to every key (used in recursion).

    Returns
    -------
    dict
        Leaf key -> scalar (number, text, bool or ``None``).

    Examples
    --------
    >>> flatten_config({"model": {"n_layer": 2}, "data": {"mix": [0.5, 0.5]}, "seed": 0})
    {'model.n_layer': 2, 'data.mix': '[0.5,0.5]', 'seed': 0}
    """
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_config(value, prefix=f"{name}."))
        elif isinstance(value, (list, tuple)):
            flat[name] = json.dumps(value, separators=(",", ":"))
        else:
            flat[name] = value
    return flat


def _first_difference(stored: Any, new: Any) -> str:
    a = flatten_config(stored) if isinstance(stored, Mapping) else {"": stored}
    b = flatten_config(new) if isinstance(new, Mapping) else {"": new}
    for key in [*a, *(k for k in b if k not in a)]:
        if a.get(key, "(absent)") != b.get(key, "(absent)"):
            return f"{key}: {b.get(key, '(absent)')!r} here, {a.get(key, '(absent)')!r} stored"
    return "the configs differ"


# ----------------------------------------------------------------------------- run info
@dataclass(frozen=True)
class RunInfo:
    """What :meth:`RunStore.runs` reports about one run.

    Attributes
    ----------
    run_id : str
        The run's id (its directory name); also available as :attr:`id`.
    status : str
        ``pending``, ``running``, ``finished``, ``failed``, ``interrupted`` (status says
        running but no process holds the lock: it crashed) or ``corrupt`` (see ``problems``).
    last_step : int or None
        Largest logged step (from the metrics, else from the status file).
    n_records : int
        Valid metrics records.
    config : Mapping
        The resolved config (empty when unreadable or not started).
    path : pathlib.Path
        The run's directory.
    stored_status : str or None
        The status as written in ``status.json`` (``None`` when there is none).
    pid, host : int or None, str or None
        The process running the run (the lock holder), else the last one recorded.
    error : str or None
        The error message of a failed run.
    problems : tuple of str
        Everything wrong or dropped while reading, one message each.
    """

    run_id: str
    status: str
    last_step: int | None
    n_records: int
    config: Mapping[str, Any]
    path: Path
    stored_status: str | None = None
    pid: int | None = None
    host: str | None = None
    error: str | None = None
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def id(self) -> str:
        """The run id (alias of :attr:`run_id`)."""
        return self.run_id

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict of every field (``path`` as text)."""
        return {
            "run_id": self.run_id,
            "status": self.status,
            "last_step": self.last_step,
            "n_records": self.n_records,
            "stored_status": self.stored_status,
            "pid": self.pid,
            "host": self.host,
            "error": self.error,
            "problems": list(self.problems),
            "path": str(self.path),
            "config": dict(self.config),
        }


# ----------------------------------------------------------------------------- one run
class RunLock:
    """A held run lock; release it with :meth:`release` or by leaving its ``with`` block."""

    def __init__(self, handle: RunHandle) -> None:
        self._handle: RunHandle | None = handle

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        """Release this hold (the file lock goes when the outermost hold is released)."""
        if self._handle is not None:
            self._handle._release_lock()
            self._handle = None


class RunHandle:
    """One run in a store: its config, metrics, checkpoint, status and lock.

    Get one from :meth:`RunStore.run`; creating a handle touches no file.

    Parameters
    ----------
    root : path
        The store's directory.
    run_id : str
        ``[A-Za-z0-9_.-]+``, not starting with ``.``.
    """

    def __init__(self, root: str | os.PathLike[str], run_id: str) -> None:
        self.run_id = check_run_id(run_id)
        self.path = Path(root) / run_id
        self._lock_fd: int | None = None
        self._lock_pid = 0
        self._lock_depth = 0
        self._attempt_recorded = False

    def __repr__(self) -> str:
        return f"RunHandle({str(self.path.parent)!r}, {self.run_id!r})"

    @property
    def label(self) -> str:
        """``"run <id>"``, as used in messages."""
        return f"run {self.run_id}"

    def _file(self, name: str) -> Path:
        return self.path / name

    @property
    def checkpoint_path(self) -> Path:
        """Where the checkpoint lives (it may not exist)."""
        return self._file(CHECKPOINT_FILE)

    @property
    def exists(self) -> bool:
        """Whether the run has been started (its config.json exists)."""
        return self._file(CONFIG_FILE).is_file()

    def _mkdir(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(
                f"cannot create {str(self.path)!r} for {self.label} ({exc.strerror or exc}); "
                "check that the store folder is writable"
            ) from None

    # -- config ---------------------------------------------------------------------------
    def start(
        self, config: Mapping[str, Any], provenance: Mapping[str, Any] | None = None
    ) -> None:
        """Register the run: write config.json (once, atomically) and a pending status.

        Starting an existing run with the same config is a no-op (that is how a grid is
        resumed); its first config.json and provenance are kept.

        Parameters
        ----------
        config : Mapping
            The resolved config, JSON-able.
        provenance : Mapping, optional
            Extra provenance (device, seeds, ...); merged over :func:`collect_provenance`.

        Raises
        ------
        DataError
            If the config is not JSON-able, or the run exists with a different config.
        """
        if not isinstance(config, Mapping):
            raise DataError(f"{self.label}: config must be a mapping, not {type(config).__name__}")
        resolved = json.loads(_to_json(dict(config), f"the config of {self.label}"))
        self._mkdir()
        stored = _read_json_object(self._file(CONFIG_FILE), f"{self.label}: {CONFIG_FILE}")
        if stored is None:
            prov = {**collect_provenance(), **dict(provenance or {})}
            doc = {"format": _FORMAT, "run": self.run_id, "config": resolved, "provenance": prov}
            text = _to_json(doc, f"the provenance of {self.label}")
            if not _create_exclusive(self._file(CONFIG_FILE), text):
                stored = _read_json_object(self._file(CONFIG_FILE), f"{self.label}: {CONFIG_FILE}")
        if stored is not None:
            old = self._config_from(stored)
            if old != resolved:
                raise DataError(
                    f"{self.label} already exists in the store with a different config "
                    f"({_first_difference(old, resolved)}); use a new run id or delete "
                    f"{self.path} to start over"
                )
        pending = {"status": "pending", "pid": os.getpid(), "host": socket.gethostname(),
                   "updated_at": _now()}
        _create_exclusive(self._file(STATUS_FILE), _to_json(pending, "status"))

    def _config_from(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        config = doc.get("config")
        if not isinstance(config, dict):
            raise DataError(
                f"{self.label}: {CONFIG_FILE} has no 'config' object; fix or delete "
                f"{self._file(CONFIG_FILE)}"
            )
        return config

    def _config_doc(self) -> dict[str, Any]:
        doc = _read_json_object(self._file(CONFIG_FILE), f"{self.label}: {CONFIG_FILE}")
        if doc is None:
            raise DataError(
                f"{self.label} has not been started (no {CONFIG_FILE} in {self.path}); "
                "call start(config) or run its grid first"
            )
        return doc

    def config(self) -> dict[str, Any]:
        """Return the resolved config saved by :meth:`start`.

        Raises
        ------
        DataError
            If the run has not been started or its config.json is unreadable.
        """
        return self._config_from(self._config_doc())

    def provenance(self) -> dict[str, Any]:
        """Return the provenance saved by :meth:`start` (versions, git, device, seeds, ...)."""
        prov = self._config_doc().get("provenance")
        return prov if isinstance(prov, dict) else {}

    # -- lock -----------------------------------------------------------------------------
    @property
    def locked(self) -> bool:
        """Whether this handle (in this process) holds the run's lock."""
        return self._lock_fd is not None and self._lock_pid == os.getpid()

    def lock(self, *, blocking: bool = False, timeout: float | None = None) -> RunLock:
        """Take the run's exclusive lock (one writer per run across processes).

        Use it as ``with run.lock(): ...``. Taking it again through the same handle nests.
        The kernel releases it when the process exits or is killed.

        Parameters
        ----------
        blocking : bool, optional
            Wait for the lock instead of failing at once.
        timeout : float, optional
            With ``blocking``, the longest wait in seconds (``None``: forever).

        Returns
        -------
        RunLock

        Raises
        ------
        RunBusyError
            If another process (or another handle) holds it: "run X is being run by pid N".
        """
        if self.locked:
            self._lock_depth += 1
            return RunLock(self)
        self._mkdir()
        fd = _lock.acquire(
            self._file(LOCK_FILE), label=self.label, blocking=blocking, timeout=timeout
        )
        self._lock_fd, self._lock_pid, self._lock_depth = fd, os.getpid(), 1
        self._attempt_recorded = False
        return RunLock(self)

    def _release_lock(self) -> None:
        if not self.locked:
            return
        self._lock_depth -= 1
        if self._lock_depth == 0 and self._lock_fd is not None:
            fd, self._lock_fd = self._lock_fd, None
            _lock.release(fd)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold the lock for one write (re-entrant when the caller already holds it)."""
        with self.lock():
            yield

    # -- status ---------------------------------------------------------------------------
    def read_status(self) -> dict[str, Any] | None:
        """Return status.json as written (``None`` before :meth:`start`).

        Raises
        ------
        DataError
            If status.json is unreadable or names an unknown status.
        """
        doc = _read_json_object(self._file(STATUS_FILE), f"{self.label}: {STATUS_FILE}")
        if doc is not None and doc.get("status") not in STATUSES:
            raise DataError(
                f"{self.label}: {STATUS_FILE} has status {doc.get('status')!r}, not one of "
                f"{', '.join(STATUSES)}; fix or delete {self._file(STATUS_FILE)}"
            )
        return doc

    def set_status(self, status: str, **info: Any) -> None:
        """Record the run's status atomically, with pid, host and timestamps.

        Parameters
        ----------
        status : {"pending", "running", "finished", "failed"}
        **info
            JSON-able details: ``step=`` (stored as ``last_step``), ``error=`` (the message
            of a failure), anything else is stored as given.

        Raises
        ------
        DataError
            For an unknown status, a reserved key, or a non-JSON-able value.
        RunBusyError
            If another process holds the run's lock.
        """
        if status not in STATUSES:
            raise DataError(f"unknown status {status!r} for {self.label}; use one of {', '.join(STATUSES)}")
        reserved = sorted(set(info) & set(_RESERVED_STATUS_KEYS))
        if reserved:
            raise DataError(f"set_status: {', '.join(reserved)} is recorded automatically; drop it")
        with self._writing():
            try:
                previous = self.read_status() or {}
            except DataError:
                previous = {}  # we hold the lock: overwrite a damaged file
            now = _now()
            doc = {k: v for k, v in previous.items() if k != "error"}
            doc.update(status=status, pid=os.getpid(), host=socket.gethostname(), updated_at=now)
            if status == "running" and not self._attempt_recorded:
                # the first "running" under a fresh lock is a new attempt (a resume after a
                # crash finds "running" already stored)
                self._attempt_recorded = True
                doc.setdefault("started_at", now)
                doc["attempts"] = int(previous.get("attempts", 0) or 0) + 1
                doc.pop("ended_at", None)
            if status in ("finished", "failed"):
                doc["ended_at"] = now
            for key in ("step", "last_step"):
                if key in info:
                    step = info.pop(key)
                    doc["last_step"] = None if step is None else int(step)
            if "error" in info:
                error = info.pop("error")
                doc["error"] = None if error is None else str(error)
            doc.update(info)
            atomic_write_text(self._file(STATUS_FILE), _to_json(doc, f"the status of {self.label}"))

    # -- metrics --------------------------------------------------------------------------
    def append_metrics(self, records: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> None:
        """Append records to metrics.jsonl, then flush and fsync (one write per call).

        Parameters
        ----------
        records : sequence of mapping, or one mapping
            Records as in docs/design/harness.md: ``step``, ``examples``, ``tokens``,
            ``flops``, ``split``, ``source``, ``metric``, ``value`` (``step``, ``metric``
            and ``value`` are required; fields are flat scalars).

        Raises
        ------
        DataError
            If a record is invalid (nothing is written) or the file cannot be written.
        RunBusyError
            If another process holds the run's lock.
        """
        text = mfile.encode(records, self.label)
        if not text:
            return
        with self._writing():
            mfile.append(self._file(METRICS_FILE), text)

    def _corrupt_error(self, scan: mfile.MetricsScan) -> DataError:
        lineno, reason = scan.corrupt[0]
        more = f" (and {len(scan.corrupt) - 1} more corrupt lines)" if len(scan.corrupt) > 1 else ""
        return DataError(
            f"{self.label}: {METRICS_FILE} line {lineno} is corrupt: it {reason}{more}; fix or "
            f"delete that line in {self._file(METRICS_FILE)}"
        )

    def read_metrics(self) -> Metrics:
        """Return every record, oldest first.

        A bad *last* line (a crash mid-write) is dropped and described in the result's
        ``problems``; a bad line anywhere else raises.

        Returns
        -------
        Metrics
            A list of record dicts with a ``problems`` tuple.

        Raises
        ------
        DataError
            If a line before the last one is corrupt (the message names it).
        """
        scan = mfile.scan(self._file(METRICS_FILE))
        if scan.corrupt:
            raise self._corrupt_error(scan)
        problems = [f"{self.label}: {METRICS_FILE} {scan.tail}"] if scan.tail else []
        return Metrics(scan.records, problems)

    def truncate_metrics(self, after_step: int) -> int:
        """Keep only records with ``step <= after_step`` (atomic rewrite); use on resume.

        An incomplete last line is dropped too, so the resumed run appends cleanly.

        Parameters
        ----------
        after_step : int
            The checkpoint's step; ``-1`` drops every record.

        Returns
        -------
        int
            The number of records dropped.

        Raises
        ------
        DataError
            If a line before the last one is corrupt (nothing is changed).
        RunBusyError
            If another process holds the run's lock.
        """
        with self._writing():
            path = self._file(METRICS_FILE)
            scan = mfile.scan(path)
            if scan.corrupt:
                raise self._corrupt_error(scan)
            kept = [r for r in scan.records if r["step"] <= after_step]
            dropped = len(scan.records) - len(kept)
            if dropped or scan.tail:
                mfile.rewrite(path, kept, self.label)
                _fsync_dir(self.path)
            return dropped

    # -- checkpoint -----------------------------------------------------------------------
    def save_checkpoint(self, state: Mapping[str, Any], *, verify: bool = True) -> None:
        """Save ``state`` with ``torch.save`` to a temporary file, then ``os.replace`` it.

        A crash at any point leaves the previous checkpoint loadable.

        Parameters
        ----------
        state : Mapping
            Tensors and plain containers only (model/optimiser/scheduler state dicts, RNG
            states as tensors, step), so that ``weights_only=True`` can load it.
        verify : bool, optional
            Load the temporary file with ``weights_only=True`` before replacing the old
            checkpoint, so a state that could not be resumed from is refused at once.

        Raises
        ------
        DataError
            If the state cannot be saved, or (``verify``) not loaded with weights_only.
        RunBusyError
            If another process holds the run's lock.
        """
        if not isinstance(state, Mapping):
            raise DataError(f"{self.label}: a checkpoint must be a dict, not {type(state).__name__}")
        torch = _import_torch("saving a checkpoint")
        with self._writing():
            for stale in self.path.glob(f".{CHECKPOINT_FILE}.*.tmp"):
                stale.unlink(missing_ok=True)  # left by a crash; we hold the lock
            fd, tmp = tempfile.mkstemp(prefix=f".{CHECKPOINT_FILE}.", suffix=".tmp", dir=self.path)
            try:
                with os.fdopen(fd, "wb") as fh:
                    self._save(torch, state, fh)
                    fh.flush()
                    os.fsync(fh.fileno())
                if verify:
                    self._load(torch, Path(tmp), "cpu")
                os.replace(tmp, self.checkpoint_path)
            except OSError as exc:
                raise DataError(
                    f"cannot save the checkpoint of {self.label} ({exc.strerror or exc}); "
                    "free disk space or check the store folder"
                ) from None
            finally:
                Path(tmp).unlink(missing_ok=True)
            _fsync_dir(self.path)

    def load_checkpoint(self, *, map_location: Any = None) -> dict[str, Any] | None:
        """Load the checkpoint with ``torch.load(..., weights_only=True)``.

        Parameters
        ----------
        map_location : optional
            Passed to :func:`torch.load` (e.g. ``"cpu"``).

        Returns
        -------
        dict or None
            The saved state, or ``None`` when the run has no checkpoint.

        Raises
        ------
        DataError
            If the checkpoint exists but cannot be loaded.
        """
        if not self.checkpoint_path.is_file():
            return None
        torch = _import_torch("loading a checkpoint")
        return self._load(torch, self.checkpoint_path, map_location)

    def _save(self, torch: Any, state: Mapping[str, Any], fh: Any) -> None:
        try:
            torch.save(dict(state), fh)
        except OSError:
            raise
        except Exception as exc:  # pickling raises many types
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise DataError(
                f"the checkpoint of {self.label} cannot be saved ({first}); keep only tensors "
                "and plain containers in it (the previous checkpoint is kept)"
            ) from None

    def _load(self, torch: Any, path: Path, map_location: Any) -> dict[str, Any]:
        try:
            state = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as exc:  # unpickling raises many types
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise DataError(
                f"the checkpoint of {self.label} cannot be loaded with weights_only=True "
                f"({first}); keep only tensors and plain containers in it, or delete "
                f"{self.checkpoint_path} to restart the run"
            ) from None
        if not isinstance(state, dict):
            raise DataError(
                f"the checkpoint of {self.label} holds a {type(state).__name__}, not a dict; "
                f"delete {self.checkpoint_path} to restart the run"
            )
        return state

    # -- inspection -----------------------------------------------------------------------
    def info(self) -> RunInfo:
        """Describe the run; damage is reported in the result, never raised.

        Returns
        -------
        RunInfo
        """
        return self._inspect()[0]

    def _inspect(self) -> tuple[RunInfo, list[dict[str, Any]]]:
        problems: list[str] = []
        corrupt = False
        config: dict[str, Any] = {}
        status_doc: dict[str, Any] | None = None
        try:
            if self.exists:
                config = self.config()
        except DataError as exc:
            problems.append(str(exc))
            corrupt = True
        try:
            status_doc = self.read_status()
        except DataError as exc:
            problems.append(str(exc))
            corrupt = True
        holder = _lock.holder(self._file(LOCK_FILE))
        records: list[dict[str, Any]] = []
        try:
            scan = mfile.scan(self._file(METRICS_FILE))
            records = scan.records
            if scan.corrupt:
                problems.append(str(self._corrupt_error(scan)))
                corrupt = True
            if scan.tail and holder is None:  # while a writer holds the lock it is mid-append
                problems.append(f"{self.label}: {METRICS_FILE} {scan.tail}")
        except DataError as exc:
            problems.append(str(exc))
            corrupt = True
        if not config and not corrupt and not self.exists and records:
            problems.append(f"{self.label} has metrics but no {CONFIG_FILE}; restore it or delete {self.path}")
            corrupt = True
        stored = status_doc.get("status") if status_doc else None
        if corrupt:
            status = "corrupt"
        elif holder is not None and stored != "finished":
            status = "running"
        elif stored == "running":
            status = "interrupted"
        else:
            status = stored or "pending"
        doc = status_doc or {}
        last = mfile.last_step(records)
        if last is None and isinstance(doc.get("last_step"), int):
            last = doc["last_step"]
        pid = holder.pid if holder is not None else doc.get("pid")
        host = holder.host if holder is not None else doc.get("host")
        error = doc.get("error")
        info = RunInfo(
            run_id=self.run_id,
            status=status,
            last_step=last,
            n_records=len(records),
            config=config,
            path=self.path,
            stored_status=stored,
            pid=pid if isinstance(pid, int) else None,
            host=host if isinstance(host, str) else None,
            error=error if isinstance(error, str) else None,
            problems=tuple(problems),
        )
        return info, records


def _import_torch(purpose: str) -> Any:
    try:
        import torch
    except ImportError:
        raise DataError(f"{purpose} needs torch: pip install 'scalelab[torch]'") from None
    return torch


# ----------------------------------------------------------------------------- the store
class RunStore:
    """A directory of runs: the embedded store the harness writes and ``scalelab runs`` reads.

    Parameters
    ----------
    root : path
        The store's directory.
    create : bool, optional
        Create ``root`` when absent (default); with ``False`` a missing root raises.

    Attributes
    ----------
    root : pathlib.Path
    problems : tuple of str
        What the last :meth:`runs` or :meth:`export` found wrong (corrupt runs, dropped
        lines, runs left out of the export), one message each.

    Raises
    ------
    DataError
        If ``root`` is a file, or missing with ``create=False``, or cannot be created.
    """

    def __init__(self, root: str | os.PathLike[str], *, create: bool = True) -> None:
        self.root = Path(root)
        self.problems: tuple[str, ...] = ()
        if self.root.exists() and not self.root.is_dir():
            raise DataError(f"run store {str(self.root)!r} is a file, not a directory; pass the store's folder")
        if not self.root.exists():
            if not create:
                raise DataError(
                    f"run store {str(self.root)!r} not found; pass the folder the grid or "
                    "trainer wrote its runs to"
                )
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DataError(
                    f"cannot create run store {str(self.root)!r} ({exc.strerror or exc}); "
                    "check the path and its permissions"
                ) from None

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    def run(self, run_id: str) -> RunHandle:
        """Return the handle of run ``run_id`` (it need not exist yet).

        Raises
        ------
        DataError
            If ``run_id`` is not a valid id.
        """
        return RunHandle(self.root, run_id)

    def run_ids(self) -> list[str]:
        """Return the ids of the run directories, sorted (other entries are ignored)."""
        try:
            entries = list(self.root.iterdir())
        except OSError as exc:
            raise DataError(f"cannot list run store {str(self.root)!r} ({exc.strerror or exc})") from None
        return sorted(p.name for p in entries if _RUN_ID.match(p.name) and p.is_dir())

    def runs(self) -> list[RunInfo]:
        """Describe every run, sorted by id; damaged runs are reported, never raised.

        Also sets :attr:`problems`.

        Returns
        -------
        list of RunInfo
        """
        infos = [self.run(rid).info() for rid in self.run_ids()]
        self.problems = tuple(p for info in infos for p in info.problems)
        return infos

    def export(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        config_columns: Sequence[str] | str | None = None,
    ) -> Table:
        """Return every metrics record of every readable run as one tidy long table.

        Columns: ``run``, ``status``, the config columns (dotted keys of the flattened
        config), then ``step``, ``examples``, ``tokens``, ``flops``, ``split``, ``source``,
        ``metric``, ``value`` and any extra record fields. Corrupt runs are left out and
        named in :attr:`problems`. A config key that clashes with another column is
        exported as ``config.<key>``.

        Parameters
        ----------
        path : path, optional
            Also write the table (atomically) to a ``.csv`` or ``.parquet`` file, readable by
            :func:`scalelab.store.read_table` and ``scalelab fit``.
        config_columns : sequence of str, or "all", optional
            Dotted config keys to export. Default: the keys whose values differ between the
            exported runs, plus :data:`STANDARD_CONFIG_KEYS` when present.

        Returns
        -------
        Table

        Raises
        ------
        DataError
            For an unsupported file type, a missing output folder, an unknown config column,
            or a file to write with no records in the store.
        """
        kind = _output_kind(path) if path is not None else None
        problems: list[str] = []
        runs: list[tuple[RunInfo, list[dict[str, Any]]]] = []
        skipped: list[str] = []
        for rid in self.run_ids():
            info, records = self.run(rid)._inspect()
            problems.extend(info.problems)
            if info.status == "corrupt":
                skipped.append(rid)
            elif records:
                runs.append((info, records))
        if skipped:
            problems.append(
                f"export left out {len(skipped)} corrupt run(s): {', '.join(skipped)}; fix or "
                "delete their files and export again"
            )
        self.problems = tuple(problems)
        table = _tidy_table(runs, config_columns, source=str(path) if path else str(self.root))
        if path is not None:
            if len(table) == 0:
                raise DataError(
                    f"run store {str(self.root)!r} has no metrics records to export"
                    f"{' (every run with records is corrupt)' if skipped else ''}; train some runs first"
                )
            _write_table(table, Path(path), kind or "csv")
        return table


# ----------------------------------------------------------------------------- export
def _choose_config_columns(
    flat: list[dict[str, Any]], requested: Sequence[str] | str | None
) -> list[str]:
    keys: dict[str, None] = {}
    for config in flat:
        keys.update(dict.fromkeys(config))
    if requested == "all":
        return list(keys)
    if requested is not None:
        names = [requested] if isinstance(requested, str) else list(requested)
        for name in names:
            if flat and name not in keys:
                close = difflib.get_close_matches(name, list(keys), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise DataError(
                    f"unknown config column {name!r}{hint}; available: {', '.join(keys) or '(none)'}"
                )
        return names
    missing = object()
    chosen = []
    for key in keys:
        standard = key in STANDARD_CONFIG_KEYS or key.rsplit(".", 1)[-1] in STANDARD_CONFIG_KEYS
        values = {json.dumps(c.get(key, missing), default=repr, sort_keys=True) for c in flat}
        if standard or len(values) > 1:
            chosen.append(key)
    return chosen


def _status_facts(info: RunInfo) -> dict[str, Any]:
    """Facts the trainer learns only when it builds the model (parameter counts), from status.json."""
    try:
        status = json.loads((Path(info.path) / "status.json").read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(status, dict):
        return {}
    return {k: status[k] for k in ("n_params", "n_params_nonembedding") if k in status}


def _tidy_table(
    runs: list[tuple[RunInfo, list[dict[str, Any]]]],
    config_columns: Sequence[str] | str | None,
    source: str,
) -> Table:
    flat = [{**flatten_config(info.config), **_status_facts(info)} for info, _ in runs]
    config_keys = _choose_config_columns(flat, config_columns)
    extras: dict[str, None] = {}
    for _, records in runs:
        for record in records:
            extras.update((k, None) for k in record if k not in RECORD_FIELDS and k not in extras)
    reserved = {"run", "status", *RECORD_FIELDS, *extras}
    config_names = [f"config.{k}" if k in reserved else k for k in config_keys]
    columns: dict[str, list[Any]] = {"run": [], "status": []}
    columns.update((name, []) for name in config_names)
    columns.update((name, []) for name in (*RECORD_FIELDS, *extras))
    record_names = [*RECORD_FIELDS, *extras]
    for (info, records), config in zip(runs, flat, strict=True):
        n = len(records)
        columns["run"].extend([info.run_id] * n)
        columns["status"].extend([info.status] * n)
        for key, name in zip(config_keys, config_names, strict=True):
            columns[name].extend([config.get(key)] * n)
        for name in record_names:
            columns[name].extend([record.get(name) for record in records])
    return Table.from_columns(columns, source=source)


def _output_kind(path: str | os.PathLike[str]) -> str:
    target = Path(path)
    kind = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}.get(target.suffix.lower())
    if kind is None:
        raise DataError(f"cannot export to {str(target)!r}: use a .csv or .parquet file name")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise DataError(f"cannot write {str(target)!r}: folder {str(folder)!r} does not exist")
    return kind


def _csv_number(value: float) -> str:
    if value != value:  # NaN: an empty cell, read back as missing
        return ""
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def _write_table(table: Table, path: Path, kind: str) -> None:
    if kind == "parquet":
        _write_parquet(table, path)
        return
    cells: list[list[str]] = []
    for name in table.columns:
        col = table.column(name)
        kind_ = table.kind(name)
        if kind_ == "numeric":
            cells.append([_csv_number(float(v)) for v in col])
        elif kind_ == "bool":
            cells.append(["true" if v else "false" for v in col])
        else:
            cells.append([str(v) for v in col])
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(table.columns)
    writer.writerows(zip(*cells, strict=True))
    atomic_write_text(path, buf.getvalue())


def _write_parquet(table: Table, path: Path) -> None:
    try:
        import numpy as np
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(
            f"writing Parquet ({path}) needs pyarrow: pip install 'scalelab[parquet]', or "
            "export to .csv"
        ) from None
    arrays = {}
    for name in table.columns:
        col = table.column(name)
        kind = table.kind(name)
        if kind == "numeric":
            integral = bool(np.all(np.isfinite(col)) and np.all(col == np.round(col)))
            if name in _INTEGER_FIELDS and integral:
                arrays[name] = pa.array(col.astype(np.int64))
            else:
                arrays[name] = pa.array(col, type=pa.float64())
        elif kind == "bool":
            arrays[name] = pa.array(col, type=pa.bool_())
        else:
            arrays[name] = pa.array([str(v) for v in col], type=pa.string())
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(pa.table(arrays), tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise DataError(f"cannot write {str(path)!r} ({exc.strerror or exc})") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
