"""The committed results ship with the package: helpers/results links to results/, and package-data covers what the chapters read."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from helpers.findings import RESULTS_DIR, ResultSet, committed_results

ROOT = Path(__file__).resolve().parent.parent


def test_helpers_results_is_the_repository_results():
    assert RESULTS_DIR.is_symlink() and RESULTS_DIR.resolve() == (ROOT / "results").resolve()


@pytest.mark.parametrize("name, files", [
    ("faces", ["config.json", "results.csv", "command.txt", "summary.md", "bars_deblur.png"]),
    ("faces-steps", ["steps_curve.csv", "steps_curve_psnr.png"]),
])
def test_package_data_covers_what_the_chapters_read(name, files):
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["helpers"]
    folder = committed_results(name)
    for f in files:
        assert (folder / f).is_file()
        rel = (folder / f).relative_to(ROOT / "helpers").as_posix()
        assert any(Path(rel).match(p) for p in patterns), (rel, patterns)


def test_committed_faces_results_load():
    rs = ResultSet.load(committed_results("faces"))
    assert rs.methods("deblur", 0.05)


def test_missing_results_say_how_to_make_them(monkeypatch, tmp_path):
    import helpers.findings as F

    monkeypatch.setattr(F, "RESULTS_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="python -m helpers.evaluate"):
        F.committed_results("faces")


def test_static_explorer_grids_ship_with_the_package():
    from helpers.static_explorer import CHAPTERS, default_grid_dir, grid_path

    assert default_grid_dir().is_symlink() and default_grid_dir().resolve() == (ROOT / "book" / "explorers").resolve()
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["helpers"]
    for chapter in CHAPTERS:
        rel = grid_path(chapter).relative_to(ROOT / "helpers").as_posix()
        assert grid_path(chapter).is_file() and any(Path(rel).match(p) for p in patterns), rel


def test_gpu_path_counts_ship_with_the_package():
    from helpers.gpu_path import COUNTS_FILE

    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["helpers"]
    rel = COUNTS_FILE.relative_to(ROOT / "helpers").as_posix()
    assert COUNTS_FILE.is_file() and any(Path(rel).match(p) for p in patterns), (rel, patterns)
