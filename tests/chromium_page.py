"""A report page as a person sees it: headless Chromium's screenshot and rendered DOM."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def chromium_or_skip() -> str:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("headless Chromium not installed (Debian package 'chromium'; .ci/run installs it)")
    return chromium


def render(page: Path, tmp_path: Path) -> tuple[tuple[int, int], float, str]:
    """(screenshot size, grey-level std of the screenshot, rendered DOM) of ``page`` at 1280x2000."""
    chromium = chromium_or_skip()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "shot.png"
    r = subprocess.run([chromium, *flags, "--window-size=1280,2000", f"--screenshot={shot}", page.as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000, r.stderr[-2000:]
    with Image.open(shot) as im:
        size, std = im.size, float(np.asarray(im.convert("L")).std())
    dom = subprocess.run([chromium, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    return size, std, dom
