"""Screenshot a report page with headless Chromium, to check how the figures look.

Chromium runs without a sandbox or GPU, with networking features, sync and component
updates off and a throw-away profile, and is killed after ``timeout`` seconds.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from scalelab.errors import DataError

__all__ = ["BROWSERS", "find_chromium", "screenshot"]

#: executables tried, in order
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """The path of the first Chromium-like browser on ``PATH``, or ``None``."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(
    page: str | Path,
    out: str | Path,
    *,
    width: int = 1400,
    height: int = 3000,
    timeout: float = 120.0,
    browser: str | None = None,
) -> Path:
    """Render ``page`` (an HTML file) in headless Chromium and save a PNG screenshot.

    Parameters
    ----------
    page : path
        The HTML file.
    out : path
        The PNG to write.
    width, height : int
        Window size in pixels (the screenshot is the window, not the full page).
    timeout : float
        Seconds before the browser is killed.
    browser : str, optional
        Browser executable; default :func:`find_chromium`.

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    DataError
        If no browser is found, the page is missing, or the browser fails or times out.
    """
    exe = browser or find_chromium()
    if exe is None:
        raise DataError(
            "no Chromium found on PATH (tried " + ", ".join(BROWSERS) + "); install it, e.g. "
            "apt-get install chromium"
        )
    src = Path(page).resolve()
    if not src.is_file():
        raise DataError(f"page {str(page)!r} not found; build the report first")
    target = Path(out).resolve()
    if not target.parent.is_dir():
        raise DataError(f"cannot write {str(out)!r}: folder {str(target.parent)!r} does not exist")
    target.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="scalelab-chromium-") as profile:
        cmd = [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--screenshot={target}",
            f"--window-size={int(width)},{int(height)}",
            src.as_uri(),
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise DataError(
                f"{Path(exe).name} did not finish the screenshot within {timeout:g} s; raise the "
                "timeout or check the browser"
            ) from None
        except OSError as exc:
            raise DataError(f"cannot run {exe!r}: {exc.strerror or exc}") from None
    if proc.returncode != 0 or not target.is_file():
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]
        raise DataError(
            f"{Path(exe).name} failed to screenshot {src.name} (exit {proc.returncode}): {last}"
        )
    return target
