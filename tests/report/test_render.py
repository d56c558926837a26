"""Rendering the report in headless Chromium (skipped when no Chromium is installed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scalelab.errors import DataError
from scalelab.report import find_chromium, screenshot
from tests.report.test_report_build import png_size


@pytest.mark.skipif(find_chromium() is None,
                    reason="no chromium/chromium-browser/google-chrome on PATH (apt-get install chromium)")
def test_screenshot_of_the_report_shows_its_figures(built_report: Any, tmp_path: Path) -> None:
    from PIL import Image

    out = screenshot(built_report.html, tmp_path / "shot.png", width=1000, height=1600, timeout=120)
    assert png_size(out) == (1000, 1600)
    with Image.open(out) as im:
        rgb = im.convert("RGB")
        # the learning-curve figure is near the top: the page is not blank, and has colour
        colours = rgb.resize((100, 160)).getcolors(maxcolors=100_000)
    assert colours is not None and len(colours) > 50


def test_missing_browser_and_page_are_clear_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_chromium() is None
    page = tmp_path / "p.html"
    page.write_text("<p>x</p>")
    with pytest.raises(DataError, match="no Chromium found on PATH"):
        screenshot(page, tmp_path / "s.png")
    with pytest.raises(DataError, match="not found; build the report first"):
        screenshot(tmp_path / "none.html", tmp_path / "s.png", browser="/bin/true")
    with pytest.raises(DataError, match="failed to screenshot"):
        screenshot(page, tmp_path / "s.png", browser="/bin/false")
