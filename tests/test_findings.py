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


def _vals(v, n=8):
    """A scalar becomes n equal values; a list is kept."""
    return list(v) if isinstance(v, (list, tuple, np.ndarray)) else [v] * n


def _sweep_rows(sdedit_by_t0, meas, others, task="deblur", noise="0.05"):
    """sdedit_by_t0: {t0: (psnr, lpips, eyes list, mouth list)}; meas/others: {method: (psnr, lpips, eyes, mouth)};
    psnr/lpips may be scalars or per-image lists."""
    rows, sel = [], {}
    for m, (p, l, e, mo) in {**{"measurement": meas}, **others}.items():
        params = {"measurement": "pinv", "baseline": "wiener", "score_ald": "lambda=1", "dps": "zeta=1"}[m]
        sel[(task, noise, m)] = params
        for j, i in enumerate(REPORT):
            rows.append(_row(m, params, i, task=task, noise=noise, psnr=_vals(p)[j], lpips_alex=_vals(l)[j],
                             eyes_ok=e[j], mouth_ok=mo[j]))
    for t0, (p, l, e, mo) in sdedit_by_t0.items():
        for j, i in enumerate(REPORT):
            rows.append(_row("sdedit", f"t0={t0:g};steps=10", i, task=task, noise=noise, psnr=_vals(p)[j],
                             lpips_alex=_vals(l)[j], eyes_ok=e[j], mouth_ok=mo[j]))
    sel[(task, noise, "sdedit")] = "t0=0.1;steps=10"
    # selection-image rows must be ignored: make them absurd
    rows.append(_row("dps", "zeta=1", 0, task=task, noise=noise, split="select", psnr=99, lpips_alex=0, eyes_ok=0, mouth_ok=0))
    return _set(rows, sel)


ALL = [1] * 8
SEVEN = [1] * 7 + [0]
HALF = [1, 0] * 4
J = np.arange(8)
DPS_PSNR = list(28 + 0.2 * J)


def test_sweet_spot_absent_when_every_t0_is_significantly_worse():
    # best other in PSNR: DPS; best − SDEdit = 3 + 0.1 j > 0 on all 8 images, all |d| distinct: exact p = 1/2^8
    rs = _sweep_rows({0.1: (list(25 + 0.1 * J), 0.05, SEVEN, HALF), 0.3: (list(22 + 0.1 * J), 0.04, HALF, HALF)},
                     meas=(23, 0.08, ALL, SEVEN), others={"dps": (DPS_PSNR, 0.02, ALL, ALL)})
    out = sdedit_sweet_spot(rs, "deblur", 0.05)
    assert out["t0s"] == [0.1, 0.3]
    assert out["best_psnr"][1] == "dps" and out["best_other"]["mouth_ok"][1] == "dps"
    for t in out["tests"]:
        assert t["psnr"].p_value == pytest.approx(1 / 256)
    # mouth: DPS keeps all, SDEdit half: discordant b = 4, c = 0 -> McNemar 2 / 2^4
    assert out["tests"][0]["mouth_ok"].p_value == pytest.approx(2 / 16)
    assert out["t0_verdicts"] == ["holds", "holds"] and out["verdict_word"] == "holds"
    assert out["sweet_spots"] == [] and "**holds**" in out["verdict"] and "p = 0.0039" in out["verdict"]
    assert out["removes_degradation"] == [True, False]  # 0.3: below the measurement's PSNR on average
    assert out["psnr"][0].mean == pytest.approx(25.35)


def test_sweet_spot_found_when_sdedit_is_significantly_better_and_keeps_the_parts():
    rs = _sweep_rows({0.1: (list(30 + 0.1 * J), 0.05, ALL, ALL)},
                     meas=(23, 0.08, ALL, SEVEN), others={"dps": (DPS_PSNR, 0.02, ALL, ALL)})
    out = sdedit_sweet_spot(rs, "deblur", 0.05)
    assert out["tests"][0]["psnr"].p_less == pytest.approx(1 / 256)  # SDEdit above DPS on every image
    assert out["t0_verdicts"] == ["does not hold"] and out["sweet_spots"] == [0.1]
    assert out["verdict_word"] == "does not hold" and "**does not hold**" in out["verdict"]


def test_sweet_spot_not_contradicted_when_nothing_is_significant():
    wobble = [0.1, -0.2, 0.3, -0.4, 0.5, -0.6, 0.7, -0.8]  # W+ = 16 of 36: far from significant
    rs = _sweep_rows({0.1: (list(np.array(DPS_PSNR) - wobble), 0.05, ALL, ALL),
                      0.5: (list(15 + 0.1 * J), 0.2, HALF, HALF)},
                     meas=(23, 0.08, ALL, SEVEN), others={"dps": (DPS_PSNR, 0.02, ALL, ALL)})
    out = sdedit_sweet_spot(rs, "deblur", 0.05)
    assert out["tests"][0]["psnr"].statistic == 16
    assert out["t0_verdicts"] == ["not contradicted", "holds"]
    assert out["verdict_word"] == "not contradicted" and out["sweet_spots"] == []


def _sym_rows(values):
    rows, sel = [], {}
    for m, vals in values.items():
        params = {"measurement": "pinv", "sdedit": "t0=0.1;steps=10", "score_ald": "lambda=1", "dps": "zeta=1"}[m]
        sel[("deblur", "0.05", m)] = params
        for i, v in zip(REPORT, vals):
            rows.append(_row(m, params, i, eye_symmetry=v))
    return _set(rows, sel)


def test_eye_symmetry_paired_tests_and_words():
    rng = np.random.default_rng(0)
    base = 0.75 + 0.01 * rng.standard_normal(8)
    clean = base + 0.2
    wobble = 0.001 * np.array([1, -2, 3, -4, 5, -6, 7, -8])
    rs = _sym_rows({"measurement": base, "sdedit": base + 0.05 + 0.001 * J,  # partly: above meas., below clean
                    "score_ald": clean + wobble,  # fully: not significantly below the clean faces
                    "dps": base - 0.01 - 0.001 * J})  # below the measurement: not recovered
    truth = Score(float(np.mean(clean)), 0.005, 8)
    out = eye_symmetry_recovery(rs, "deblur", 0.05, truth, truth_per_image=dict(zip(REPORT, clean)))
    sd, sa, dp = (out["methods"][m] for m in ("sdedit", "score_ald", "dps"))
    assert sd["vs_measurement"].p_value == pytest.approx(1 / 256) and sd["vs_truth"].p_value == pytest.approx(1 / 256)
    assert sd["status"] == "partly" and sd["word"] == "holds"
    assert sd["gap_closed"] == pytest.approx((0.05 + 0.0035) / 0.2)
    assert sa["status"] == "fully" and sa["word"] == "not contradicted"
    assert dp["status"] == "not" and dp["word"] == "does not hold"  # significantly below the measurement
    assert out["verdict_word"] == "does not hold" and out["paired_with_truth"]
    all_partly = _sym_rows({"measurement": base, "sdedit": base + 0.1 + 0.001 * J, "score_ald": base + 0.12 + 0.001 * J,
                            "dps": base + 0.15 + 0.001 * J})
    out = eye_symmetry_recovery(all_partly, "deblur", 0.05, truth, truth_per_image=dict(zip(REPORT, clean)))
    assert out["verdict_word"] == "holds" and "**holds**" in out["verdict"]
    # without per-image clean values: one-sample against the clean mean, and the sentence says so
    one = eye_symmetry_recovery(all_partly, "deblur", 0.05, truth)
    assert not one["paired_with_truth"] and "one-sample" in one["verdict"]


def test_eye_symmetry_with_nothing_to_recover_is_a_false_premise():
    base = np.full(8, 0.98) + 0.001 * J
    rs = _sym_rows({"measurement": base, "sdedit": base - 0.03, "score_ald": base, "dps": base + 0.001})
    out = eye_symmetry_recovery(rs, "deblur", 0.05, Score(0.9875, 0.003, 8))
    assert out["premise"] is False and out["verdict_word"] == "does not hold"
    assert "premise" in out["verdict"] and {v["status"] for v in out["methods"].values()} == {"nothing to recover"}


def _kept_rows(values, task="box_mouth", n=32, seeds=(0,), part="mouth_ok"):
    """values: {method: list of kept per image (one seed) or tuple of lists (per seed)}; n reported images."""
    rows, sel = [], {}
    for m, vals in values.items():
        params = {"measurement": "pinv", "baseline": "biharmonic", "sdedit": "t0=0.5;steps=10",
                  "score_ald": "lambda=1", "dps": "zeta=1"}[m]
        sel[(task, "0.05", m)] = params
        per_seed = vals if isinstance(vals, tuple) else (vals,)
        for seed, v in zip(seeds, per_seed):
            for i in range(n):
                rows.append(_row(m, params, i, seed=seed, task=task, **{part: v[i]}))
    return ResultSet(rows, sel, list(range(n)))


def _closed_form_tail(k, n, p):
    return float(sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1)))


def test_part_recovery_against_chance_and_other_methods():
    from fractions import Fraction

    from helpers.data import FACE_EYES, FACE_MOUTHS
    from helpers.findings import PART_CLASSES

    assert PART_CLASSES == {"mouth": len(FACE_MOUTHS), "eyes": len(FACE_EYES)}
    five = [1] * 5 + [0] * 27
    none = [0] * 32
    rs = _kept_rows({"measurement": none, "sdedit": none, "score_ald": none, "dps": five})
    out = part_recovery(rs, "box_mouth", 0.05, "mouth", truth_rate=1.0)
    assert out["chance"] == pytest.approx(1 / 13) and out["counts"]["dps"] == (5, 32)
    assert out["vs_chance"]["dps"].p_value == pytest.approx(_closed_form_tail(5, 32, Fraction(1, 13)), rel=1e-12)
    assert out["dps_vs"]["sdedit"].p_value == pytest.approx(2 / 32)  # McNemar: b = 5, c = 0
    assert out["verdict_word"] == "not contradicted" and "**not contradicted**" in out["verdict"]
    assert "p = 0.096" in out["verdict"] and "p = 0.062" in out["verdict"]
    twelve = [1] * 12 + [0] * 20
    rs = _kept_rows({"measurement": none, "sdedit": none, "score_ald": none, "dps": twelve})
    out = part_recovery(rs, "box_mouth", 0.05)
    assert out["dps_vs"]["score_ald"].p_value == pytest.approx(2 / 2**12)
    assert out["verdict_word"] == "holds" and out["leader"] == "dps"
    # another method significantly ahead of DPS: the finding does not hold
    rs = _kept_rows({"measurement": none, "sdedit": none, "score_ald": twelve, "dps": five})
    out = part_recovery(rs, "box_mouth", 0.05)
    assert out["dps_vs"]["score_ald"].effect == pytest.approx(-7 / 32)
    assert out["verdict_word"] == "does not hold"


def test_part_recovery_with_two_seeds_uses_trials_and_the_sign_test():
    a = [1] * 6 + [0] * 26
    b = [1] * 3 + [0] * 29
    rs = _kept_rows({"measurement": ([0] * 32, [0] * 32), "dps": (a, b)}, seeds=(0, 1))
    out = part_recovery(rs, "box_mouth", 0.05)
    assert out["counts"]["dps"] == (9, 64)  # every (image, seed) is a trial
    assert out["vs_chance"]["dps"].p_value == pytest.approx(_closed_form_tail(9, 64, 1 / 13))
    r = out["dps_vs"]["measurement"]
    assert r.test == "exact sign test" and r.p_value == pytest.approx(2 / 2**6)  # 6 images with a positive rate
    assert part_recovery(rs, "box_mouth", 0.05)["methods"]["dps"].mean == pytest.approx(9 / 64)


def test_part_recovery_speaks_of_the_finding_only_for_the_mouth():
    rs = _kept_rows({"measurement": [0] * 32, "dps": [1] * 32}, task="box_eyes", part="eyes_ok")
    eyes = part_recovery(rs, "box_eyes", 0.05, "eyes")
    assert eyes["chance"] == pytest.approx(1 / 8) and eyes["verdict_word"] is None and "Finding" not in eyes["verdict"]


def test_errors_name_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m helpers.evaluate"):
        ResultSet.load(tmp_path)
    rs = _kept_rows({"measurement": [0] * 32, "dps": [1] * 32})
    with pytest.raises(ValueError, match="no results for task 'deblur'"):
        part_recovery(rs, "deblur", 0.05)
    with pytest.raises(ValueError, match="part must be"):
        part_recovery(rs, "box_mouth", 0.05, part="nose")
    with pytest.raises(ValueError, match="faces prior"):
        part_recovery(rs, "box_mouth", 0.05, part="eyes")  # rows without eye values


def test_load_reads_what_run_evaluation_wrote(tiny_prior, tmp_path):
    from helpers import evaluate as ev
    from tests.test_evaluate import smooth_images

    cfg = ev.EvalConfig(prior="tiny", tasks=["box"], noise_levels=[0.05, 0.0], methods=["measurement", "sdedit"],
                        n_images=2, n_select=1, steps=3, seeds=[0], sdedit_t0s=[0.3, 0.6], lpips_nets=[], max_widenings=0,
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
    from helpers.findings import method_bars, sweet_spot_figure

    sweeps = []
    for task in ("deblur", "box"):
        for noise in ("0.05", "0"):
            rs = _sweep_rows({0.1: (list(25 + 0.1 * J), 0.05, SEVEN, HALF), 0.3: (list(22 + 0.1 * J), 0.04, HALF, HALF)},
                             meas=(23, 0.08, ALL, SEVEN), others={"dps": (DPS_PSNR, 0.02, ALL, ALL)}, task=task, noise=noise)
            sweeps.append(sdedit_sweet_spot(rs, task, float(noise)))
    fig = sweet_spot_figure(sweeps)
    axes = fig.get_axes()
    assert len(axes) == 4
    sweep_lines = {c.get_label(): c.lines[0] for c in axes[0].containers}  # one errorbar container per sweep
    assert len(sweep_lines) == 4
    assert list(sweep_lines["deblur, σ_y=0.05"].get_ydata()) == pytest.approx([25.35, 22.35])
    style = {label: (ln.get_color(), ln.get_linestyle()) for label, ln in sweep_lines.items()}
    # colour encodes the task, line style the noise level: every sweep unique, each encoding consistent
    assert len(set(style.values())) == 4
    assert style["deblur, σ_y=0.05"][0] == style["deblur, σ_y=0"][0] != style["box, σ_y=0.05"][0]
    assert style["deblur, σ_y=0.05"][1] == style["box, σ_y=0.05"][1] != style["deblur, σ_y=0"][1]
    fig = method_bars({"deblur": {"dps": Score(0.9, 0.05, 8), "sdedit": Score(0.5, 0.1, 8)}}, ylabel="mouth kept",
                      reference={"deblur": 1.0})
    heights = sorted(p.get_height() for p in fig.get_axes()[0].patches)
    assert heights == [0.5, 0.9]
    with pytest.raises(ValueError, match="empty"):
        method_bars({}, ylabel="x")


def _write_folder(folder, rs, reference):
    import csv
    import json

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "results.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        w.writeheader()
        w.writerows(dict(r, finished="2026-01-01T00:00:00") for r in rs.rows)  # rows without it count as cut off
    sel = {f"{t}|sigma={n}|{m}": p for (t, n, m), p in rs.selected.items()}
    (folder / "config.json").write_text(json.dumps({"prior": "faces", "dataset": "hand-made", "selected": sel,
                                                    "report_images": rs.report_images, "reference": reference}))


def test_report_cli_prints_every_test_and_word(tmp_path, capsys):
    from helpers.findings import main

    rs = _sweep_rows({0.1: (list(25 + 0.1 * J), 0.05, SEVEN, HALF)}, meas=(23, 0.08, ALL, SEVEN),
                     others={"dps": (DPS_PSNR, 0.02, ALL, ALL), "baseline": (24, 0.06, ALL, ALL)}, task="box")
    _write_folder(tmp_path / "f", rs, {"eyes_ok": [1, 0, 8], "mouth_ok": [1, 0, 8]})
    assert main([str(tmp_path / "f"), "--out", str(tmp_path / "findings.md")]) == 0
    text = (tmp_path / "findings.md").read_text()
    assert "Expectation (DPS below the measurement and the classical baseline): **holds**" in text
    assert "Finding 1" in text and "Finding 3" in text and text.count("p = ") >= 10
    assert "nan" not in text.lower()
    # a noise level with no rows: non-zero exit, and the levels present are listed
    assert main([str(tmp_path / "f"), "--noise", "0.3"]) == 1
    err = capsys.readouterr().err
    assert "0.3" in err and "noise levels present are 0.05" in err


def test_report_cli_on_a_folder_without_face_measures(tiny_prior, tmp_path, capsys):
    """An MNIST-like folder (no face measures) gives a clear error naming the folder, not NaN verdicts."""
    from helpers import evaluate as ev
    from helpers.findings import main, report
    from tests.test_evaluate import smooth_images

    cfg = ev.EvalConfig(prior="tiny", tasks=["deblur", "box"], noise_levels=[0.05], n_images=2, n_select=1, steps=3,
                        seeds=[0], sdedit_t0s=[0.3, 0.6], wiener_balances=[0.01], lpips_nets=[],
                        out_dir=str(tmp_path), progress=False)
    ev.run_evaluation(cfg, prior=tiny_prior, images=smooth_images(3))
    with pytest.raises(ValueError, match="faces prior") as err:
        report(tmp_path)
    assert str(tmp_path) in str(err.value) and "no face measures" in str(err.value)
    assert main([str(tmp_path)]) == 1
    assert "faces prior" in capsys.readouterr().err
    assert main([str(tmp_path / "missing")]) == 1
    assert "python -m helpers.evaluate" in capsys.readouterr().err
