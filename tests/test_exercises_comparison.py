"""The comparison chapter's checkers accept the right answers and explain the typical wrong ones."""

import math

import numpy as np
import pytest

from helpers.exercises.comparison import check_cost_ratio, check_paired_t


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


def test_paired_t():
    rng = np.random.default_rng(1)
    base = rng.normal(25, 3, size=12)
    a = {i: float(v + 1 + 0.5 * rng.standard_normal()) for i, v in enumerate(base)}
    b = {i: float(v) for i, v in enumerate(base)}
    b[99] = 0.0  # an image only b has: ignored
    d = np.array([a[i] - b[i] for i in range(12)])
    t = d.mean() / (d.std(ddof=1) / math.sqrt(12))
    assert t > 4  # pairing removes the shared per-image spread
    assert check_paired_t(t, a, b)
    assert "sign" in check_paired_t(-t, a, b).message
    assert "standard error" in check_paired_t(d.mean() / d.std(ddof=1), a, b).message
    ua, ub = np.array([a[i] for i in range(12)]), np.array([b[i] for i in range(12)])
    unpaired = (ua.mean() - ub.mean()) / math.sqrt(ua.var(ddof=1) / 12 + ub.var(ddof=1) / 12)
    assert abs(unpaired) < 2  # unpaired, the same difference looks insignificant
    assert "unpaired" in check_paired_t(unpaired, a, b).message
    assert not check_paired_t(..., a, b)
