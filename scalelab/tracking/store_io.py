"""What a store run looks like as a W&B config, and writing W&B runs into a store.

scalelab logs a run's W&B config as its resolved run config plus one ``scalelab`` entry with the
store run id, the provenance and the parameter counts (:func:`wandb_config`). Reading a W&B run
back (pull, offline import) inverts that (:func:`from_wandb_config`); a run logged by another
tool has no ``scalelab`` entry and keeps its W&B config as it is.

Runs are written through :class:`~scalelab.store.runs.RunStore` (so ``scalelab runs`` lists
them and ``export`` feeds ``scalelab fit``), under the run's lock, and only records past the
run's last stored step are appended: importing twice adds nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scalelab.errors import DataError
from scalelab.store.runs import RunStore

__all__ = ["FACT_KEYS", "ImportedConfig", "from_wandb_config", "store_run_id", "wandb_config", "write_run"]

#: Facts the trainer learns when it builds the model; the store keeps them in status.json.
FACT_KEYS = ("n_params", "n_params_nonembedding")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def wandb_config(run_id: str, config: Mapping[str, Any], provenance: Mapping[str, Any],
                 facts: Mapping[str, Any]) -> dict[str, Any]:
    """The W&B config of a store run: its config plus ``scalelab = {run_id, provenance, facts}``."""
    extra = {k: facts[k] for k in FACT_KEYS if facts.get(k) is not None}
    return {**config, "scalelab": {"run_id": run_id, "provenance": dict(provenance), **extra}}


@dataclass(frozen=True)
class ImportedConfig:
    """A W&B config split into what the store keeps where."""

    run_id: str | None  # the store run id it was logged from (None: another tool's run)
    config: dict[str, Any]
    provenance: dict[str, Any] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)


def from_wandb_config(cfg: Mapping[str, Any]) -> ImportedConfig:
    """Invert :func:`wandb_config`; W&B's own keys (``_wandb``, ``wandb_version``) are dropped."""
    config = {k: v for k, v in cfg.items() if not k.startswith("_") and k != "wandb_version"}
    ours = config.pop("scalelab", None)
    if not isinstance(ours, Mapping) or not isinstance(ours.get("run_id"), str):
        if ours is not None:
            config["scalelab"] = ours
        return ImportedConfig(None, config)
    prov = ours.get("provenance")
    facts = {k: ours[k] for k in FACT_KEYS if ours.get(k) is not None}
    return ImportedConfig(ours["run_id"], config, dict(prov) if isinstance(prov, Mapping) else {}, facts)


def store_run_id(text: str) -> str:
    """A valid store run id made from a W&B run id or name (unsafe characters become ``-``).

    Examples
    --------
    >>> store_run_id("abc123"), store_run_id("my run/1")
    ('abc123', 'my-run-1')
    """
    out = _UNSAFE.sub("-", str(text)).strip("-.")[:200]
    if not out:
        raise DataError(f"cannot make a store run id from {text!r}; give the run a name with letters or digits")
    return out


def write_run(store: RunStore, run_id: str, *, config: Mapping[str, Any], provenance: Mapping[str, Any],
              records: Sequence[Mapping[str, Any]], status: str, info: Mapping[str, Any] | None = None) -> int:
    """Create or extend one run in ``store``; return how many records were appended.

    Records at or before the run's last stored step are skipped (they are already there), so a
    repeated import appends nothing. The status is set to ``status`` with ``info`` (parameter
    counts, where the run came from).

    Raises
    ------
    DataError
        If the run exists with a different config (two W&B runs map to one store id: import
        them into different stores), or a record is invalid.
    RunBusyError
        If another process is writing the run.
    """
    handle = store.run(run_id)
    with handle.lock():
        handle.start(dict(config), dict(provenance))
        stored = handle.read_metrics()
        last = max((int(r["step"]) for r in stored), default=-1)
        new = [dict(r) for r in records if int(r["step"]) > last]
        handle.append_metrics(new)
        steps = [int(r["step"]) for r in (*stored, *new)]
        handle.set_status(status, step=max(steps) if steps else None, **dict(info or {}))
    return len(new)
