"""No chapter's prose holds a measured number typed by hand (.ci/check_prose_numbers.py defines one)."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("check_prose_numbers", ROOT / ".ci" / "check_prose_numbers.py")
check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check)

CHAPTERS = sorted((ROOT / "book").glob("*.ipynb"))


def test_every_chapter_is_checked():
    assert len(CHAPTERS) >= 8


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_prose_has_no_hand_typed_measured_number(path):
    problems = check.check_notebook(path)
    assert not problems, "glue these from the cell that computes them:\n" + "\n".join(problems)


@pytest.mark.parametrize("text, found", [
    ("DPS reaches 34.7 dB on the box.", ["34.7 dB"]),
    ("the mouth is kept in 16 % of the faces", ["16 %"]),
    ("LPIPS 0.070 for the measurement", ["0.070"]),
    ("a gain of ± 1.2 dB", ["± 1.2 dB"]),
    ("it takes 95 s per image", ["95 s"]),
    ("1000 steps on 32 faces, chapter 6", []),  # counts and settings without a unit
    ("DPS reaches {glue:text}`dps_psnr:.1f` dB", []),  # glued
    ("the weight $1/(2(\\sigma^2 + 0.25))$", []),  # maths
    ("call `psnr(x, y, data_range=1.0)`", []),  # inline code
    ("see [the paper](https://arxiv.org/abs/2209.14687)", []),  # link target
])
def test_what_counts_as_a_measured_number(text, found):
    assert check.measured_numbers(text) == found


def test_fenced_code_and_display_maths_over_several_lines_are_skipped(tmp_path):
    cell = {"cell_type": "markdown", "metadata": {}, "source": [
        "```python\n", "x = sample(step_size=0.3)\n", "```\n", "$$\n", "a = 0.5\n", "$$\n", "PSNR 12.5 dB\n"]}
    nb = {"cells": [cell], "metadata": {"prose_constants": []}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "x.ipynb"
    path.write_text(json.dumps(nb))
    problems = check.check_notebook(path)
    assert len(problems) == 1 and "12.5 dB" in problems[0]
    nb["metadata"]["prose_constants"] = ["12.5 dB"]  # a setting listed by the chapter is allowed
    path.write_text(json.dumps(nb))
    assert check.check_notebook(path) == []
