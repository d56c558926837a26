"""HTML building blocks of the report: escaped text, tables, figures and the page itself.

Every piece of text that reaches the page goes through :func:`esc`; figures are linked by
paths relative to the page, so the folder can be moved or served as is. The page has no
scripts and no external resources.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scalelab.report._mpl import FigureFile

__all__ = ["Cell", "Section", "esc", "figure_html", "notes_html", "num", "page", "table"]

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       margin: 0 auto; max-width: 1320px; padding: 0 24px 48px; color: #1d1d1f;
       line-height: 1.45; }
header { border-bottom: 2px solid #ddd; margin-bottom: 8px; }
h1 { font-size: 1.7em; margin: 24px 0 6px; }
h2 { font-size: 1.35em; margin-top: 36px; border-bottom: 1px solid #e3e3e3; padding-bottom: 4px; }
h3 { font-size: 1.1em; margin-top: 26px; }
nav ul { display: flex; flex-wrap: wrap; gap: 6px 18px; padding: 0; list-style: none; }
dl.provenance { display: grid; grid-template-columns: max-content auto; gap: 2px 16px;
                font-size: 0.92em; margin: 8px 0 16px; }
dl.provenance dt { font-weight: 600; color: #555; }
dl.provenance dd { margin: 0; word-break: break-all; }
figure { margin: 16px 0 26px; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.92em; color: #444; max-width: 1100px; }
table { border-collapse: collapse; margin: 10px 0 18px; font-size: 0.9em; }
caption { text-align: left; caption-side: top; color: #444; padding-bottom: 4px; max-width: 1100px; }
th, td { border: 1px solid #ddd; padding: 3px 9px; }
th { background: #f4f4f6; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr:nth-child(even) td { background: #fafafb; }
td.bad { color: #b3261e; font-weight: 600; }
td.good { color: #1b6e2c; }
.notes { font-size: 0.92em; color: #6b4e00; background: #fff8e1; border-left: 4px solid #f0c36d;
         padding: 6px 12px; }
.equation { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 0.95em; }
.table-wrap { overflow-x: auto; }
"""


def esc(value: Any) -> str:
    """``value`` as HTML-escaped text (quotes included)."""
    return html.escape(str(value), quote=True)


def num(value: Any, digits: int = 4) -> str:
    """A number with ``digits`` significant digits; ``-`` for missing or non-finite values."""
    if value is None:
        return "-"
    try:
        x = float(value)
    except (TypeError, ValueError):
        return esc(value)
    return f"{x:.{digits}g}" if math.isfinite(x) else "-"


@dataclass(frozen=True)
class Cell:
    """A table cell: escaped text plus an optional CSS class (``n`` for numbers)."""

    text: str
    css: str = ""


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    numeric: Sequence[int] = (),
    caption: str | None = None,
    css: str = "",
) -> str:
    """An HTML table; every cell is escaped unless it is a :class:`Cell` built here.

    Parameters
    ----------
    headers : sequence of str
    rows : iterable of sequences
        Cell values; numbers should be preformatted with :func:`num`.
    numeric : sequence of int
        Column indices aligned right (numbers).
    caption : str, optional
    css : str
        Class of the ``<table>`` element.
    """
    out = [f'<div class="table-wrap"><table class="{esc(css)}">' if css else
           '<div class="table-wrap"><table>']
    if caption:
        out.append(f"<caption>{esc(caption)}</caption>")
    out.append("<thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in headers) + "</tr></thead>")
    out.append("<tbody>")
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            klass = "n" if i in numeric else ""
            if isinstance(value, Cell):
                klass = " ".join(c for c in (klass, value.css) if c)
                text = esc(value.text)
            else:
                text = esc(value)
            cells.append(f'<td class="{klass}">{text}</td>' if klass else f"<td>{text}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    return "\n".join(out)


def figure_html(fig: FigureFile, page_dir: Path) -> str:
    """A ``<figure>`` showing the PNG, linking the SVG, with its caption."""
    png = _relative(fig.png, page_dir)
    svg = _relative(fig.svg, page_dir)
    return (
        f'<figure id="fig-{esc(fig.stem)}">'
        f'<a href="{esc(svg)}"><img src="{esc(png)}" alt="{esc(fig.title)}: {esc(fig.caption)}"></a>'
        f"<figcaption><b>{esc(fig.title)}.</b> {esc(fig.caption)} "
        f'(<a href="{esc(png)}">PNG</a>, <a href="{esc(svg)}">SVG</a>)</figcaption></figure>'
    )


def _relative(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path, base)).as_posix()


@dataclass(frozen=True)
class Section:
    """A top-level part of the report: a heading and HTML blocks built with this module."""

    anchor: str
    title: str
    blocks: tuple[str, ...]


def notes_html(notes: Sequence[str]) -> str:
    """A highlighted list of notes (empty string when there are none)."""
    if not notes:
        return ""
    items = "".join(f"<li>{esc(n)}</li>" for n in notes)
    return f'<div class="notes"><b>Notes</b><ul>{items}</ul></div>'


def page(title: str, provenance: Sequence[tuple[str, str]], sections: Sequence[Section]) -> str:
    """The whole HTML document: title, provenance, table of contents and the sections."""
    prov = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in provenance)
    toc = "".join(f'<li><a href="#{esc(s.anchor)}">{esc(s.title)}</a></li>' for s in sections)
    body = "\n".join(
        f'<section id="{esc(s.anchor)}"><h2>{esc(s.title)}</h2>\n' + "\n".join(s.blocks)
        + "</section>"
        for s in sections
    )
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<header><h1>{esc(title)}</h1>\n<dl class=\"provenance\">{prov}</dl>\n"
        f"<nav><ul>{toc}</ul></nav></header>\n{body}\n</body>\n</html>\n"
    )
