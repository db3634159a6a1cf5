"""Checkers for the exercises of the chapter *Comparison* (see :mod:`helpers.exercises` for the style).

===============================  ================================================================
checker                          what the student supplies
===============================  ================================================================
:func:`check_cost_ratio`         DPS's passes (forward + backward) per image / SDEdit's, from the rows
:func:`check_paired_t`           mean / standard error of the paired per-image differences a − b
                                 (the statistic of :func:`helpers.stats.paired_t_test`)
:func:`check_part_recovery`      for a box over a face part: the part's chance level, the method
                                 that keeps its type most often, and whether that rate is above
                                 chance (exact binomial test of :func:`helpers.findings.part_recovery`)
===============================  ================================================================
"""

from __future__ import annotations

import math

import numpy as np

from ..stats import ALPHA, HOLDS, format_p, paired_t_test, verdict
from ._checks import CheckResult, _report

__all__ = ["check_cost_ratio", "check_paired_t", "check_part_recovery"]


def _number(value, what: str):
    if value is None or value is Ellipsis:
        return None, _report(False, f"replace the `...` with your {what} (a number).")
    if isinstance(value, bool):
        return None, _report(False, f"the {what} must be a number, got {value!r}.")
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
    """Is ``value`` the paired t statistic of ``a − b`` (``{image: value}`` dicts) over their common images?

    The expected value is :func:`helpers.stats.paired_t_test`'s statistic, mean(d) / (std(d, ddof=1) / √n).
    """
    common = sorted(set(a) & set(b))
    if len(common) < 2:
        raise ValueError("a and b need at least two images in common")
    ua = np.array([a[i] for i in common], dtype=float)
    ub = np.array([b[i] for i in common], dtype=float)
    d = ua - ub
    ref = paired_t_test(ua, ub, "two-sided")
    expected = ref.statistic
    se = d.std(ddof=1) / math.sqrt(len(d))
    v, err = _number(value, "t statistic")
    if err is not None:
        return err
    if not math.isfinite(expected):  # identical differences: no spread, t is ±inf
        return _report(False, "every per-image difference is the same, so their standard error is 0 and t is "
                              "infinite: pick two methods whose differences vary.")
    tol = 1e-3 * max(1.0, abs(expected))
    if abs(v - expected) <= tol:
        return _report(True, f"mean difference {d.mean():.2f} dB, standard error {se:.2f} dB: t = {expected:.1f} "
                             f"over {len(d)} images ({len(d) - 1} degrees of freedom, two-sided {format_p(ref.p_value)}; "
                             "helpers.stats.paired_t_test gives the same).")
    if abs(v + expected) <= tol:
        return _report(False, "the sign is flipped: take a − b (DPS minus ScoreALD).")
    if abs(v - d.mean() / d.std(ddof=1)) <= tol:
        return _report(False, "divide by the standard error of the mean, std / √n, not by the standard deviation.")
    if abs(v - d.mean() / (d.std(ddof=0) / math.sqrt(len(d)))) <= tol:
        return _report(False, "use the sample standard deviation, std(d, ddof=1), as helpers.stats.paired_t_test does.")
    unpaired = (ua.mean() - ub.mean()) / math.sqrt(ua.var(ddof=1) / len(ua) + ub.var(ddof=1) / len(ub))
    if abs(v - unpaired) <= 1e-3 * max(1.0, abs(unpaired)):
        return _report(False, "that is the unpaired t statistic: subtract per image first (a[i] − b[i]), then take "
                              "the mean and standard error of those differences.")
    return _report(False, "per image i in both: d_i = a[i] − b[i]; t = mean(d) / (std(d, ddof=1) / √n).")


def _method_key(answer, methods) -> str | None:
    """The method key ``answer`` names (a key such as "dps" or a display name such as "DPS (ζ′ = 1)")."""
    from ..evaluate import METHOD_NAMES

    if not isinstance(answer, str):
        return None
    text = answer.strip().lower()
    for m in methods:
        names = {m.lower(), m.replace("_", "").lower(), str(METHOD_NAMES.get(m, m)).lower()}
        if text in names or text.split(" (")[0] in names:
            return m
    return None


def check_part_recovery(chance, best_method, above_chance, result: dict) -> CheckResult:
    """Exercise 3: read a :func:`helpers.findings.part_recovery` result (a box over a face part).

    The student supplies ``chance``, the chance level of a uniform guess of the part's type (a
    fraction); ``best_method``, the method (key such as ``"dps"``, or its name) that keeps the
    part's type most often (any of several tied at the top is right); ``above_chance``, True or
    False: is that method's rate significantly above chance (the result's exact one-sided binomial
    test, ``result["vs_chance"]``, at :data:`helpers.stats.ALPHA`)?
    """
    for key in ("chance", "methods", "vs_chance", "part"):
        if key not in result:
            raise ValueError(f"result lacks {key!r}: pass the dict returned by helpers.findings.part_recovery")
    part, true_chance = result["part"], float(result["chance"])
    noun = {"eyes": "eye"}.get(part, part)
    n_types = round(1 / true_chance)
    c, err = _number(chance, "chance level")
    if err is not None:
        return err
    if abs(c - true_chance) > 1e-3:
        if abs(c - 100 * true_chance) < 0.1:
            return _report(False, "give the chance level as a fraction (between 0 and 1), not in per cent.")
        if c > 1 and abs(c - n_types) < 1e-9:
            return _report(False, f"that is the number of {noun} types; a uniform guess among them is right with "
                                  "probability one over that number.")
        return _report(False, f"a uniform guess among the {noun} types is right with probability 1 / (number of types); "
                              f"helpers.findings.PART_CLASSES[{part!r}] holds the number.")
    rates = {m: s.mean for m, s in result["methods"].items() if math.isfinite(s.mean)}
    if not rates:
        raise ValueError("the result has no finite kept rate for any method")
    if best_method is None or best_method is Ellipsis:
        return _report(False, "replace the `...` of best_method with a method key such as 'dps'.")
    m = _method_key(best_method, rates)
    if m is None:
        return _report(False, f"best_method must name one of the methods of the result: {sorted(rates)}.")
    top = max(rates.values())
    if rates[m] < top - 1e-12:
        return _report(False, f"{m} keeps the {noun} type in {rates[m]:.0%} of the faces; another method keeps it more "
                              "often: compare result['methods'][method].mean over the methods.")
    if above_chance is None or above_chance is Ellipsis:
        return _report(False, "replace the `...` of above_chance with True or False.")
    if not isinstance(above_chance, (bool, np.bool_)):
        return _report(False, f"above_chance must be True or False, got {above_chance!r}.")
    test = result["vs_chance"].get(m)
    if test is None:
        raise ValueError(f"the result has no test against chance for {m!r}")
    expected = verdict(test, "greater") == HOLDS
    if bool(above_chance) != expected:
        return _report(False, f"read result['vs_chance'][{m!r}].p_value (the exact one-sided binomial test against "
                              f"chance) and compare it with the level {ALPHA:g}: below it, the rate is significantly "
                              "above chance; otherwise the data cannot tell it from a guess.")
    k, n = result["counts"][m] if "counts" in result else (None, test.n)
    kept = f"{k} of {n}" if k is not None else f"{rates[m]:.0%}"
    if expected:
        tail = "significantly above chance: something visible tells this method which type was there."
    else:
        tail = ("not distinguishable from a uniform guess, as expected when nothing visible tells which type was there "
                "(a box that hides the whole part, drawn independently of the rest).")
    return _report(True, f"chance 1/{n_types} = {true_chance:.1%}; {m} keeps the {noun} type in {kept} "
                         f"({rates[m]:.0%}), exact binomial test {format_p(test.p_value)}: {tail}")
