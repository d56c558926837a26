"""Pull W&B runs (config and full history) into a run store, so ``scalelab fit`` can use them.

``pull_runs("entity/project", "runs/", filters={"config.kind": "ladder"})`` lists the project's
runs with wandb's public API (filters are applied by the server, MongoDB style: ``$and``,
``$or``, ``$in``, ``$gt``, ..., on ``config.*``, ``summary_metrics.*``, ``state``,
``displayName``, ``tags``, ``group``), reads each run's config and its full history
(``run.scan_history``: every row, not a sample), and writes it through
:class:`~scalelab.store.runs.RunStore`: ``scalelab runs ROOT`` lists the runs and
``scalelab runs ROOT --export runs.csv`` gives the tidy table ``scalelab fit`` reads.

History rows become records as in :mod:`scalelab.tracking.records`: W&B ``_step`` (or
``keys.step``) is the step, ``tokens`` / ``flops`` / ``examples`` (or other keys) the axes, and
every other numeric key a metric, split on ``/`` into split, source and metric. A run scalelab
logged itself gets back its store run id, config, provenance and parameter counts; another
tool's run is stored under its W&B id with its W&B config (config keys such as ``n_params``
become export columns). Pulling again appends only the steps past those stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scalelab.errors import DataError
from scalelab.store.runs import RunStore
from scalelab.tracking import _wandb
from scalelab.tracking.records import RowKeys, records_from_row
from scalelab.tracking.store_io import from_wandb_config, store_run_id, write_run

__all__ = ["PullSummary", "parse_filters", "pull_runs"]

#: W&B run states -> store statuses (others, e.g. "running", are stored as "running").
_STATES = {"finished": "finished", "crashed": "failed", "failed": "failed", "killed": "failed",
           "preempted": "failed"}


@dataclass(frozen=True)
class PullSummary:
    """What :func:`pull_runs` did: ``(store run id, W&B id, W&B state, records appended)`` per run."""

    path: str
    runs: tuple[tuple[str, str, str, int], ...]

    @property
    def appended(self) -> int:
        return sum(r[3] for r in self.runs)


def _status(ours: Any, state: str) -> str:
    """The store status: what scalelab logged in the summary when it did, else from the W&B state."""
    if ours in ("finished", "failed", "running", "pending"):
        return str(ours)
    if ours == "paused":
        return "running"  # resumable: the store reports it as interrupted
    return _STATES.get(state, "running")


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_filters(items: Sequence[str]) -> dict[str, Any]:
    """Turn ``--filter`` arguments into one W&B filter (all must hold).

    Each item is a JSON object in W&B's MongoDB syntax, or ``KEY=VALUE`` (the value read as
    JSON when it parses, else as text).

    Examples
    --------
    >>> parse_filters(["config.kind=ladder", '{"config.n_params": {"$lt": 1e9}}'])
    {'$and': [{'config.kind': 'ladder'}, {'config.n_params': {'$lt': 1000000000.0}}]}
    >>> parse_filters(["state=finished"])
    {'state': 'finished'}

    Raises
    ------
    DataError
        For an item that is neither.
    """
    parts: list[dict[str, Any]] = []
    for item in items:
        text = item.strip()
        if text.startswith("{"):
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DataError(f"--filter {item!r} is not valid JSON ({exc.msg}); e.g. "
                                "'{\"config.lr\": {\"$lt\": 0.01}}'") from None
            if not isinstance(obj, dict):
                raise DataError(f"--filter {item!r} must be a JSON object")
            parts.append(obj)
        elif "=" in text and text.split("=", 1)[0].strip():
            key, value = text.split("=", 1)
            parts.append({key.strip(): _value(value.strip())})
        else:
            raise DataError(f"--filter {item!r} is not KEY=VALUE or a JSON object; e.g. "
                            "--filter config.model.size=tiny or --filter state=finished")
    if not parts:
        return {}
    return parts[0] if len(parts) == 1 else {"$and": parts}


def _split_path(path: str) -> tuple[str, str]:
    parts = [p for p in path.strip().strip("/").split("/") if p]
    if len(parts) != 2:
        raise DataError(f"W&B path {path!r} is not ENTITY/PROJECT; e.g. scalelab wandb pull my-team/scaling -o runs/")
    return parts[0], parts[1]


def _api(timeout: float) -> Any:
    wandb = _wandb.import_wandb()
    if not _wandb.api_key_available():
        raise DataError("no W&B API key: set WANDB_API_KEY or run `wandb login` (pulling needs the server)")
    try:
        return wandb.Api(timeout=int(timeout))
    except Exception as exc:
        raise DataError(_wandb.redact(f"cannot connect to W&B at {_wandb.base_url()} ({type(exc).__name__}: "
                                      f"{str(exc).splitlines()[0] if str(exc) else ''}); check "
                                      "WANDB_BASE_URL, the network and the API key")) from None


def pull_runs(
    path: str,
    root: str | Path,
    *,
    filters: Mapping[str, Any] | None = None,
    keys: RowKeys | None = None,
    timeout: float = 30.0,
    progress: Callable[[str], None] | None = None,
) -> PullSummary:
    """Copy the runs of W&B project ``path`` (``"entity/project"``) into the store at ``root``.

    Parameters
    ----------
    path : str
        ``ENTITY/PROJECT``.
    root : path
        The run store (created if absent).
    filters : mapping, optional
        A W&B run filter (see :func:`parse_filters`), applied by the server.
    keys : RowKeys, optional
        History keys of the step and the axes (default ``_step``, ``examples``, ``tokens``,
        ``flops``).
    timeout : float
        Seconds per API request.
    progress : callable, optional
        Called with one line per run pulled.

    Returns
    -------
    PullSummary

    Raises
    ------
    DataError
        For a bad path, no API key, an unreachable server, an unknown project, no run matching
        the filters, or a run that exists in the store with a different config.
    """
    entity, project = _split_path(path)
    keys = keys or RowKeys()
    api = _api(timeout)
    try:
        runs = list(api.runs(f"{entity}/{project}", filters=dict(filters or {}), per_page=50, lazy=False))
    except Exception as exc:
        raise DataError(_wandb.redact(f"cannot list the runs of {entity}/{project} ({type(exc).__name__}: "
                                      f"{str(exc).splitlines()[0] if str(exc) else ''}); check the "
                                      "entity, project and filters")) from None
    if not runs:
        raise DataError(f"no runs in {entity}/{project} match the filters {json.dumps(dict(filters or {}))}; "
                        "loosen --filter or check the project name")
    store = RunStore(root)
    say = progress or (lambda _m: None)
    out = []
    for wrun in runs:
        cfg = from_wandb_config(dict(wrun.config))
        run_id = cfg.run_id or store_run_id(wrun.id)
        handle = store.run(run_id)
        stored = handle.read_metrics() if handle.exists else []
        last = max((int(r["step"]) for r in stored), default=-1)
        min_step = last + 1 if keys.step == "_step" else 0
        try:
            rows = list(wrun.scan_history(min_step=min_step, page_size=1000, use_cache=False))
        except Exception as exc:
            raise DataError(_wandb.redact(f"cannot read the history of W&B run {wrun.id} "
                                          f"({type(exc).__name__}: {exc}); try again")) from None
        records = [r for row in rows for r in records_from_row(row, keys)]
        state = str(wrun.state)
        status = _status(wrun.summary.get("scalelab/status"), state)
        source = {"wandb": {"entity": entity, "project": project, "id": wrun.id, "name": wrun.name,
                            "url": getattr(wrun, "url", None), "state": state}}
        info: dict[str, Any] = {**cfg.facts, "source": "wandb", "wandb_state": state}
        if status == "failed":
            info["error"] = f"W&B run state is {state!r}"
        n = write_run(store, run_id, config=cfg.config, provenance={**cfg.provenance, **source},
                      records=records, status=status, info=info)
        out.append((run_id, str(wrun.id), state, n))
        say(f"{run_id}: {n} records from W&B run {wrun.id} ({state})")
    return PullSummary(f"{entity}/{project}", tuple(out))
