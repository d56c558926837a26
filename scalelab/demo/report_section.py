"""The demo's own section at the top of the report: the grid, the forecast, the scale caveats.

:func:`scalelab.report.build_report` draws the figures; the numbers only the demo computes
(the prediction interval for a new run with its out-of-range warning, the mixture speedups
and their trend, the skill's crossings against size) go into one extra section, inserted
after the page header and listed first in its table of contents.
"""

from __future__ import annotations

from pathlib import Path

from scalelab._io import atomic_write_text
from scalelab.demo.analysis import ACCURACY_LEVEL
from scalelab.demo.result import DemoResult
from scalelab.errors import DataError
from scalelab.report import html as H

__all__ = ["ANCHOR", "insert_section", "section_html"]

ANCHOR = "demo"
_TITLE = "Demo summary"


def section_html(result: DemoResult) -> str:
    """The section's HTML: every value escaped through :mod:`scalelab.report.html`."""
    f = result.forecast
    pct = f"{100 * f.coverage:g}%"
    runs = H.table(
        ["run", "size", "N (non-embedding)", "mixture", "steps", "text share",
         "final accuracy"],
        [[r.run_id, r.size, H.num(r.n_params), r.mix, r.steps, H.num(r.text_share, 3),
          H.num(r.final_accuracy, 3)] for r in result.runs],
        numeric=(2, 4, 5, 6),
        caption="The grid (OUT/grid.toml): one seed per cell",
    )
    forecast = H.table(
        ["size", "N", "D (text tokens)", "predicted loss", f"{pct} low (new run)",
         f"{pct} high (new run)", f"{pct} low (law)", f"{pct} high (law)"],
        [[f.size, H.num(f.N), H.num(f.D), H.num(f.mean, 5), H.num(f.lower, 5),
          H.num(f.upper, 5), H.num(f.law_lower, 5), H.num(f.law_upper, 5)]],
        numeric=(1, 2, 3, 4, 5, 6, 7),
        caption=(
            "Prediction for a larger model at the largest trained token budget. New run: "
            f"parameter draws plus observation noise ({f.method}); law: parameter "
            "uncertainty only (FitResult.predict)"
        ),
    )
    blocks = [runs, forecast, H.notes_html([f.warning] if f.warning else [])]
    if result.speedups:
        blocks.append(H.table(
            ["size", "N", "speedup (task-heavy over even)", "status", "note"],
            [[s.size, H.num(s.n_params), s.describe(), s.speedup.status,
              s.speedup.notes[0] if s.speedup.notes else ""] for s in result.speedups],
            numeric=(1,),
            caption=(
                f"Tokens the even mixture needs to reach accuracy {ACCURACY_LEVEL:g} over the "
                "tokens the task-heavy one needs (scalelab.curves.speedup)"
            ),
        ))
    p = result.persistence
    if p is not None:
        blocks.append(H.table(
            ["target N", "predicted speedup", f"{100 * p.coverage:g}% low",
             f"{100 * p.coverage:g}% high", "verdict", "change per 10x N"],
            [[H.num(p.target_n), H.num(p.predicted), H.num(p.low), H.num(p.high), p.verdict,
              H.num(p.change_per_decade)]],
            numeric=(0, 1, 2, 3, 5),
            caption="Does the speedup persist at the target size? (scalelab.predict.persistence)",
        ))
        blocks.append(H.notes_html(list(p.notes)))
    if result.skills is not None:
        rows = []
        for s in result.skills.skills:
            for pr in s.predictions:
                rows.append([s.skill, s.status, H.num(s.exponent, 3), H.num(pr.n),
                             H.num(pr.value), H.num(pr.low), H.num(pr.high)])
            if not s.predictions:
                rows.append([s.skill, s.status, "-", "-", "-", "-", s.reason])
        blocks.append(H.table(
            ["skill", "status", "exponent b (step ~ N^b)", "target N", "predicted step",
             "low", "high"],
            rows,
            numeric=(2, 3, 4, 5, 6),
            caption=(
                f"Step at which the task-heavy runs reach accuracy {ACCURACY_LEVEL:g}, fitted "
                "against N (scalelab.predict.skills_at_scale)"
            ),
        ))
    blocks.append(H.notes_html(list(result.notes)))
    body = "\n".join(b for b in blocks if b)
    return f'<section id="{ANCHOR}"><h2>{H.esc(_TITLE)}</h2>\n{body}</section>\n'


def insert_section(page: Path, section: str) -> None:
    """Insert ``section`` after the header of the report page and first in its contents.

    Raises
    ------
    DataError
        If the page does not have the layout :func:`scalelab.report.html.page` writes.
    """
    text = page.read_text(encoding="utf-8")
    header_end, toc_start = "</header>\n", "<nav><ul>"
    if text.count(header_end) != 1 or text.count(toc_start) != 1:
        raise DataError(
            f"{page} does not have the layout of a scalelab report page; rebuild it with "
            "scalelab report"
        )
    text = text.replace(toc_start, f'{toc_start}<li><a href="#{ANCHOR}">{_TITLE}</a></li>', 1)
    text = text.replace(header_end, header_end + section, 1)
    mode = page.stat().st_mode & 0o777
    atomic_write_text(page, text)
    page.chmod(mode)  # the atomic write creates the file private; keep the page's mode
