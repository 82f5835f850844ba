"""matrix.html as a person sees it: headless Chromium renders the four-combination matrix of
test_reports_matrix; the banner is red over a large area and the DOM carries the grid.

Skips without Chromium unless NUMACERT_REQUIRE_BROWSER=1 (see test_reports_browser.py).
"""

from __future__ import annotations

import pytest
from PIL import Image

from numacert.reports.matrix import write_matrix_reports
from tests.unit.test_reports_browser import COLOURS, SIZE, run_chromium, share
from tests.unit.test_reports_matrix import BAD, CATALOGUE, ERR, OK, SMT, _out

pytestmark = pytest.mark.slow


def test_not_certified_matrix_shows_a_red_banner_and_the_grid(tmp_path):
    out = _out(tmp_path, OK, BAD, SMT, ERR)
    mv = write_matrix_reports(out, catalogue=CATALOGUE)
    url = mv.paths.html.resolve().as_uri()
    png = tmp_path / "matrix.png"
    run_chromium(tmp_path, f"--screenshot={png}", f"--window-size={SIZE[0]},{SIZE[1]}", url)
    dom = run_chromium(tmp_path, "--dump-dom", url).stdout
    image = Image.open(png).convert("RGB")
    assert share(image, COLOURS["not-certified"]) > 0.05
    assert '<div class="verdict not-certified">' in dom
    assert ">FAIL</summary>" in dom and f'<a href="{OK}/report.html">' in dom
    assert '<span class="badge unsupported">UNSUPPORTED</span>' in dom
