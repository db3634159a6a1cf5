"""results/README.md is written from the results folders (helpers.evaluation.overview), not typed."""

import json

import numpy as np
import pytest

from helpers import evaluate as ev
from helpers.evaluation import overview
from tests.test_evaluate import smooth_images


@pytest.fixture
def tiny_results(tiny_prior, tmp_path):
    folder = tmp_path / "faces"
    cfg = ev.EvalConfig(prior="tiny", tasks=["box", "deblur"], noise_levels=[0.05], methods=["measurement", "baseline", "sdedit"],
                        n_images=3, n_select=2, steps=3, seeds=[0], sdedit_t0s=[0.3, 0.6], lpips_nets=["alex"],
                        max_widenings=1, out_dir=str(folder), progress=False, plots=False)
    res = ev.run_evaluation(cfg, prior=tiny_prior, images=smooth_images(5))
    return folder, res


def _mean_se(values):
    v = np.asarray(values, float)
    return v.mean(), v.std(ddof=1) / np.sqrt(len(v))


def test_headline_table_quotes_the_chosen_settings_scores(tiny_results):
    folder, res = tiny_results
    table = overview.headline_table(folder, "0.05")
    for task in ("box", "deblur"):
        chosen = res.selected[(task, "0.05", "sdedit")]
        psnr = [float(r["psnr"]) for r in res.rows if r["method"] == "sdedit" and r["params"] == chosen
                and r["task"] == task and r["split"] == "report"]
        m, se = _mean_se(psnr)
        row = next(line for line in table.splitlines() if line.startswith("| " + json.loads((folder / "config.json").read_text())["tasks_detail"][task]))
        assert f"{m:.1f} ± {se:.1f}" in row
        assert f"t0 = {float(chosen.split(';')[0].split('=')[1]):.3g}" in row


def test_selection_table_lists_every_choice_and_its_outcome(tiny_results):
    folder, _ = tiny_results
    sel = json.loads((folder / "config.json").read_text())["selection"]
    table = overview.selection_table(folder)
    assert len(table.splitlines()) == 2 + len(sel)
    for s in sel.values():
        assert s["outcome"] in table


def test_render_writes_the_folders_it_finds(tiny_results, tmp_path):
    folder, _ = tiny_results
    text = overview.render(folder.parent)
    assert text.startswith("# Results") and "do not edit by hand" in text
    assert "## Faces (`faces/`)" in text and "## MNIST" not in text  # no mnist folder here
    assert "Findings not available" in text  # the tiny run has no face measures: said, not faked

