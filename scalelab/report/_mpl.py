"""matplotlib behind one door: imported lazily, Agg canvas only, figures saved as PNG and SVG.

Figures are built on :class:`matplotlib.figure.Figure` with an explicit Agg canvas instead of
``pyplot``, so no global state, no display and no backend switching are involved.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scalelab.errors import DataError

__all__ = ["DPI", "FigureFile", "new_figure", "save_figure"]

#: resolution of the PNG files
DPI = 120
_MISSING = "the report needs matplotlib: pip install 'scalelab[report]'"


@dataclass(frozen=True)
class FigureFile:
    """One figure of the report, written as PNG and SVG side by side.

    Attributes
    ----------
    stem : str
        File name without extension (``learning_curves``), unique within a report.
    title : str
        Heading shown above the figure.
    caption : str
        What the figure shows and how it was computed.
    png, svg : pathlib.Path
        The written files.
    """

    stem: str
    title: str
    caption: str
    png: Path
    svg: Path

    def to_dict(self) -> dict[str, str]:
        """JSON-ready dictionary (paths as strings)."""
        return {
            "stem": self.stem,
            "title": self.title,
            "caption": self.caption,
            "png": str(self.png),
            "svg": str(self.svg),
        }


def _matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise DataError(_MISSING) from None
    return matplotlib


def new_figure(width: float, height: float) -> Any:
    """A matplotlib ``Figure`` of ``width`` x ``height`` inches on an Agg canvas.

    Raises
    ------
    DataError
        When matplotlib is not installed.
    """
    _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Any, folder: Path, stem: str, *, title: str, caption: str) -> FigureFile:
    """Write ``fig`` to ``folder/stem.png`` (``DPI`` dots per inch) and ``folder/stem.svg``.

    The SVG keeps text as paths (no font needed to view it) and carries no date, so the same
    figure gives the same file.
    """
    matplotlib = _matplotlib()
    png, svg = folder / f"{stem}.png", folder / f"{stem}.svg"
    try:
        with matplotlib.rc_context({"svg.hashsalt": stem, "svg.fonttype": "path"}):
            fig.savefig(png, dpi=DPI, metadata={"Software": None})
            fig.set_layout_engine("none")  # keep the layout just computed: half the work
            fig.savefig(svg, metadata={"Date": None, "Creator": None})
    except OSError as exc:
        raise DataError(f"cannot write figure {str(png)!r}: {exc.strerror or exc}") from None
    return FigureFile(stem, title, caption, png, svg)
