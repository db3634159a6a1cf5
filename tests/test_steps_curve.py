"""Tests of helpers.steps_curve on the tiny random UNet (CPU, offline, seconds)."""

import csv
import math

import numpy as np
import pytest

from helpers import evaluate as ev
from helpers import steps_curve as sc
from tests.test_evaluate import smooth_images


def _cfg(tmp_path, **kw):
    base = dict(prior="tiny", tasks=["deblur"], noise_levels=[0.05], methods=["measurement", "dps"],
                n_images=3, n_select=1, steps=4, seeds=[0], dps_step_sizes=[0.3, 1.0], lpips_nets=[],
                out_dir=str(tmp_path / "curve"), progress=False)
    base.update(kw)
    return ev.EvalConfig(**base)


def test_curve_losses_are_paired_differences_from_the_csv(tiny_prior, tmp_path):
    cfg = _cfg(tmp_path)
    points, paths = sc.run_steps_curve(cfg, [2, 5], prior=tiny_prior, images=smooth_images(4))
    assert {p.steps for p in points} == {2, 5}
    assert {p.method for p in points} == {"dps"}  # the measurement does not depend on the steps
    ref = next(p for p in points if p.steps == 5)
    low = next(p for p in points if p.steps == 2)
    assert ref.psnr_loss_db == pytest.approx(0.0, abs=1e-12)
    # recompute the loss straight from the two CSV files of the chosen parameters
    per = {}
    for n, p in ((2, low), (5, ref)):
        with open(tmp_path / "curve" / f"steps-{n}" / "results.csv", newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if r["params"] == p.params and r["split"] == "report"]
        per[n] = {int(r["image"]): float(r["psnr"]) for r in rows}
    assert sorted(per[2]) == [1, 2, 3]
    diffs = np.array([per[5][i] - per[2][i] for i in per[2]])
    assert low.psnr_loss_db == pytest.approx(diffs.mean(), rel=1e-9)
    assert low.psnr_loss_se == pytest.approx(diffs.std(ddof=1) / math.sqrt(3), rel=1e-9)
    assert low.nfe == 2 and ref.nfe == 5
    names = {p.name for p in paths}
    assert {"steps_curve.csv", "steps_curve.md", "steps_curve_psnr.png"} <= names
    md = (tmp_path / "curve" / "steps_curve.md").read_text()
    assert f"{low.psnr_loss_db:.2f}" in md


def test_cheapest_steps_rule():
    def pt(method, steps, loss, task="deblur"):
        return sc.CurvePoint(task, "0.05", method, steps, "", 4, 20.0, 0.1, loss, 0.1, 0.1, 0.1, 1.0, steps)

    points = [pt("dps", 50, 0.9), pt("dps", 100, 0.3), pt("dps", 1000, 0.0),
              pt("dps", 100, 0.6, task="box"), pt("dps", 50, 0.2, task="box"), pt("dps", 1000, 0.0, task="box"),
              pt("score_ald", 50, 0.7), pt("score_ald", 1000, 0.0)]
    # dps: 50 fails on deblur, 100 fails on box: only 1000 passes on every task
    assert sc.cheapest_steps(points, 0.5) == {"dps": 1000, "score_ald": 1000}
    assert sc.cheapest_steps(points, 1.0) == {"dps": 50, "score_ald": 50}


def test_bad_arguments_are_explained(tiny_prior, tmp_path):
    with pytest.raises(ValueError, match="at least two"):
        sc.run_steps_curve(_cfg(tmp_path), [5], prior=tiny_prior, images=smooth_images(4))
    with pytest.raises(ValueError, match="out_dir"):
        sc.run_steps_curve(_cfg(tmp_path, out_dir=None), [2, 5], prior=tiny_prior, images=smooth_images(4))
    with pytest.raises(ValueError, match="methods must include a sampler"):
        sc.run_steps_curve(_cfg(tmp_path, methods=["baseline"]), [2, 5], prior=tiny_prior, images=smooth_images(4))


def test_chapter_steps_lose_no_significant_quality_in_the_committed_curve():
    """CPU_STEPS, which the chapters use on a CPU, is a count whose PSNR loss against 1000 steps is not
    significantly above 0.5 dB on any task of the committed measurement, and fewer than 1000."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "results" / "faces-steps" / "steps_curve.csv"
    points = sc.read_curve(path)
    assert {p.steps for p in points} == {50, 100, 250, 1000}
    ok = sc.acceptable_steps(points, 0.5)
    for method, steps in sc.CPU_STEPS.items():
        assert steps in ok[method] and steps < 1000, (method, steps, ok[method])


def test_acceptable_steps_rejects_only_a_significant_loss():
    base = dict(task="box", noise="0.05", method="dps", params="p", n_images=16, psnr=30.0, psnr_se=1.0,
                lpips_alex=0.0, lpips_vgg=0.0, seconds=1.0, nfe=1.0)
    pts = [sc.CurvePoint(steps=50, psnr_loss_db=1.2, psnr_loss_se=0.9, **base),   # noisy: 1.2 − 1.645·0.9 < 0.5
           sc.CurvePoint(steps=100, psnr_loss_db=0.9, psnr_loss_se=0.1, **base),  # shown above 0.5
           sc.CurvePoint(steps=1000, psnr_loss_db=0.0, psnr_loss_se=0.0, **base)]
    assert sc.acceptable_steps(pts, 0.5) == {"dps": [50, 1000]}
    assert sc.cheapest_steps(pts, 0.5) == {"dps": 1000}  # the point rule rejects the noisy count too


def test_read_curve_round_trips(tmp_path):
    pts = [sc.CurvePoint("deblur", "0.05", "dps", 50, "zeta=1;steps=50", 4, 30.5, 0.2, 0.7, 0.1, 0.01, 0.02, 1.5, 50.0)]
    sc.write_outputs(tmp_path, pts + [dataclasses_replace(pts[0], steps=1000, psnr_loss_db=0.0)], 0.5, "cmd")
    back = sc.read_curve(tmp_path / "steps_curve.csv")
    assert back[0] == pts[0] and isinstance(back[0].steps, int)


def dataclasses_replace(p, **kw):
    import dataclasses

    return dataclasses.replace(p, **kw)


def test_method_steps_cannot_be_combined_with_a_curve(tiny_prior, tmp_path):
    with pytest.raises(ValueError, match="method_steps"):
        sc.run_steps_curve(_cfg(tmp_path, method_steps={"dps": 5}), [2, 5], prior=tiny_prior, images=smooth_images(4))
