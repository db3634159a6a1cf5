"""Checkers for the exercises of the chapter *DDPM basics*.

==============================  ==========================================================
checker                         what the student supplies
==============================  ==========================================================
:func:`check_alpha_bar`         ``(t, value)``: ᾱ_t of the schedule as a number
:func:`check_x0_estimate`       ``fn(x_t, eps, t) -> x̂_0`` (Tweedie's estimate, no clipping)
:func:`check_ddpm_step`         ``fn(x_t, eps, t, t_prev, noise) -> x_{t_prev}`` (any stride)
==============================  ==========================================================

Functions are called with float32 tensors of shape (B, C, H, W) and plain ``int`` time
indices (training indices 0 … T−1; ``t_prev = -1`` means the clean image, ᾱ_{-1} = 1).
Where the schedule clips x̂_0 to [-1, 1] inside a step, both the clipped and the
unclipped version of the step are accepted.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np
import torch

from ._checks import CheckResult, _as_tensor, _call, _close, _inputs, _max_diff, _report, _schedule
from ..schedule import NoiseSchedule


__all__ = ["check_alpha_bar", "check_x0_estimate", "check_ddpm_step"]


# ---------------------------------------------------------------------- ᾱ_t
def check_alpha_bar(t: int, value, schedule: Optional[NoiseSchedule] = None) -> CheckResult:
    """Is ``value`` equal to ᾱ_t = Π_{s=0}^{t} (1 − β_s) of ``schedule`` (default: linear 1e-4 → 0.02, T = 1000)?

    Accepts a relative error of 1e-3 (ᾱ_t read off a plot is not enough; a computed one is).
    """
    sched = _schedule(schedule)
    T = sched.num_train_timesteps
    if not isinstance(t, (int, np.integer)) or not 0 <= int(t) < T:
        return _report(False, f"t must be an integer training index between 0 and {T - 1}, got {t!r}.")
    t = int(t)
    if value is Ellipsis or value is None:
        return _report(False, "replace the `...` with your answer: ᾱ_t as one number.")
    try:
        v = float(value.item() if hasattr(value, "item") else value)
    except (TypeError, ValueError):
        return _report(False, f"give ᾱ_t as one number (e.g. float(...)), got {type(value).__name__}.")
    truth = sched.alpha_bar(t)

    def near(x: float) -> bool:
        return math.isclose(v, x, rel_tol=1e-3, abs_tol=1e-9)

    if near(truth):
        return _report(True, f"ᾱ_{t} = {truth:.6g}: after {t + 1} noising steps, √ᾱ_{t} = {truth ** 0.5:.3g} of the image's amplitude is left.")
    if near(float(sched.alphas[t])):
        hint = "that is α_t = 1 − β_t of the single step t; ᾱ_t is the product of α_s over s = 0 … t."
    elif t > 0 and near(sched.alpha_bar(t - 1)):
        hint = ("that is ᾱ_{t−1}: with index 0 as the first step, ᾱ_t has t + 1 factors, s = 0 … t "
                "(np.prod(alphas[: t + 1])).")
    elif t + 1 < T and near(sched.alpha_bar(t + 1)):
        hint = "that is ᾱ_{t+1}: the product runs over s = 0 … t only (t + 1 factors)."
    elif near(truth**0.5):
        hint = "that is √ᾱ_t, the scale of the signal in x_t; ᾱ_t is its square."
    elif near(1.0 - truth):
        hint = "that is 1 − ᾱ_t, the variance of the noise in x_t; ᾱ_t is the signal's share."
    elif near(float(torch.prod(sched.betas[: t + 1]))):
        hint = "you multiplied the β's; multiply the α_s = 1 − β_s instead."
    elif not 0.0 < v <= 1.0:
        hint = f"ᾱ_t is a product of numbers in (0, 1), so it lies in (0, 1]; you gave {v:.6g}."
    else:
        hint = (f"you gave {v:.6g}. ᾱ_t = Π_(s=0..t) (1 − β_s) with β_s = np.linspace(1e-4, 0.02, 1000)[s] "
                "(check the schedule's end points and the number of factors).")
    return _report(False, hint)


# ---------------------------------------------------------------------- x̂_0
_X0_TIMES = (0, 10, 250, 500, 999)


def check_x0_estimate(fn: Callable, schedule: Optional[NoiseSchedule] = None) -> CheckResult:
    """Does ``fn(x_t, eps, t)`` return Tweedie's estimate x̂_0 = (x_t − √(1 − ᾱ_t) ε) / √ᾱ_t (not clipped)?

    Checked on random tensors at t = 0, 10, 250, 500, 999 against
    :meth:`NoiseSchedule.predict_x0`.
    """
    sched = _schedule(schedule)
    wrong = []
    for k, t in enumerate(_X0_TIMES):
        x_t, eps, _ = _inputs(k)
        out, err = _call(fn, x_t.clone(), eps.clone(), t)
        if err:
            return _report(False, err + " (it is called as fn(x_t, eps, t): two (B, C, H, W) tensors and an int t).")
        try:
            mine = _as_tensor(out, x_t)
        except (TypeError, ValueError) as e:
            return _report(False, str(e))
        truth = sched.predict_x0(x_t.double(), eps.double(), t)
        if not _close(mine, truth):
            wrong.append((t, x_t.double(), eps.double(), mine))
    if not wrong:
        return _report(True, "x̂_0 = (x_t − √(1 − ᾱ_t) ε) / √ᾱ_t at every t tested.")

    def a(t):
        return sched.alpha_bar(t)

    variants = {
        "you did not divide by √ᾱ_t: x̂_0 = (x_t − √(1 − ᾱ_t) ε) / √ᾱ_t.":
            lambda x, e, t: x - (1 - a(t)) ** 0.5 * e,
        "the noise in x_t has standard deviation √(1 − ᾱ_t), not variance 1 − ᾱ_t: subtract √(1 − ᾱ_t) ε.":
            lambda x, e, t: (x - (1 - a(t)) * e) / a(t) ** 0.5,
        "divide by √ᾱ_t (the signal's scale), not by ᾱ_t.":
            lambda x, e, t: (x - (1 - a(t)) ** 0.5 * e) / a(t),
        "the formula is right but the estimate is clipped to [-1, 1]; return the plain estimate "
        "(the sampler clips it in a separate step).":
            lambda x, e, t: sched.predict_x0(x, e, t).clamp(-1, 1),
        "use ᾱ_t = alphas_cumprod[t] (the product of all α_s up to t), not the single-step α_t = 1 − β_t.":
            lambda x, e, t: (x - (1 - float(sched.alphas[t])) ** 0.5 * e) / float(sched.alphas[t]) ** 0.5,
        "off by one: use ᾱ_t = alphas_cumprod[t], not alphas_cumprod[t − 1].":
            lambda x, e, t: sched.predict_x0(x, e, t - 1) if t > 0 else sched.predict_x0(x, e, 0),
        "the sign is wrong: x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε, so subtract the noise.":
            lambda x, e, t: (x + (1 - a(t)) ** 0.5 * e) / a(t) ** 0.5,
    }
    for hint, f in variants.items():
        if all(_close(mine, f(x, e, t)) for t, x, e, mine in wrong):
            return _report(False, hint)
    t, x, e, mine = wrong[0]
    times = ", ".join(str(w[0]) for w in wrong)
    return _report(False, f"wrong at t = {times} (max |error| {_max_diff(mine, sched.predict_x0(x, e, t)):.3g} at t = {t}). "
                          "Solve x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε for x_0, with ε replaced by eps.")


# ---------------------------------------------------------------------- DDPM step
_DDPM_CASES = (  # (t, t_prev, kind)
    (500, 499, "unit"),
    (10, 9, "unit"),
    (999, 998, "unit"),
    (999, 899, "strided"),
    (500, 250, "strided"),
    (60, 0, "strided"),
    (0, -1, "last"),
)


def _ddpm_variant(sched: NoiseSchedule, kind: str, eps, t, t_prev, x, z, clip: bool) -> torch.Tensor:
    """Common mistakes in a DDPM step, for hints."""
    a_t, a_prev = sched.alpha_bar(t), sched.alpha_bar(t_prev)
    x0 = sched.predict_x0(x, eps, t)
    if clip:
        x0 = x0.clamp(-1, 1)
    beta_eff = 1 - a_t / a_prev
    mean = (a_prev**0.5 * beta_eff / (1 - a_t)) * x0 + ((a_t / a_prev) ** 0.5 * (1 - a_prev) / (1 - a_t)) * x
    var = sched.step_variance(t, t_prev)
    if kind == "no_noise":
        return mean
    if kind == "variance_not_std":
        return mean + (var * z if t > 0 else 0)
    if kind == "fixed_large":
        return mean + (beta_eff**0.5 * z if t > 0 else 0)
    if kind == "alpha_bar_minus_one_last":  # alphas_cumprod[-1] read as Python's last entry of the table
        if t_prev >= 0:
            return sched.ddpm_step(eps, t, t_prev, x, noise=z, clip_sample=clip).prev_sample
        return _last_wrapped(sched, eps, t, x, clip)
    if kind == "unit_beta":  # β_t of one step used for a strided step
        beta = float(sched.betas[t])
        a_prev_u = a_t / (1 - beta)
        mean_u = (a_prev_u**0.5 * beta / (1 - a_t)) * x0 + ((1 - beta) ** 0.5 * (1 - a_prev_u) / (1 - a_t)) * x
        var_u = (1 - a_prev_u) / (1 - a_t) * beta
        return mean_u + (var_u**0.5 * z if t > 0 else 0)
    raise ValueError(kind)


def _last_wrapped(sched, eps, t, x, clip):
    """The mean of the step t → −1 computed with ᾱ_{−1} = alphas_cumprod[−1] (Python's last entry)."""
    a_t, a_prev = sched.alpha_bar(t), float(sched.alphas_cumprod[-1])
    x0 = sched.predict_x0(x, eps, t)
    if clip:
        x0 = x0.clamp(-1, 1)
    beta_eff = 1 - a_t / a_prev
    return (a_prev**0.5 * beta_eff / (1 - a_t)) * x0 + ((a_t / a_prev) ** 0.5 * (1 - a_prev) / (1 - a_t)) * x


_DDPM_HINTS = {
    "no_noise": "you forgot the noise: x_{t_prev} = μ̃(x_t, x̂_0) + σ_t z, with z the `noise` argument "
                "(σ_t² = (1 − ᾱ_{t_prev}) / (1 − ᾱ_t) · β_t).",
    "variance_not_std": "you multiplied z by the variance σ_t²; multiply by the standard deviation σ_t = √σ_t².",
    "fixed_large": "you used β_t as the variance ('fixed_large'); this schedule uses the posterior variance "
                   "β̃_t = (1 − ᾱ_{t_prev}) / (1 − ᾱ_t) · β_t ('fixed_small').",
    "alpha_bar_minus_one_last": "the last step goes to t_prev = −1, where ᾱ_{−1} = 1 (the clean image). "
                                "alphas_cumprod[-1] is Python's *last* entry (ᾱ_999): use schedule.alpha_bar(t_prev), "
                                "which returns 1.0 for −1.",
    "unit_beta": "your step is right for t_prev = t − 1 but not for strides: use the effective "
                 "β = 1 − ᾱ_t / ᾱ_{t_prev} (and α = ᾱ_t / ᾱ_{t_prev}) in place of β_t and α_t.",
}


def check_ddpm_step(fn: Callable, schedule: Optional[NoiseSchedule] = None) -> CheckResult:
    """Does ``fn(x_t, eps, t, t_prev, noise)`` perform one ancestral DDPM step x_t → x_{t_prev}?

    The reference is :meth:`NoiseSchedule.ddpm_step` (posterior mean from the x̂_0 estimate, plus
    σ_t z with the schedule's variance; no noise when t = 0), on unit steps (t_prev = t − 1),
    strided steps (t_prev < t − 1, effective β = 1 − ᾱ_t/ᾱ_{t_prev}) and the last step 0 → −1.
    x̂_0 may be clipped to [-1, 1] or not.
    """
    sched = _schedule(schedule)
    wrong = []
    for k, (t, t_prev, kind) in enumerate(_DDPM_CASES):
        x_t, eps, z = _inputs(100 + k)
        out, err = _call(fn, x_t.clone(), eps.clone(), t, t_prev, z.clone())
        if err:
            return _report(False, err + " (it is called as fn(x_t, eps, t, t_prev, noise): tensors, two ints, a tensor).")
        try:
            mine = _as_tensor(out, x_t)
        except (TypeError, ValueError) as e:
            return _report(False, str(e))
        x, e, zz = x_t.double(), eps.double(), z.double()
        refs = [sched.ddpm_step(e, t, t_prev, x, noise=zz, clip_sample=c).prev_sample for c in (False, True)]
        if not any(_close(mine, r) for r in refs):
            wrong.append((t, t_prev, kind, x, e, zz, mine))
    if not wrong:
        return _report(True, "your step matches schedule.ddpm_step on unit steps, strided steps and the last step.")
    for variant, hint in _DDPM_HINTS.items():
        if all(any(_close(mine, _ddpm_variant(sched, variant, e, t, tp, x, zz, c)) for c in (False, True))
               for t, tp, kind, x, e, zz, mine in wrong):
            return _report(False, hint)
    kinds = {w[2] for w in wrong}
    if kinds == {"strided"}:
        return _report(False, _DDPM_HINTS["unit_beta"])
    if kinds == {"last"}:
        return _report(False, "only the last step (t = 0 → t_prev = −1) is wrong: there ᾱ_{t_prev} = 1 and no noise is added.")
    t, tp, _, x, e, zz, mine = wrong[0]
    ref = sched.ddpm_step(e, t, tp, x, noise=zz, clip_sample=False).prev_sample
    steps = ", ".join(f"{w[0]}→{w[1]}" for w in wrong)
    return _report(False, f"wrong on the steps {steps} (max |error| {_max_diff(mine, ref):.3g} on {t}→{tp}). "
                          "Compute x̂_0 first, then μ̃ = c_0 x̂_0 + c_t x_t with c_0 = √ᾱ_prev β/(1 − ᾱ_t), "
                          "c_t = √(ᾱ_t/ᾱ_prev)(1 − ᾱ_prev)/(1 − ᾱ_t), β = 1 − ᾱ_t/ᾱ_prev, and add σ_t z.")


