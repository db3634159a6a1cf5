"""Tests of helpers.evaluate on a tiny random UNet and a few tiny smooth images (CPU, offline, seconds)."""

import csv
import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers import evaluate as ev
from helpers.metrics import psnr


def smooth_images(n, size=8, channels=3, seed=0):
    """Smooth images in [0, 1]: random 3×3 grids upsampled bicubically."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, channels, 3, 3, generator=g)
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=True).clamp(0.05, 0.95)


class FakeClassifiers:
    """Stands in for the face attribute classifiers: predicts class 1 for every eye and mouth."""

    def predict(self, images, attributes):
        n = len(images)
        return {a: np.ones(n, dtype=int) for a in attributes}


def _cell_value(cell):
    """(mean, decimals) of a table cell like '12.34 ± 0.56' or '12.34'."""
    mean = cell.split("±")[0].strip().split(" ")[0]
    decimals = len(mean.split(".")[1]) if "." in mean else 0
    return float(mean), decimals


def _csv_rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _recompute(rows, method, params, task, noise, images, field):
    """Mean and s.e. over images of the seed-averaged values, straight from the CSV rows."""
    per_image = {}
    for r in rows:
        if (r["method"], r["params"], r["task"], r["noise"]) == (method, params, task, noise) and int(r["image"]) in images:
            per_image.setdefault(int(r["image"]), []).append(float(r[field]))
    vals = np.array([np.mean(v) for v in per_image.values()])
    return vals.mean(), vals.std(ddof=1) / math.sqrt(len(vals)), len(vals)


def test_tiny_run_summary_agrees_with_csv(tiny_prior, tmp_path):
    images = smooth_images(4)
    attrs = {"eyes": np.array([1, 0, 1, 1]), "mouth": np.array([1, 1, 0, 1])}
    cfg = ev.EvalConfig(
        prior="tiny", tasks=["deblur", "box"], noise_levels=[0.05], methods=["baseline", "sdedit"],
        n_images=2, n_select=2, steps=4, seeds=[0, 1], sdedit_t0s=[0.3, 0.6], wiener_balances=[1e-3, 1e-1],
        lpips_nets=[], out_dir=str(tmp_path), progress=False, max_widenings=0,  # the grids as given
    )
    res = ev.run_evaluation(cfg, prior=tiny_prior, images=images, attrs=attrs, classifiers=FakeClassifiers())
    for name in ("results.csv", "summary.md", "command.txt", "config.json", "bars_deblur.png", "bars_box.png",
                 "sdedit_sweep_psnr.png"):
        assert (tmp_path / name).is_file(), name
    rows = _csv_rows(tmp_path / "results.csv")
    report, select = {2, 3}, {0, 1}
    # selection and reported images are disjoint; the baseline ran once per image, SDEdit once per seed
    assert {int(r["image"]) for r in rows if r["split"] == "report"} == report
    assert {int(r["image"]) for r in rows if r["split"] == "select"} == select
    assert len([r for r in rows if r["method"] == "sdedit" and r["task"] == "box"]) == 2 * 4 * 2  # t0s × images × seeds
    assert {r["seed"] for r in rows if r["method"] == "baseline"} == {"0"}
    # the chosen t0 is the best mean PSNR on the selection images
    for task in ("deblur", "box"):
        scores = {p: _recompute(rows, "sdedit", p, task, "0.05", select, "psnr")[0]
                  for p in ("t0=0.3;steps=4", "t0=0.6;steps=4")}
        assert res.selected[(task, "0.05", "sdedit")] == max(scores, key=scores.get)
    # every number of every per-task table is recomputed from the CSV
    tables = ev.parse_summary_tables(res.summary_path.read_text())
    descriptions = {ev.build_task(t, 8).description: t for t in ("deblur", "box")}
    assert len(tables) == 2
    columns = [c for c in ev.METRIC_COLUMNS if not c[0].startswith("lpips")]
    checked = 0
    for (desc, noise), table_rows in tables.items():
        task = descriptions[desc]
        assert noise == "0.05" and len(table_rows) == 2
        for row in table_rows:
            params = row["params"].strip("`")
            method = next(r["method"] for r in rows if r["params"] == params)
            assert row["n"] == "2"
            for field, title, _, _ in columns:
                printed, decimals = _cell_value(row[title])
                mean, se, n = _recompute(rows, method, params, task, "0.05", report, field)
                assert n == 2
                assert abs(printed - mean) <= 0.5 * 10 ** -decimals + 1e-9, (task, params, field, printed, mean)
                if "±" in row[title]:
                    assert abs(float(row[title].split("±")[1]) - se) <= 0.5 * 10 ** -decimals + 1e-9
                checked += 1
            assert int(row["NFE"]) == (0 if method == "baseline" else round(float(params[3:6]) * 4))
    assert checked == 2 * 2 * len(columns)
    assert "eye type" in res.summary_path.read_text()


def test_restart_skips_finished_work(tiny_prior, tmp_path, monkeypatch):
    calls = []
    real_dps = ev.samplers.dps

    def counting_dps(*args, **kwargs):
        calls.append(len(kwargs["seed"]))
        if fail_at and len(calls) == fail_at:
            raise KeyboardInterrupt  # the run is interrupted during this batch
        return real_dps(*args, **kwargs)

    monkeypatch.setattr(ev.samplers, "dps", counting_dps)
    cfg = ev.EvalConfig(prior="tiny", tasks=["sr2"], noise_levels=[0.05], methods=["dps"], n_images=3, n_select=0,
                        steps=2, seeds=[0], lpips_nets=[], batch_size=1, out_dir=str(tmp_path), plots=False,
                        progress=False)
    images = smooth_images(3)

    fail_at = 3
    with pytest.raises(KeyboardInterrupt):
        ev.run_evaluation(cfg, prior=tiny_prior, images=images)
    assert len(calls) == 3 and len(_csv_rows(tmp_path / "results.csv")) == 2  # two images finished
    assert not (tmp_path / "evaluate.lock").exists()  # an interrupted run releases its lock

    # an interruption in the middle of a write leaves a partial line: it is dropped, not parsed
    with open(tmp_path / "results.csv", "a") as fh:
        fh.write("dps,zeta=1;steps=2,sr2,0.05,2")
    calls.clear()
    fail_at = None
    res = ev.run_evaluation(cfg, prior=tiny_prior, images=images)
    assert calls == [1] and res.computed == 1 and res.skipped == 2  # only the missing image ran
    rows = _csv_rows(tmp_path / "results.csv")
    assert sorted(int(r["image"]) for r in rows) == [0, 1, 2]

    calls.clear()
    res = ev.run_evaluation(cfg, prior=tiny_prior, images=images)
    assert calls == [] and res.computed == 0 and res.skipped == 3
    assert len(_csv_rows(tmp_path / "results.csv")) == 3

    # a new setting (more steps) is a new key: it runs, and the old rows stay in the file
    res = ev.run_evaluation(ev.EvalConfig(**{**cfg.__dict__, "steps": 3}), prior=tiny_prior, images=images)
    assert calls == [1, 1, 1] and res.computed == 3
    assert len(_csv_rows(tmp_path / "results.csv")) == 6 and len(res.rows) == 3


def smooth_32(channels=3):
    r = torch.linspace(0, 1, 32)
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    img = torch.stack([0.5 + 0.3 * torch.sin(2 * math.pi * (xx + c * 0.2)) * torch.cos(math.pi * yy) for c in range(channels)])
    return img[None].clamp(0, 1)


@pytest.mark.parametrize("task_name", ["random", "box", "sr2", "sr4", "deblur"])
def test_baseline_at_least_as_good_as_measurement(task_name):
    x = smooth_32()
    task = ev.build_task(task_name, 32)
    y = task.operator.measure(x * 2 - 1, noise_std=0.0, seed=0)
    naive = (task.operator.pseudo_inverse(y).clamp(-1, 1) + 1) / 2
    params = {"balance": 1e-4} if task_name == "deblur" else None
    recon = (ev.baseline_reconstruction(task, y, params) + 1) / 2
    assert recon.shape == x.shape
    assert psnr(recon, x, data_range=1.0) >= psnr(naive, x, data_range=1.0)


def test_tasks_at_32_px():
    from helpers.face_measures import EYE_BOX, MOUTH_BOX

    blur = ev.build_task("deblur", 32).operator
    assert (blur.kernel_size, blur.std) == (9, 1.0)
    assert ev.blur_setting(256) == (61, 3.0)
    box = ev.build_task("box", 32).operator
    assert box.box == (8, 8, 16, 16)
    r0, r1, c0, c1 = EYE_BOX
    assert ev.build_task("box_eyes", 32).operator.box == (r0, c0, r1 - r0, c1 - c0)
    r0, r1, c0, c1 = MOUTH_BOX
    assert ev.build_task("box_mouth", 32).operator.box == (r0, c0, r1 - r0, c1 - c0)
    assert abs(ev.build_task("random", 32).operator.kept_fraction - 0.3) < 0.01
    assert ev.build_task("sr4", 32).operator.factor == 4
    with pytest.raises(ValueError, match="unknown task"):
        ev.build_task("motion", 32)


def test_cli_arguments():
    cfg, _ = ev.config_from_args(["--prior", "mnist", "--tasks", "all", "--lpips", "none", "--seeds", "0", "1",
                                  "--sdedit-t0", "0.2", "0.5", "--steps", "50", "--out", "somewhere"])
    assert list(cfg.tasks) == list(ev.TASKS) and list(cfg.lpips_nets) == [] and list(cfg.seeds) == [0, 1]
    assert cfg.steps == 50 and cfg.out_dir == "somewhere" and list(cfg.sdedit_t0s) == [0.2, 0.5]
    assert cfg.command.startswith("python -m helpers.evaluate --prior mnist --tasks all")
    cfg.validate()
    assert cfg.n_select == 8 and cfg.max_widenings == 6
    with pytest.raises(ValueError, match="n_select=0"):
        ev.EvalConfig(n_select=0).validate()  # several t0s and nothing to choose them on
    with pytest.raises(ValueError, match="unknown task"):
        ev.EvalConfig(tasks=["deblur", "motion"]).validate()


def test_image_shape_mismatch_is_explained(tiny_prior, tmp_path):
    cfg = ev.EvalConfig(prior="tiny", tasks=["box"], methods=["measurement"], n_images=1, n_select=0,
                        lpips_nets=[], out_dir=str(tmp_path), progress=False)
    with pytest.raises(ValueError, match=re.escape("prior makes (3, 8, 8)")):
        ev.run_evaluation(cfg, prior=tiny_prior, images=smooth_images(2, size=16))


def test_kept_images_are_the_scored_reconstructions(tiny_prior, tmp_path):
    images = smooth_images(3)
    cfg = ev.EvalConfig(prior="tiny", tasks=["box"], noise_levels=[0.05], methods=["measurement", "dps"],
                        n_images=2, n_select=1, steps=3, seeds=[0, 1], dps_step_sizes=[0.5, 2.0], lpips_nets=[],
                        out_dir=str(tmp_path), progress=False, keep_images=True)
    res = ev.run_evaluation(cfg, prior=tiny_prior, images=images)
    assert set(res.images) == {("box", "0.05", "measurement"), ("box", "0.05", "dps")}
    for (task, noise, method), by_image in res.images.items():
        assert sorted(by_image) == [1, 2]  # the reported images only
        params = res.selected[(task, noise, method)]
        for i, img in by_image.items():
            assert img.shape == images.shape[1:] and float(img.min()) >= 0 and float(img.max()) <= 1
            row = next(r for r in res.rows if (r["method"], r["params"], r["image"], r["seed"]) == (method, params, str(i), "0"))
            assert float(psnr(img[None], images[i : i + 1], data_range=1.0)[0]) == pytest.approx(float(row["psnr"]), rel=1e-4)
    # off by default: nothing kept
    res2 = ev.run_evaluation(ev.EvalConfig(**{**cfg.__dict__, "keep_images": False, "out_dir": str(tmp_path / "b")}),
                             prior=tiny_prior, images=images)
    assert res2.images == {}


def test_method_steps_give_each_sampler_its_own_step_count(tiny_prior, tmp_path):
    images = smooth_images(2)
    cfg = ev.EvalConfig(prior="tiny", tasks=["sr2"], noise_levels=[0.05], methods=["sdedit", "score_ald", "dps"],
                        n_images=2, n_select=0, steps=3, method_steps={"sdedit": 10, "dps": 5}, sdedit_t0s=[0.5],
                        lpips_nets=[], out_dir=str(tmp_path), progress=False)
    res = ev.run_evaluation(cfg, prior=tiny_prior, images=images)
    nfe = {r["method"]: (r["params"], int(r["nfe"])) for r in res.rows}
    assert nfe["sdedit"] == ("t0=0.5;steps=10", 5)  # t0 · 10 steps
    assert nfe["dps"] == ("zeta=1;steps=5", 5)
    assert nfe["score_ald"] == ("lambda=1;rule=langevin;steps=3", 3)  # not in method_steps: `steps`
    assert "steps SDEdit 10, ScoreALD 3, DPS 5" in res.summary_path.read_text()
    with pytest.raises(ValueError, match="only the samplers"):
        ev.run_evaluation(ev.EvalConfig(**{**cfg.__dict__, "method_steps": {"baseline": 3}}), prior=tiny_prior, images=images)
    with pytest.raises(ValueError, match="integer >= 1"):
        ev.run_evaluation(ev.EvalConfig(**{**cfg.__dict__, "method_steps": {"dps": 0}}), prior=tiny_prior, images=images)


# ---------------------------------------------------------------------------- fewer than 8 selection images
def test_cli_refuses_a_choice_on_fewer_than_8_selection_images(capsys):
    base = ["--prior", "tiny", "--dataset", "faces", "--out", "somewhere"]
    with pytest.raises(SystemExit):
        ev.config_from_args(base + ["--n-select", "4", "--dps-zeta", "0.3", "1", "3"])
    err = capsys.readouterr().err
    assert "--n-select 4" in err and "dps" in err and "--allow-small-selection" in err
    cfg, _ = ev.config_from_args(base + ["--n-select", "4", "--dps-zeta", "0.3", "1", "--allow-small-selection"])
    assert cfg.n_select == 4
    # nothing to choose: any number of selection images will do
    cfg, _ = ev.config_from_args(base + ["--n-select", "0", "--sdedit-t0", "0.2", "--wiener-balance", "0.01"])
    assert cfg.n_select == 0
    cfg, _ = ev.config_from_args(base + ["--dps-zeta", "0.3", "1", "--max-widenings", "2"])
    assert cfg.n_select == 8 and cfg.max_widenings == 2


def test_the_full_evaluation_command_parses():
    cmd = ("--prior faces --tasks deblur box box_eyes box_mouth random sr4 --n-images 32 --n-select 8 --steps 100 "
           "--seeds 0 --sdedit-t0 0.05 0.1 0.2 0.3 0.4 0.5 0.6 0.8 --dps-zeta 0.3 1 3 --ald-lambda 0.3 1 3 "
           "--threads 1 --out results/faces").split()
    cfg, args = ev.config_from_args(cmd)
    cfg.validate()
    assert cfg.n_select == 8 and args.threads == 1 and list(cfg.ald_step_sizes) == [0.3, 1, 3]
    with pytest.raises(SystemExit):
        ev.config_from_args([("4" if a == "8" else a) for a in cmd])


# ---------------------------------------------------------------------------- widening a grid past its edge
def _peaked_at(best):
    """A score with its maximum at ``best`` (log scale), recording every value it was asked for."""
    asked = []

    def score(v):
        asked.append(v)
        return -abs(math.log(v / best))

    return score, asked


def test_optimum_beyond_the_high_edge_is_found():
    score, asked = _peaked_at(27.0)
    got = ev.choose_on_grid([0.3, 1, 3], score)
    assert asked == [0.3, 1, 3, 9, 27, 81]  # ×3 steps past the edge until 27 is interior
    assert got.chosen == 27 and got.outcome == "widened" and got.widenings == 3
    assert got.describe() == "widened ×3 to interior" and got.widened == [9, 27, 81]


def test_optimum_beyond_the_low_edge_is_found():
    score, asked = _peaked_at(0.01)
    got = ev.choose_on_grid([0.3, 1, 3], score)
    assert asked[3:] == [0.1, pytest.approx(0.0333333), pytest.approx(0.0111111), pytest.approx(0.0037037)]
    assert got.chosen == pytest.approx(0.0111111) and got.describe() == "widened ×4 to interior"


def test_interior_optimum_stays_put():
    score, asked = _peaked_at(1.2)
    got = ev.choose_on_grid([0.3, 1, 3], score)
    assert asked == [0.3, 1, 3] and got.chosen == 1 and got.describe() == "interior"


def test_divergence_stops_widening_and_the_edge_value_stands():
    def score(v):
        return math.nan if v > 5 else v  # better and better until it diverges

    got = ev.choose_on_grid([0.3, 1, 3], score)
    assert got.chosen == 3 and got.outcome == "diverged" and got.widened == [9]
    assert got.describe().startswith("edge: next value diverged")
    # a diverged value inside the grid bounds the optimum too, without widening
    got = ev.choose_on_grid([0.3, 1, 3], lambda v: math.nan if v > 2 else v)
    assert got.chosen == 1 and got.outcome == "diverged" and got.widened == []


def test_cap_range_and_single_value():
    got = ev.choose_on_grid([1, 3], lambda v: v, max_widenings=2)
    assert got.chosen == 27 and got.outcome == "cap" and "cap reached" in got.describe()
    from helpers.evaluation.selection import ValueRange

    asked = []
    got = ev.choose_on_grid([0.2, 0.5], lambda v: asked.append(v) or v, value_range=ValueRange(0.0, 1.0))
    assert asked == [0.2, 0.5, 1.0]  # 0.5 × 3 overshoots t0 = 1: 1 itself is tried, then nothing beyond
    assert got.chosen == 1.0 and got.outcome == "range" and "range limit" in got.describe()
    got = ev.choose_on_grid([3], lambda v: v)
    assert got.chosen == 3 and got.outcome == "single value" and got.tried == [(3.0, 3.0)]
    got = ev.choose_on_grid([0.3, 1], lambda v: abs(v - 2.5), higher_is_better=False)  # lower is better (LPIPS)
    assert got.chosen == 3 and got.describe() == "widened ×2 to interior" and got.widened == [3, 9]


def _fake_dps(images, best_zeta, diverge_above=math.inf, calls=None):
    """DPS stand-in: returns the true image plus an error that grows with |log(ζ′ / best_zeta)|."""
    from types import SimpleNamespace

    from helpers.samplers import SamplerDivergedError

    def dps(prior, op, y, num_steps, step_size, seed, progress):
        if calls is not None:
            calls.append(step_size)
        if step_size > diverge_above:
            raise SamplerDivergedError("too large a step")
        idx = [s % 1_000_003 for s in seed]
        x = images[idx] * 2 - 1
        err = 0.05 + 0.2 * abs(math.log(step_size / best_zeta))
        pattern = torch.sin(torch.arange(x[0].numel(), dtype=torch.float32)).reshape(x.shape[1:])
        return SimpleNamespace(sample=(x + err * pattern).clamp(-1, 1), nfe=num_steps)

    return dps


def _dps_cfg(tmp_path, **kw):
    base = dict(prior="tiny", tasks=["box"], noise_levels=[0.05], methods=["measurement", "dps"], n_images=2,
                n_select=2, steps=2, seeds=[0], dps_step_sizes=[0.3, 1.0, 3.0], lpips_nets=[], out_dir=str(tmp_path),
                progress=False, plots=False)
    base.update(kw)
    return ev.EvalConfig(**base)


def test_harness_widens_to_an_optimum_beyond_the_grid_and_resumes(tiny_prior, tmp_path, monkeypatch):
    import json

    images = smooth_images(4)
    calls = []
    monkeypatch.setattr(ev.samplers, "dps", _fake_dps(images, best_zeta=9.0, calls=calls))
    res = ev.run_evaluation(_dps_cfg(tmp_path), prior=tiny_prior, images=images)
    assert res.selected[("box", "0.05", "dps")] == "zeta=9;steps=2"
    search = res.searches[("box", "0.05", "dps")]
    assert search.outcome() == "widened ×2 to interior" and [s.value for s in search.settings] == [0.3, 1, 3, 9, 27]
    assert {r["params"] for r in _csv_rows(tmp_path / "results.csv") if r["split"] == "select"} >= {"zeta=27;steps=2"}
    summary = res.summary_path.read_text()
    assert "widened ×2 to interior" in summary and "27⁺" in summary
    sel = json.loads((tmp_path / "config.json").read_text())["selection"]["box|sigma=0.05|dps"]
    assert sel["outcome"] == "widened ×2 to interior" and sel["widened"] == [9, 27] and sel["chosen"] == "zeta=9;steps=2"
    # the same command again: every widened setting is found in results.csv, nothing runs
    calls.clear()
    again = ev.run_evaluation(_dps_cfg(tmp_path), prior=tiny_prior, images=images)
    assert calls == [] and again.computed == 0 and again.selected == res.selected


def test_harness_stops_widening_where_the_sampler_diverges(tiny_prior, tmp_path, monkeypatch):
    images = smooth_images(4)
    monkeypatch.setattr(ev.samplers, "dps", _fake_dps(images, best_zeta=100.0, diverge_above=5.0))
    res = ev.run_evaluation(_dps_cfg(tmp_path), prior=tiny_prior, images=images)
    search = res.searches[("box", "0.05", "dps")]
    assert res.selected[("box", "0.05", "dps")] == "zeta=3;steps=2"
    assert search.outcome().startswith("edge: next value diverged") and search.choice.widened == [9]
    assert "9⁺: diverged" in res.summary_path.read_text()
    assert not any(r["split"] == "report" and r["params"] == "zeta=9;steps=2" for r in res.rows)


def test_harness_keeps_an_interior_optimum(tiny_prior, tmp_path, monkeypatch):
    images = smooth_images(4)
    calls = []
    monkeypatch.setattr(ev.samplers, "dps", _fake_dps(images, best_zeta=1.1, calls=calls))
    res = ev.run_evaluation(_dps_cfg(tmp_path), prior=tiny_prior, images=images)
    assert res.selected[("box", "0.05", "dps")] == "zeta=1;steps=2"
    assert res.searches[("box", "0.05", "dps")].outcome() == "interior" and sorted(set(calls)) == [0.3, 1, 3]


# ---------------------------------------------------------------------------- figures
def test_many_lines_never_share_colour_and_style():
    from matplotlib.colors import to_hex

    series = [(f"task{i}", f"σ_y = {n}", [0.1, 0.2], [i, i + n], None) for i in range(11) for n in (0.05, 0)]
    fig = ev.keyed_lines_figure(series, colour_title="colour = task", style_title="line style = noise",
                                xlabel="t0", ylabel="PSNR [dB]")
    ax = fig.get_axes()[0]
    lines = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == 2]
    assert len(lines) == 22
    looks = [(to_hex(ln.get_color()), str(ln.get_linestyle())) for ln in lines]
    assert len(set(looks)) == 22  # no two lines alike
    colours = {}
    for (task, noise, *_), (colour, style) in zip(series, looks):
        colours.setdefault(task, set()).add(colour)
    assert all(len(c) == 1 for c in colours.values()) and len({c.pop() for c in colours.values()}) == 11
    legend_titles = {a.get_title().get_text() for a in ax.get_children() if type(a).__name__ == "Legend"}
    assert legend_titles == {"colour = task", "line style = noise"}


def test_sdedit_sweep_figure_colours_tasks_and_styles_noise(tiny_prior, tmp_path, monkeypatch):
    from matplotlib.colors import to_hex

    from helpers.evaluation import report

    figures = []
    real = report.keyed_lines_figure
    monkeypatch.setattr(report, "keyed_lines_figure", lambda *a, **k: figures.append(real(*a, **k)) or figures[-1])
    cfg = ev.EvalConfig(prior="tiny", tasks=["deblur", "box"], noise_levels=[0.05, 0.0], methods=["sdedit"],
                        n_images=1, n_select=1, steps=2, sdedit_t0s=[0.3, 0.6], lpips_nets=[], max_widenings=0,
                        out_dir=str(tmp_path), progress=False)
    ev.run_evaluation(cfg, prior=tiny_prior, images=smooth_images(2))
    lines = [ln for ln in figures[0].get_axes()[0].get_lines() if ln.get_linestyle() != "None"]  # not error-bar caps
    looks = [(to_hex(ln.get_color()), str(ln.get_linestyle())) for ln in lines]
    assert len(lines) == 4 and len(set(looks)) == 4
    assert looks[0][0] == looks[1][0] != looks[2][0] == looks[3][0]  # deblur at both noise levels, then box
    assert looks[0][1] == looks[2][1] != looks[1][1] == looks[3][1]  # σ_y = 0.05 solid, σ_y = 0 dashed


# ---------------------------------------------------------------------------- results keyed by what produced them
import json  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

from helpers.evaluation import harness as H  # noqa: E402


def _quick_cfg(tmp_path, **kw):
    base = dict(prior="tiny", tasks=["sr2"], noise_levels=[0.05], methods=["measurement", "baseline"], n_images=2,
                n_select=0, steps=2, lpips_nets=[], out_dir=str(tmp_path), plots=False, progress=False)
    base.update(kw)
    return ev.EvalConfig(**base)


def _other_prior():
    from conftest import tiny_unet
    from helpers.priors import Prior
    from helpers.schedule import NoiseSchedule

    return Prior(tiny_unet(seed=1), NoiseSchedule.linear(), name="tiny")  # same name, other weights


@pytest.mark.parametrize("change, field", [
    (dict(prior=_other_prior), "prior_weights_sha256"),
    (dict(cfg=dict(prior="faces")), "prior"),
    (dict(cfg=dict(lpips_nets=["alex"])), "lpips_nets"),
    (dict(cfg=dict(ald_step_rule="poster")), "ald_step_rule"),
    (dict(images=lambda: smooth_images(2, seed=5)), "image_hashes"),
])
def test_a_folder_of_another_configuration_is_refused(tiny_prior, tmp_path, change, field):
    ev.run_evaluation(_quick_cfg(tmp_path), prior=tiny_prior, images=smooth_images(2))
    cfg = _quick_cfg(tmp_path, **change.get("cfg", {}))
    prior = change["prior"]() if "prior" in change else tiny_prior
    images = change["images"]() if "images" in change else smooth_images(2)
    with pytest.raises(H.ResultsMismatchError, match=re.escape(field)) as err:
        ev.run_evaluation(cfg, prior=prior, images=images)
    assert "--out" in str(err.value)
    assert not (tmp_path / H.LOCK_FILE).exists()  # the lock is released on the error


def test_more_images_extend_the_fingerprint(tiny_prior, tmp_path):
    ev.run_evaluation(_quick_cfg(tmp_path), prior=tiny_prior, images=smooth_images(2))
    res = ev.run_evaluation(_quick_cfg(tmp_path, n_images=3), prior=tiny_prior, images=smooth_images(3))
    assert res.skipped > 0 and res.computed > 0
    assert len(json.loads((tmp_path / H.FINGERPRINT_FILE).read_text())["image_hashes"]) == 3


def test_a_folder_without_fingerprint_is_adopted_when_its_config_matches(tiny_prior, tmp_path):
    ev.run_evaluation(_quick_cfg(tmp_path), prior=tiny_prior, images=smooth_images(2))
    (tmp_path / H.FINGERPRINT_FILE).unlink()  # as written before fingerprints existed
    assert H.read_results(tmp_path / "results.csv")  # readable without one
    res = ev.run_evaluation(_quick_cfg(tmp_path), prior=tiny_prior, images=smooth_images(2))
    assert res.computed == 0 and (tmp_path / H.FINGERPRINT_FILE).is_file()
    # config.json of another prior: refused, naming the field
    (tmp_path / H.FINGERPRINT_FILE).unlink()
    cfg_json = json.loads((tmp_path / "config.json").read_text())
    cfg_json.update(prior="mnist", prior_name="mnist")
    (tmp_path / "config.json").write_text(json.dumps(cfg_json))
    with pytest.raises(H.ResultsMismatchError, match="prior: folder has 'mnist'"):
        ev.run_evaluation(_quick_cfg(tmp_path), prior=tiny_prior, images=smooth_images(2))


def test_an_interrupted_legacy_folder_is_adopted_by_its_rows_prior(tiny_prior, tmp_path):
    ev.run_evaluation(_quick_cfg(tmp_path), prior=tiny_prior, images=smooth_images(2))
    for name in (H.FINGERPRINT_FILE, "config.json"):
        (tmp_path / name).unlink()
    with pytest.warns(UserWarning, match="adopting"):
        res = ev.run_evaluation(_quick_cfg(tmp_path), prior=tiny_prior, images=smooth_images(2))
    assert res.computed == 0
    for name in (H.FINGERPRINT_FILE, "config.json"):
        (tmp_path / name).unlink()
    text = (tmp_path / "results.csv").read_text().replace(",tiny,", ",faces,")
    (tmp_path / "results.csv").write_text(text)
    with pytest.raises(H.ResultsMismatchError, match="faces"):
        ev.run_evaluation(_quick_cfg(tmp_path), prior=tiny_prior, images=smooth_images(2))


def test_a_second_process_is_told_who_holds_the_folder(tiny_prior, tmp_path):
    holder = {"pid": os.getppid(), "host": socket.gethostname(), "started": "2026-01-02T03:04:05",
              "command": "python -m helpers.evaluate --prior faces"}
    (tmp_path / H.LOCK_FILE).write_text(json.dumps(holder))
    with pytest.raises(H.ResultsLockedError) as err:
        ev.run_evaluation(_quick_cfg(tmp_path), prior=tiny_prior, images=smooth_images(2))
    msg = str(err.value)
    assert str(os.getppid()) in msg and socket.gethostname() in msg and "2026-01-02T03:04:05" in msg
    assert not (tmp_path / "results.csv").exists()  # nothing written
    holder.update(host="another-host", pid=1)  # another machine: never taken over
    (tmp_path / H.LOCK_FILE).write_text(json.dumps(holder))
    with pytest.raises(H.ResultsLockedError, match="another-host"):
        ev.run_evaluation(_quick_cfg(tmp_path), prior=tiny_prior, images=smooth_images(2))


def test_a_stale_lock_is_taken_over_with_a_warning(tiny_prior, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / H.LOCK_FILE).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(),
                                                     "started": "2026-01-02T03:04:05"}))
    with pytest.warns(UserWarning, match=f"process {dead.pid}.*no\\s+longer runs"):
        res = ev.run_evaluation(_quick_cfg(tmp_path), prior=tiny_prior, images=smooth_images(2))
    assert res.computed > 0 and not (tmp_path / H.LOCK_FILE).exists()
