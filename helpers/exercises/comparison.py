"""Checkers for the exercises of the chapter *Comparison* (see :mod:`helpers.exercises` for the style).

==========================  ================================================================
checker                     what the student supplies
==========================  ================================================================
:func:`check_cost_ratio`    DPS's passes (forward + backward) per image / SDEdit's, from the rows
:func:`check_paired_t`      mean / standard error of the paired per-image differences a − b
==========================  ================================================================
"""

from __future__ import annotations

import math

import numpy as np

from ._checks import CheckResult, _report

__all__ = ["check_cost_ratio", "check_paired_t"]


def _number(value, what: str):
    if value is None or value is Ellipsis:
        return None, _report(False, f"replace the `...` with your {what} (a number).")
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None, _report(False, f"the {what} must be a number, got {type(value).__name__}.")
    if not math.isfinite(v):
        return None, _report(False, f"the {what} must be finite, got {v}.")
    return v, None


def _mean_field(rows, method: str, field: str) -> float:
    vals = [float(r[field]) for r in rows if r["method"] == method and r.get("status", "ok") == "ok" and r.get(field, "") != ""]
    if not vals:
        raise ValueError(f"the rows hold no {method!r} results with {field!r}: pass live['deblur'].rows")
    return float(np.mean(vals))


def check_cost_ratio(value, rows) -> CheckResult:
    """Is ``value`` = (DPS's forward + backward passes per image) / (SDEdit's forward passes per image)?

    ``rows``: the CSV rows of one task (``EvalResult.rows``) holding both methods.
    """
    dps = _mean_field(rows, "dps", "nfe") + _mean_field(rows, "dps", "backward")
    sdedit = _mean_field(rows, "sdedit", "nfe")
    expected = dps / sdedit
    v, err = _number(value, "ratio")
    if err is not None:
        return err
    if abs(v - expected) <= 1e-6 * expected:
        return _report(True, f"DPS needs {dps:.0f} passes per image, SDEdit {sdedit:.0f}: {expected:.1f}× as many.")
    if abs(v - _mean_field(rows, "dps", "nfe") / sdedit) <= 1e-6 * expected:
        return _report(False, "you counted DPS's forward passes only: every DPS step also runs a backward pass "
                              "through the network (the `backward` column).")
    if abs(v - 1 / expected) <= 1e-6 / expected:
        return _report(False, "that is SDEdit's cost over DPS's: the ratio asked for is DPS / SDEdit.")
    return _report(False, "add DPS's `nfe` and `backward` (means over the rows of method 'dps') and divide by "
                          "SDEdit's `nfe` (method 'sdedit').")


def check_paired_t(value, a: dict, b: dict) -> CheckResult:
    """Is ``value`` the paired t statistic of ``a − b`` (``{image: value}`` dicts) over their common images?"""
    common = sorted(set(a) & set(b))
    if len(common) < 2:
        raise ValueError("a and b need at least two images in common")
    d = np.array([a[i] - b[i] for i in common], dtype=float)
    se = d.std(ddof=1) / math.sqrt(len(d))
    expected = d.mean() / se
    v, err = _number(value, "t statistic")
    if err is not None:
        return err
    if abs(v - expected) <= 1e-3 * max(1.0, abs(expected)):
        return _report(True, f"mean difference {d.mean():.2f} dB, standard error {se:.2f} dB: t = {expected:.1f} "
                             f"over {len(d)} images.")
    if abs(v + expected) <= 1e-3 * max(1.0, abs(expected)):
        return _report(False, "the sign is flipped: take a − b (DPS minus ScoreALD).")
    if abs(v - d.mean() / d.std(ddof=1)) <= 1e-3 * max(1.0, abs(expected)):
        return _report(False, "divide by the standard error of the mean, std / √n, not by the standard deviation.")
    ua, ub = np.array([a[i] for i in common]), np.array([b[i] for i in common])
    unpaired = (ua.mean() - ub.mean()) / math.sqrt(ua.var(ddof=1) / len(ua) + ub.var(ddof=1) / len(ub))
    if abs(v - unpaired) <= 1e-3 * max(1.0, abs(unpaired)):
        return _report(False, "that is the unpaired t statistic: subtract per image first (a[i] − b[i]), then take "
                              "the mean and standard error of those differences.")
    return _report(False, "per image i in both: d_i = a[i] − b[i]; t = mean(d) / (std(d, ddof=1) / √n).")
