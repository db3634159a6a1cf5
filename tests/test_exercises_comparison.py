"""The comparison chapter's checkers accept the right answers and explain the typical wrong ones."""

import math

import numpy as np
import pytest

from helpers.exercises.comparison import check_cost_ratio, check_paired_t, check_part_recovery
from helpers.findings import ResultSet, part_recovery
from helpers.stats import paired_t_test


def _rows():
    rows = []
    for i in range(3):
        rows.append({"method": "dps", "nfe": "100", "backward": "100", "status": "ok"})
        rows.append({"method": "sdedit", "nfe": "10", "backward": "0", "status": "ok"})
        rows.append({"method": "measurement", "nfe": "0", "backward": "0", "status": "ok"})
    return rows


def test_cost_ratio():
    rows = _rows()
    assert check_cost_ratio(20, rows)
    res = check_cost_ratio(10, rows)
    assert not res and "backward" in res.message
    assert "DPS / SDEdit" in check_cost_ratio(1 / 20, rows).message
    assert not check_cost_ratio(..., rows)
    assert not check_cost_ratio("twenty", rows)
    with pytest.raises(ValueError, match="no 'dps' results"):
        check_cost_ratio(20, [r for r in rows if r["method"] != "dps"])


def _paired_data():
    rng = np.random.default_rng(1)
    base = rng.normal(25, 3, size=12)
    a = {i: float(v + 1 + 0.5 * rng.standard_normal()) for i, v in enumerate(base)}
    b = {i: float(v) for i, v in enumerate(base)}
    b[99] = 0.0  # an image only b has: ignored
    return a, b


def test_paired_t():
    a, b = _paired_data()
    d = np.array([a[i] - b[i] for i in range(12)])
    t = d.mean() / (d.std(ddof=1) / math.sqrt(12))
    assert t > 4  # pairing removes the shared per-image spread
    assert check_paired_t(t, a, b)
    assert "sign" in check_paired_t(-t, a, b).message
    assert "standard error" in check_paired_t(d.mean() / d.std(ddof=1), a, b).message
    assert "ddof=1" in check_paired_t(d.mean() / (d.std(ddof=0) / math.sqrt(12)), a, b).message
    ua, ub = np.array([a[i] for i in range(12)]), np.array([b[i] for i in range(12)])
    unpaired = (ua.mean() - ub.mean()) / math.sqrt(ua.var(ddof=1) / 12 + ub.var(ddof=1) / 12)
    assert abs(unpaired) < 2  # unpaired, the same difference looks insignificant
    assert "unpaired" in check_paired_t(unpaired, a, b).message
    assert not check_paired_t(..., a, b)
    assert not check_paired_t(True, a, b)


def test_paired_t_matches_helpers_stats():
    """The exercise's t statistic is the one of helpers.stats.paired_t_test (what the chapter points to)."""
    a, b = _paired_data()
    ref = paired_t_test([a[i] for i in range(12)], [b[i] for i in range(12)])
    res = check_paired_t(ref.statistic, a, b)
    assert res and "paired_t_test" in res.message
    assert check_paired_t(ref.statistic * (1 + 1e-5), a, b)      # rounding is fine
    assert not check_paired_t(ref.statistic * 1.01, a, b)


def _part_results(kept: dict, n_images: int = 24, part: str = "eyes", task: str = "box_eyes"):
    """A part_recovery result over synthetic rows: ``kept[method]`` = number of images (of n_images) kept."""
    rows, selected = [], {}
    for m, k in kept.items():
        params = {"measurement": "pinv", "baseline": "biharmonic", "sdedit": "t0=0.2;steps=10",
                  "score_ald": "lambda=1;rule=langevin;steps=10", "dps": "zeta=1;steps=10"}[m]
        selected[(task, "0.05", m)] = params
        for i in range(n_images):
            rows.append({"method": m, "params": params, "task": task, "noise": "0.05", "image": str(i), "seed": "0",
                         "status": "ok", f"{part}_ok": "1" if i < k else "0"})
    return part_recovery(ResultSet(rows, selected, list(range(n_images))), task, 0.05, part)


def test_part_recovery_at_chance():
    res = _part_results({"measurement": 0, "baseline": 1, "sdedit": 3, "score_ald": 2, "dps": 4})
    assert res["chance"] == pytest.approx(1 / 8)
    assert res["vs_chance"]["dps"].p_value > 0.05           # 4 of 24 against 1/8: a guess could do that
    assert check_part_recovery(1 / 8, "dps", False, res)
    assert check_part_recovery(0.125, "DPS", False, res)     # the display name is accepted
    # wrong answers, each with a hint
    assert "fraction" in check_part_recovery(12.5, "dps", False, res).message
    assert "number of eye types" in check_part_recovery(8, "dps", False, res).message
    assert "1 / (number of types)" in check_part_recovery(1 / 13, "dps", False, res).message
    assert "more often" in check_part_recovery(1 / 8, "sdedit", False, res).message
    assert "one of the methods" in check_part_recovery(1 / 8, "ddpm", False, res).message
    msg = check_part_recovery(1 / 8, "dps", True, res).message
    assert msg.startswith("Not yet") and "p_value" in msg
    assert "True or False" in check_part_recovery(1 / 8, "dps", "no", res).message
    for missing in ((..., "dps", False), (1 / 8, ..., False), (1 / 8, "dps", ...)):
        assert not check_part_recovery(*missing, res)


def test_part_recovery_above_chance_and_ties():
    res = _part_results({"measurement": 0, "sdedit": 2, "score_ald": 12, "dps": 12}, part="mouth", task="box")
    assert res["chance"] == pytest.approx(1 / 13)
    assert res["vs_chance"]["dps"].p_value < 0.05
    assert check_part_recovery(1 / 13, "dps", True, res)
    assert check_part_recovery(1 / 13, "score_ald", True, res)   # tied at the top: either is right
    assert not check_part_recovery(1 / 13, "dps", False, res)
    assert not check_part_recovery(1 / 8, "dps", True, res)
    with pytest.raises(ValueError, match="part_recovery"):
        check_part_recovery(1 / 13, "dps", True, {"chance": 1 / 13})
