"""Live logging of a training run to W&B: an observer the trainer feeds with its records.

Enable it with a ``[tracking.wandb]`` table in the run config (``project``, optional ``entity``,
``mode``, ``group``, ``tags``, ``init_timeout``, ``finish_timeout``) or with ``--wandb PROJECT``
on ``scalelab train`` / ``scalelab grid`` (which sets ``$SCALELAB_WANDB``, read by every run the
grid starts, in any executor).

What is logged: the resolved config with the provenance and parameter counts (see
:func:`scalelab.tracking.store_io.wandb_config`), and one history row per trainer step with W&B
``_step`` = the trainer's step, the shared axes ``examples``, ``tokens`` and ``flops``
(declared with ``define_metric``, and ``tokens`` as the x axis of every ``train/*`` and
``eval/*`` metric), and each value as ``split/source/metric``.

Modes: ``auto`` logs online when an API key is configured and the server answers one small
request with it within 5 s, or ``init_timeout`` if shorter
(:func:`~scalelab.tracking._wandb.server_problem`), offline
otherwise (with a warning when a server was configured but failed); ``online`` does the same,
and warns about a missing key too. If ``wandb.init`` itself then fails or times out
(``init_timeout``), the run is logged offline under the W&B id ``<id>-offline`` (wandb keeps
the failed id busy in the process); ``offline`` writes the run to
``$WANDB_DIR/wandb/offline-run-*`` for ``wandb sync``; ``disabled`` logs nothing. ``$WANDB_MODE``
overrides ``auto``. The W&B run id is derived from the store run
(:func:`scalelab.tracking._wandb.wandb_run_id`) with ``resume="allow"``, so a resumed training
run continues its W&B run, and steps W&B already has are not sent again.

Nothing here may stop training: the trainer drops an observer whose call raises (warning once),
the observer itself turns W&B failures into one warning and goes quiet, and ``finish_timeout``
bounds the final upload (what is left stays on disk for ``wandb sync``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scalelab.errors import DataError
from scalelab.tracking import _wandb
from scalelab.tracking.records import AXES, rows_from_records
from scalelab.tracking.store_io import wandb_config

__all__ = ["ENV_VAR", "LiveSettings", "TrackingWarning", "WandbObserver", "observer_for", "settings_from"]

#: Set by ``--wandb [ENTITY/]PROJECT`` on ``scalelab train`` / ``grid``.
ENV_VAR = "SCALELAB_WANDB"


class TrackingWarning(UserWarning):
    """W&B could not be used as asked; training and the store are unaffected."""


@dataclass(frozen=True)
class LiveSettings:
    """Where and how one run is logged (resolved from the config and the environment)."""

    project: str
    entity: str | None = None
    mode: str = "auto"
    group: str | None = None
    tags: tuple[str, ...] = ()
    init_timeout: float = 30.0
    finish_timeout: float = 60.0


def parse_target(text: str) -> tuple[str | None, str]:
    """``"ENTITY/PROJECT"`` or ``"PROJECT"`` -> ``(entity, project)``.

    Raises
    ------
    DataError
        If the text is empty or has more than one ``/``.
    """
    parts = [p.strip() for p in text.strip().split("/")]
    if not all(parts) or len(parts) > 2:
        raise DataError(f"W&B target {text!r} is not PROJECT or ENTITY/PROJECT; e.g. --wandb my-team/scaling")
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


def settings_from(config: Any, environ: Mapping[str, str] | None = None) -> LiveSettings | None:
    """The live settings of a run: its ``[tracking.wandb]`` table, else ``$SCALELAB_WANDB``.

    ``config`` is a :class:`~scalelab.harness.config.RunConfig`. The grid's name is the default
    W&B group, so the runs of one grid are grouped.
    """
    env = os.environ if environ is None else environ
    grid = getattr(config, "grid", None) or {}
    group = grid.get("name") if isinstance(grid, Mapping) else None
    tracking = getattr(config, "tracking", None)
    spec = getattr(tracking, "wandb", None)
    if spec is not None:
        return LiveSettings(project=spec.project, entity=spec.entity, mode=spec.mode,
                            group=spec.group or group, tags=tuple(spec.tags),
                            init_timeout=spec.init_timeout, finish_timeout=spec.finish_timeout)
    target = env.get(ENV_VAR, "").strip()
    if not target:
        return None
    entity, project = parse_target(target)
    return LiveSettings(project=project, entity=entity or env.get("WANDB_ENTITY") or None, group=group)


def observer_for(config: Any) -> WandbObserver | None:
    """The observer the trainer uses for ``config`` (None when tracking is not asked for).

    Raises
    ------
    DataError
        If tracking is asked for and the wandb package is missing.
    """
    settings = settings_from(config)
    if settings is None or settings.mode == "disabled":
        return None
    _wandb.import_wandb()  # fail before training, with the install command
    return WandbObserver(settings)


class WandbObserver:
    """Logs one training session to W&B; every failure becomes one warning, never an exception.

    Parameters
    ----------
    settings : LiveSettings
        Project, mode and timeouts.

    Attributes
    ----------
    mode : str or None
        ``"online"`` or ``"offline"`` once started (None before, or if W&B could not start).
    run_dir : str or None
        The local W&B folder of the run (what ``wandb sync`` uploads).
    """

    def __init__(self, settings: LiveSettings) -> None:
        self.settings = settings
        self.mode: str | None = None
        self.run_dir: str | None = None
        self._run: Any = None
        self._next_step = 0  # steps W&B already has (a resumed W&B run) are skipped
        self._failed = False

    # -- helpers
    def _warn(self, what: str, exc: BaseException) -> None:
        if not self._failed:
            self._failed = True
            message = _wandb.redact(f"{type(exc).__name__}: {exc}".splitlines()[0])
            warnings.warn(f"W&B {what} failed ({message}); training goes on, the store has every record",
                          TrackingWarning, stacklevel=3)

    def _choose_mode(self) -> str:
        mode = self.settings.mode
        if mode == "auto":
            mode = os.environ.get("WANDB_MODE", "").strip() or "auto"
            if mode in ("dryrun", "offline"):
                return "offline"
            if mode == "disabled":
                return "disabled"
        if mode == "offline":
            return "offline"
        if not _wandb.api_key_available():
            if mode == "online":
                warnings.warn("no W&B API key (WANDB_API_KEY or `wandb login`); logging offline instead",
                              TrackingWarning, stacklevel=4)
            return "offline"
        problem = _wandb.server_problem(timeout=min(5.0, self.settings.init_timeout))
        if problem is not None:
            warnings.warn(_wandb.redact(f"W&B: {problem}; logging offline instead (upload later with "
                                        "`wandb sync`)"), TrackingWarning, stacklevel=4)
            return "offline"
        return "online"

    def _init(self, wandb: Any, mode: str, run_id: str, config: Mapping[str, Any], wandb_id: str) -> Any:
        s = self.settings
        return wandb.init(
            project=s.project, entity=s.entity, id=wandb_id, name=run_id, group=s.group,
            tags=list(s.tags) or None, job_type="train", config=dict(config), resume="allow",
            reinit="create_new", mode=mode,
            settings=_wandb.run_settings(wandb, init_timeout=s.init_timeout, finish_timeout=s.finish_timeout),
        )

    # -- the Observer protocol
    def start(self, *, run_id: str, config: Mapping[str, Any], provenance: Mapping[str, Any],
              start_step: int, facts: Mapping[str, Any]) -> None:
        """Start (or resume) the W&B run; online failures fall back to offline."""
        try:
            wandb = _wandb.import_wandb()
            mode = self._choose_mode()
            if mode == "disabled":
                return
            wid = _wandb.wandb_run_id(run_id, provenance)
            cfg = _wandb.redact_obj(wandb_config(run_id, config, provenance, facts))
            try:
                run = self._init(wandb, mode, run_id, cfg, wid)
            except Exception as exc:
                if mode != "online":
                    raise
                # wandb keeps the failed run's id busy in this process: go offline under another
                wid = f"{wid}-offline"
                first = (str(exc).splitlines() or [""])[0]
                warnings.warn(_wandb.redact(f"W&B online start failed ({type(exc).__name__}: {first}); "
                                            f"logging offline as W&B run {wid} instead (upload later with "
                                            "`wandb sync`)"), TrackingWarning, stacklevel=2)
                mode = "offline"
                run = self._init(wandb, mode, run_id, cfg, wid)
            for axis in AXES:
                run.define_metric(axis)
            for prefix in ("train/*", "eval/*"):
                run.define_metric(prefix, step_metric="tokens")
            self._run, self.mode = run, mode
            self.run_dir = str(getattr(run, "dir", "") or "") or None
            self._next_step = int(getattr(run, "starting_step", 0) or 0)
        except Exception as exc:
            self._run = None
            self._warn("start", exc)

    def log(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Log the records' steps (one row each) that W&B does not have yet."""
        if self._run is None:
            return
        try:
            for step, row in rows_from_records(records):
                if step >= self._next_step:
                    self._run.log(row, step=step)
                    self._next_step = step + 1
        except Exception as exc:
            self._warn("log", exc)
            self._run = None

    def finish(self, status: str) -> None:
        """Record the outcome in the summary and close the W&B run (bounded by finish_timeout)."""
        run, self._run = self._run, None
        if run is None:
            return
        try:
            run.summary["scalelab/status"] = status
            run.finish(exit_code=1 if status == "failed" else 0)
        except Exception as exc:
            self._warn("finish", exc)
