"""The HTML report opens in headless Chromium (Debian `chromium`) with no
network, is not blank, and draws one swim lane per CPU with the fault
window shaded on the failing CPU's lane."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PINNED = ROOT / "models/fred-pinned-sev-es-ap.toml"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-quic", "--no-first-run",
                  "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed; .ci/run installs it")
    pytest.skip("chromium is not installed (apt-get install chromium)")


def _png_pixels(data: bytes) -> tuple[int, int, bytes]:
    """Width, height and the decompressed scanlines of a PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    return width, height, zlib.decompress(idat)


@pytest.fixture(scope="module")
def html_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("html")
    proc = subprocess.run(
        [sys.executable, "-m", "fuzzinit", "run", str(PINNED), "--seed", "1",
         "--db", "none"], cwd=folder, capture_output=True, text=True,
        check=False)
    assert proc.returncode == 1, proc.stderr
    [page] = [p for p in (folder / "reports").glob("*.html")
              if p.name != "index.html"]
    return page


def test_html_is_self_contained_with_one_lane_per_cpu(
        html_report: Path) -> None:
    html = html_report.read_text()
    assert "<script" not in html and "http://" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    lanes = re.findall(r'<g class="lane" data-cpu="(\d+)">', html)
    assert lanes == ["0", "1"]
    window = re.search(r'<rect class="window" x="\d+" y="(\d+)"', html)
    assert window is not None
    # The shaded window lies on cpu1's lane (lane 1 starts at y=100).
    assert 100 <= int(window.group(1)) < 170
    assert html.count('class="ev trigger') == 0  # the printk is program code
    assert 'class="ev failing"' in html
    assert html.count('<g class="esc">') == 3   # escalation steps


def test_html_renders_in_headless_chromium(html_report: Path,
                                           tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    proc = subprocess.run(
        [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'ud'}",
         f"--screenshot={shot}", "--window-size=1300,900",
         html_report.as_uri()], capture_output=True, text=True, timeout=120,
        check=False)
    assert shot.is_file(), proc.stderr[-2000:]
    width, height, pixels = _png_pixels(shot.read_bytes())
    assert (width, height) == (1300, 900)
    # Not blank: a white page has a handful of byte values; text, boxes and
    # the shaded window give many.
    assert len(set(pixels)) > 50
