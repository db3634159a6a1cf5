"""Every chapter's GPU branch, run on the CPU against a stand-in of ``google/ddpm-celebahq-256``.

Run it alone (it is deselected from the plain ``python -m pytest``; ``.ci/run`` runs it)::

    python -m pytest -q -m gpu_path

A narrow stand-in (:func:`helpers.standin.write_standin`, ``width="narrow"``: the celebahq block
layout, attention placement, resolution and scheduler, channels cut by 4, random weights) is written
to a temporary folder; :func:`helpers.gpu_path.run_chapter` then executes each chapter with
``$COURSE_GPU_STANDIN`` set, so that :func:`helpers.runtime.choose_prior` takes the GPU path:

* ``count`` mode: the chapter's real GPU settings with the network replaced by zero. Its counted
  network evaluations must equal the committed ones (``helpers/gpu_path_counts.json``, which the
  chapters print at their top) and fit the T4 budget of :mod:`helpers.gpu_budget` (8 minutes per
  chapter, pessimistic estimate; 45 for the book).
* ``tiny`` mode: the stand-in's real network at a few steps and images (``TINY_SETTINGS``): any
  cell error fails.
"""

from __future__ import annotations

import pytest

from helpers.gpu_budget import BOOK_BUDGET_S, CHAPTER_BUDGET_S, t4_seconds
from helpers.gpu_path import GPU_CHAPTERS, read_counts, run_chapter


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    from helpers.standin import write_standin

    return write_standin(tmp_path_factory.mktemp("standin") / "narrow", width="narrow")


def test_committed_counts_cover_every_chapter_and_fit_the_book_budget():
    counts = read_counts()
    assert sorted(counts) == sorted(GPU_CHAPTERS), "run `python -m helpers.gpu_path --count --write`"
    total = t4_seconds(sum(c["forward"] - c["backward"] for c in counts.values()),
                       sum(c["backward"] for c in counts.values()))
    assert total.pessimistic <= BOOK_BUDGET_S, f"the book's GPU path takes up to {total.pessimistic / 60:.1f} min on a T4"


@pytest.mark.gpu_path
@pytest.mark.parametrize("chapter", GPU_CHAPTERS)
def test_gpu_settings_make_the_committed_evaluations_within_budget(chapter, standin):
    counted = run_chapter(chapter, standin, mode="count")
    committed = read_counts()[chapter]
    assert (counted["forward"], counted["backward"]) == (committed["forward"], committed["backward"]), (
        f"{chapter}: the GPU settings now make {counted['forward']} forward ({counted['backward']} with a backward "
        f"pass) image-evaluations, the committed counts say {committed['forward']} ({committed['backward']}): "
        "run `python -m helpers.gpu_path --count --write`")
    estimate = t4_seconds(counted["forward"] - counted["backward"], counted["backward"])
    if chapter != "inverse_problems":   # the only chapter without a prior
        assert counted["forward"] > 0
    assert estimate.pessimistic <= CHAPTER_BUDGET_S, (
        f"{chapter}: {estimate.pessimistic / 60:.1f} min on a T4 (pessimistic), over the {CHAPTER_BUDGET_S / 60:g}-min budget")


@pytest.mark.gpu_path
@pytest.mark.parametrize("chapter", GPU_CHAPTERS)
def test_gpu_branch_runs_on_the_standin_network(chapter, standin):
    result = run_chapter(chapter, standin, mode="tiny")
    if chapter != "inverse_problems":   # the only chapter without a prior
        assert result["forward"] > 0


def _gpu_parameters(chapter, monkeypatch, tmp_path):
    """The chapter's parameters cell, run here with the GPU path chosen (a stand-in folder in the environment)."""
    import json
    from pathlib import Path

    from helpers.runtime import STANDIN_ENV

    monkeypatch.setenv(STANDIN_ENV, str(tmp_path))
    nb = json.loads((Path(__file__).resolve().parents[1] / "book" / f"{chapter}.ipynb").read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    namespace = {}
    exec("".join(cell["source"]), namespace)
    assert namespace["GPU_PATH"] is True
    return namespace


@pytest.mark.parametrize("chapter, backward", [("sdedit", False), ("score_ald", False), ("dps", True)])
def test_an_explorer_move_fits_30_seconds_on_a_t4(chapter, backward, monkeypatch, tmp_path):
    steps = _gpu_parameters(chapter, monkeypatch, tmp_path)["NUM_STEPS"]   # a move runs at most NUM_STEPS steps
    estimate = t4_seconds(0, steps) if backward else t4_seconds(steps, 0)
    assert estimate.pessimistic <= 30, f"{chapter}: an explorer move takes up to {estimate} on a T4"


@pytest.mark.parametrize("chapter", ["sdedit", "score_ald", "dps", "comparison"])
def test_gpu_path_uses_at_least_eight_aligned_faces(chapter, monkeypatch, tmp_path):
    assert _gpu_parameters(chapter, monkeypatch, tmp_path)["NUM_IMAGES"] >= 8


def test_chapter_report_gives_the_device_counts_and_t4_minutes():
    from helpers.gpu_path import CPU_BUILD_NOTE, chapter_report

    counts = read_counts()["dps"]
    report = chapter_report("dps", None, gpu_path=True, device="cpu")
    estimate = t4_seconds(counts["forward"] - counts["backward"], counts["backward"])
    assert "device cpu" in report
    assert f"{counts['forward'] - counts['backward']} forward and {counts['backward']} forward + backward" in report
    assert f"{estimate.optimistic / 60:.1f}–{estimate.pessimistic / 60:.1f} min" in report
    assert CPU_BUILD_NOTE in chapter_report("dps", None, gpu_path=False, device="cpu")
    assert "only the small bundled priors" in chapter_report("ddpm_basics", device="cpu")
    with pytest.raises(ValueError, match="GPU branch"):
        run_chapter("ddpm_basics", ".", mode="count")
