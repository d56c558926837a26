"""One JSON conversion for the curves result dataclasses."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

__all__ = ["fields_to_json", "jsonable"]


def jsonable(value: Any) -> Any:
    """Non-finite floats become ``None``, tuples lists, nested results their ``to_dict()``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return value


def fields_to_json(obj: Any) -> dict[str, Any]:
    """A frozen result dataclass as a JSON-ready dictionary, field by field."""
    return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
