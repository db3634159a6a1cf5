"""Tests of helpers.findings on hand-made result rows whose answers are known."""

import math

import numpy as np
import pytest

from helpers.evaluate import CSV_FIELDS
from helpers.findings import ResultSet, Score, eye_symmetry_recovery, part_recovery, sdedit_sweet_spot

REPORT = list(range(4, 12))  # 8 reported images; 0..3 would be selection images


def _row(method, params, image, seed=0, task="deblur", noise="0.05", split="report", **metrics):
    r = {k: "" for k in CSV_FIELDS}
    r.update(method=method, params=params, task=task, noise=noise, image=str(image), seed=str(seed), split=split,
             status="ok")
    r.update({k: str(v) for k, v in metrics.items()})
    return r


def _set(rows, selected):
    return ResultSet(rows, selected, REPORT)


def _sweep_rows(sdedit_by_t0, meas, others):
    """sdedit_by_t0: {t0: (psnr, lpips, eyes list, mouth list)}; meas/others: {method: (psnr, lpips, eyes, mouth)}."""
    rows, sel = [], {}
    for m, (p, l, e, mo) in {**{"measurement": meas}, **others}.items():
        params = {"measurement": "pinv", "baseline": "wiener", "score_ald": "lambda=1", "dps": "zeta=1"}[m]
        sel[("deblur", "0.05", m)] = params
        for j, i in enumerate(REPORT):
            rows.append(_row(m, params, i, psnr=p, lpips_alex=l, eyes_ok=e[j], mouth_ok=mo[j]))
    for t0, (p, l, e, mo) in sdedit_by_t0.items():
        for j, i in enumerate(REPORT):
            rows.append(_row("sdedit", f"t0={t0:g};steps=10", i, psnr=p, lpips_alex=l, eyes_ok=e[j], mouth_ok=mo[j]))
    sel[("deblur", "0.05", "sdedit")] = "t0=0.1;steps=10"
    # selection-image rows must be ignored: make them absurd
    rows.append(_row("dps", "zeta=1", 0, split="select", psnr=99, lpips_alex=0, eyes_ok=0, mouth_ok=0))
    return _set(rows, sel)


ALL = [1] * 8
SEVEN = [1] * 7 + [0]
HALF = [1, 0] * 4


def test_sweet_spot_absent_when_parts_are_lost_where_the_blur_goes():
    rs = _sweep_rows(
        {0.1: (25, 0.05, SEVEN, HALF), 0.3: (22, 0.04, HALF, HALF), 0.6: (15, 0.2, [0] * 8, [0] * 8)},
        meas=(23, 0.08, ALL, SEVEN), others={"dps": (28, 0.02, ALL, ALL)},
    )
    out = sdedit_sweet_spot(rs, "deblur", 0.05)
    assert out["t0s"] == [0.1, 0.3, 0.6]
    assert out["removes_degradation"] == [True, False, False]  # 0.3: LPIPS better but PSNR below the measurement
    assert out["keeps_parts"] == [False, False, False]  # mouth 50 % vs DPS's 100 %
    assert out["sweet_spots"] == [] and "finding holds" in out["verdict"]
    assert out["psnr"][0] == Score(25.0, 0.0, 8)
    assert out["best_other"]["mouth_ok"][1] == "dps"


def test_sweet_spot_found_when_sdedit_keeps_the_parts():
    rs = _sweep_rows({0.1: (25, 0.05, ALL, SEVEN), 0.5: (18, 0.1, HALF, HALF)},
                     meas=(23, 0.08, ALL, SEVEN), others={"dps": (28, 0.02, ALL, ALL)})
    out = sdedit_sweet_spot(rs, "deblur", 0.05)
    # 7/8 mouth: mean 0.875, s.e. 0.125 -> within one s.e. of DPS's 1.0
    assert out["keeps_parts"] == [True, False]
    assert out["sweet_spots"] == [0.1] and "does NOT hold" in out["verdict"]


def _sym_rows(values):
    rows, sel = [], {}
    for m, vals in values.items():
        params = {"measurement": "pinv", "sdedit": "t0=0.1;steps=10", "score_ald": "lambda=1", "dps": "zeta=1"}[m]
        sel[("deblur", "0.05", m)] = params
        for i, v in zip(REPORT, vals):
            rows.append(_row(m, params, i, eye_symmetry=v))
    return _set(rows, sel)


def test_eye_symmetry_gap_closed_and_status():
    rng = np.random.default_rng(0)
    base = 0.80 + 0.01 * rng.standard_normal(8)
    rs = _sym_rows({"measurement": base, "sdedit": base + 0.05, "score_ald": base + 0.19, "dps": base + 0.001 * rng.standard_normal(8)})
    truth = Score(float(np.mean(base)) + 0.2, 0.005, 8)
    out = eye_symmetry_recovery(rs, "deblur", 0.05, truth)
    assert out["methods"]["sdedit"]["gap_closed"] == pytest.approx(0.25, abs=1e-9)
    assert out["methods"]["sdedit"]["status"] == "partly"
    assert out["methods"]["score_ald"]["status"] == "fully"  # 95 % of the gap
    assert out["methods"]["dps"]["status"] == "not"  # no paired improvement
    assert out["methods"]["sdedit"]["vs_measurement"].mean == pytest.approx(0.05)
    assert "only in part" in out["verdict"]
    all_partly = _sym_rows({"measurement": base, "sdedit": base + 0.1, "score_ald": base + 0.12, "dps": base + 0.15})
    assert "the finding holds" in eye_symmetry_recovery(all_partly, "deblur", 0.05, truth)["verdict"]


def _mouth_rows(values, task="box_mouth"):
    rows, sel = [], {}
    for m, vals in values.items():
        params = {"measurement": "pinv", "sdedit": "t0=0.5;steps=10", "score_ald": "lambda=1", "dps": "zeta=1"}[m]
        sel[(task, "0.05", m)] = params
        for seed in (0, 1):  # two seeds, averaged per image first
            for i, v in zip(REPORT, vals[seed]):
                rows.append(_row(m, params, i, seed=seed, task=task, mouth_ok=v))
    return _set(rows, sel)


def test_part_recovery_leader_uses_paired_margins():
    rs = _mouth_rows({"measurement": ([0] * 8, [0] * 8), "sdedit": ([0] * 8, [1, 0, 0, 0, 0, 0, 0, 0]),
                      "score_ald": ([1, 0, 0, 0, 1, 0, 0, 0], [0] * 8), "dps": ([1, 1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 0, 0, 0, 0])})
    out = part_recovery(rs, "box_mouth", 0.05, "mouth", truth_rate=1.0)
    assert out["methods"]["dps"].mean == pytest.approx(np.mean([1, 1, 1, 1, 0.5, 0, 0, 0]))
    assert out["methods"]["sdedit"].mean == pytest.approx(1 / 16)
    assert out["leader"] == "dps" and "finding holds" in out["verdict"]
    d = out["margins"]["score_ald"]
    diffs = np.array([1, 1, 1, 1, 0.5, 0, 0, 0]) - np.array([0.5, 0, 0, 0, 0.5, 0, 0, 0])
    assert d.mean == pytest.approx(diffs.mean()) and d.se == pytest.approx(diffs.std(ddof=1) / math.sqrt(8))
    tie = _mouth_rows({"measurement": ([0] * 8, [0] * 8), "sdedit": (HALF, HALF), "score_ald": (HALF, HALF), "dps": (HALF, HALF)})
    out = part_recovery(tie, "box_mouth", 0.05)
    assert out["leader"] is None and "not confirmed" in out["verdict"]


def test_errors_name_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m helpers.evaluate"):
        ResultSet.load(tmp_path)
    rs = _mouth_rows({"measurement": ([0] * 8, [0] * 8), "dps": (ALL, ALL), "sdedit": (ALL, ALL), "score_ald": (ALL, ALL)})
    with pytest.raises(ValueError, match="no results for task 'deblur'"):
        part_recovery(rs, "deblur", 0.05)
    with pytest.raises(ValueError, match="part must be"):
        part_recovery(rs, "box_mouth", 0.05, part="nose")


def test_load_reads_what_run_evaluation_wrote(tiny_prior, tmp_path):
    from helpers import evaluate as ev
    from tests.test_evaluate import smooth_images

    cfg = ev.EvalConfig(prior="tiny", tasks=["box"], noise_levels=[0.05, 0.0], methods=["measurement", "sdedit"],
                        n_images=2, n_select=1, steps=3, seeds=[0], sdedit_t0s=[0.3, 0.6], lpips_nets=[],
                        out_dir=str(tmp_path), progress=False)
    res = ev.run_evaluation(cfg, prior=tiny_prior, images=smooth_images(3))
    rs = ResultSet.load(tmp_path)
    assert rs.selected == res.selected and rs.report_images == [1, 2]
    assert [t for t, _ in rs.sdedit_params("box", 0.0)] == [0.3, 0.6]
    want = np.mean([float(r["psnr"]) for r in res.rows if r["method"] == "measurement" and r["noise"] == "0.05"
                    and r["split"] == "report"])
    assert rs.score("measurement", "box", 0.05, "psnr").mean == pytest.approx(want)


def test_reference_scores_of_the_clean_images_are_recorded(tmp_path):
    from helpers import evaluate as ev
    from helpers.face_measures import eye_symmetry
    from tests.test_evaluate import FakeClassifiers, smooth_images

    images = smooth_images(3, size=32)
    attrs = {"eyes": np.array([1, 0, 1]), "mouth": np.array([1, 1, 0])}
    cfg = ev.EvalConfig(prior="tiny", tasks=["box"], noise_levels=[0.05], methods=["measurement"], n_images=2,
                        n_select=1, steps=3, lpips_nets=[], out_dir=str(tmp_path), progress=False, face_measures=True)
    from helpers.priors import Prior
    from helpers.schedule import NoiseSchedule
    from tests.conftest import tiny_unet

    prior32 = Prior(tiny_unet(size=32), NoiseSchedule.linear(), name="tiny32")  # face measures need 32-px faces
    ev.run_evaluation(cfg, prior=prior32, images=images, attrs=attrs, classifiers=FakeClassifiers())
    ref = ResultSet.load(tmp_path).reference
    assert ref["eyes_ok"].mean == pytest.approx(0.5) and ref["mouth_ok"].mean == pytest.approx(0.5)  # images 1, 2
    assert ref["eye_symmetry"].mean == pytest.approx(float(np.mean(eye_symmetry(images[1:]))))


def test_figures_draw_what_they_are_given():
    rs = _sweep_rows({0.1: (25, 0.05, SEVEN, HALF), 0.3: (22, 0.04, HALF, HALF)},
                     meas=(23, 0.08, ALL, SEVEN), others={"dps": (28, 0.02, ALL, ALL)})
    from helpers.findings import method_bars, sweet_spot_figure

    fig = sweet_spot_figure([sdedit_sweet_spot(rs, "deblur", 0.05)])
    axes = fig.get_axes()
    assert len(axes) == 4
    line = axes[0].get_lines()[0]
    assert list(line.get_xdata()) == [0.1, 0.3] and list(line.get_ydata()) == [25, 22]
    fig = method_bars({"deblur": {"dps": Score(0.9, 0.05, 8), "sdedit": Score(0.5, 0.1, 8)}}, ylabel="mouth kept",
                      reference={"deblur": 1.0})
    heights = sorted(p.get_height() for p in fig.get_axes()[0].patches)
    assert heights == [0.5, 0.9]
    with pytest.raises(ValueError, match="empty"):
        method_bars({}, ylabel="x")


def test_report_cli_on_a_folder(tiny_prior, tmp_path, capsys):
    from helpers import evaluate as ev
    from helpers.findings import main
    from tests.test_evaluate import smooth_images

    cfg = ev.EvalConfig(prior="tiny", tasks=["deblur", "box"], noise_levels=[0.05], n_images=2, n_select=1, steps=3,
                        seeds=[0], sdedit_t0s=[0.3, 0.6], wiener_balances=[0.01], lpips_nets=["alex"],
                        out_dir=str(tmp_path), progress=False)
    ev.run_evaluation(cfg, prior=tiny_prior, images=smooth_images(3))
    assert main([str(tmp_path), "--out", str(tmp_path / "findings.md")]) == 0
    text = (tmp_path / "findings.md").read_text()
    assert text.count("LPIPS (alex) DPS") == 2  # box and deblur
    assert "SDEdit beats the measurement" in text
    assert main([str(tmp_path / "missing")]) == 1
    assert "python -m helpers.evaluate" in capsys.readouterr().err


def test_eye_symmetry_with_nothing_to_recover():
    base = np.full(8, 0.98)
    rs = _sym_rows({"measurement": base, "sdedit": base - 0.03, "score_ald": base, "dps": base + 0.001})
    out = eye_symmetry_recovery(rs, "deblur", 0.05, Score(0.984, 0.003, 8))
    assert "nothing to recover" in out["verdict"] and "cannot be tested" in out["verdict"]
    assert {v["status"] for v in out["methods"].values()} == {"nothing to recover"}


def test_part_recovery_speaks_of_the_finding_only_for_the_mouth():
    vals = {"measurement": ([0] * 8, [0] * 8), "sdedit": ([0] * 8, [0] * 8), "score_ald": ([0] * 8, [0] * 8),
            "dps": (ALL, ALL)}
    rs = _mouth_rows(vals)
    assert "finding" in part_recovery(rs, "box_mouth", 0.05, "mouth", truth_rate=1.0)["verdict"]
    rows = [dict(r, eyes_ok=r["mouth_ok"]) for r in rs.rows]
    eyes = part_recovery(ResultSet(rows, rs.selected, REPORT), "box_mouth", 0.05, "eyes", truth_rate=1.0)
    assert eyes["leader"] == "dps" and "finding" not in eyes["verdict"]
