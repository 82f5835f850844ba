"""report.html as a person sees it: headless Chromium renders it, the screenshot must show the
verdict banner's colour over a large area, and the DOM must carry the verdict text.

Chromium comes from Debian (`bash .ci/report-deps.sh`). Without it these tests skip, unless
NUMACERT_REQUIRE_BROWSER=1 (CI sets it), where they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from numacert.reports.catalogue import parse_catalogue
from numacert.reports.write import write_reports

pytestmark = pytest.mark.slow

DATA = Path(__file__).parent / "data" / "reports"
CATALOGUE = parse_catalogue((DATA / "catalogue.yaml").read_text(), "catalogue.yaml")
COLOURS = {
    "certified": (0x1A, 0x7F, 0x37),
    "not-certified": (0xCF, 0x22, 0x2E),
    "incomplete": (0x9A, 0x67, 0x00),
}
SIZE = (1200, 900)


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    if os.environ.get("NUMACERT_REQUIRE_BROWSER") == "1":
        pytest.fail("chromium is not installed (bash .ci/report-deps.sh installs it)")
    pytest.skip("chromium is not installed (bash .ci/report-deps.sh); NUMACERT_REQUIRE_BROWSER=1")


def run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        # A profile of its own: nothing read from or left in the user's home.
        f"--user-data-dir={tmp_path / 'profile'}",
        *args,
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def render(tmp_path: Path, results: str) -> tuple[Image.Image, str]:
    paths = write_reports(DATA / results, tmp_path / "out", None, catalogue=CATALOGUE)
    url = paths.html.resolve().as_uri()
    png = tmp_path / "report.png"
    run_chromium(tmp_path, f"--screenshot={png}", f"--window-size={SIZE[0]},{SIZE[1]}", url)
    dom = run_chromium(tmp_path, "--dump-dom", url).stdout
    return Image.open(png).convert("RGB"), dom


def share(image: Image.Image, colour: tuple[int, int, int], tolerance: int = 3) -> float:
    """The fraction of the screenshot's pixels within `tolerance` of `colour`."""
    matching = sum(
        count
        for count, pixel in image.getcolors(image.width * image.height)
        if all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True))
    )
    return matching / (image.width * image.height)


def test_certified_report_shows_a_green_banner(tmp_path):
    image, dom = render(tmp_path, "results_certified.json")
    assert image.size == SIZE
    assert share(image, COLOURS["certified"]) > 0.08
    assert share(image, COLOURS["not-certified"]) < 0.01
    assert share(image, COLOURS["incomplete"]) < 0.01
    assert '<div class="verdict certified">' in dom
    assert '<div class="status">CERTIFIED</div>' in dom


def test_not_certified_report_shows_a_red_banner(tmp_path):
    image, dom = render(tmp_path, "results_failed.json")
    assert share(image, COLOURS["not-certified"]) > 0.08
    assert share(image, COLOURS["certified"]) < 0.01
    assert '<div class="verdict not-certified">' in dom
    assert '<div class="status">NOT CERTIFIED</div>' in dom
    # The second node, further down the page, is INCOMPLETE.
    assert '<div class="verdict incomplete">' in dom
