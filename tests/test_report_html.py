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
    pytest.skip("chromium is not installed: the HTML rendering test needs"
                " it (apt-get install chromium; .ci/run installs it)")


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
    return _report_page(tmp_path_factory.mktemp("html"), PINNED)


def _report_page(folder: Path, model: Path) -> Path:
    """The HTML report `fuzzinit run` writes for `model`'s failure."""
    proc = subprocess.run(
        [sys.executable, "-m", "fuzzinit", "run", str(model), "--seed", "1",
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
    # Two rows: the core and the event that closes the window, then the
    # escalation on cpu1's lane alone.
    lanes = re.findall(r'<g class="lane" data-cpu="(\d+)">', html)
    assert lanes == ["0", "1", "1"]
    window = re.search(r'<rect class="window" x="\d+" y="(\d+)"', html)
    assert window is not None
    # The shaded window lies on cpu1's lane (lane 1 starts at y=54).
    assert window.group(1) == "58"
    assert html.count('class="ev trigger') == 0  # the printk is program code
    assert 'class="ev failing"' in html
    assert html.count('<g class="esc" data-cpu="1">') == 3   # escalation


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


def _rgb_rows(data: bytes) -> list[list[tuple[int, int, int]]]:
    """The pixels of an 8-bit RGB or RGBA PNG, row by row (the scanline
    filters of PNG section 9 undone)."""
    width, height, raw = _png_pixels(data)
    color = data[8 + 8 + 9]   # IHDR colour type: 2 RGB, 6 RGBA
    bpp = {2: 3, 6: 4}[color]
    stride = width * bpp
    rows: list[list[tuple[int, int, int]]] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pred) & 0xFF
        rows.append([(line[i], line[i + 1], line[i + 2])
                     for i in range(0, stride, bpp)])
        prev = line
    return rows


@pytest.fixture(scope="module")
def four_ap_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pinned-FRED failure in a guest with 4 APs: nine timeline columns
    (five core steps, the event that closes the window, three escalation
    steps) and three CPUs with no event in the core."""
    from fuzzinit.explore.scaling import scaled

    folder = tmp_path_factory.mktemp("html4")
    model = folder / "pinned4.toml"
    model.write_text(scaled(PINNED.read_text(), 4))
    return _report_page(folder, model)


def test_timeline_rows_fit_the_page_with_no_empty_lane(
        four_ap_report: Path) -> None:
    html = four_ap_report.read_text()
    assert "overflow-x" not in html
    svgs = re.findall(r'<svg [^>]*width="(\d+)".*?</svg>', html, re.S)
    # body max-width is 1100px: each row fits it; narrower, it scales.
    assert [int(w) for w in svgs] == [968, 518]
    assert "max-width:100%;height:auto" in html
    for svg in re.findall(r"<svg .*?</svg>", html, re.S):
        lanes = re.findall(r'<g class="lane" data-cpu="(\d+)">', svg)
        boxes = re.findall(r'<g class="(?:ev[^"]*|esc)" data-cpu="(\d+)">',
                           svg)
        assert sorted(set(boxes)) == lanes, "a lane with no box in its row"
    assert ('<p class="src">cpu2, cpu3, cpu4: no event in the causal'
            ' core.</p>') in html
    # Every escalation step is shown whole, not cut to three lines.
    esc = re.findall(r'<g class="esc" data-cpu="1"><title>(.*?)</title>'
                     r"<rect [^>]*/>(.*?)</g>", html)
    assert [t for t, _ in esc] == [
        "console output: port I/O raises #VC in a sev-es guest",
        "#VC delivered through FRED (CR4.FRED = 1) with FRED_CONFIG = 0: no"
        " entry point",
        "entry RIP 0x100 faults, #PF -&gt; #DF through the same FRED setup"
        " -&gt; SHUTDOWN (triple fault)"]
    for title, texts in esc:
        assert " ".join(re.findall(r">([^<]*)</text>", texts)) == title


@pytest.mark.parametrize("size", [(1300, 900), (800, 700)])
def test_chromium_shows_each_timeline_row_whole(
        four_ap_report: Path, tmp_path: Path, size: tuple[int, int]) -> None:
    """In the screenshot every row of the timeline has both its left and
    its right border (#ccc): nothing is clipped or scrolled away."""
    shot = tmp_path / "shot.png"
    width, height = size
    proc = subprocess.run(
        [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'ud'}",
         f"--screenshot={shot}", f"--window-size={width},{height}",
         four_ap_report.as_uri()], capture_output=True, text=True,
        timeout=120, check=False)
    assert shot.is_file(), proc.stderr[-2000:]
    rows = _rgb_rows(shot.read_bytes())
    assert (len(rows[0]), len(rows)) == size
    border = (204, 204, 204)
    # Vertical runs of border pixels at least 40px tall, left of the page's
    # own 15px scrollbar: two per timeline row (its left and right edge).
    edges = []
    for x in range(width - 15):
        run = 0
        for y in range(height + 1):
            if y < height and rows[y][x] == border:
                run += 1
                continue
            if run >= 40:
                edges.append((x, y - run))
            run = 0
    svgs = four_ap_report.read_text().count("<svg ")
    assert svgs == 2
    [top_left, bottom_left, *rights] = sorted(edges)
    assert top_left[0] == bottom_left[0] and len(rights) == 2, edges
    # Each right edge starts where its row's left edge does.
    assert sorted(y for _, y in rights) == [top_left[1], bottom_left[1]]
