"""numacert.progress: the one step reporter."""

from __future__ import annotations

import re

import pytest

from numacert.progress import Progress, as_progress


def _reporter(show: bool = True) -> tuple[Progress, list[str]]:
    lines: list[str] = []
    return Progress(show, lines.append), lines


def test_a_step_prints_start_and_end_with_its_duration():
    p, lines = _reporter()
    with p.step("control plane"):
        pass
    assert lines[0] == "… control plane"
    assert re.fullmatch(r"✓ control plane \(\d+\.\ds\)", lines[1])
    assert set(p.timings) == {"control plane"}


def test_a_failed_step_says_so_and_the_error_goes_on():
    p, lines = _reporter()
    with pytest.raises(RuntimeError), p.step("guest boot"):
        raise RuntimeError("boom")
    assert lines[0] == "… guest boot"
    assert re.fullmatch(r"✗ guest boot \(failed after \d+\.\ds\)", lines[1])
    assert p.timings == {}


def test_quiet_reporter_prints_nothing_but_keeps_timings():
    p, lines = _reporter(show=False)
    with p.step("x"):
        pass
    p.note("lab already up")
    assert lines == []
    assert "x" in p.timings


def test_note_prints_one_line_when_shown():
    p, lines = _reporter()
    p.note("lab already up")
    assert lines == ["lab already up"]


def test_sub_reporter_prefixes_its_steps_and_keeps_its_own_timings():
    p, lines = _reporter()
    image = p.sub("lab image: ")
    assert image.show is p.show and image.echo is p.echo
    with image.step("mke2fs"):
        pass
    assert lines[0] == "… lab image: mke2fs"
    assert lines[1].startswith("✓ lab image: mke2fs (")
    assert set(image.timings) == {"mke2fs"} and p.timings == {}


def test_default_echo_prints_to_stdout(capsys):
    with Progress().step("s"):
        pass
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "… s" and out[1].startswith("✓ s (")


def test_as_progress():
    p, _ = _reporter()
    assert as_progress(p) is p
    assert as_progress(True).show is True
    assert as_progress(False).show is False
