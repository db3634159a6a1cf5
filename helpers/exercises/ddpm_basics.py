"""Checkers for the exercises of the chapter *DDPM basics*.

==============================  ==========================================================
checker                         what the student supplies
==============================  ==========================================================
:func:`check_alpha_bar`         ``(t, value)``: ᾱ_t of the schedule as a number
:func:`check_x0_estimate`       ``fn(x_t, eps, t) -> x̂_0`` (Tweedie's estimate, no clipping)
:func:`check_ddpm_step`         ``fn(x_t, eps, t, t_prev, noise) -> x_{t_prev}`` (any stride)
:func:`check_loss_at`           ``fn(prior, x0, t, eps) -> L_simple`` at one noise level t
==============================  ==========================================================

Every checker takes the ``schedule`` the student computes with (the chapter passes its own); the
default, Ho et al.'s linear schedule, is only a default.

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


__all__ = ["check_alpha_bar", "check_x0_estimate", "check_ddpm_step", "check_loss_at", "loss_at"]


# ---------------------------------------------------------------------- ᾱ_t
def check_alpha_bar(t: int, value, schedule: Optional[NoiseSchedule] = None) -> CheckResult:
    """Is ``value`` equal to ᾱ_t = Π_{s=0}^{t} (1 − β_s) of ``schedule``?

    Pass the schedule the student computes with (a chapter passes its prior's ``prior.schedule`` or the
    schedule it built); the default is the linear one, β from 1e-4 to 0.02 over T = 1000.

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
        hint = (f"you gave {v:.6g}. ᾱ_t = Π_(s=0..t) (1 − β_s) with β_s = schedule.betas[s] of the schedule "
                "you were given (check its β's and the number of factors).")
    return _report(False, hint)


# ---------------------------------------------------------------------- x̂_0
def _x0_times(T: int) -> tuple:
    """t = 0, 10, T/4, T/2 and T − 1 (0, 10, 250, 500, 999 for T = 1000)."""
    return tuple(sorted({0, min(10, T - 1), T // 4, T // 2, T - 1}))


def check_x0_estimate(fn: Callable, schedule: Optional[NoiseSchedule] = None) -> CheckResult:
    """Does ``fn(x_t, eps, t)`` return Tweedie's estimate x̂_0 = (x_t − √(1 − ᾱ_t) ε) / √ᾱ_t (not clipped)?

    Checked on random tensors at t = 0, 10, T/4, T/2, T − 1 (0, 10, 250, 500, 999 for T = 1000) against
    :meth:`NoiseSchedule.predict_x0` of ``schedule`` (default: the linear schedule; pass the one the
    student's function uses, e.g. ``prior.schedule``).
    """
    sched = _schedule(schedule)
    wrong = []
    for k, t in enumerate(_x0_times(sched.num_train_timesteps)):
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
def _ddpm_cases(T: int) -> tuple:
    """(t, t_prev, kind) of the steps checked, relative to the schedule's T (for T = 1000: 500→499, 10→9,
    999→998, 999→899, 500→250, 60→0, the last step 0→−1 and the strided last step 60→−1)."""
    h, last = T // 2, T - 1
    return (
        (h, h - 1, "unit"),
        (10, 9, "unit"),
        (last, last - 1, "unit"),
        (last, last - max(T // 10, 2), "strided"),
        (h, T // 4, "strided"),
        (max(T * 6 // 100, 2), 0, "strided"),
        (0, -1, "last"),
        (max(T * 6 // 100, 2), -1, "last"),
    )


def _ddpm_reference(sched: NoiseSchedule, eps, t, t_prev, x, z, clip: bool) -> torch.Tensor:
    """The right step: :meth:`NoiseSchedule.ddpm_step`, with no noise on the last step (to t_prev = −1)."""
    return sched.ddpm_step(eps, t, t_prev, x, noise=z if t_prev >= 0 else None, clip_sample=clip).prev_sample


def _ddpm_variant(sched: NoiseSchedule, kind: str, eps, t, t_prev, x, z, clip: bool,
                  noise_test: str = "t_prev") -> torch.Tensor:
    """Common mistakes in a DDPM step, for hints. ``noise_test``: when the student adds noise, "t_prev"
    (every step but the one to t_prev = −1) or "t" (every step from t > 0, as a step written for unit strides)."""
    noisy = t_prev >= 0 if noise_test == "t_prev" else t > 0
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
        return mean + (var * z if noisy else 0)
    if kind == "fixed_large":
        return mean + (beta_eff**0.5 * z if noisy else 0)
    if kind == "alpha_bar_minus_one_last":  # alphas_cumprod[-1] read as Python's last entry of the table
        if t_prev >= 0:
            return _ddpm_reference(sched, eps, t, t_prev, x, z, clip)
        return _last_wrapped(sched, eps, t, x, clip)
    if kind == "unit_beta":  # β_t of one step used for a strided step
        beta = float(sched.betas[t])
        a_prev_u = a_t / (1 - beta)
        mean_u = (a_prev_u**0.5 * beta / (1 - a_t)) * x0 + ((1 - beta) ** 0.5 * (1 - a_prev_u) / (1 - a_t)) * x
        var_u = (1 - a_prev_u) / (1 - a_t) * beta
        return mean_u + (var_u**0.5 * z if noisy else 0)
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
    σ_t z with the schedule's variance; no noise on the last step, to t_prev = −1, the clean image),
    on unit steps (t_prev = t − 1), strided steps (t_prev < t − 1, effective β = 1 − ᾱ_t/ᾱ_{t_prev}) and
    the last step, from t = 0 and strided from t > 0. x̂_0 may be clipped to [-1, 1] or not.
    ``schedule``: the schedule the student's function uses (default linear; a chapter passes its own).
    """
    sched = _schedule(schedule)
    wrong = []
    for k, (t, t_prev, kind) in enumerate(_ddpm_cases(sched.num_train_timesteps)):
        x_t, eps, z = _inputs(100 + k)
        out, err = _call(fn, x_t.clone(), eps.clone(), t, t_prev, z.clone())
        if err:
            return _report(False, err + " (it is called as fn(x_t, eps, t, t_prev, noise): tensors, two ints, a tensor).")
        try:
            mine = _as_tensor(out, x_t)
        except (TypeError, ValueError) as e:
            return _report(False, str(e))
        x, e, zz = x_t.double(), eps.double(), z.double()
        refs = [_ddpm_reference(sched, e, t, t_prev, x, zz, c) for c in (False, True)]
        if not any(_close(mine, r) for r in refs):
            wrong.append((t, t_prev, kind, x, e, zz, mine))
    if not wrong:
        return _report(True, "your step matches schedule.ddpm_step on unit steps, strided steps and the last step.")
    kinds = {w[2] for w in wrong}
    hints = dict(_DDPM_HINTS)
    if kinds == {"last"}:  # only the step to the clean image is wrong: say so before any other hint
        hints = {"alpha_bar_minus_one_last": hints["alpha_bar_minus_one_last"]}
    for variant, hint in hints.items():
        if all(any(_close(mine, _ddpm_variant(sched, variant, e, t, tp, x, zz, c, rule))
                   for c in (False, True) for rule in ("t_prev", "t"))
               for t, tp, kind, x, e, zz, mine in wrong):
            return _report(False, hint)
    if kinds == {"strided"}:
        return _report(False, _DDPM_HINTS["unit_beta"])
    if kinds == {"last"}:
        return _report(False, "only the last step (to t_prev = −1, the clean image) is wrong: there ᾱ_{t_prev} = 1 and "
                              "no noise is added. Test for the last step with t_prev == −1, not t == 0: a strided "
                              "sampler reaches the clean image from a t > 0.")
    t, tp, _, x, e, zz, mine = wrong[0]
    ref = _ddpm_reference(sched, e, t, tp, x, zz, False)
    steps = ", ".join(f"{w[0]}→{w[1]}" for w in wrong)
    return _report(False, f"wrong on the steps {steps} (max |error| {_max_diff(mine, ref):.3g} on {t}→{tp}). "
                          "Compute x̂_0 first, then μ̃ = c_0 x̂_0 + c_t x_t with c_0 = √ᾱ_prev β/(1 − ᾱ_t), "
                          "c_t = √(ᾱ_t/ᾱ_prev)(1 − ᾱ_prev)/(1 − ᾱ_t), β = 1 − ᾱ_t/ᾱ_prev, and add σ_t z.")




# ---------------------------------------------------------------------- L_simple at one t
def loss_at(prior, x0: torch.Tensor, t: int, eps: torch.Tensor) -> float:
    """L_simple of ``prior``'s network at the noise level ``t``: mean over the batch and pixels of
    (ε − ε_θ(√ᾱ_t x_0 + √(1 − ᾱ_t) ε, t))², with ᾱ_t of ``prior.schedule``."""
    x0 = torch.as_tensor(x0).to(device=prior.device, dtype=prior.dtype)
    eps = torch.as_tensor(eps).to(device=prior.device, dtype=prior.dtype)
    with torch.no_grad():
        x_t = prior.schedule.add_noise(x0, eps, int(t))
        return float(((prior.eps(x_t, int(t)) - eps) ** 2).mean())


def check_loss_at(fn: Callable, prior=None, schedule: Optional[NoiseSchedule] = None) -> CheckResult:
    """Does ``fn(prior, x0, t, eps)`` return the training loss L_simple of ``prior`` at one noise level t?

    Compared with :func:`loss_at` at t = 0, T/2 and T − 1 on random batches. The default prior is a
    small exact Gaussian prior on ``schedule`` (default linear), so the check is instant; pass the
    chapter's ``prior`` to check on it.
    """
    from ._checks import _as_number
    from .unconditional import _small_gaussian_prior

    prior = _small_gaussian_prior(schedule) if prior is None else prior
    T = prior.schedule.num_train_timesteps
    wrong = []
    for k, t in enumerate((0, T // 2, T - 1)):
        g = torch.Generator().manual_seed(300 + k)
        x0 = (0.5 * torch.randn((3, *prior.image_shape), generator=g)).clamp(-1, 1).to(prior.dtype)
        eps = torch.randn((3, *prior.image_shape), generator=g).to(prior.dtype)
        out, err = _call(fn, prior, x0.clone(), t, eps.clone())
        if err:
            return _report(False, err + " (it is called as fn(prior, x0, t, eps): the prior, two tensors, an int t).")
        if out is None or out is Ellipsis:
            return _report(False, "your function returned None: `return` the loss, one number.")
        v = _as_number(out)
        if v is None:
            return _report(False, f"return one number (the mean over batch and pixels), got {type(out).__name__} "
                                  f"of shape {tuple(getattr(out, 'shape', ()))}.")
        ref = loss_at(prior, x0, t, eps)
        if not math.isclose(v, ref, rel_tol=1e-3, abs_tol=1e-6):
            wrong.append((t, x0, eps, v, ref))
    if not wrong:
        return _report(True, "your loss matches L_simple at t = 0, T/2 and T − 1: the mean squared error between the "
                             "noise and the network's prediction of it, at one noise level.")

    def variant(kind, x0, eps, t):
        a = prior.schedule.alpha_bar(t)
        with torch.no_grad():
            if kind == "no_sqrt":
                x_t = a * x0 + (1 - a) * eps
                return float(((prior.eps(x_t, t) - eps) ** 2).mean())
            x_t = prior.schedule.add_noise(x0, eps, t)
            e = prior.eps(x_t, t)
            if kind == "x0_target":
                return float(((prior.schedule.predict_x0(x_t, e, t) - x0) ** 2).mean())
            if kind == "sum":
                return float(((e - eps) ** 2).sum())
            if kind == "no_square":
                return float((e - eps).abs().mean())
        raise ValueError(kind)

    hints = {
        "no_sqrt": "noise x_0 with the square roots: x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε (prior.schedule.add_noise).",
        "x0_target": "L_simple compares noises, ε_θ(x_t, t) with ε, not x̂_0 with x_0 (the two differ by the "
                     "weight (1 − ᾱ_t)/ᾱ_t).",
        "sum": "take the mean over batch and pixels, not the sum.",
        "no_square": "square the error: L_simple is a mean *squared* error.",
    }
    for kind, hint in hints.items():
        if all(math.isclose(v, variant(kind, x0, eps, t), rel_tol=1e-3, abs_tol=1e-6) for t, x0, eps, v, _ in wrong):
            return _report(False, hint)
    t, _, _, v, ref = wrong[0]
    return _report(False, f"at t = {t} your loss is {v:.4g}, L_simple is {ref:.4g}. Noise x0 to level t with eps "
                          "(prior.schedule.add_noise), ask prior.eps(x_t, t) for the noise and average (ε_θ − ε)².")
