"""Small I/O helpers shared by the library and the CLI."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from scalelab.errors import DataError

__all__ = ["atomic_write_text", "read_toml_or_json"]


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and an atomic rename.

    A crash or a full disk leaves the previous file intact instead of a truncated one.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise DataError(f"cannot write {str(target)!r}: folder {str(folder)!r} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise DataError(f"cannot write {str(target)!r}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_toml_or_json(path: str | os.PathLike[str], what: str) -> Any:
    """Parse a ``.json`` file as JSON and anything else as TOML; ``what`` names it in errors."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{what} file {str(p)!r} not found") from None
    except OSError as exc:
        raise DataError(f"cannot read {what} file {str(p)!r}: {exc.strerror or exc}") from None
    kind = "JSON" if p.suffix == ".json" else "TOML"
    try:
        if kind == "JSON":
            import json

            return json.loads(raw)
        import tomllib

        return tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{what} file {str(p)!r} is not valid {kind}: {exc}") from None
