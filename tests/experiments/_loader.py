"""Import an experiment's ``run.py`` (experiments/ is not a package) for the tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

EXP = Path(__file__).resolve().parents[2] / "experiments"


def load_experiment(rel: str, name: str) -> ModuleType:
    """Load ``experiments/<rel>`` as module ``name`` (``experiments/`` on sys.path for ``_common``)."""
    if str(EXP) not in sys.path:
        sys.path.insert(0, str(EXP))
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, EXP / rel)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mod)
    return mod
