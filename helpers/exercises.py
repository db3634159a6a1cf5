"""Checkers for the exercises of the chapters *DDPM basics* and *Unconditional generation*.

Each checker compares a student's number or function with the reference code of
:mod:`helpers.schedule` / :mod:`helpers.samplers`, prints ``Correct: ...`` or
``Not yet: <hint>``, and returns a :class:`CheckResult`, which is truthy exactly
when the answer is correct (``assert check_x0_estimate(my_fn)`` works). In Jupyter
the result itself displays nothing, so the printed sentence is the only output.

==============================  ==========================================================
checker                         what the student supplies
==============================  ==========================================================
:func:`check_alpha_bar`         ``(t, value)``: ᾱ_t of the linear schedule as a number
:func:`check_x0_estimate`       ``fn(x_t, eps, t) -> x̂_0`` (Tweedie's estimate, no clipping)
:func:`check_ddpm_step`         ``fn(x_t, eps, t, t_prev, noise) -> x_{t_prev}`` (any stride)
:func:`check_ddim_step`         ``fn(x_t, eps, t, t_prev) -> x_{t_prev}`` (DDIM with η = 0)
:func:`check_ddim_deterministic` ``fn(prior, x_T, num_steps) -> x_0`` (a DDIM η = 0 loop)
==============================  ==========================================================

Functions are called with float32 tensors of shape (B, C, H, W) and plain ``int`` time
indices (training indices 0 … T−1; ``t_prev = -1`` means the clean image, ᾱ_{-1} = 1).
Where the schedule clips x̂_0 to [-1, 1] inside a step, both the clipped and the
unclipped version of the step are accepted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from .schedule import NoiseSchedule

__all__ = [
    "CheckResult",
    "check_alpha_bar",
    "check_x0_estimate",
    "check_ddpm_step",
    "check_ddim_step",
    "check_ddim_deterministic",
]


@dataclass
class CheckResult:
    """Outcome of a checker: ``passed`` (also its truth value) and the printed ``message``."""

    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def __eq__(self, other) -> bool:
        if isinstance(other, bool):
            return self.passed is other
        if isinstance(other, CheckResult):
            return (self.passed, self.message) == (other.passed, other.message)
        return NotImplemented

    __hash__ = None  # mutable dataclass with a custom __eq__

    def __repr__(self) -> str:
        return f"CheckResult(passed={self.passed})"

    def _ipython_display_(self) -> None:  # the message was printed already
        pass


def _report(passed: bool, text: str) -> CheckResult:
    message = ("Correct: " if passed else "Not yet: ") + text
    print(message)
    return CheckResult(passed, message)


def _schedule(schedule: Optional[NoiseSchedule]) -> NoiseSchedule:
    return NoiseSchedule.linear() if schedule is None else schedule


def _as_tensor(out, like: torch.Tensor) -> torch.Tensor:
    """The student's output as a float64 tensor (accepts tensors, arrays and StepOutput-like objects)."""
    if hasattr(out, "prev_sample"):
        out = out.prev_sample
    if out is None:
        raise TypeError("your function returned None: replace the `...` with your code and `return` the result.")
    t = torch.as_tensor(np.asarray(out.detach().cpu() if torch.is_tensor(out) else out), dtype=torch.float64)
    if tuple(t.shape) != tuple(like.shape):
        raise ValueError(f"your function returned shape {tuple(t.shape)}, expected {tuple(like.shape)} (the shape of x_t)")
    return t


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    return bool(torch.allclose(a.double(), b.double(), rtol=rtol, atol=atol))


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max())


def _call(fn: Callable, *args):
    """Call the student's function; return (output, None) or (None, hint)."""
    try:
        return fn(*args), None
    except Exception as err:  # the student's code: report, never raise
        return None, f"your function raised {type(err).__name__}: {err}"


def _inputs(seed: int, shape=(2, 1, 4, 4)):
    g = torch.Generator().manual_seed(seed)
    x_t = torch.randn(shape, generator=g)
    eps = torch.randn(shape, generator=g)
    noise = torch.randn(shape, generator=g)
    return x_t, eps, noise


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


# ---------------------------------------------------------------------- DDIM step
_DDIM_CASES = ((500, 499), (999, 979), (500, 250), (60, 0), (0, -1))


def check_ddim_step(fn: Callable, schedule: Optional[NoiseSchedule] = None) -> CheckResult:
    """Does ``fn(x_t, eps, t, t_prev)`` perform one deterministic DDIM step (η = 0)?

    x_{t_prev} = √ᾱ_{t_prev} x̂_0 + √(1 − ᾱ_{t_prev}) ε, checked against
    :meth:`NoiseSchedule.ddim_step` with ``eta=0`` (x̂_0 clipped or not).
    """
    sched = _schedule(schedule)
    wrong = []
    for k, (t, t_prev) in enumerate(_DDIM_CASES):
        x_t, eps, _ = _inputs(200 + k)
        out, err = _call(fn, x_t.clone(), eps.clone(), t, t_prev)
        if err:
            return _report(False, err + " (it is called as fn(x_t, eps, t, t_prev): two tensors and two ints).")
        try:
            mine = _as_tensor(out, x_t)
        except (TypeError, ValueError) as e:
            return _report(False, str(e))
        x, e = x_t.double(), eps.double()
        refs = [sched.ddim_step(e, t, t_prev, x, eta=0.0, clip_sample=c).prev_sample for c in (False, True)]
        if not any(_close(mine, r) for r in refs):
            wrong.append((t, t_prev, x, e, mine))
    if not wrong:
        return _report(True, "your DDIM step (η = 0) matches schedule.ddim_step: no noise, the predicted ε is reused.")

    def variant(kind, x, e, t, tp, clip):
        a_p = sched.alpha_bar(tp)
        x0 = sched.predict_x0(x, e, t)
        x0 = x0.clamp(-1, 1) if clip else x0
        if kind == "ddpm_mean":
            return sched.ddpm_step(e, t, tp, x, noise=None, clip_sample=clip).prev_sample
        if kind == "no_sqrt":
            return a_p**0.5 * x0 + (1 - a_p) * e
        if kind == "no_direction":
            return a_p**0.5 * x0
        if kind == "last_entry":
            a_p = float(sched.alphas_cumprod[tp]) if tp < 0 else a_p
            return a_p**0.5 * x0 + (1 - a_p) ** 0.5 * e
        raise ValueError(kind)

    hints = {
        "ddpm_mean": "that is the DDPM posterior mean (ddpm_step without noise). DDIM is a different update: "
                     "x_{t_prev} = √ᾱ_{t_prev} x̂_0 + √(1 − ᾱ_{t_prev}) ε_θ, the predicted noise put back at the new level.",
        "no_sqrt": "the noise direction is √(1 − ᾱ_{t_prev}) ε (a standard deviation), not (1 − ᾱ_{t_prev}) ε.",
        "no_direction": "you kept only √ᾱ_{t_prev} x̂_0; add the direction pointing to x_t, √(1 − ᾱ_{t_prev}) ε.",
        "last_entry": "at the last step t_prev = −1 and ᾱ_{−1} = 1; alphas_cumprod[-1] is Python's last entry: "
                      "use schedule.alpha_bar(t_prev).",
    }
    for kind, hint in hints.items():
        if all(any(_close(mine, variant(kind, x, e, t, tp, c)) for c in (False, True)) for t, tp, x, e, mine in wrong):
            return _report(False, hint)
    t, tp, x, e, mine = wrong[0]
    ref = sched.ddim_step(e, t, tp, x, eta=0.0, clip_sample=False).prev_sample
    steps = ", ".join(f"{w[0]}→{w[1]}" for w in wrong)
    return _report(False, f"wrong on the steps {steps} (max |error| {_max_diff(mine, ref):.3g} on {t}→{tp}). "
                          "DDIM with η = 0: x_{t_prev} = √ᾱ_{t_prev} x̂_0 + √(1 − ᾱ_{t_prev}) ε, no random noise.")


# ---------------------------------------------------------------------- DDIM loop
def _small_gaussian_prior():
    """An exact 1×4×4 Gaussian prior (fast; its ε is known in closed form)."""
    from .priors import GaussianPrior

    d = 16
    idx = torch.arange(d, dtype=torch.float64)
    cov = 0.1 * torch.exp(-((idx[:, None] - idx[None, :]) ** 2) / 8.0) + 0.01 * torch.eye(d, dtype=torch.float64)
    mean = 0.3 * torch.sin(idx / 3.0)
    return GaussianPrior(mean, cov, (1, 4, 4))


def check_ddim_deterministic(fn: Callable, prior=None, num_steps: int = 10, seed: int = 0) -> CheckResult:
    """Is ``fn(prior, x_T, num_steps)`` a deterministic DDIM (η = 0) sampler?

    Checks that (1) two calls with the same x_T return the same image, (2) a different x_T gives a
    different image, and (3) the image equals ``sample_ddim(prior, eta=0, seed=seed)`` started from
    the same x_T (``prior.schedule.timesteps(num_steps)``, final step to t_prev = −1, result
    clamped to [-1, 1]). The default prior is a small exact Gaussian prior, so the check takes
    milliseconds; pass a real prior to check on it (slower).
    """
    from .operators import make_generator
    from .samplers import sample_ddim

    prior = _small_gaussian_prior() if prior is None else prior
    shape = (2, *prior.image_shape)
    x_T = torch.randn(shape, generator=make_generator(seed)).to(device=prior.device, dtype=prior.dtype)
    outs = []
    for _ in range(2):
        out, err = _call(fn, prior, x_T.clone(), num_steps)
        if err:
            return _report(False, err + " (it is called as fn(prior, x_T, num_steps)).")
        try:
            outs.append(_as_tensor(out, x_T).clamp(-1, 1))
        except (TypeError, ValueError) as e:
            return _report(False, str(e))
    if not torch.equal(outs[0], outs[1]):
        return _report(False, "two calls with the same x_T gave different images: DDIM with η = 0 draws no noise "
                              "inside the loop (eta=0, or noise=None), so the image is a function of x_T alone.")
    other, err = _call(fn, prior, (-x_T).clone(), num_steps)
    if err:
        return _report(False, err)
    if torch.allclose(_as_tensor(other, x_T).clamp(-1, 1), outs[0]):
        return _report(False, "your function returns the same image for a different x_T: start the loop from the "
                              "x_T it is given (do not draw a new one).")
    ref = sample_ddim(prior, shape[0], num_steps=num_steps, eta=0.0, seed=seed, progress=False).sample
    ref_noclip = sample_ddim(prior, shape[0], num_steps=num_steps, eta=0.0, seed=seed, clip_denoised=False,
                             progress=False).sample
    mine = outs[0]
    if _close(mine, ref.cpu(), atol=1e-4) or _close(mine, ref_noclip.cpu(), atol=1e-4):
        return _report(True, "deterministic, and the same image as sample_ddim(eta=0) from this x_T.")
    lead = sample_ddim(prior, shape[0], num_steps=num_steps, eta=0.0, seed=seed, timestep_spacing="leading",
                       progress=False).sample
    if _close(mine, lead.cpu(), atol=1e-4):
        return _report(False, "you used diffusers' 'leading' spacing; visit prior.schedule.timesteps(num_steps) "
                              "(the default 'linspace', which starts at t = T − 1).")
    return _report(False, f"deterministic, but not the DDIM image (max |error| {_max_diff(mine, ref.cpu()):.3g}). "
                          "Visit ts = prior.schedule.timesteps(num_steps) in order; at each t use eps = prior.eps(x, t) "
                          "and prior.schedule.ddim_step(eps, t, t_prev, x, eta=0), with t_prev the next entry of ts "
                          "and −1 after the last one.")


# ---------------------------------------------------------------------- SDEdit (chapter "SDEdit")
def check_sdedit_start(fn: Callable, schedule: Optional[NoiseSchedule] = None) -> CheckResult:
    """Does ``fn(x_guide, noise, t0, schedule)`` return SDEdit's starting point x_{t0}?

    x_{t0} = √ᾱ_s x_guide + √(1 − ᾱ_s) ε with the training index s = round(t0 · (T − 1)), as in
    :func:`helpers.samplers.sdedit` (t0 is a fraction of the T training steps). Checked at
    t0 = 0.1, 0.4, 0.75, 1.0 on random tensors.
    """
    sched = _schedule(schedule)
    T = sched.num_train_timesteps
    for k, t0 in enumerate((0.1, 0.4, 0.75, 1.0)):
        x, _, z = _inputs(100 + k)
        s = int(round(t0 * (T - 1)))
        ref = sched.add_noise(x.double(), z.double(), s)
        out, err = _call(fn, x.clone(), z.clone(), t0, sched)
        if err:
            return _report(False, err + " (it is called as fn(x_guide, noise, t0, schedule)).")
        try:
            mine = _as_tensor(out, x)
        except (TypeError, ValueError) as e:
            return _report(False, str(e))
        if _close(mine, ref):
            continue
        if _close(mine, x.double()):
            return _report(False, f"at t0 = {t0} you returned the guide itself: add noise of the level of time "
                                  "s = round(t0 · (T − 1)).")
        for wrong, hint in ((int(round(t0 * T)), "use s = round(t0 · (T − 1)): training indices run from 0 to T − 1"),
                            (int(t0 * (T - 1)), "round t0 · (T − 1) to the nearest integer (int() truncates)")):
            if 0 <= wrong < T and _close(mine, sched.add_noise(x.double(), z.double(), wrong)):
                return _report(False, hint + ".")
        a = sched.alpha_bar(s)
        if _close(mine, a * x.double() + (1 - a) * z.double()):
            return _report(False, "the weights are √ᾱ_s and √(1 − ᾱ_s) (square roots), not ᾱ_s and 1 − ᾱ_s.")
        return _report(False, f"at t0 = {t0} the result differs from √ᾱ_s x + √(1 − ᾱ_s) ε with s = {s} "
                              f"(max |error| {_max_diff(mine, ref):.3g}); schedule.alpha_bar(s) gives ᾱ_s.")
    return _report(True, "x_{t0} = √ᾱ_s x_guide + √(1 − ᾱ_s) ε with s = round(t0 · (T − 1)), as in helpers.samplers.sdedit.")


def _as_number(value) -> Optional[float]:
    """A float from a number, a 0-d/one-element tensor or array; ``None`` if it is not one."""
    try:
        if torch.is_tensor(value):
            return float(value.detach().cpu().reshape(-1)[0]) if value.numel() == 1 else None
        arr = np.asarray(value, dtype=float)
        return float(arr.reshape(-1)[0]) if arr.size == 1 else None
    except (TypeError, ValueError):
        return None


def check_best_of_sweep(answer, swept, values, *, name: str, higher_is_better: bool = True,
                        metric: str = "PSNR") -> CheckResult:
    """Is ``answer`` the value of ``swept`` (e.g. SDEdit's t0, ScoreALD's λ, DPS's ζ′) with the best
    mean of ``values`` over the images?

    ``values``: shape (N,) (one per swept value) or (n_images, N). A column holding NaN is a run
    that diverged: it never counts as best. ``name`` is the swept symbol used in the messages.
    The chapters' checkers :func:`check_sdedit_best_t0`,
    :func:`helpers.exercises_ald.check_best_step_size` and
    :func:`helpers.exercises_dps.check_dps_best_zeta` are this function with their symbol.
    """
    try:
        swept = [float(s) for s in swept]
        v = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        return _report(False, f"the swept values must be numbers and values a numeric array (one column per {name}).")
    if v.ndim == 1:
        v = v[None]
    if v.ndim != 2 or v.shape[1] != len(swept) or not swept:
        return _report(False, f"values must have shape ({len(swept)},) or (n_images, {len(swept)}), one column per "
                              f"{name}; got {np.asarray(values).shape}.")
    finite = np.isfinite(v).all(axis=0)
    if not finite.any():
        return _report(False, f"every {name} of the sweep diverged (all NaN): there is no best one.")
    mean = np.where(finite, np.where(np.isfinite(v), v, 0.0).mean(axis=0), np.nan)
    best_i = int(np.nanargmax(mean) if higher_is_better else np.nanargmin(mean))
    if answer is None or answer is Ellipsis:
        return _report(False, f"replace the `...` with your {name} (a number from the sweep).")
    a = _as_number(answer)
    if a is None:
        return _report(False, f"the answer must be one number (a {name} of the sweep), got {type(answer).__name__}.")
    if not math.isfinite(a):
        return _report(False, "the answer must be a finite number.")
    matches = [i for i, s in enumerate(swept) if math.isclose(a, s, rel_tol=1e-9, abs_tol=1e-12)]
    if best_i in matches:
        word = "highest" if higher_is_better else "lowest"
        return _report(True, f"{name} = {swept[best_i]:g} gives the {word} mean {metric} ({mean[best_i]:.3f}).")
    if not matches:
        return _report(False, f"{a:g} is not one of the swept values {swept}.")
    i = matches[0]
    if not finite[i]:
        return _report(False, f"{name} = {a:g} diverged (NaN in its column): it cannot be the best. Ignore NaN columns "
                              f"(np.nanmean / np.nanargmax, or skip the diverged {name}).")
    arg = "arg max" if higher_is_better else "arg min"
    extra = ""
    if v.shape[0] > 1 and np.isfinite(v[0]).any():
        first = np.where(np.isfinite(v[0]), v[0], -np.inf if higher_is_better else np.inf)
        if i == int(np.argmax(first) if higher_is_better else np.argmin(first)):
            extra = f" That is the best {name} for the first image only: average over the images (axis 0) first."
    worse = "lower" if higher_is_better else "higher"
    return _report(False, f"{name} = {a:g} has a mean {metric} of {mean[i]:.3f}, {worse} than another {name} of the "
                          f"sweep; average over the images (axis 0) and take the {arg}.{extra}")


def check_sdedit_best_t0(answer, t0s, values, higher_is_better: bool = True, metric: str = "PSNR") -> CheckResult:
    """Is ``answer`` the t0 of ``t0s`` with the best mean of ``values`` over the images?

    ``values``: shape (N,) (one per t0) or (n_images, N), e.g. PSNR (``higher_is_better=True``)
    or LPIPS (``higher_is_better=False``). The student computes the best t0 from a sweep.
    """
    return check_best_of_sweep(answer, t0s, values, name="t0", higher_is_better=higher_is_better, metric=metric)


__all__ += ["check_sdedit_start", "check_best_of_sweep", "check_sdedit_best_t0"]


# ---------------------------------------------------------------------------- chapter 1 (Introduction)
def check_noise_psnr(value, noise_std: float) -> CheckResult:
    """Is ``value`` the PSNR [dB] of an image corrupted only by Gaussian noise of std ``noise_std``?

    ``noise_std`` is σ_y in model space [-1, 1]; PSNR is computed in image space [0, 1]
    (``data_range=1``), where the noise has std σ_y / 2, so the expected answer is
    10·log10(1 / (σ_y/2)²) = 20·log10(2/σ_y) (clipping to the image range ignored).
    """
    if not (isinstance(noise_std, (int, float)) and noise_std > 0):
        raise ValueError(f"noise_std must be a positive number (σ_y in model space), got {noise_std!r}")
    if value is None or value is Ellipsis:
        return _report(False, "replace the `...` with your PSNR in dB (a number).")
    try:
        v = float(value)
    except (TypeError, ValueError):
        return _report(False, f"the answer must be a number in dB, got {type(value).__name__}.")
    expected = 20 * math.log10(2.0 / noise_std)
    if abs(v - expected) < 0.05:
        return _report(True, f"PSNR = 20·log10(2/σ_y) = {expected:.2f} dB for σ_y = {noise_std:g}.")
    if abs(v - 20 * math.log10(1.0 / noise_std)) < 0.05:
        return _report(False, "you used σ_y as the image-space noise. σ_y is in model space [-1, 1], twice as wide as "
                              "image space [0, 1]: the image-space std is σ_y / 2.")
    if abs(v - 10 * math.log10(2.0 / noise_std)) < 0.05 or abs(v - 10 * math.log10(1.0 / noise_std)) < 0.05:
        return _report(False, "PSNR = 10·log10(range² / MSE): the MSE of the noise is its variance, the std *squared*.")
    return _report(False, "PSNR = 10·log10(data_range² / MSE) with data_range = 1 (image space); the MSE of pure "
                          "Gaussian noise is its variance. Convert σ_y from model space [-1, 1] to image space first.")


def check_kept_fraction(answers, image_size: int = 64) -> CheckResult:
    """Fractions of an image's numbers that each measurement keeps, for the first chapter's operators.

    ``answers``: ``{"box": f, "random": f, "sr4": f}`` for a ``BoxInpainting(image_size,
    image_size // 2)`` (a box of half the side), ``RandomInpainting(keep_fraction=0.3)`` and
    ``SuperResolution(4)``; each f in [0, 1]. Expected 0.75, 0.3 and 1/16.
    """
    expected = {"box": 1 - 0.25, "random": 0.3, "sr4": 1 / 16}
    hints = {
        "box": "the box has half the side of the image, so it hides (1/2)² of the pixels.",
        "random": "RandomInpainting(keep_fraction=0.3) keeps 30 % of the pixels.",
        "sr4": "×4 super-resolution averages 4 × 4 blocks: one number per 16 pixels (per channel).",
    }
    if not isinstance(answers, dict):
        return _report(False, f"give a dict {{'box': ..., 'random': ..., 'sr4': ...}}, got {type(answers).__name__}.")
    missing = [k for k in expected if k not in answers]
    if missing:
        return _report(False, f"the dict lacks {missing}; give one fraction per operator.")
    wrong = []
    for k, e in expected.items():
        a = answers[k]
        if a is None or a is Ellipsis:
            return _report(False, f"replace the `...` of {k!r} with a fraction between 0 and 1.")
        try:
            a = float(a)
        except (TypeError, ValueError):
            return _report(False, f"{k!r}: the fraction must be a number, got {type(a).__name__}.")
        if abs(a - e) > 0.01:
            wrong.append(k)
    if wrong:
        return _report(False, " ".join(f"{k}: {hints[k]}" for k in wrong))
    return _report(True, "box 0.75, random 0.30, ×4 super-resolution 0.0625: super-resolution keeps the fewest numbers, "
                         "yet its missing information is only fine detail, spread evenly over the face.")


__all__ += ["check_noise_psnr", "check_kept_fraction"]
