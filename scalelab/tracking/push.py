"""Push stored runs and fits to W&B, idempotently.

Runs: each store run becomes the W&B run with id :func:`~scalelab.tracking._wandb.wandb_run_id`
(the same id live logging uses), opened with ``resume="allow"``. W&B reports the first step it
does not have yet (``run.starting_step``), and only rows from that step on are sent, so pushing
twice, or pushing a run that was logged live, sends nothing twice; pushing a run that has grown
since sends only the new steps. The config is the run's config with its provenance and
parameter counts (:func:`~scalelab.tracking.store_io.wandb_config`), the history one row per
step as in :mod:`scalelab.tracking.records`, and the summary carries ``scalelab/status``.

Fits: each ``scalelab fit --json`` file becomes one W&B run (``job_type="fit"``) whose id is a
hash of the fit's content, with the law, inputs and options as config, parameter values and fit
statistics in the summary, and as tables ``fit/params``, ``fit/curve`` (fitted and extrapolated,
with its interval), ``fit/points`` (the data, when it can be re-read), plus the image
``fit/plot`` (with matplotlib). A fit that is already there is not logged again.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scalelab.errors import DataError
from scalelab.store.runs import RunStore
from scalelab.tracking import _wandb
from scalelab.tracking.records import AXES, rows_from_records
from scalelab.tracking.store_io import wandb_config

__all__ = ["PushSummary", "fit_run_id", "push_fit", "push_store"]


@dataclass(frozen=True)
class PushSummary:
    """What was pushed: ``(name, W&B id, rows sent)`` per run and per fit."""

    project: str
    runs: tuple[tuple[str, str, int], ...] = ()
    fits: tuple[tuple[str, str, int], ...] = ()

    @property
    def rows(self) -> int:
        return sum(r[2] for r in (*self.runs, *self.fits))


def _push_mode() -> str | None:
    """The mode to push in: None (wandb's default, online) or what ``$WANDB_MODE`` says.

    Raises
    ------
    DataError
        If pushing online without an API key.
    """
    import os

    mode = os.environ.get("WANDB_MODE", "").strip() or None
    if mode in (None, "online", "run") and not _wandb.api_key_available():
        raise DataError("no W&B API key: set WANDB_API_KEY or run `wandb login` (or WANDB_MODE=offline "
                        "to write offline runs for `wandb sync`)")
    return mode


def _open(wandb: Any, *, project: str, entity: str | None, wid: str, name: str, group: str | None,
          job_type: str, config: dict[str, Any], mode: str | None) -> Any:
    try:
        return wandb.init(project=project, entity=entity, id=wid, name=name, group=group, job_type=job_type,
                          config=config, resume="allow", reinit="create_new", mode=mode,
                          settings=_wandb.run_settings(wandb, init_timeout=60.0, finish_timeout=600.0))
    except Exception as exc:
        raise DataError(_wandb.redact(f"W&B did not start run {name} ({type(exc).__name__}: "
                                      f"{str(exc).splitlines()[0] if str(exc) else ''}); check "
                                      "WANDB_BASE_URL, the network, the API key and the project")) from None


def push_store(
    root: str | Path,
    *,
    project: str,
    entity: str | None = None,
    run_ids: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> PushSummary:
    """Upload the runs of a store (config and history) to W&B ``entity/project``.

    Parameters
    ----------
    root : path
        The run store.
    project, entity : str
        Where to push (entity: the API key's default when None).
    run_ids : sequence of str, optional
        Only these runs (default: every run with a readable config).
    progress : callable, optional
        Called with one line per run.

    Returns
    -------
    PushSummary

    Raises
    ------
    DataError
        For a missing store, an unknown run id, no API key, or a run W&B does not accept.
    """
    wandb = _wandb.import_wandb()
    store = RunStore(root, create=False)
    infos = {info.run_id: info for info in store.runs()}
    if run_ids is not None:
        unknown = [r for r in run_ids if r not in infos]
        if unknown:
            raise DataError(f"no run(s) {', '.join(unknown)} in {str(store.root)!r}; list them with "
                            f"`scalelab runs {store.root}`")
        chosen = [infos[r] for r in run_ids]
    else:
        chosen = [i for i in infos.values() if i.status != "corrupt" and i.config]
    if not chosen:
        raise DataError(f"no runs to push in {str(store.root)!r}; train some first (`scalelab runs` lists them)")
    mode = _push_mode()
    say = progress or (lambda _m: None)
    out = []
    for info in chosen:
        handle = store.run(info.run_id)
        provenance = handle.provenance()
        status = handle.read_status() or {}
        facts = {k: status.get(k) for k in ("n_params", "n_params_nonembedding")}
        cfg = _wandb.redact_obj(wandb_config(info.run_id, handle.config(), provenance, facts))
        grid = info.config.get("grid")
        group = grid.get("name") if isinstance(grid, dict) else None
        wid = _wandb.wandb_run_id(info.run_id, provenance)
        run = _open(wandb, project=project, entity=entity, wid=wid, name=info.run_id, group=group,
                    job_type="train", config=cfg, mode=mode)
        sent, closed = 0, False
        try:
            first = int(getattr(run, "starting_step", 0) or 0)
            for axis in AXES:
                run.define_metric(axis)
            for prefix in ("train/*", "eval/*"):
                run.define_metric(prefix, step_metric="tokens")
            for step, row in rows_from_records(handle.read_metrics()):
                if step >= first:
                    run.log(row, step=step)
                    sent += 1
            run.summary["scalelab/status"] = info.status
            run.finish(exit_code=1 if info.status in ("failed", "corrupt") else 0)
            closed = True
        finally:
            if not closed:
                run.finish(exit_code=1)
        out.append((info.run_id, wid, sent))
        say(f"{info.run_id}: {sent} new steps -> W&B run {wid}")
    return PushSummary(project, runs=tuple(out))


def fit_run_id(fit: dict[str, Any]) -> str:
    """The W&B run id of a fit: a hash of what the fit found and on which data.

    Timing and the host do not enter it, so the same fit file always maps to the same run.
    """
    content = {k: fit.get(k) for k in ("law", "law_config", "inputs", "y", "params", "options", "data")}
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"fit-{fit.get('law', 'law')}-{digest}"


def push_fit(
    path: str | Path,
    *,
    project: str,
    entity: str | None = None,
) -> tuple[str, str, int]:
    """Upload one fit (a ``scalelab fit --json`` file) as a W&B run; return ``(name, W&B id, rows)``.

    ``rows`` is 1 when the fit was logged and 0 when W&B already had it.

    Raises
    ------
    DataError
        For an unreadable fit file, no API key, or a run W&B does not accept.
    """
    from scalelab.fit.result import FitResult
    from scalelab.tracking.fit_media import fit_media, plot_fit

    wandb = _wandb.import_wandb()
    p = Path(path)
    res = FitResult.load(p)
    doc = res.to_dict()
    mode = _push_mode()
    wid = fit_run_id(doc)
    config = {k: doc[k] for k in ("law", "law_config", "equation", "reference", "inputs", "y", "n_points",
                                   "n_free", "coverage", "interval_method", "options", "data")}
    run = _open(wandb, project=project, entity=entity, wid=wid, name=p.stem, group="fits", job_type="fit",
                config=config, mode=mode)
    sent, closed = 0, False
    try:
        with tempfile.TemporaryDirectory() as tmp:  # the image file must live until the run is saved
            if int(getattr(run, "starting_step", 0) or 0) == 0:  # W&B does not have this fit yet
                media = fit_media(res, base=p.parent)
                row: dict[str, Any] = {}
                for label, table in (("params", media.params), ("curve", media.curve), ("points", media.points)):
                    if table is not None:
                        row[f"fit/{label}"] = wandb.Table(columns=list(table[0]), data=table[1])
                png = plot_fit(res, media, Path(tmp) / "fit.png")
                if png is not None:
                    row["fit/plot"] = wandb.Image(str(png), caption=f"{res.law.name}: {res.y}")
                run.log(row, step=0)
                sent = 1
                for name, e in res.params.items():
                    run.summary[f"param/{name}"] = e.value
                for name, value in res.stats.items():
                    run.summary[f"stats/{name}"] = value
                if media.note:
                    run.summary["fit/note"] = media.note
            run.finish(exit_code=0)
            closed = True
    finally:
        if not closed:
            run.finish(exit_code=1)
    return p.stem, wid, sent
