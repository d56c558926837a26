"""Weights & Biases: log runs live, push stored runs and fits, pull runs (or offline runs) to fit.

The store stays the source of truth; W&B is a view of it and a way in for runs logged by other
tools. ``wandb`` is an optional dependency (``pip install 'scalelab[wandb]'``), imported only
when a function here talks to W&B, so ``import scalelab.tracking`` is cheap. See docs/wandb.md.

* :class:`~scalelab.tracking.live.WandbObserver`: the trainer's live logger (``[tracking.wandb]``
  in a run config, or ``--wandb PROJECT`` on ``scalelab train`` / ``grid``);
* :func:`push_store`, :func:`push_fit`: upload stored runs and fits, idempotently;
* :func:`pull_runs`: W&B runs (server-side filters) into a store;
* :func:`read_offline_run`, :func:`import_offline`: offline run folders into a store, no server.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "OfflineRun",
    "PullSummary",
    "PushSummary",
    "WandbObserver",
    "import_offline",
    "pull_runs",
    "push_fit",
    "push_store",
    "read_offline_run",
]

_WHERE = {
    "WandbObserver": "live",
    "PushSummary": "push",
    "push_store": "push",
    "push_fit": "push",
    "PullSummary": "pull",
    "pull_runs": "pull",
    "OfflineRun": "offline",
    "read_offline_run": "offline",
    "import_offline": "offline",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'scalelab.tracking' has no attribute {name!r}")
    return getattr(importlib.import_module(f"scalelab.tracking.{_WHERE[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
